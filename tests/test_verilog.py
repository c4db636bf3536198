"""Generated Verilog: lint-clean under `verilator -Wall`, cached, gentle in cost per color; the
float lanes' cost."""

import json

import pytest

from host.cli import main
from rtl.params import PRESETS
from sim import build


@pytest.mark.parametrize("kind, preset", [
    ("router", "test"), ("router", "default"), ("router", "wse3"), ("mesh", "test"),
    ("tile", "test"), ("tile", "default"), ("die", "test"),
])
def test_verilog_is_lint_clean_with_only_the_named_waivers(kind, preset):
    build.lint(build.verilog(kind, PRESETS[preset]))   # raises ToolError on any warning


def test_conversion_is_cached_by_parameters():
    params = PRESETS["test"].replace(queue_depth=3)
    first = build.verilog("router", params)
    stamp = first.sources[0].stat().st_mtime_ns
    again = build.verilog("router", params)
    assert again.directory == first.directory
    assert again.sources[0].stat().st_mtime_ns == stamp        # not rewritten
    assert build.verilog("router", params.replace(queue_depth=2)).directory != first.directory


def test_router_cost_grows_linearly_with_colors():
    cells = {colors: build.yosys_stats("router", PRESETS["test"].replace(colors=colors))["cells"]
             for colors in (4, 8, 24)}
    per_color_low = (cells[8] - cells[4]) / 4
    per_color_high = (cells[24] - cells[8]) / 16
    # A router that arbitrates over every (input, color) pair grows quadratically;
    # this one adds the same cost for each color.
    assert per_color_high < 1.25 * per_color_low, cells


def test_verilog_stats_reports_the_tile_with_and_without_its_float_lanes(tmp_path, capsys):
    out = tmp_path / "stats.json"
    # 8 lanes, test_synth's tile: half the cells of the preset's 16 to count, twice.
    assert main(["verilog", "tile", "--preset", "test", "--set", "lanes=8", "--set",
                 "float_lanes=1", "--stats", "-o", str(tmp_path / "v"), "--json", str(out)]) == 0
    stats = json.loads(out.read_text())
    lanes = stats["float_lanes"]
    assert lanes["cells_with"] == stats["cells"]          # the test tile has them
    assert lanes["cells_with"] > lanes["cells_without"] > 0
    assert lanes["ratio"] == lanes["cells_with"] / lanes["cells_without"]
    assert "with the float lanes" in capsys.readouterr().out
