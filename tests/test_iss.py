"""The ISS on its own: directed programs against hand-computed results, and its timing rules.

The same directed programs run on the RTL in tests/test_core_cocotb.py; here they
check the golden model itself, quickly.
"""

import pytest

from host.asm import assemble
from rtl.isa import Counter, Fault
from rtl.params import PRESETS
from sim.core_session import run_iss
from sim.iss import Core, RampSender, run
from tb.directed_programs import directed_cases
from tb.random_programs import random_case

PARAMS = PRESETS["test"]
CASES = directed_cases(PARAMS)


@pytest.mark.parametrize("name, case, check", CASES, ids=[name for name, _, _ in CASES])
def test_directed_program_on_iss(name, case, check):
    check(run_iss(PARAMS, case))


def _cycles(source, wavelets=()):
    core = Core(PARAMS)
    core.load(assemble(source, PARAMS).words())
    cycles = run(core, RampSender(PARAMS, wavelets))
    assert core.halted and core.fault == Fault.NONE
    return cycles, core


@pytest.mark.parametrize("length, beats", [(1, 1), (16, 1), (17, 2), (64, 4)])
def test_synchronous_vector_op_costs_its_beats_plus_five(length, beats):
    # A beat a cycle issues, then passes E1 to E4; the core waits for the last.
    base, _ = _cycles(f"li r1, {length}\ndacc d0, r0, r1\nhalt")
    with_op, _ = _cycles(f"li r1, {length}\ndacc d0, r0, r1\nvmov d0, d0\nhalt")
    assert with_op - base == beats + 5


def test_a_load_takes_two_cycles_and_a_store_one():
    base, _ = _cycles("li r1, 7\nhalt")
    loaded, core = _cycles("li r1, 7\nst r1, 64(r0)\nld r2, 64(r0)\nhalt")
    assert loaded - base == 1 + 2
    assert core.regs[2] == 7


def test_the_first_cycle_after_reset_only_fetches():
    cycles, core = _cycles("halt")
    assert cycles == 2 and core.counters[Counter.CYCLES] == 2


def test_strided_vector_takes_one_element_per_beat():
    base, _ = _cycles("li r1, 10\ndmem d0, r0, r1, 2\nhalt")
    strided, core = _cycles("li r1, 10\ndmem d0, r0, r1, 2\nvmov d0, d0\nhalt")
    assert strided - base == 10 + 5
    assert core.counters[Counter.SRAM_READS] == 10


def test_async_op_overlaps_scalar_work():
    sync, _ = _cycles("li r1, 64\ndacc d0, r0, r1\nvmov d0, d0\n" + "nop\n" * 4 + "halt")
    overlapped, _ = _cycles("li r1, 64\ndacc d0, r0, r1\nvmov d0, d0, async\n"
                            + "nop\n" * 4 + "wait 0\nhalt")
    assert overlapped < sync


def test_zero_scalars_cost_no_beats():
    program = "li r1, 64\ndacc d0, r0, r1\nli r2, 1024\ndmem d1, r0, r2, 1\nli r3, 16\n" \
              "dfin d2, r3, 0\nvmacs d0, d1, d2\nhalt"
    dense, dense_core = _cycles(program, [(0, 1, 0)] * 16)
    sparse, sparse_core = _cycles(program, [(0, k % 2, 0) for k in range(16)])
    assert dense_core.counters[Counter.ZERO_SKIPS] == 0
    assert sparse_core.counters[Counter.ZERO_SKIPS] == 8
    # each skipped scalar saves its chunk: 64 accumulators, lanes at a time
    saved = dense_core.counters[Counter.BUSY] - sparse_core.counters[Counter.BUSY]
    assert saved == 8 * (64 // PARAMS.lanes)


def test_random_programs_terminate_and_vary():
    faults, wavelets = set(), 0
    for seed in range(200):
        outcome = run_iss(PARAMS, random_case(PARAMS, seed))
        assert outcome.halted, f"random program {seed} did not halt"
        faults.add(outcome.fault)
        wavelets += outcome.counters[Counter.WAVELETS_IN]
    assert Fault.NONE in faults and len(faults) >= 3 and wavelets > 0
