"""The engine behind ``tessera serve``: requests in, tokens out, and each run's figures.

An :class:`Engine` takes a request's prompt tokens and its token budget
(:meth:`Engine.submit`) and returns a :class:`Request`: iterating it yields the
generated tokens as the engine releases them, and then its :class:`Figures` are
set.  The HTTP side (:mod:`host.serve`) knows only this interface.
:class:`WaferEngine` is the one engine: requests join the running wafer, and
their tokens are released as they leave it.
"""

import collections
import dataclasses
import queue
import threading
import time

from host.running_wafer import RunningWafer
from host.runtime import NOMINAL_CLOCK_HZ, cycles_per_token

__all__ = ["Engine", "WaferEngine", "Request", "Figures", "EngineError", "QueueFull"]


class EngineError(ValueError):
    """A request the engine cannot take; ``param`` names the field at fault."""

    def __init__(self, message, param=None, code="invalid_value"):
        super().__init__(message)
        self.param, self.code = param, code


class QueueFull(RuntimeError):
    """Every place in the queue is taken: the client should come back later."""


@dataclasses.dataclass(frozen=True)
class Figures:
    """What the wafer measured for one request, in simulated cycles from its admission
    (its request sent into the wafer)."""
    users_in_flight: int             # the most users on the wafer at once in its run (itself too)
    simulated_cycles: int            # admission to its last token leaving the wafer
    time_to_first_token_cycles: int  # admission to its first token leaving the wafer
    cycles_per_token: float          # between this user's tokens leaving the wafer
    tokens_per_second: float         # this user's, at clock_hz
    aggregate_tokens_per_second: float   # every user's tokens in its run, at clock_hz
    clock_hz: float
    wall_seconds: float              # admission to its last token, on this machine
    queued_seconds: float            # from submission to admission
    admitted_cycle: int              # the wafer's cycle (from its start) at its admission
    token_cycles: tuple              # the wafer's cycle as each of its tokens left

    def to_dict(self):
        return {**dataclasses.asdict(self), "other_users_in_flight": self.users_in_flight - 1}


class Request:
    """One request's handle: iterate it for its tokens; then :attr:`figures` is set.
    Iterating raises the engine's error (:class:`host.runtime.WaferError`,
    :class:`host.mapper.MapError`) if the run failed."""

    def __init__(self, prompt, max_tokens):
        self.prompt, self.max_tokens = list(prompt), max_tokens
        self.tokens, self.figures = [], None
        self.submitted = time.monotonic()
        self.cancelled = False
        self._events = queue.Queue()     # ("token", t), ("end", Figures), ("error", exc)

    def __iter__(self):
        while (token := self.next_token()) is not None:
            yield token

    def next_token(self, timeout=None):
        """Wait for the next token; None when the run has ended (and :attr:`figures` is
        set); :class:`TimeoutError` after ``timeout`` seconds without either."""
        try:
            kind, value = self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if kind == "token":
            self.tokens.append(value)
            return value
        if kind == "end":
            self.figures = value
            return None
        raise value

    def cancel(self):
        """The client has gone: a queued request leaves the queue; one on the wafer ends
        at its next token (:meth:`host.running_wafer.RunningWafer.cancel`), which is
        dropped, and its slot takes the next request."""
        self.cancelled = True

    # The engine's side.
    def _token(self, token):
        self._events.put(("token", token))

    def _end(self, figures):
        self._events.put(("end", figures))

    def _fail(self, error):
        self._events.put(("error", error))


class Engine:
    """Requests in, tokens out.  ``context``: the positions a request may take (its
    prompt and its tokens but the last); ``users``: the most in flight at once;
    ``queue_bound``: the most waiting for the wafer, beyond which :meth:`submit`
    raises :class:`QueueFull`."""

    def __init__(self, context, users, queue_bound):
        self.context, self.users, self.queue_bound = context, users, queue_bound

    def check(self, prompt, max_tokens):
        """Raise :class:`EngineError` for a request that cannot run."""
        if not prompt:
            raise EngineError("the prompt is empty", "prompt")
        if len(prompt) > self.context:
            raise EngineError(f"the prompt takes {len(prompt)} tokens, more than the context "
                              f"of {self.context}", "prompt", "context_length_exceeded")
        if max_tokens < 1:
            raise EngineError(f"max_tokens must be at least 1, not {max_tokens}", "max_tokens")
        if len(prompt) + max_tokens - 1 > self.context:
            raise EngineError(f"the prompt's {len(prompt)} tokens and max_tokens {max_tokens} "
                              f"take {len(prompt) + max_tokens - 1} positions, more than the "
                              f"context of {self.context}", "max_tokens",
                              "context_length_exceeded")

    def submit(self, prompt, max_tokens):
        """A :class:`Request` for ``max_tokens`` greedy tokens after ``prompt`` (token
        ids); raises :class:`EngineError` or :class:`QueueFull` at once."""
        raise NotImplementedError

    def start(self):
        pass

    def close(self):
        pass


