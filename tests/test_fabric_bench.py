"""The native mesh benchmark on a small mesh: exact, deterministic cycle counts."""

import pytest

from host.bench import fabric as fabric_bench
from rtl.params import PRESETS

PARAMS = PRESETS["test"]   # 4x4 routers, 4 colors


def bench(traffic, rates, measure=1500, seed=3):
    return fabric_bench.run(PARAMS, traffic, rates, warmup=300, measure=measure, seed=seed,
                            progress=lambda line: None)


def test_broadcast_delivers_one_wavelet_per_cycle_to_every_tile():
    result = bench("broadcast", [1.0])
    point = result["points"][0]
    assert point["accepted"] == pytest.approx(1.0, abs=0.002)
    # Tile x of a row is x hops from the west tile, plus the cycle in the first router.
    assert point["average_latency"] == pytest.approx(sum(x + 1 for x in range(4)) / 4, abs=0.01)


def test_zero_load_latency_is_one_cycle_per_router_passed():
    # Long enough that the sample's mix of sources is near the uniform one (standard
    # error of the mean about 0.015 cycles).
    result = bench("neighbor", [0.01], measure=40000)
    # Neighbour traffic goes to (x+1, y+1) mod 4: from most tiles 2 hops (3 routers),
    # from the last row or column 4 hops (5), from the corner 6 hops (7).
    hops = [(1 if x < 3 else 3) + (1 if y < 3 else 3) for y in range(4) for x in range(4)]
    expected = sum(h + 1 for h in hops) / len(hops)
    assert result["points"][0]["average_latency"] == pytest.approx(expected, abs=0.05)


def test_uniform_traffic_is_accepted_below_saturation_and_deterministic():
    first = bench("uniform", [0.1, 0.3])
    assert first["points"][0]["accepted"] == pytest.approx(0.1, abs=0.01)
    assert first["points"][1]["accepted"] == pytest.approx(0.3, abs=0.02)
    again = bench("uniform", [0.1, 0.3])
    assert again["points"] == first["points"]
    assert bench("uniform", [0.1, 0.3], seed=4)["points"] != first["points"]


@pytest.mark.parametrize("traffic, rates", [("uniform", [0.05, 0.6]), ("broadcast", [1.0])])
def test_the_mesh_wired_in_cpp_matches_the_verilog_mesh_top_cycle_for_cycle(traffic, rates):
    # The benchmark wires one Verilated router per tile in C++; the Verilog mesh top
    # (instances wired by Amaranth) must eject the same wavelets in the same cycles.
    native = bench(traffic, rates, measure=600)
    top = fabric_bench.run(PARAMS, traffic, rates, warmup=300, measure=600, seed=3,
                           progress=lambda line: None, fabric="mesh_top")
    assert [p["digest"] for p in native["points"]] == [p["digest"] for p in top["points"]]
    assert native["points"] == top["points"]
