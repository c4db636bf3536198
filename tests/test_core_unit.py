"""The core RTL in the Amaranth simulator: a quick differential check against the ISS.

The full regressions run under cocotb on Icarus and Verilator
(tests/test_core_cocotb.py); this one needs no build and catches a broken core early.
"""

from rtl.core import Core
from rtl.params import PRESETS
from sim.core_session import judge_all, simulate_amaranth
from tb.directed_programs import address_edge_cases, directed_cases
from tb.random_programs import random_case

# A smaller core than the test preset's, so that the Python simulator is quick: without the
# float lanes, which take it minutes to compile (cocotb checks them, tests/test_core_cocotb.py).
PARAMS = PRESETS["test"].replace(lanes=8, sram_bytes=4096, code_bytes=1024, acc_words=64,
                                 float_lanes=0)
SEED = 7


def test_core_rtl_matches_iss_in_the_amaranth_simulator():
    cases = [(name, case, check) for name, case, check in directed_cases(PARAMS)
             if name in ("scalar_alu", "tasks", "vtbl", "vmacs_fabric", "two_streams",
                         "fault_vector_range")]
    cases += address_edge_cases(PARAMS)
    cases += [(f"random program {seed}", random_case(PARAMS, seed), None)
              for seed in range(1000 * SEED, 1000 * SEED + 6)]
    failures = simulate_amaranth(Core(PARAMS), lambda port: judge_all(port, PARAMS, cases))
    assert not failures, "\n".join(failures)
