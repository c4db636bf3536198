"""The core's cocotb testbench (tb/core_tb.py) on Icarus and Verilator.

``random_programs`` runs ``PROGRAMS[sim]`` seeded programs (500 in all per run),
each compared with the ISS; ``directed`` and ``float_directed`` run every directed
program.  Icarus takes the smaller share: with the float lanes it simulates the
core about 15 times slower than Verilator (1,303 s for 250 programs, beside other
work; 297 s for 100 in a clean-clone run), so it runs the first 40 of Verilator's.
"""

import os
import re

import pytest

from rtl.params import PRESETS

PROGRAMS = {"icarus": 40, "verilator": 460}
SIMULATORS = list(PROGRAMS)


@pytest.mark.parametrize("case", ["directed", "float_directed", "random_programs"])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_core_cocotb(cocotb_run, sim, case):
    env = {"TESSERA_PROGRAMS": os.environ.get("TESSERA_PROGRAMS", str(PROGRAMS[sim]))}
    # The core runs with its float lanes, so the random programs include float
    # operations (the test preset, which the dies and wafers use too, leaves them out:
    # build time).  All three cases share one model per simulator.
    params = PRESETS["test"].replace(float_lanes=1)
    cocotb_run("core", params, sim, "tb.core_tb",
               test_filter=rf"\.{re.escape(case)}(/|$)", test_id=f"core-{sim}-{case}", env=env)
