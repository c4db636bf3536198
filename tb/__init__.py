"""Shared cocotb machinery of the fabric testbenches (``tb.router_tb``, ``tb.mesh_tb``).

A :class:`FabricTB` owns the clock and the reset of a design whose ports are
credit-flow-controlled links (:class:`rtl.wavelet.LinkSignature`).  On every
link that enters the design it runs a :class:`Sender` (a credit-respecting
driver with one queue per color); on every link that leaves it a
:class:`Receiver` (a monitor that models the downstream queue and returns
credits).  All of them are served by one loop, :meth:`FabricTB.run`, that
awaits one clock edge per cycle, so a testbench has a single coroutine.

Timing.  The loop wakes on the falling edge of each cycle (one await per
cycle).  Every output of the router comes from its registers and no logic
works on the falling edge, so the values the rising edge produced have settled
there on any simulator, and what the loop drives is sampled by the next rising
edge.  Right after ``RisingEdge`` cocotb does not promise pre- or post-edge
values (both Icarus and Verilator give the pre-edge ones with this cocotb), and
``ReadOnly`` forbids writes, so a rising-edge loop would need two awaits per
cycle.  Cycle ``t`` is the one that starts with the t-th rising edge after
reset; a wavelet "driven in cycle t" is captured by the edge that ends cycle t,
and the router can show it on an output in cycle t + 1.

Parameters reach the testbench through the environment: ``TESSERA_PARAMS``
(``Params.to_json()``), ``TESSERA_SEED`` and ``TESSERA_WAVELETS``.  Every
failure message names the seed (see :func:`seeded`).
"""

import collections
import functools
import json
import os
import random

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from rtl.params import Params
from sim.fabric import Scoreboard, ScoreboardError, WaveletCodec

__all__ = ["params_from_env", "seed_from_env", "int_from_env", "seeded", "Sender", "Receiver",
           "FabricTB", "TBError", "ScoreboardError"]


def params_from_env():
    text = os.environ.get("TESSERA_PARAMS")
    if not text:
        from rtl.params import PRESETS
        return PRESETS["test"]
    return Params.from_dict(json.loads(text))


def seed_from_env():
    return int(os.environ.get("TESSERA_SEED", "1"), 0)


def int_from_env(name, default):
    return int(os.environ.get(name, str(default)), 0)


class TBError(AssertionError):
    pass


def seeded(func):
    """Wrap a cocotb test body so that any failure names the seed that reproduces it."""
    @functools.wraps(func)
    async def wrapper(dut, *args, **kwargs):
        seed = seed_from_env()
        try:
            await func(dut, *args, **kwargs)
        except Exception as error:
            raise TBError(f"{type(error).__name__}: {error} "
                          f"[reproduce with TESSERA_SEED={seed}]") from error
    return wrapper


class LinkEnd:
    """The four signals of one link of the design, named ``<prefix>__valid`` and so on.

    :meth:`put` writes a signal only when its value changes: each write to
    the simulator costs far more than the comparison.
    """

    def __init__(self, tb, name, prefix):
        self._driven = {}
        self.tb, self.name = tb, name
        dut, params = tb.dut, tb.params
        self.valid = getattr(dut, f"{prefix}__valid")
        self.wavelet = getattr(dut, f"{prefix}__wavelet")
        self.credit = getattr(dut, f"{prefix}__credit")
        self.credit_color = getattr(dut, f"{prefix}__credit_color")
        self.depth = params.queue_depth


    def put(self, signal, value):
        if self._driven.get(signal) != value:
            getattr(self, signal).value = value
            self._driven[signal] = value

    def put_all(self, **values):
        """Write ``values`` now, whatever was driven before (at reset)."""
        for signal, value in values.items():
            getattr(self, signal).value = value
            self._driven[signal] = value


