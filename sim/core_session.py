"""Run one program on a core, in the RTL or in the ISS, and compare the outcomes.

A :class:`Case` is a program, its data and accumulator images, the wavelets
the router delivers (:class:`sim.iss.RampSender`) and the router's
back-pressure on the wavelets the core sends (:class:`sim.iss.RampReceiver`).
:func:`run_iss` runs it on the ISS; :func:`run_rtl` on the RTL through a
:class:`Port`, which hides the simulator: the Amaranth simulator
(:class:`AmaranthPort`, for unit tests) or cocotb (:class:`CocotbPort`).  Both
return an :class:`Outcome`; :func:`differences` lists where two disagree.

The RTL session: hold reset and load code, data and accumulators through the
back door (one row a cycle), release reset, enable the core and run it a
cycle at a time with the same sender and receiver objects as the ISS, until
the core reports ``idle``; then read everything back through the back door.
"""

import random
from dataclasses import dataclass, field

from amaranth.hdl import Value

from rtl.isa import COUNTERS, REGISTERS, Counter
from rtl.wavelet import pack_wavelet, unpack_wavelet
from sim.iss import Core as IssCore
from sim.iss import RampReceiver, RampSender, run

__all__ = ["Case", "Outcome", "run_iss", "run_rtl", "load_core", "write_images", "read_core",
           "memories_of", "judge_all",
           "differences", "judge", "simulate_amaranth",
           "AmaranthPort", "CocotbPort"]


@dataclass
class Case:
    code: list
    data: bytes = b""
    acc: list = field(default_factory=list)
    wavelets: list = field(default_factory=list)     # (earliest cycle, data, color)
    ready_seed: int | None = None                    # None: the router never back-pressures
    ready_probability: float = 0.7
    max_cycles: int = 20_000

    def receiver(self, params):
        if self.ready_seed is None:
            return RampReceiver(params)
        rng = random.Random(self.ready_seed)
        pattern = [rng.random() < self.ready_probability for _ in range(4096)]
        return RampReceiver(params, lambda cycle: pattern[cycle % len(pattern)])


@dataclass
class Outcome:
    cycles: int
    mem: bytes
    acc: list
    regs: list
    counters: list
    sent: list               # (cycle, data, color, ctrl)
    halted: bool
    fault: int
    fault_pc: int
    pc: int

    def summary(self):
        return (f"{self.cycles} cycles, halted={self.halted}, fault={self.fault} "
                f"at pc {self.fault_pc}, pc={self.pc}")


def run_iss(params, case):
    core = IssCore(params)
    core.load(case.code, case.data, case.acc)
    receiver = case.receiver(params)
    cycles = run(core, RampSender(params, case.wavelets), receiver, case.max_cycles)
    return Outcome(cycles, bytes(core.mem), list(core.acc), list(core.regs), list(core.counters),
                   receiver.received, core.halted, int(core.fault), core.fault_pc, core.pc)


def judge(params, case, actual, check=None):
    """Everything wrong with the RTL's ``actual`` outcome of ``case``: where it differs
    from the ISS, and what ``check`` (a directed program's expectations) objects to."""
    problems = differences(run_iss(params, case), actual)
    if check is not None:
        try:
            check(actual)
        except AssertionError as error:
            problems.append(str(error))
    return problems


async def judge_all(port, params, cases):
    """Run each ``(name, Case, check)`` of ``cases`` on the core behind ``port`` (just
    reset, its memories zero) and :func:`judge` it; returns a line per failing case."""
    failures = []
    held = memories_of(params, None)
    for name, case, check in cases:
        outcome = await run_rtl(port, params, case, held)
        held = memories_of(params, case, outcome)
        problems = judge(params, case, outcome, check)
        if problems:
            failures.append(f"{name}: " + "; ".join(problems))
    return failures


def differences(expected, actual, limit=8):
    """Human-readable differences between two outcomes (the ISS's first)."""
    found = []
    for name in ("cycles", "halted", "fault", "fault_pc", "pc"):
        if getattr(expected, name) != getattr(actual, name):
            found.append(f"{name}: iss {getattr(expected, name)} rtl {getattr(actual, name)}")
    for name in ("regs", "counters", "acc", "mem"):
        mine, theirs = getattr(expected, name), getattr(actual, name)
        bad = [i for i in range(len(mine)) if mine[i] != theirs[i]]
        if bad:
            shown = ", ".join(f"[{i}] iss {mine[i]} rtl {theirs[i]}" for i in bad[:limit])
            found.append(f"{name}: {len(bad)} differ: {shown}")
    if expected.sent != actual.sent:
        first = next((i for i, (x, y) in enumerate(zip(expected.sent, actual.sent)) if x != y),
                     min(len(expected.sent), len(actual.sent)))
        found.append(f"sent wavelets: iss {len(expected.sent)} rtl {len(actual.sent)}, first "
                     f"difference at #{first}: iss {expected.sent[first:first + 1]} "
                     f"rtl {actual.sent[first:first + 1]}")
    return found


