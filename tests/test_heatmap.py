"""`tessera run --heatmap`: the picture of the wafer is drawn from the tiles' own counters,
and those agree with the stage cycles the run reports."""

import json
import subprocess
import sys

from host import heatmap, model

PROMPT, TOKENS = "Hi", 2
DEAD = (1, 2)                    # a physical tile of the one 4x4 die (5 columns with its spare)


def test_heatmap_draws_the_measured_busy_fraction_of_every_tile(tmp_path):
    (tmp_path / "defects.txt").write_text(f"{DEAD[0]},{DEAD[1]}\n")
    picture = tmp_path / "wafer.png"
    result = subprocess.run(
        [sys.executable, "-m", "host.cli", "run", "--model", "seeded", "--wafer", "1x1",
         "--prompt", PROMPT, "--tokens", str(TOKENS), "--defects", str(tmp_path / "defects.txt"),
         "--json", str(tmp_path / "run.json"), "--heatmap", str(picture)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run.json").read_text())
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
