"""The core's cocotb testbench (tb/core_tb.py) on Icarus and Verilator.

``random_programs`` runs ``PROGRAMS`` seeded programs per simulator (500 in all
per run), each compared with the ISS; ``directed`` runs every directed program.
"""

import os
import re

import pytest

from rtl.params import PRESETS

PROGRAMS = 250
SIMULATORS = ["icarus", "verilator"]


@pytest.mark.parametrize("case", ["directed", "float_directed", "random_programs"])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_core_cocotb(cocotb_run, sim, case):
    env = {"TESSERA_PROGRAMS": os.environ.get("TESSERA_PROGRAMS", str(PROGRAMS))}
    # The float programs run on the test core with its float lanes on (the test preset,
    # which the dies and wafers use too, leaves them out for now: build time).
    params = PRESETS["test"].replace(float_lanes=int(case == "float_directed"))
    cocotb_run("core", params, sim, "tb.core_tb",
               test_filter=rf"\.{re.escape(case)}(/|$)", test_id=f"core-{sim}-{case}", env=env)