class Sender(LinkEnd):
    """Drives one link into the design, spending a credit per wavelet of a color.

    Wavelets wait in one queue per color; each cycle, with probability
    :attr:`rate`, one color that has both a wavelet and a credit is picked at
    random and its oldest wavelet is driven.

    A credit the design returns in cycle t can be spent from cycle t + 1, as by a
    sender whose credit counters are registers (the protocol: no combinational
    path crosses a link).  With :attr:`eager` it is spent in cycle t already, so
    the new wavelet reaches a full queue at the very edge that frees its slot:
    faster than the protocol requires, to exercise that corner of the queue.
    """

    def __init__(self, tb, name, prefix):
        super().__init__(tb, name, prefix)
        params = tb.params
        self.credits = [params.queue_depth] * params.colors
        self.queues = [collections.deque() for _ in range(params.colors)]
        self.pending = 0
        self.rate = 1.0
        self.eager = False
        self.sent = 0
        self._returned = None    # a credit seen last cycle, spendable from this one

    def reset(self):
        self.credits = [self.depth] * len(self.credits)
        self._returned = None

    def push(self, wavelet):
        self.queues[wavelet.color].append(wavelet)
        self.pending += 1

    def sample(self):
        if self._returned is not None:
            self.credits[self._returned] += 1
            self._returned = None
        if self.credit.value:
            color = int(self.credit_color.value)
            if color >= len(self.credits):
                self.tb.fail(f"input {self.name}: credit for invalid color {color}")
            if self.credits[color] + 1 > self.depth:
                self.tb.fail(f"input {self.name}: credit returned for color {color} "
                             f"with no wavelet of that color in its queue")
            if self.eager:
                self.credits[color] += 1
            else:
                self._returned = color

    def drive(self, rng):
        """Pick and drive this cycle's wavelet; returns it, or None."""
        chosen = None
        if self.pending and (self.rate >= 1.0 or rng.random() < self.rate):
            ready = [c for c, q in enumerate(self.queues) if q and self.credits[c]]
            if ready:
                color = ready[0] if len(ready) == 1 else rng.choice(ready)
                chosen = self.queues[color].popleft()
                self.pending -= 1
                self.credits[color] -= 1
                self.sent += 1
        if chosen is None:
            self.put("valid", 0)
            return None
        self.put("valid", 1)
        self.put("wavelet", self.tb.codec.pack(chosen))
        return chosen


class Receiver(LinkEnd):
    """Receives one link out of the design: models the receiver's queues and returns credits.

    A wavelet that arrives in cycle t sits in its color's queue (``queue_depth``
    per color) and can be consumed from cycle t + 1; consuming it returns its
    credit (one per cycle at most).  Each cycle, with probability
    :attr:`stall`, nothing is consumed; colors in :attr:`blocked` are never
    consumed.  An arrival for a full queue is a credit violation of the design.
    """

    def __init__(self, tb, name, prefix):
        super().__init__(tb, name, prefix)
        params = tb.params
        self.ready = [0] * params.colors     # consumable now
        self.fresh = []                      # arrived this cycle: consumable next cycle
        self.stall = 0.0
        self.blocked = set()
        self.received = 0
        self.log = None                      # list of (cycle, Wavelet) when recording

    def reset(self):
        self.ready = [0] * len(self.ready)
        self.fresh = []

    def sample(self):
        """Returns the wavelet on the link this cycle, or None."""
        if not self.valid.value:
            return None
        wavelet = self.tb.codec.unpack(int(self.wavelet.value))
        color = wavelet.color
        if color >= len(self.ready):
            self.tb.fail(f"output {self.name}: invalid color {color}")
        if self.ready[color] + self.fresh.count(color) >= self.depth:
            self.tb.fail(f"output {self.name}: wavelet of color {color} sent with no credit "
                         f"(the receiver's queue of {self.depth} is full)")
        self.fresh.append(color)
        self.received += 1
        if self.log is not None:
            self.log.append((self.tb.cycle, wavelet))
        return wavelet

    def drive(self, rng):
        color = None
        if self.stall <= 0.0 or rng.random() >= self.stall:
            ready = [c for c, n in enumerate(self.ready) if n and c not in self.blocked]
            if ready:
                color = ready[0] if len(ready) == 1 else rng.choice(ready)
                self.ready[color] -= 1
        for c in self.fresh:
            self.ready[c] += 1
        self.fresh.clear()
        if color is None:
            self.put("credit", 0)
            return
        self.put("credit", 1)
        self.put("credit_color", color)

    @property
    def holding(self):
        return sum(self.ready) + len(self.fresh)


