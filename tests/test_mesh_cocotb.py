"""The mesh's cocotb testbench (tb/mesh_tb.py) on Icarus and Verilator: a 4 x 4 mesh
(``PRESETS["test"]``) with random XY traffic between the ramps plus a static multicast
along a row, and the hop latency.

Environment: ``TESSERA_SEED`` (1 by default, printed on failure) and
``TESSERA_MESH_WAVELETS`` (XY wavelets of the random test).
"""

import os
import re

import pytest

from rtl.params import PRESETS

WAVELETS = 4000


@pytest.mark.parametrize("case", ["random_mesh_traffic", "hop_latency"])
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_mesh_cocotb(cocotb_run, sim, case):
    env = {"TESSERA_MESH_WAVELETS": os.environ.get("TESSERA_MESH_WAVELETS", str(WAVELETS))}
    cocotb_run("mesh", PRESETS["test"], sim, "tb.mesh_tb",
               test_filter=rf"\.{re.escape(case)}(/|$)",
               test_id=f"mesh-{sim}-{case}", env=env)