class WaferEngine(Engine):
    """Requests join the running wafer (:class:`host.running_wafer.RunningWafer`), loaded
    once with a slot for each of ``users`` users: a worker thread sends each queued
    request into a free slot as soon as there is one, steps the wafer, and releases
    each token as it leaves the wafer; a finished request's slot takes the next.  The
    wafer stands still while no request is on it.  Greedy, as the wafer is.

    A request whose client has gone leaves the queue, or, on the wafer, is cancelled
    there: it ends at its next token, and its slot is free.  If the wafer faults, the requests on it fail and the wafer is loaded anew.

    ``reference``: the model in the wafer's numbers (:meth:`host.workload.Workload.reference`),
    its context each slot's positions; ``shape``, ``defects`` and ``layout``: as
    :func:`host.runtime.generate` takes them; ``stop_token``: the token that ends a
    request before its ``max_tokens`` (:attr:`host.workload.Workload.stop_token`), its
    slot then free.  The construction loads the wafer (:class:`host.mapper.MapError` if
    ``users`` users of the whole context do not fit)."""

    #: Cycles the wafer runs between looks at the queue and at the tokens that left.
    STEP = 5_000

    def __init__(self, reference, shape, users, queue_bound, layout, defects=(),
                 clock_hz=NOMINAL_CLOCK_HZ, stop_token=None):
        super().__init__(reference.config.seq_len, users, queue_bound)
        self._load = lambda: RunningWafer(reference, shape, users, defects,
                                          stop_token=stop_token, **layout)
        self.wafer = self._load()
        self.steps, self.clock_hz = self.wafer.plan.steps, clock_hz
        self._waiting = collections.deque()
        self._running = {}               # slot -> _Run
        self._changed = threading.Condition()
        self._closing = False
        self.simulation_seconds = 0.0    # the worker's wall time in the wafer's steps
        self._worker = threading.Thread(target=self._serve, name="tessera-wafer", daemon=True)

    @property
    def queued(self):
        """Requests waiting for a slot."""
        with self._changed:
            return sum(not request.cancelled for request in self._waiting)

    def submit(self, prompt, max_tokens):
        self.check(prompt, max_tokens)
        request = Request(prompt, max_tokens)
        with self._changed:
            self._waiting = collections.deque(r for r in self._waiting if not r.cancelled)
            if len(self._waiting) >= self.queue_bound:
                raise QueueFull(f"{len(self._waiting)} requests already wait for the wafer "
                                f"(the queue holds {self.queue_bound}); try again later")
            self._waiting.append(request)
            self._changed.notify()
        return request

    def start(self):
        self._worker.start()

    def close(self):
        with self._changed:
            self._closing = True
            self._changed.notify()
        if self._worker.is_alive():
            self._worker.join()
        self.wafer.close()

    def _serve(self):
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._running or self._closing)
                if self._closing:
                    break
                self._admit()
                for slot, run in self._running.items():
                    if run.request.cancelled:
                        self.wafer.cancel(slot)     # sent once: a repeat does nothing
            started = time.monotonic()
            try:
                arrivals = self.wafer.run(self.STEP)
            except Exception as error:  # WaferError, or a bug: the requests on the wafer
                for run in self._running.values():  # fail, and the engine serves on
                    run.request._fail(error)
                self._running.clear()
                self.wafer.close()
                self.wafer = self._load()
                continue
            finally:
                self.simulation_seconds += time.monotonic() - started
            self._release(arrivals)
        for request in self._waiting:
            request._fail(RuntimeError("the server is shutting down"))
        for run in self._running.values():
            run.request._fail(RuntimeError("the server is shutting down"))

    def _admit(self):
        """Queued requests into the free slots (the lock held)."""
        while self._waiting and self.wafer.free_slots:
            request = self._waiting.popleft()
            if not request.cancelled:
                admission = self.wafer.admit(request.prompt, request.max_tokens)
                self._running[admission.slot] = _Run(request, admission, time.monotonic())
        for run in self._running.values():
            run.most_in_flight = max(run.most_in_flight, len(self._running))

    def _release(self, arrivals):
        for run in self._running.values():
            run.tokens_seen += len(arrivals)
        for arrival in arrivals:
            run = self._running[arrival.slot]
            if not run.request.cancelled:
                run.request._token(arrival.token)
            if arrival.last:
                del self._running[arrival.slot]
                run.request._end(run.figures(self.clock_hz))


@dataclasses.dataclass
class _Run:
    """A request on the wafer, and what the engine saw of it."""
    request: Request
    admission: object                # host.running_wafer.Admission
    admitted_wall: float
    most_in_flight: int = 1
    tokens_seen: int = 0             # every user's, from its admission

    def figures(self, clock_hz):
        arrivals, admitted = self.admission.arrivals, self.admission.admitted
        span = arrivals[-1] - admitted
        per_token = cycles_per_token(arrivals) if len(arrivals) > 1 else float(span)
        return Figures(
            users_in_flight=self.most_in_flight, simulated_cycles=span,
            time_to_first_token_cycles=arrivals[0] - admitted, cycles_per_token=per_token,
            tokens_per_second=clock_hz / per_token,
            aggregate_tokens_per_second=self.tokens_seen / span * clock_hz, clock_hz=clock_hz,
            wall_seconds=time.monotonic() - self.admitted_wall,
            queued_seconds=self.admitted_wall - self.request.submitted,
            admitted_cycle=admitted, token_cycles=tuple(arrivals))
