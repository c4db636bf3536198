"""The engine behind ``tessera serve``: requests in, tokens out, and each run's figures.

An :class:`Engine` takes a request's prompt tokens and its token budget
(:meth:`Engine.submit`) and returns a :class:`Request`: iterating it yields the
generated tokens as the engine releases them, and then its :class:`Figures` are
set.  The HTTP side (:mod:`host.serve`) knows only this interface, so that an
engine in which users join a running wafer can replace :class:`BatchEngine`
without touching it.
"""

import collections
import dataclasses
import queue
import threading
import time

from host import mapper, runtime
from host.runtime import NOMINAL_CLOCK_HZ

__all__ = ["Engine", "BatchEngine", "Request", "Figures", "EngineError", "QueueFull"]


class EngineError(ValueError):
    """A request the engine cannot take; ``param`` names the field at fault."""

    def __init__(self, message, param=None, code="invalid_value"):
        super().__init__(message)
        self.param, self.code = param, code


class QueueFull(RuntimeError):
    """Every place in the queue is taken: the client should come back later."""


@dataclasses.dataclass(frozen=True)
class Figures:
    """What the wafer measured for one request, in simulated cycles from its run's start."""
    users_in_flight: int             # the users of the run this request was in (itself too)
    simulated_cycles: int            # the run's, start to the last stage halting
    time_to_first_token_cycles: int
    cycles_per_token: float          # between this user's tokens leaving the wafer
    tokens_per_second: float         # this user's, at clock_hz
    aggregate_tokens_per_second: float   # all the run's users, while all generate
    clock_hz: float
    wall_seconds: float              # the run's simulation, on this machine
    queued_seconds: float            # from submission to the run's start

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
        """The client has gone: a queued request leaves the queue; a running one's tokens
        are dropped when its run ends."""
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


class BatchEngine(Engine):
    """A batch per admission, on the simulated wafer: when the wafer is free, up to
    ``users`` queued requests run together as users in flight in one
    :func:`host.runtime.generate` call (a fresh load of the programs, each user its
    own prompt and token count), in a worker thread; then the next batch.  A request
    arriving while a batch runs waits for the next one: this is not yet users joining a
    running wafer (item 1 of issue 23).  The tokens are released when the run ends,
    with the cycle each left the wafer in the figures, since ``generate`` reports
    progress only as counts.  Greedy, as the wafer is.

    ``reference``: the model in the wafer's numbers (:meth:`host.workload.Workload.reference`),
    its context the KV caches' positions; ``shape``, ``defects`` and ``layout``: as
    :func:`host.runtime.generate` takes them.  The construction checks that ``users``
    users of the whole context fit the wafer (:class:`host.mapper.MapError` if not)."""

    def __init__(self, reference, shape, users, queue_bound, layout, defects=(),
                 clock_hz=NOMINAL_CLOCK_HZ):
        super().__init__(reference.config.seq_len, users, queue_bound)
        self.reference, self.shape, self.layout = reference, shape, layout
        self.defects, self.clock_hz = defects, clock_hz
        self.steps = mapper.plan(reference, shape, [[0]] * users, [self.context] * users,
                                 **layout).steps
        self._waiting = collections.deque()
        self._changed = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._serve, name="tessera-wafer", daemon=True)

    @property
    def queued(self):
        """Requests waiting for the wafer."""
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

    def _serve(self):
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._closing)
                if self._closing:
                    break
                batch = []
                while self._waiting and len(batch) < self.users:
                    request = self._waiting.popleft()
                    if not request.cancelled:
                        batch.append(request)
            if batch:
                self._run(batch)
        for request in self._waiting:
            request._fail(RuntimeError("the server is shutting down"))

    def _run(self, batch):
        started = time.monotonic()
        try:
            result = runtime.generate(self.reference, [r.prompt for r in batch],
                                      [r.max_tokens for r in batch], self.shape,
                                      self.defects, **self.layout)
        except Exception as error:      # WaferError, MapError or a bug: this batch fails,
            for request in batch:       # and the engine serves on
                request._fail(error)
            return
        aggregate = result.aggregate_tokens_per_cycle() * self.clock_hz
        for user, request in enumerate(batch):
            for token in result.tokens[user]:
                request._token(token)
            request._end(Figures(
                users_in_flight=len(batch), simulated_cycles=result.cycles,
                time_to_first_token_cycles=result.time_to_first_token_cycles(user),
                cycles_per_token=result.cycles_per_token(user),
                tokens_per_second=result.tokens_per_second(self.clock_hz, user),
                aggregate_tokens_per_second=aggregate, clock_hz=self.clock_hz,
                wall_seconds=result.simulated["seconds"],
                queued_seconds=started - request.submitted))