class Port:
    """The core's signals by name (``from_router.valid``, ``backdoor.mem_row``,
    ``counters.3``), and the clock.  Subclasses bind a simulator."""

    def get(self, name):
        raise NotImplementedError

    def set(self, name, value):
        raise NotImplementedError

    async def tick(self):
        raise NotImplementedError


class AmaranthPort(Port):
    """The Amaranth simulator: ``core`` under a ``ResetInserter(reset)``; ``fragment`` is
    the design simulated (every signal of the core's units is in it)."""

    def __init__(self, ctx, core, reset, fragment):
        self.ctx, self.core, self.reset, self.fragment = ctx, core, reset, fragment
        self._signals = {}

    def _signal(self, name):
        if name == "reset":
            return self.reset
        if name not in self._signals:
            value = self.core
            for part in name.split("."):
                value = value[int(part)] if part.isdigit() else getattr(value, part)
            self._signals[name] = Value.cast(value)    # a struct view as its bits
        return self._signals[name]

    def get(self, name):
        return self.ctx.get(self._signal(name))

    def set(self, name, value):
        self.ctx.set(self._signal(name), value)

    async def tick(self):
        await self.ctx.tick()


def simulate_amaranth(component, session):
    """Run ``await session(port)`` on ``component`` in the Amaranth simulator, with an
    :class:`AmaranthPort` whose ``reset`` resets the component; returns its result."""
    from amaranth.hdl import Fragment, Module, ResetInserter, Signal
    from amaranth.sim import Simulator

    reset = Signal()
    top = Module()
    top.submodules.dut = ResetInserter(reset)(component)
    fragment = Fragment.get(top, None)
    simulator = Simulator(fragment)
    simulator.add_clock(1e-6)
    result = {}

    async def bench(ctx):
        port = AmaranthPort(ctx, component, reset, fragment)
        await port.tick()
        result["value"] = await session(port)

    simulator.add_testbench(bench)
    simulator.run()
    return result["value"]


class CocotbPort(Port):
    """cocotb: ports named as Amaranth's Verilog names them (``from_router__valid``).

    The loop runs on falling edges (see :mod:`tb`): the core's outputs come from
    its registers, and what is driven here is sampled by the next rising edge.
    """

    def __init__(self, dut):
        from cocotb.triggers import FallingEdge
        self.dut = dut
        self._edge = FallingEdge(dut.clk)
        self._handles = {}
        self._driven = {}

    def _handle(self, name):
        if name not in self._handles:
            self._handles[name] = getattr(self.dut, "rst" if name == "reset"
                                          else name.replace(".", "__"))
        return self._handles[name]

    def get(self, name):
        return int(self._handle(name).value)

    def set(self, name, value):
        if self._driven.get(name) != value:
            self._handle(name).value = value
            self._driven[name] = value

    async def tick(self):
        await self._edge


def memories_of(params, case, outcome=None):
    """What a core's memories hold ``(code, data, accumulators)``: all zero in a new
    simulation (no ``case``), or after ``case`` ran to ``outcome`` (the code as loaded,
    unless the front door wrote some of it: then ``None``, unknown)."""
    if case is None:
        return [0] * params.code_words, bytes(params.data_bytes), [0] * params.acc_words
    if outcome.counters[Counter.LOADED]:
        return None
    return (list(case.code) + [0] * (params.code_words - len(case.code)), outcome.mem,
            outcome.acc)


async def load_core(port, params, case, held=None):
    """Hold the core in reset and write the code, data and accumulator images of ``case``
    through the back door, then enable it and end the reset.  ``held``: what the memories
    hold (:func:`memories_of`), so that only the rows that differ are written; ``None``:
    unknown, every row is written."""
    port.set("enable", 0)
    port.set("reset", 1)
    await write_images(port, params, case, held)
    # Enable a cycle before reset ends: cocotb shows a write to an input only after the
    # next edge, and every output depends on ``enable``.  The core does nothing in reset.
    port.set("enable", 1)
    await port.tick()
    port.set("reset", 0)