class FabricTB:
    """Clock, reset, senders, receivers, model and scoreboard of one design.

    ``inputs`` / ``outputs`` map a link name (what the model and the
    scoreboard call it) to the Verilog port prefix.  ``expect(name, wavelet)``
    returns the :class:`sim.fabric.Delivery` list of a wavelet driven on input
    ``name``; the scoreboard is fed with it as the wavelet is driven.
    """

    def __init__(self, dut, params, seed, inputs, outputs, expect, label="tb"):
        self.dut, self.params, self.seed = dut, params, seed
        self.label = label
        self.rng = random.Random(f"{seed}/{label}")
        self.codec = WaveletCodec(params)
        self.cycle = 0
        self.senders = {name: Sender(self, name, prefix) for name, prefix in inputs.items()}
        self.receivers = {name: Receiver(self, name, prefix) for name, prefix in outputs.items()}
        self._senders = list(self.senders.values())
        self._receivers = list(self.receivers.values())
        self.scoreboard = Scoreboard(params, context=f"{label} seed={seed}")
        self.expect = expect
        self.injected = 0
        self.on_cycle = None       # called every cycle before driving: on_cycle(tb)
        self.on_drive = None       # on_drive(tb, name, wavelet)
        self.on_receive = None     # on_receive(tb, name, wavelet, key)
        self._edge = FallingEdge(dut.clk)
        self._progress = 0         # cycle of the last delivery or injection

    def fail(self, message):
        raise TBError(f"[{self.label} seed={self.seed} cycle={self.cycle}] {message}")

    async def start(self, config_words=(), config_prefix="config", set_inputs=None):
        """Start the clock, hold reset while writing ``config_words``, and release it."""
        dut = self.dut
        Clock(dut.clk, 2, unit="step", impl="gpi").start()
        dut.rst.value = 1
        for sender in self._senders:
            sender.put_all(valid=0, wavelet=0)
        for receiver in self._receivers:
            receiver.put_all(credit=0, credit_color=0)
        if set_inputs:
            set_inputs(dut)
        valid = getattr(dut, f"{config_prefix}__valid")
        payload = getattr(dut, f"{config_prefix}__payload")
        valid.value = 0
        await self._edge
        await self._edge
        # The route table has no reset: write it while the design is held in reset.
        for word in config_words:
            valid.value = 1
            payload.value = word
            await self._edge
            if not int(getattr(dut, f"{config_prefix}__ready").value):
                self.fail("config not ready")
        valid.value = 0
        await self._edge
        dut.rst.value = 0
        await self._edge
        # The falling edge of cycle 0: the first rising edge out of reset is behind us.
        self.cycle = 0
        for sender in self._senders:
            sender.reset()
        for receiver in self._receivers:
            receiver.reset()

    def overflow(self):
        return int(self.dut.overflow.value)

    async def run(self, cycles=None, until=None, idle_timeout=2000):
        """Run ``cycles`` cycles, or until ``until(tb)`` is true.

        Fails if neither a wavelet is driven nor one received for ``idle_timeout``
        cycles while something is still outstanding (a hang).
        """
        end = None if cycles is None else self.cycle + cycles
        rng, scoreboard = self.rng, self.scoreboard
        senders, receivers = self._senders, self._receivers
        self._progress = self.cycle
        while True:
            if until is not None and until(self):
                return
            if end is not None and self.cycle >= end:
                return
            await self._edge
            self.cycle += 1
            cycle = self.cycle
            for receiver in receivers:
                wavelet = receiver.sample()
                if wavelet is not None:
                    self._progress = cycle
                    key = scoreboard.observe(receiver.name, wavelet, when=cycle)
                    if self.on_receive is not None:
                        self.on_receive(self, receiver.name, wavelet, key)
            for sender in senders:
                sender.sample()
            if self.on_cycle is not None:
                self.on_cycle(self)
            for receiver in receivers:
                receiver.drive(rng)
            for sender in senders:
                wavelet = sender.drive(rng)
                if wavelet is not None:
                    self._progress = cycle
                    self.injected += 1
                    scoreboard.expect_all(self.expect(sender.name, wavelet))
                    if self.on_drive is not None:
                        self.on_drive(self, sender.name, wavelet)
            if cycle - self._progress > idle_timeout and self.busy():
                self.fail(f"no progress for {idle_timeout} cycles: {self.status()}")

    def busy(self):
        return (any(s.pending for s in self._senders) or self.scoreboard.outstanding
                or any(r.holding for r in self._receivers))

    def status(self):
        pending = {s.name: s.pending for s in self._senders if s.pending}
        held = {r.name: r.holding for r in self._receivers if r.holding}
        blocked = {r.name: sorted(r.blocked) for r in self._receivers if r.blocked}
        left = self.scoreboard.outstanding_by_key()
        sample = dict(sorted(left.items(), key=str)[:8])
        return (f"sender queues {pending}, receiver queues {held}, blocked colors {blocked}, "
                f"{self.scoreboard.outstanding} outstanding, e.g. {sample}")

    async def drain(self, timeout=20000):
        """Stop stalling, unblock every color, and run until everything has arrived."""
        for receiver in self._receivers:
            receiver.stall = 0.0
            receiver.blocked = set()
        for sender in self._senders:
            sender.rate = 1.0
        start = self.cycle

        def done(tb):
            if tb.cycle - start > timeout:
                tb.fail(f"not drained after {timeout} cycles: {tb.status()}")
            return not tb.busy()
        await self.run(until=done)
        # One more cycle so that the last credits are seen by the design.
        await self.run(cycles=2)
        self.scoreboard.check_done()
        if self.overflow():
            self.fail(f"overflow flags set: {self.overflow():#x}")
        for sender in self._senders:
            if sender.credits != [self.params.queue_depth] * self.params.colors:
                self.fail(f"input {sender.name}: credits not all back after draining: "
                          f"{sender.credits}")
        self.dut._log.info("%s: checked %d wavelets in, %d copies out, in %d cycles",
                           self.label, self.injected, self.scoreboard.observed_count, self.cycle)
