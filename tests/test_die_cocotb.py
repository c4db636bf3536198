"""The die's cocotb testbench (tb/die_tb.py) on Icarus and Verilator: a 2 x 2 die with a
spare column, with and without dead tiles."""

import pytest

from rtl.params import PRESETS

PARAMS = PRESETS["test"].replace(width=2, height=2, spare_cols=1)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_die_cocotb(cocotb_run, sim):
    cocotb_run("die", PARAMS, sim, "tb.die_tb", test_filter=r"\.defect_tolerance(/|$)",
               test_id=f"die-{sim}")
