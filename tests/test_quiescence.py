"""A quiescent core changes nothing: the proof behind the wafer harness's idle skipping.

The wafer harness stops clocking a tile that says it is quiescent (``rtl.tile``) until
a wavelet or a credit reaches it, so the claim must hold of every register: in a cycle
that starts quiescent and in which nothing arrives, no register of the core changes but
the ``CYCLES`` counter, and no memory is written.  Seeded random programs (waiting on
the fabric, on tasks and on their slots, with wavelets arriving late and back-pressure)
run in the Amaranth simulator, their wavelets spread out, and every register of the design is compared across
each such cycle.  The same check on the core's bare ``quiet`` condition, without the
settling cycles, finds registers that change (the pipelines' empty stages): the check
can fail, and the settling is needed.

The core here has no float lanes, whose compilation takes the Python simulator minutes;
their two extra stages are within SETTLE_CYCLES, and the wafer tests run skipped tiles
against the die harness (tests/test_wafer.py).
"""

from amaranth.hdl._mem import MemoryInstance     # the simulated design's memories

from rtl.core import Core
from rtl.params import PRESETS
from sim.core_session import run_rtl, simulate_amaranth
from tb.random_programs import random_case

PARAMS = PRESETS["test"].replace(lanes=8, sram_bytes=4096, code_bytes=1024, acc_words=64,
                                 float_lanes=0)
SEEDS = range(3000, 3006)
SPACING = 30
#: The one register a quiescent core still changes: the CYCLES counter's.
COUNTING = "counter_cycles"


def _parts(fragment):
    pending = [fragment]
    while pending:
        part = pending.pop()
        yield part
        pending += [sub for sub, _, _ in part.subfragments]


def _assigned(fragment, registers_only):
    """The signals that the fragments under ``fragment`` assign (``registers_only``: in a
    domain other than ``comb``)."""
    return {id(signal): signal for part in _parts(fragment)
            for domain, statements in part.statements.items()
            if domain != "comb" or not registers_only
            for statement in statements for signal in statement._lhs_signals()}


def _state(fragment):
    """``(registers, write_enables)`` of the design: the signals a clock domain assigns,
    the data of synchronous read ports, and the enables of the memories' write ports."""
    registers, enables = _assigned(fragment, registers_only=True), []
    for part in _parts(fragment):
        if isinstance(part, MemoryInstance):
            enables += [port._en for port in part._write_ports]
            registers.update((id(port._data), port._data) for port in part._read_ports
                             if port._domain != "comb")
    return list(registers.values()), enables


class Watch:
    """Each cycle that starts with ``condition`` (a signal) set and in which nothing
    arrives: no memory written in it, and every register but COUNTING the same after it."""

    def __init__(self, fragment, condition):
        self.registers, self.enables = _state(fragment)
        self.condition = condition
        self.checked = 0
        self.changed = {}                # register name: cycles it changed in
        self._before = None

    def __call__(self, port, arriving):
        ctx = port.ctx
        if self._before is not None:
            for register, value in zip(self.registers, self._before):
                if ctx.get(register) != value and register.name != COUNTING:
                    self.changed[register.name] = self.changed.get(register.name, 0) + 1
            self.checked += 1
            self._before = None
        if ctx.get(self.condition) and not arriving:
            for enable in self.enables:
                if ctx.get(enable):
                    self.changed["a memory write"] = self.changed.get("a memory write", 0) + 1
            self._before = [ctx.get(register) for register in self.registers]


def _sparse_case(seed):
    """A random program whose wavelets come :data:`SPACING` cycles apart at least, so that
    it waits for them."""
    case = random_case(PARAMS, seed)
    case.wavelets = [(earliest + SPACING * k, data, color)
                     for k, (earliest, data, color) in enumerate(case.wavelets)]
    return case


def _watch_random_programs(condition_of):
    async def session(port):
        watch = Watch(port.fragment, condition_of(port))
        for seed in SEEDS:
            await run_rtl(port, PARAMS, _sparse_case(seed), watch=watch)
        return watch
    return simulate_amaranth(Core(PARAMS), session)


def _signal_named(fragment, name):
    matches = [s for s in _assigned(fragment, registers_only=False).values() if s.name == name]
    assert len(matches) == 1, f"{len(matches)} signals named {name}"
    return matches[0]


def test_a_quiescent_core_changes_no_register_but_its_cycle_count():
    watch = _watch_random_programs(lambda port: port.core.quiescent)
    assert not watch.changed, (f"registers that changed in quiescent cycles (seeds "
                               f"{SEEDS.start}-{SEEDS.stop - 1}): {watch.changed}")
    assert watch.checked >= 500, f"only {watch.checked} quiescent cycles: the check proves little"


def test_without_settling_a_quiet_core_still_changes():
    watch = _watch_random_programs(lambda port: _signal_named(port.fragment, "core_quiet"))
    assert set(watch.changed) - {"settled", "calm"}, "the check found nothing to fail on"
