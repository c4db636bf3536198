"""A wafer that keeps running while users join and leave it.

:class:`RunningWafer` loads a serving plan once (:func:`host.mapper.plan` with
``serving``: a slot a user, :class:`host.kernels.stages.Slots`) and never reloads
it.  :meth:`RunningWafer.admit` sends a request into the wafer from its west edge,
as the host's I/O does: a run of XY-addressed wavelets to the first tile, which
takes the slot and schedules its entries among the others' as it goes
(:func:`host.kernels.stages._slot_scheduler`).  :meth:`RunningWafer.run` steps the
wafer and returns the tokens that left it, each with its slot and cycle; when a
slot's last token has left, the slot is free for the next request.  The host acts
only when a request arrives and reads what leaves the wafer: it does nothing per
token on the wafer's behalf.

Every stage follows the first tile's choice of entries, and the users' KV caches
are disjoint, so each user's tokens are those it gets alone, whatever else is in
flight (``tests/test_running_wafer.py``).
"""

from dataclasses import dataclass, field

from host import mapper
from host.kernels.stages import (LAST_FLAG, cancel_payloads, halt_program, request_payloads,
                                 untag)
from host.runtime import CYCLES_PER_STEP_LIMIT, WaferError, check_faults, stuck
from host.wafer import Wafer
from rtl.wavelet import pack_addressed

__all__ = ["RunningWafer", "Admission", "Arrival"]


@dataclass
class Admission:
    """A request on the wafer: its slot, and the cycles (from the wafer's start) when it
    was sent in and when each of its tokens left."""
    slot: int
    prompt: list
    max_tokens: int
    admitted: int
    arrivals: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    finished: bool = False       # its last token has left, as the wafer flagged it
    cancelled: bool = False      # sent a cancel: it ends at its next generated token


@dataclass(frozen=True)
class Arrival:
    """A token that left the wafer."""
    slot: int
    token: int
    cycle: int                   # from the wafer's start
    last: bool                   # its request's last: the slot is free


class RunningWafer:
    """``users`` slots on a wafer of ``shape`` with ``defects``, running ``model``;
    ``harness``, ``threads`` and ``layout``: as :func:`host.runtime.generate` takes them.
    A request ends at its ``max_tokens`` or at ``stop_token`` (None: none), which the
    wafer decides.  Raises :class:`host.mapper.MapError` if ``users`` users of the
    model's whole context do not fit."""

    def __init__(self, model, shape, users, defects=(), harness="tiles", threads=1,
                 stop_token=None, **layout):
        shape.check_memory(harness)
        self.plan = mapper.plan(model, shape, [()] * users, None, serving=True,
                                stop_token=stop_token, **layout)
        self.seq_len = model.config.seq_len
        params = shape.params
        self.wafer = Wafer((shape.dies_x, shape.dies_y), (params.width, params.height), params,
                           defects=defects, harness=harness, threads=threads)
        try:
            for x, y, word in self.plan.route_words(params):
                self.wafer.route(x, y, word)
            for stage in self.plan.stages:
                self.wafer.load(*stage.tile, code=stage.code, data=stage.data)
            halt = halt_program(params).finish()[0]
            for tile in self.plan.unused:
                self.wafer.load(*tile, code=halt)
            self.wafer.start()
        except BaseException:
            self.wafer.close()
            raise
        self.origin = self.wafer.cycle
        self.slots = [None] * users              # the Admission in each, or None
        self._progress = self.cycle              # the cycle of the last token, or admission

    @property
    def users(self):
        return len(self.slots)

    @property
    def cycle(self):
        """Cycles since the wafer started."""
        return self.wafer.cycle - self.origin

    @property
    def free_slots(self):
        return [slot for slot, taken in enumerate(self.slots) if taken is None]

    @property
    def in_flight(self):
        """The requests on the wafer, by slot."""
        return {slot: taken for slot, taken in enumerate(self.slots) if taken is not None}

    def check(self, prompt, max_tokens):
        """Raise ValueError for a request the wafer cannot take."""
        if not prompt or max_tokens < 1:
            raise ValueError("a request needs a prompt and at least one token")
        if len(prompt) + max_tokens - 1 > self.seq_len:
            raise ValueError(f"a request of {len(prompt)} prompt tokens and {max_tokens} "
                             f"tokens takes {len(prompt) + max_tokens - 1} positions; a slot "
                             f"holds {self.seq_len}")

    def admit(self, prompt, max_tokens):
        """Send a request into the wafer's west edge, for a free slot: its
        :class:`Admission`.  Raises ValueError if no slot is free or it does not fit."""
        self.check(prompt, max_tokens)
        free = self.free_slots
        if not free:
            raise ValueError(f"all {self.users} slots are taken")
        slot = free[0]
        self._send(request_payloads(slot, prompt, max_tokens))
        if not self.in_flight:
            self._progress = self.cycle
        self.slots[slot] = Admission(slot, list(prompt), max_tokens, self.cycle)
        return self.slots[slot]

    def cancel(self, slot):
        """End the request in ``slot`` early, its client gone: the first tile makes its
        next generated token its last (after its prompt, if that is still going in), and
        the slot is free when that token leaves."""
        taken = self.slots[slot]
        if taken is None or taken.cancelled:
            return
        self._send(cancel_payloads(slot))
        taken.cancelled = True

    def _send(self, payloads):
        """Wavelets from the west edge to the first tile, on the request color."""
        x, y = self.plan.embed_tile
        for payload in payloads:
            self.wafer.inject("west", y, pack_addressed(x, y, payload), self.plan.request_color)

    def run(self, cycles):
        """Step the wafer ``cycles`` cycles: the :class:`Arrival` of every token that left
        it.  Raises :class:`host.runtime.WaferError` if a tile faulted or no token has
        left for longer than the requests in flight can take."""
        self.wafer.step(cycles)
        arrivals = []
        for cycle, data, color, _ in self.wafer.collect("west", self.plan.embed_tile[1]):
            if color != self.plan.host_color:
                continue
            slot, token = untag(data, self.plan.token_bits)
            taken = self.slots[slot]
            taken.tokens.append(token)
            taken.arrivals.append(cycle - self.origin)
            taken.finished = bool(data & LAST_FLAG)
            arrivals.append(Arrival(slot, token, cycle - self.origin, taken.finished))
            if taken.finished:
                self.slots[slot] = None
            self._progress = cycle - self.origin
        check_faults(self.wafer, self.plan)
        if self.in_flight and self.cycle - self._progress > self._patience():
            raise WaferError(stuck(self.wafer, self.plan,
                                   f"sent no token in {self._patience()} cycles"))
        return arrivals

    def _patience(self):
        """The most cycles a token may take: every position in flight, a step each."""
        positions = sum(len(a.prompt) + a.max_tokens for a in self.in_flight.values())
        return (positions + 1) * CYCLES_PER_STEP_LIMIT * self.plan.steps

    def close(self):
        self.wafer.close()
