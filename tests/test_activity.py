"""The tile harness's record of vector operations (sim/native/activity.h, which
`tessera run --trace` draws), held to the ISS, the timing's specification: the same
program's operations, slots, launches, beats and ends, cycle for cycle."""

from host.asm import assemble
from host.wafer import Wafer
from rtl.isa import SLOTS, Counter, Op
from rtl.params import PRESETS
from sim.iss import Core

PARAMS = PRESETS["test"]
#: The die of tests/test_wafer.py, whose tile library serves both.
DIE = (2, 2)

#: Two operations side by side in the two slots, taking turns at the beats; a strided
#: one, a beat an element; and a reduction, which the core waits for.
PROGRAM = """
    li r1, 64
    dacc d0, r0, r1
    li r2, 40
    dmem d1, r0, r2, 1
    li r3, 0x100
    dmem d2, r3, r2, 1
    li r4, 0x200
    li r5, 9
    dmem d3, r4, r5, 3
    vmov d0, d0, async, slot=0
    vadd d2, d1, d2, async, slot=1
    nop
    wait 0
    vmov d3, d3, async, slot=0
    wait 1
    vsum r6, d1
    wait 0
    halt
"""


def iss_operations(program):
    """The operations the ISS runs, as the harness records them: ``(slot, op, start,
    first_beat, last_beat, end, beats, SRAM bytes read)`` in the core's cycles."""
    core = Core(PARAMS)
    core.load(program.words())
    running = [None] * SLOTS
    found, reads = [], 0
    while not core.idle:
        cycle, active = core.cycle, [slot.active for slot in core.slots]
        ops = [slot.op for slot in core.slots]
        core.step()
        beat = core.pipeline[0]
        for n in range(SLOTS):
            if running[n] and not active[n]:
                slot, op, start, beats = running[n]
                first, last = (beats[0], beats[-1]) if beats else (start, start)
                found.append((slot, op, start, first, last, cycle, len(beats), reads))
                running[n] = None
            if active[n] and not running[n]:
                running[n] = (n, ops[n], cycle, [])
            if active[n] and beat is not None and beat.slot is core.slots[n]:
                running[n][3].append(cycle)
        # The harness reads the counters at the start of the cycle that ends an operation.
        reads = core.counters[Counter.SRAM_READS]
    return found


def wafer_operations(program, first=0, last=2 ** 63):
    """The operations the tile harness records of ``program`` on tile (0, 0) of a one-die
    wafer (the others fault at once on their empty code), those that start in its cycles
    ``first`` to ``last - 1``, as :func:`iss_operations` gives them."""
    wafer = Wafer((1, 1), DIE, PARAMS)
    try:
        wafer.load(0, 0, code=program.words())
        wafer.start()
        start = wafer.cycle
        wafer.record_activity([(0, 0)], start + first, start + last)
        while not wafer.idle:
            wafer.step(1000, until_idle=True)
        recorded = wafer.vector_operations(origin=start)
    finally:
        wafer.close()
    assert all(operation.tile == (0, 0) for operation in recorded)
    return [(o.slot, o.op, o.start, o.first_beat, o.last_beat, o.end, o.beats, o.sram_reads)
            for o in recorded]


def test_the_recorded_operations_are_the_isss_cycle_for_cycle():
    program = assemble(PROGRAM, PARAMS)
    expected = iss_operations(program)
    # In the order they end: the shorter of the two side by side first.
    assert [op for _, op, *_ in expected] == [Op.VADD, Op.VMOV, Op.VMOV, Op.VSUM]
    assert expected[1][6] == 64 // PARAMS.lanes and expected[2][6] == 9   # wide, strided
    assert wafer_operations(program) == expected

    # A window keeps the operations that start in it, wherever they end.
    third = expected[2][2]
    assert wafer_operations(program, third, third + 1) == [expected[2]]
    assert wafer_operations(program, third + 1, third + 2) == []
