"""`tessera bench sim-speed` on a small die: every back end runs the same kernel, cycle for
cycle, and the JSON has the keys the benchmark promises."""

import json

import pytest

from host.bench import speed as speed_bench
from host.cli import main
from rtl.params import PRESETS

PARAMS = PRESETS["test"].replace(width=2, height=2, spare_cols=1)
CYCLES = 40


def test_every_backend_streams_the_same_wavelets_in_the_same_cycles():
    # The split back ends run past their link's latency, for their east edge to see data.
    cycles = {name: CYCLES + (speed_bench.PARALLEL_LATENCY + 3 * CYCLES
                              if name in speed_bench.SPLIT else 0)
              for name in speed_bench.BACKENDS}
    result, outputs = speed_bench.run(PARAMS, cycles=cycles, dies={},
                                      progress=lambda line: None)
    reference = outputs["native"]
    # The kernel works: each row's stream leaves the east edge, one added per tile.
    for (side, y), wavelets in reference.items():
        assert [data for _, data, _, _ in wavelets][:5] == [k + PARAMS.width for k in range(5)]
    for backend in ("amaranth", "cocotb_icarus", "cocotb_verilator", "native_tiles",
                    "native_tiles_threads"):
        assert outputs[backend] == reference, backend
    # The parallel run simulates two dies in a row: the second die adds two more.
    split = outputs["native_parallel"]
    assert all(len(wavelets) > 5 for wavelets in split.values())
    assert all(data >= PARAMS.width * 2 for wavelets in split.values()
               for _, data, _, _ in wavelets)
    assert outputs["native_mpi"] == split                           # the same split on MPI
    assert set(result["tile_cycles_per_second"]) == set(speed_bench.BACKENDS)
    assert all(rate > 0 for rate in result["tile_cycles_per_second"].values())
    rates = result["tile_cycles_per_second"]
    assert result["native_vs_cocotb_verilator"] == pytest.approx(
        rates["native"] / rates["cocotb_verilator"])
    assert result["tiles_vs_native"] == pytest.approx(rates["native_tiles"] / rates["native"])
    assert result["runs"]["native_tiles_threads"]["threads"] >= 1


def test_sim_speed_refuses_an_unknown_backend(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["bench", "sim-speed", "--backends", "native,quantum", "--json", str(out)]) == 2
    assert "unknown back end 'quantum'" in capsys.readouterr().err
    assert not out.exists()


def test_sim_speed_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    assert main(["bench", "sim-speed", "--preset", "test", "--set", "spare_cols=1", "--die",
                 "2x2", "--backends", "native", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["tile_cycles_per_second"]["native"] > 0