async def write_images(port, params, case, held=None):
    """Write the code, data and accumulator images of ``case`` through the back door: every
    row, or with ``held`` (:func:`memories_of`) the rows whose content differs from it."""
    lanes = params.lanes
    for name in ("backdoor.mem_we", "backdoor.acc_we", "backdoor.code_we"):
        port.set(name, 0)
    held_code, held_data, held_acc = held or (None, None, None)
    code = list(case.code) + [0] * (params.code_words - len(case.code))
    for address, word in enumerate(code):
        if held_code is not None and held_code[address] == word:
            continue
        port.set("backdoor.code_addr", address)
        port.set("backdoor.code_wdata", word)
        port.set("backdoor.code_we", 1)
        await port.tick()
    port.set("backdoor.code_we", 0)
    data = bytes(case.data) + bytes(params.data_bytes - len(case.data))
    for row in range(params.data_bytes // lanes):
        content = data[row * lanes:(row + 1) * lanes]
        if held_data is not None and held_data[row * lanes:(row + 1) * lanes] == content:
            continue
        port.set("backdoor.mem_row", row)
        port.set("backdoor.mem_wdata", int.from_bytes(content, "little"))
        port.set("backdoor.mem_we", 1)
        await port.tick()
    port.set("backdoor.mem_we", 0)
    acc = [value & 0xFFFFFFFF for value in case.acc] + [0] * (params.acc_words - len(case.acc))
    for row in range(params.acc_words // lanes):
        content = acc[row * lanes:(row + 1) * lanes]
        if held_acc is not None and [value & 0xFFFFFFFF for value in
                                     held_acc[row * lanes:(row + 1) * lanes]] == content:
            continue
        port.set("backdoor.acc_row", row)
        port.set("backdoor.acc_wdata", sum(value << (32 * k) for k, value in enumerate(content)))
        port.set("backdoor.acc_we", 1)
        await port.tick()
    port.set("backdoor.acc_we", 0)


async def read_core(port, params):
    """Disable the core and read back ``(mem, acc, regs, counters)`` through the back door."""
    lanes = params.lanes
    port.set("enable", 0)
    await port.tick()
    mem = bytearray()
    for row in range(params.data_bytes // lanes):
        port.set("backdoor.mem_row", row)
        await port.tick()
        mem += port.get("backdoor.mem_rdata").to_bytes(lanes, "little")
    acc = []
    for row in range(params.acc_words // lanes):
        port.set("backdoor.acc_row", row)
        await port.tick()
        word = port.get("backdoor.acc_rdata")
        acc += [_signed32(word >> (32 * k)) for k in range(lanes)]
    regs = []
    for number in range(REGISTERS):
        port.set("backdoor.reg", number)
        await port.tick()
        regs.append(_signed32(port.get("backdoor.reg_rdata")))
    counters = [port.get(f"counters.{n}") for n in range(COUNTERS)]
    return bytes(mem), acc, regs, counters


async def run_rtl(port, params, case, held=None, watch=None):
    """Load ``case`` into the core behind ``port`` (whose memories hold ``held``, as for
    :func:`load_core`), run it, read it back.  ``watch(port, arriving)``, if given, sees
    every cycle of the run before its clock edge, with its inputs driven; ``arriving``
    says whether a wavelet or a credit reaches the core in it."""
    port.set("from_router.valid", 0)
    port.set("to_router.credit", 0)
    await load_core(port, params, case, held)
    sender = RampSender(params, case.wavelets)
    receiver = case.receiver(params)
    cycles = 0
    while cycles < case.max_cycles and not port.get("idle"):
        arriving = sender.drive(cycles)
        credit = receiver.drive(cycles)
        port.set("from_router.valid", int(arriving is not None))
        if arriving is not None:
            port.set("from_router.wavelet", pack_wavelet(params, arriving[0], arriving[1]))
        port.set("to_router.credit", int(credit is not None))
        if credit is not None:
            port.set("to_router.credit_color", credit)
        sent = None
        if port.get("to_router.valid"):
            data_word, color, ctrl = unpack_wavelet(params, port.get("to_router.wavelet"))
            sent = (data_word, color, ctrl)
        credit_out = port.get("from_router.credit_color") if port.get("from_router.credit") \
            else None
        if watch is not None:
            watch(port, arriving is not None or credit is not None)
        await port.tick()
        sender.sample(credit_out)
        receiver.sample(cycles, sent)
        cycles += 1
    port.set("from_router.valid", 0)
    port.set("to_router.credit", 0)
    mem, acc, regs, counters = await read_core(port, params)
    return Outcome(cycles, mem, acc, regs, counters, receiver.received,
                   bool(port.get("halted")), port.get("fault"), port.get("fault_pc"),
                   port.get("pc"))


def _signed32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value
