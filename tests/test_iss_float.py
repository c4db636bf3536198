"""The ISS's float lanes: the directed float programs, and the timing rules of long beats.

The same directed programs run on the RTL once it has float lanes; here they
check the golden model against numpy.
"""

import pytest

from host.asm import assemble
from rtl.isa import Fault
from rtl.params import PRESETS
from sim.core_session import Case, run_iss
from sim.iss import Core, RampSender, run
from tb.float_programs import float_cases

PARAMS = PRESETS["test"].replace(float_lanes=1)
CASES = float_cases(PARAMS)


@pytest.mark.parametrize("name, case, check", CASES, ids=[name for name, _, _ in CASES])
def test_float_program_on_iss(name, case, check):
    check(run_iss(PARAMS, case))


def _issues(source, wavelets=(), acc=(), data=b""):
    """The cycles in which beats issue, with their slot and first element, and the total."""
    core = Core(PARAMS)
    core.load(assemble(source, PARAMS).words(), data or None, list(acc) or None)
    sender, issued = RampSender(PARAMS, wavelets), []
    cycle = 0
    while not core.idle and cycle < 2000:
        sent, credit = core.step(sender.drive(cycle), None)
        sender.sample(credit)
        beat = core.pipeline[0]
        if beat is not None:
            issued.append((cycle, core.slots.index(beat.slot), beat.indices.start))
        cycle += 1
    assert core.fault == Fault.NONE
    return issued, cycle


def _relative(issued):
    return [(cycle - issued[0][0], slot, first) for cycle, slot, first in issued]


@pytest.mark.parametrize("op, extra", [("vadd d0, d0, d0, float", 7), ("vadd d0, d0, d0", 5),
                                       ("vrmax r1, d0, float", 5), ("vsum r1, d0", 5)])
def test_a_long_beat_costs_two_cycles_more(op, extra):
    """16 accumulators: two float beats (8 lanes), one integer beat (16); a float VRMAX ranks
    on the integer comparators, so it is short."""
    setup = "li r1, 16\ndacc d0, r0, r1\n"
    base = _issues(setup + "halt")[1]
    issued, cycles = _issues(setup + op + "\nhalt")
    assert cycles - base == len(issued) + extra
    assert len(issued) == (1 if op.endswith("d0") and "float" not in op else 2)


def test_a_short_beat_waits_while_a_long_one_is_in_e1_or_e2():
    issued, _ = _issues("""
        li r1, 8
        dacc d0, r0, r1
        dacc d1, r1, r1
        vadd d0, d0, d0, float, async
        vmov d1, d1, slot=1, async
        wait 0
        wait 1
        halt""")
    assert _relative(issued) == [(0, 0, 0), (3, 1, 0)]


def test_a_float_vmacs_waits_for_the_sum_at_its_position():
    """One beat a chunk: a beat every third cycle; two beats a chunk: two in three cycles;
    an integer VMACS accumulates every cycle."""
    wavelets = [(0, 0x3C00, 1)] * 4                    # 1.0 in fp16, four times

    def vmacs(rows, float_flag):
        dtype, stride = (", fp16", 2) if float_flag else ("", 1)
        return _relative(_issues(f"""
            li r1, {rows}
            dacc d0, r0, r1
            li r2, {4 * rows}
            dmem d1, r0, r2, {stride}{dtype}
            li r2, 4
            dfin d2, r2, 1{dtype}
            vmacs d0, d1, d2{', float' if float_flag else ''}
            halt""", wavelets if float_flag else [(0, 1, 1)] * 4)[0])
    assert vmacs(8, True) == [(0, 0, 0), (3, 0, 0), (6, 0, 0), (9, 0, 0)]
    assert vmacs(16, True) == [(0, 0, 0), (1, 0, 8), (3, 0, 0), (4, 0, 8), (6, 0, 0), (7, 0, 8),
                               (9, 0, 0), (10, 0, 8)]
    assert vmacs(16, False) == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]


def test_a_float_vsum_adds_an_element_every_third_cycle_and_the_other_slot_fills_in():
    alone = _relative(_issues("li r1, 3\ndacc d0, r0, r1\nvsum r2, d0, float\nhalt")[0])
    assert alone == [(0, 0, 0), (3, 0, 1), (6, 0, 2)]
    shared = _relative(_issues("""
        li r1, 3
        dacc d0, r0, r1
        li r2, 24
        dacc d1, r1, r2
        vadd d1, d1, d1, float, async, slot=1
        vsum r2, d0, float
        halt""")[0])
    assert shared == [(0, 1, 0), (1, 0, 0), (2, 1, 8), (3, 1, 16), (4, 0, 1), (7, 0, 2)]


def test_float_operations_are_illegal_without_float_lanes():
    params = PRESETS["test"].replace(float_lanes=0)
    for source in ("vadd d0, d0, d0, float", "vitof d0, d0", "vsum r1, d0, float"):
        core = Core(params)
        core.load(assemble("li r1, 8\ndacc d0, r0, r1\n" + source + "\nhalt", params).words())
        run(core)
        assert (core.fault, core.fault_pc) == (Fault.ILLEGAL, 2), source
    outcome = run_iss(params, Case(assemble("li r1, 8\ndacc d0, r0, r1\nvadd d0, d0, d0\nhalt",
                                            params).words()))
    assert outcome.fault == Fault.NONE
