"""Waveforms, read back with pywellen: a cocotb test's FST from Verilator and from Icarus
(``WAVES=1``), and ``tessera run --waves``'s FST of the tile harness, each held to what
its run reports."""

import json
import re
import subprocess
import sys

import pytest
import pywellen

from rtl.isa import Counter
from rtl.mesh import ROUTER_MODULE
from rtl.params import PRESETS, preset
from rtl.wavelet import Dir, unpack_wavelet
from sim import build


def signals(path):
    """``{full name: [(time, value), ...]}``, every signal's changes in the file at ``path``."""
    waveform = pywellen.Waveform(str(path))
    return waveform, {var.full_name: list(var.tv) for var in waveform.all_vars()}


def value_before(changes, time):
    """The value that a signal of ``changes`` held just before ``time``."""
    return [value for at, value in changes if at < time][-1]


def runs(cycles):
    """The runs of consecutive numbers in ``cycles``, as (first, length)."""
    found = []
    for cycle in cycles:
        if found and cycle == sum(found[-1]):
            found[-1] = (found[-1][0], found[-1][1] + 1)
        else:
            found.append((cycle, 1))
    return found


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_cocotb_waves_show_the_wavelets_the_test_drove(cocotb_run, sim, monkeypatch):
    """The router's one-flow throughput test: the west input's valid is high at as many
    consecutive clock edges as the test says it drove wavelets, and the east output's
    valid at as many, one edge later (its latency of one cycle)."""
    monkeypatch.setenv("WAVES", "1")
    test_id = f"waves-router-{sim}-throughput_latency"
    cocotb_run("router", PRESETS["test"], sim, "tb.router_tb",
               test_filter=r"\.throughput_latency/flow=static$", test_id=test_id)
    test_dir = build.BUILD / "tests" / test_id
    _, waves = signals(build.cocotb_waves_file(test_dir))
    reported = re.search(r"throughput_latency\[static\]: (\d+) wavelets in \1 consecutive "
                         r"cycles, latency 1", (test_dir / "sim.log").read_text())
    assert reported, "the test's log does not report its wavelets"
    wavelets = int(reported[1])

    top = ROUTER_MODULE
    clock = waves[f"{top}.clk"]
    times = [time for time, _ in clock]
    assert [value for _, value in clock] == [1 - k % 2 for k in range(len(clock))]
    assert len({b - a for a, b in zip(times, times[1:])}) == 1, "the clock's period varies"
    edges = times[2::2]            # the rising edges after the first (time zero)

    def high_at_edges(name):
        changes = waves[f"{top}.{name}"]
        return [k for k, edge in enumerate(edges) if value_before(changes, edge)]

    driven = runs(high_at_edges(f"inputs__{Dir.W.value}__valid"))
    delivered = runs(high_at_edges(f"outputs__{Dir.E.value}__valid"))
    assert [length for _, length in driven] == [wavelets]
    assert delivered == [(driven[0][0] + 1, wavelets)]


TILES = [(x, y) for y in range(4) for x in range(4)]     # the one 4x4 die of --wafer 1x1
FIRST = 1000                                             # the window's first cycle


