"""The router's cocotb testbench (tb/router_tb.py) on Icarus and Verilator.

Each case runs in its own simulator process and writes its results under
``build/tests/<test id>``; the simulator build is shared (see ``sim.build``).
A missing simulator fails the test: ``sim.build`` raises rather than skips.

Environment: ``TESSERA_SEED`` (1 by default, printed on failure) and
``TESSERA_WAVELETS`` (overrides the random-traffic count of every preset: ``make soak``
runs 10^6 on each simulator).
"""

import os
import re

import pytest

from rtl.params import PRESETS

#: Wavelets of the random-traffic test, per preset.
WAVELETS = {"test": 100_000, "wse3": 20_000}

CASES = ["random_traffic", "color_isolation", "multicast", "switch_advance", "xy_addressing",
         "throughput_latency"]

#: (simulator, preset).  The 24-color wse3 router runs on Verilator only: Icarus
#: takes ~2.0 ms per simulated cycle for it (the 4-color router: ~0.5 ms; Verilator:
#: ~0.2 ms for either), so its 20k-wavelet random test (~24k cycles) would add about a
#: minute to a suite meant to finish in a few; the 4-color router covers Icarus.
CONFIGS = [("icarus", "test"), ("verilator", "test"), ("verilator", "wse3")]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("sim,preset", CONFIGS, ids=[f"{s}-{p}" for s, p in CONFIGS])
def test_router_cocotb(cocotb_run, sim, preset, case):
    env, test_id = {}, f"router-{sim}-{preset}-{case}"
    if case == "random_traffic":
        env["TESSERA_WAVELETS"] = os.environ.get("TESSERA_WAVELETS", str(WAVELETS[preset]))
        if env["TESSERA_WAVELETS"] != str(WAVELETS[preset]):
            test_id += f"-{env['TESSERA_WAVELETS']}"    # a soak keeps its own results
    cocotb_run("router", PRESETS[preset], sim, "tb.router_tb",
               test_filter=rf"\.{re.escape(case)}(/|$)", test_id=test_id, env=env)
