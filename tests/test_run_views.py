"""The views of a run, `tessera run --heatmap` and `--trace`: drawn from what the tiles
measured, and in agreement with the stage cycles the run reports."""

import json
import subprocess
import sys

import pytest

from host import heatmap, model
from rtl.isa import SLOTS

PROMPT, TOKENS = "Hi", 2
DEAD = (1, 2)                    # a physical tile of the one 4x4 die (5 columns with its spare)
#: The parts of a vector operation's span, in their order (host/trace.py).
PARTS = ("stalled", "issuing", "draining")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small run with both views: (its folder, its --json report)."""
    folder = tmp_path_factory.mktemp("views")
    (folder / "defects.txt").write_text(f"{DEAD[0]},{DEAD[1]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "host.cli", "run", "--model", "seeded", "--wafer", "1x1",
         "--prompt", PROMPT, "--tokens", str(TOKENS), "--defects", str(folder / "defects.txt"),
         "--json", str(folder / "run.json"), "--heatmap", str(folder / "wafer.png"),
         "--trace", str(folder / "trace.json")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return folder, json.loads((folder / "run.json").read_text())


def test_heatmap_draws_the_measured_busy_fraction_of_every_tile(run, tmp_path):
    folder, report = run
    picture = folder / "wafer.png"
    wafer_map = report["wafer_map"]

    # The picture is the report's wafer map, drawn: drawing it again gives the same PNG.
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heatmap.draw(wafer_map, tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == picture.read_bytes()

    # Every physical tile once: the dead one, a spare in each row without a dead tile.
    tiles = {tuple(tile["physical"]): tile for tile in wafer_map["tiles"]}
    assert len(tiles) == len(wafer_map["tiles"]) == 5 * 4
    assert [xy for xy, tile in tiles.items() if tile["kind"] == "dead"] == [DEAD]
    assert sorted(xy for xy, tile in tiles.items() if tile["kind"] == "spare") == \
        [(4, 0), (4, 1), (4, 3)]
    # The logical tiles of the dead tile's row shift right past it.
    assert tiles[2, 2]["logical"] == [1, 2] and tiles[0, 2]["logical"] == [0, 2]

    # The stages sit where the report says, and their counters describe this run.
    by_stage = {tile["stage"]: tile for tile in tiles.values() if tile.get("stage")}
    stages = report["stage_cycles"]
    assert {name: tile["logical"] for name, tile in by_stage.items()} == \
        {stage["stage"]: stage["tile"] for stage in stages}
    for tile in by_stage.values():
        assert 0 < tile["busy_cycles"] <= tile["enabled_cycles"] <= report["cycles"]
        assert tile["busy_fraction"] == tile["busy_cycles"] / report["cycles"]
    unused = [tile["busy_fraction"] for tile in tiles.values()
              if tile["kind"] == "tile" and not tile["stage"]]
    assert len(unused) == 16 - len(stages) and max(unused) < 0.01

    # Two measurements of one thing: a stage's busy counter against its compute cycles
    # (its own cycle stamps, input in to output sent) over the run's entries.
    entries = len(model.encode(PROMPT)) + TOKENS - 1
    for stage in stages:
        ratio = by_stage[stage["stage"]]["busy_cycles"] / (stage["compute_cycles"] * entries)
        assert 0.5 < ratio < 1.5, (stage, ratio)
    # Attention costs about twice a feed-forward's compute; the picture shows it busier.
    for a in stages:
        for b in stages:
            if a["compute_cycles"] > 1.5 * b["compute_cycles"]:
                assert by_stage[a["stage"]]["busy_fraction"] > \
                    by_stage[b["stage"]]["busy_fraction"], (a, b)


def test_trace_has_a_track_a_stage_with_the_logged_spans(run):
    folder, report = run
    document = json.loads((folder / "trace.json").read_text())
    events = document["traceEvents"]
    # The trace-event format's shape: every event a known phase with its fields.
    for event in events:
        assert event["ph"] in "XCM" and isinstance(event["name"], str), event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int), event
        if event["ph"] != "M":
            assert isinstance(event["ts"], int) and 0 <= event["ts"] <= report["cycles"]
        if event["ph"] == "X":
            assert isinstance(event["dur"], int) and event["dur"] >= 0, event
    names = {e["pid"]: e["args"]["name"] for e in events
             if e["name"] == "thread_name" and e["tid"] == 0}
    stages = report["stage_cycles"]
    assert list(names.values()) == [stage["stage"] for stage in stages]
    slots = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["name"] == "thread_name" and e["tid"]}
    assert slots == {(pid, 1 + n): f"slot {n}" for pid in names for n in range(SLOTS)}

    entries = len(model.encode(PROMPT)) + TOKENS - 1
    decode = [f"user 0 position {p}" for p in range(len(model.encode(PROMPT)), entries)]
    for pid, stage in zip(names, stages):
        spans = sorted((e for e in events if e["pid"] == pid and e["ph"] == "X"
                        and e["tid"] == 0), key=lambda e: e["ts"])
        # Waiting and computing alternate, an entry after the other, never overlapping.
        assert [e["cat"] for e in spans] == ["wait", "compute"] * entries
        assert all(a["ts"] + a["dur"] <= b["ts"] for a, b in zip(spans, spans[1:]))
        # The report's compute cycles are the mean of the spans of the decode entries.
        compute = [e["dur"] for e in spans if e["name"] in decode]
        assert len(compute) == len(decode)
        assert sum(compute) / len(compute) == stage["compute_cycles"], stage
        # Every vector operation starts while its stage works on an entry (ready to the
        # output sent, which launches the operation that sends it) ...
        windows = [(wait["ts"], compute["ts"] + compute["dur"])
                   for wait, compute in zip(spans[::2], spans[1::2])]
        operations = vector_operations(events, pid)
        assert len(operations) >= entries
        for operation, _ in operations:
            assert any(begin <= operation["ts"] <= end for begin, end in windows), operation
        # ... and the two sources of the SRAM bytes read, the tile's stamps at each entry's
        # output and the harness's reads at each operation's end, make one rising count.
        reads = sorted((e["ts"], e["args"]["bytes"]) for e in events
                       if e["pid"] == pid and e["name"] == "SRAM bytes read")
        assert len(reads) == entries + len(operations) and reads[0][1] > 0
        assert all(a[1] <= b[1] for a, b in zip(reads, reads[1:])), reads
        wavelets = sorted((e["ts"], e["args"]) for e in events
                          if e["pid"] == pid and e["name"] == "wavelets")
        assert wavelets[0][1] == {"in": 0, "out": 0} and wavelets[-1][1]["in"] > 0
        assert all(a[1]["in"] <= b[1]["in"] and a[1]["out"] <= b[1]["out"]
                   for a, b in zip(wavelets, wavelets[1:])), wavelets


def vector_operations(events, pid):
    """Tile ``pid``'s vector operations, each ``(span, parts)``, checked to be well formed:
    one at a time in each slot, split into stalled, issuing and draining without a gap."""
    found = []
    for n in range(SLOTS):
        spans = sorted((e for e in events if e["pid"] == pid and e["tid"] == 1 + n
                        and e["ph"] == "X"),
                       key=lambda e: (e["ts"], -e["dur"]))
        operations = []
        for span in spans:
            if span["name"] in PARTS:
                operations[-1][1].append(span)
            else:
                operations.append((span, []))
        for (span, parts), (after, _) in zip(operations, operations[1:] + [(None, None)]):
            assert span["args"]["beats"] > 0 and span["args"]["slot"] == n, span
            assert after is None or span["ts"] + span["dur"] <= after["ts"], (span, after)
            assert [part["name"] for part in parts] == \
                [name for name in PARTS if any(part["name"] == name for part in parts)]
            assert "issuing" in [part["name"] for part in parts], span
            ends = [span["ts"]] + [part["ts"] + part["dur"] for part in parts]
            assert [part["ts"] for part in parts] == ends[:-1] and ends[-1] == \
                span["ts"] + span["dur"], (span, parts)
            issuing = next(part for part in parts if part["name"] == "issuing")
            assert issuing["dur"] == issuing["args"]["beats"] + \
                issuing["args"]["cycles without a beat"] and issuing["args"]["beats"] == \
                span["args"]["beats"], issuing
        found += operations
    return found