@pytest.fixture(scope="module")
def waves_run(tmp_path_factory):
    """A small run with a waveform of every tile from cycle FIRST to past its end: (its
    stdout, its --json report, the waveform's signals)."""
    folder = tmp_path_factory.mktemp("waves")
    result = subprocess.run(
        [sys.executable, "-m", "host.cli", "run", "--model", "seeded", "--wafer", "1x1",
         "--prompt", "Hi", "--tokens", "2", "--json", str(folder / "run.json"),
         "--waves", str(folder / "run.fst"),
         "--waves-tiles", ";".join(f"{x},{y}" for x, y in TILES),
         "--waves-cycles", f"{FIRST}:1000000"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return (result.stdout, json.loads((folder / "run.json").read_text()),
            signals(folder / "run.fst"))


def test_run_waves_cover_the_window_a_cycle_a_nanosecond(waves_run):
    stdout, report, (waveform, waves) = waves_run
    cycles = report["cycles"]
    assert f"waveform of {len(TILES)} tiles, cycles {FIRST:,} to {cycles - 1:,}:" in stdout
    assert (waveform.timescale.factor, str(waveform.timescale.unit)) == (100, "ps")
    # The clock: low at each cycle's start, high at its edge, half a nanosecond later.
    assert waves["wafer.clk"] == [(10 * cycle + 5 * high, high)
                                  for cycle in range(FIRST, cycles) for high in (0, 1)]
    assert min(time for changes in waves.values() for time, _ in changes) == 10 * FIRST


def test_run_waves_show_the_run_end_and_its_tokens_leave(waves_run):
    _, report, (_, waves) = waves_run
    cycles, tokens = report["cycles"], report["tokens"]
    # The run ends at the first cycle when every tile is idle: the last rose at the
    # edge of the cycle before.
    idle = [waves[f"wafer.tile_{x}_{y}.idle"] for x, y in TILES]
    assert all(changes[-1][1] == 1 for changes in idle)
    assert max(changes[-1][0] for changes in idle) == 10 * (cycles - 1) + 5
    # Each token leaves the wafer at the west edge of the first stage's row, from the
    # edge before the cycle the run reports it arriving in.
    row = report["stage_cycles"][0]["tile"][1]
    first = report["time_to_first_token_cycles"]
    arrivals = [first + k * round(report["cycles_per_token"]) for k in range(len(tokens))]
    valid = waves[f"wafer.tile_0_{row}.outputs_west.valid"]
    assert [time for time, value in valid if value] == [10 * (a - 1) + 5 for a in arrivals]
    words = dict(waves[f"wafer.tile_0_{row}.outputs_west.wavelet"])
    params = preset("default")
    assert [unpack_wavelet(params, words[10 * (a - 1) + 5])[0] for a in arrivals] == tokens


def test_run_waves_end_on_the_counters_the_run_read(waves_run):
    """A tile the harness skips keeps its counters in the waveform caught up, as the run's
    own reads are."""
    _, report, (_, waves) = waves_run
    for tile in report["wafer_map"]["tiles"]:
        if tile["kind"] != "tile":
            continue
        x, y = tile["logical"]
        scope = f"wafer.tile_{x}_{y}.counters"
        assert waves[f"{scope}.busy"][-1][1] == tile["busy_cycles"], (x, y)
        assert waves[f"{scope}.cycles"][-1][1] == tile["enabled_cycles"], (x, y)


def test_wafer_waves_keep_to_their_window(tmp_path):
    """Cycles 10 to 19 of 50, and nothing else; cycle 10 starts with the state that 10
    cycles left."""
    from host.wafer import Wafer
    wafer = Wafer((1, 1), (4, 4), preset("default"))
    wafer.waves(tmp_path / "window.fst", [(2, 1)], 10, 20)
    wafer.start()
    wafer.step(10)
    after_ten = wafer.status(2, 1)["counters"][Counter.CYCLES]
    wafer.step(40)
    wafer.close()
    _, waves = signals(tmp_path / "window.fst")
    assert waves["wafer.clk"] == [(10 * cycle + 5 * high, high)
                                  for cycle in range(10, 20) for high in (0, 1)]
    assert {time for changes in waves.values() for time, _ in changes} <= \
        {10 * cycle + half for cycle in range(10, 20) for half in (0, 5)}
    assert waves["wafer.tile_2_1.counters.cycles"][0] == (100, after_ten) and after_ten > 0


WAVES = ["--waves", "{tmp}/w.fst", "--waves-tiles", "0,0", "--waves-cycles", "0:10"]


@pytest.mark.parametrize("args,message", [
    (["--waves", "{tmp}/w.vcd", *WAVES[2:]], "--waves writes an FST waveform; name it *.fst"),
    (["--waves", "{tmp}/file/w.fst", *WAVES[2:]], "cannot write there"),
    (WAVES[:4], "--waves needs --waves-tiles X,Y[;X,Y...] and --waves-cycles A:B"),
    (WAVES[4:], "--waves-cycles goes with --waves FILE.fst"),
    ([*WAVES[:3], "0,0;4,0", *WAVES[4:]], "--waves-tiles: tile (4, 0) is not on the 4x4 wafer"),
    ([*WAVES[:3], "0.0", *WAVES[4:]], "--waves-tiles expects X,Y pairs separated by ';'"),
    ([*WAVES[:5], "10:10"], "--waves-cycles 10:10: no cycles (A to B - 1 needs A < B)"),
    ([*WAVES[:5], "10:5"], "--waves-cycles 10:5: no cycles"),
    ([*WAVES, "--harness", "dies"], "--waves records on the tile harness in one process"),
])
def test_run_waves_refuse_bad_input_before_running(tmp_path, capsys, args, message):
    from host import cli
    (tmp_path / "file").write_text("")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert cli.main(["run", "--model", "seeded", "--wafer", "1x1", *args]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]
