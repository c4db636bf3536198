"""Parallel co-simulation: one wafer, its dies split across processes.

Each worker holds a :class:`host.wafer.Wafer` that simulates only its own dies
(``local``).  A die-to-die link whose ends sit in two workers carries nothing
that is due in less than its latency (:mod:`sim/native/wafer.cpp`), so with W
the least latency of the links cut between workers, the workers run windows of
W cycles independently and then swap what each link end pushed for the other:
conservative lookahead.  The result is the same, bit for bit and cycle for
cycle, as one process simulating the whole wafer.

The protocol is written once, here: :class:`ParallelWafer` is the coordinator,
:func:`serve` the worker's loop (in a process forked for it), and a window is two
requests (``start_window``, then ``end_window`` only where a worker stopped early
at an idle wafer).  Two transports carry the requests: :class:`Forked`, worker
processes forked here, and :class:`host.cosim_mpi.Ranks`, MPI ranks on any number
of machines, each of which passes them to its own forked worker.  The coordinator
relays the messages (a star).  ``docs/cosim-mpi.md``
says how to run it and what limits its speed.
"""

import multiprocessing
import os

from rtl.mesh import EDGES
from rtl.wavelet import Dir

from .wafer import Wafer, WaferShape, library

__all__ = ["ParallelWafer", "Forked", "ForkedWorker", "CosimError", "TRANSPORTS", "link_ends",
           "split_dies", "REPLY_TIMEOUT", "IDLE_TIMEOUT"]

#: The transports, by the names ``tessera run --cosim`` knows them.
TRANSPORTS = ("multiprocessing", "mpi")
#: Seconds a worker may take to answer one request (a window of thousands of cycles
#: takes milliseconds to seconds); past that the run ends with an error naming it.
REPLY_TIMEOUT = 600.0
#: Seconds a worker waits for the coordinator's next request: the host's own work
#: (planning, the references) comes between requests.
IDLE_TIMEOUT = 3600.0


class CosimError(RuntimeError):
    """A worker failed, died or did not answer in time; the message names it."""


def link_ends(dies_x, dies_y, params):
    """``[(sending die, receiving die)]`` of every die-to-die link, numbered as the
    harness numbers them."""
    ends = []
    for dy in range(dies_y):
        for dx in range(dies_x):
            for _, facing in EDGES:
                step_x, step_y = facing.step
                nx, ny = dx + step_x, dy + step_y
                count = params.width if facing in (Dir.N, Dir.S) else params.height
                if 0 <= nx < dies_x and 0 <= ny < dies_y:
                    ends += [(dy * dies_x + dx, ny * dies_x + nx)] * count
    return ends


def split_dies(dies_x, dies_y, parts, across="columns"):
    """The dies of each of ``parts`` workers: whole columns (``across="columns"``) or
    rows of dies, as even as they go, or single dies when there are more parts than
    lines.  A run's wafers stack in rows, so rows cut it at wafer-to-wafer links."""
    count = dies_x * dies_y
    if not 1 <= parts <= count:
        raise ValueError(f"{parts} workers for {count} dies: at most one a die")
    if across == "columns":
        lines = [[dy * dies_x + dx for dy in range(dies_y)] for dx in range(dies_x)]
    else:
        lines = [[dy * dies_x + dx for dx in range(dies_x)] for dy in range(dies_y)]
    if parts > len(lines):
        lines = [[die] for line in lines for die in line]
    return [sum(lines[k * len(lines) // parts:(k + 1) * len(lines) // parts], [])
            for k in range(parts)]


# --- the worker's side ---

def _start_window(wafer, messages, cycles, until_idle):
    """Deliver what the other workers' link ends pushed for this one, and run up to
    ``cycles``, stopping early (with ``until_idle``) where this worker's tiles are all
    idle.  Returns the cycles run and, if that is all of them, the messages for the
    others (None: the coordinator asks with ``end_window``)."""
    wafer.import_messages(messages)
    ran = wafer.step(cycles, until_idle)
    return ran, (wafer.export_messages() if ran == cycles else None)


def _end_window(wafer, cycles):
    """Run the rest of a window (idle tiles, while other workers' are not) and return
    what the link ends pushed for the other workers."""
    wafer.step(cycles)
    return wafer.export_messages()


class _Server:
    """A worker's state: its wafer, built and closed on request."""

    def __init__(self):
        self.wafer = None

    def answer(self, method, args):
        """``("ok", value)`` or ``("error", "Type: message")``."""
        try:
            if method == "create":
                self.wafer = Wafer(**args[0])
                return "ok", None
            if method == "close":
                if self.wafer:
                    self.wafer.close()
                self.wafer = None
                return "ok", None
            if method in ("start_window", "end_window"):
                handler = _start_window if method == "start_window" else _end_window
                return "ok", handler(self.wafer, *args)
            value = getattr(self.wafer, method)
            return "ok", value(*args) if callable(value) else value   # a property
        except Exception as error:                 # the coordinator raises it, naming us
            return "error", f"{type(error).__name__}: {error}"


def serve(endpoint):
    """A worker's loop: answer ``endpoint.request()``'s until the coordinator says quit.
    ``endpoint.request()`` returns ``(method, args)``; ``endpoint.reply(answer)`` sends
    the answer back.  A request builds a wafer (``create``), closes it (``close``),
    runs half a window, or calls a :class:`host.wafer.Wafer` method."""
    server = _Server()
    while True:
        method, args = endpoint.request()
        if method == "quit":
            return
        endpoint.reply(server.answer(method, args))


# --- the multiprocessing transport ---

class _PipeEndpoint:
    """A forked worker's end of its pipe; it gives up once its parent is gone."""

    def __init__(self, connection):
        self._connection = connection
        self._parent = os.getppid()

    def request(self):
        waited = 0
        while not self._connection.poll(1.0):
            waited += 1
            if os.getppid() != self._parent or waited > IDLE_TIMEOUT:
                return "quit", ()
        return self._connection.recv()

    def reply(self, answer):
        self._connection.send(answer)


def _serve_pipe(connection):
    serve(_PipeEndpoint(connection))


class ForkedWorker:
    """A worker process forked from this one, joined by a pipe; ``name`` names it in
    errors."""

    def __init__(self, name):
        self.name = name
        context = multiprocessing.get_context("fork")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve_pipe, args=(theirs,), daemon=True)
        self._process.start()
        theirs.close()             # so that a dead worker shows as the end of the pipe

    def _died(self):
        self._process.join(1.0)
        return CosimError(f"{self.name} died (exit status {self._process.exitcode})")

    def send(self, request):
        try:
            self._connection.send(request)
        except OSError:
            raise self._died() from None

    def receive(self, timeout):
        try:
            if not self._connection.poll(timeout):
                raise CosimError(f"{self.name}: no answer in {timeout:g} s")
            return self._connection.recv()
        except (EOFError, OSError):
            raise self._died() from None

    def close(self):
        try:
            self._connection.send(("quit", ()))
        except OSError:
            pass
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.kill()
        self._connection.close()


class Forked:
    """The one-machine transport: ``workers`` processes forked from this one."""

    name = "multiprocessing"
    one_machine = True

    def __init__(self, workers=2):
        self.workers = workers

    def open(self):
        return [ForkedWorker(f"worker {k}") for k in range(self.workers)]


# --- the coordinator ---

class ParallelWafer(WaferShape):
    """A :class:`host.wafer.Wafer` whose dies ``transport`` (:class:`Forked` by default,
    or :class:`host.cosim_mpi.Ranks`) splits between its workers ``across`` columns or
    rows of dies (:func:`split_dies`).  It offers the wafer's loading, running and
    reading methods (not the front door); ``threads`` clock each worker's tiles."""

    def __init__(self, dies, die, params, defects=(), latency=1, transport=None,
                 harness="tiles", threads=1, across="columns"):
        super().__init__(dies, die, params)
        transport = transport or Forked()
        groups = split_dies(self.dies_x, self.dies_y, transport.workers, across)
        if transport.one_machine:
            self.check_memory(harness)
        library(self.params, harness)     # built once, before the workers look for it
        self.latency = latency
        self._owner = {die: worker for worker, group in enumerate(groups) for die in group}
        self._ends = link_ends(self.dies_x, self.dies_y, self.params)
        self._latencies = [latency] * len(self._ends)
        self._window = None               # fixed by the first step, after link_timing
        self._failed = None
        self._workers = transport.open()
        self._pending = [{} for _ in self._workers]    # messages for the next window
        try:
            self._ask({k: ("create", ({"dies": dies, "die": die, "params": params,
                                       "defects": defects, "latency": latency, "local": group,
                                       "harness": harness, "threads": threads},))
                       for k, group in enumerate(groups)})
        except BaseException:
            self.close()
            raise

    def _ask(self, requests):
        """Send ``requests`` ({worker: (method, args)}), then wait for every answer;
        returns {worker: value}, or raises the first error, naming its worker.  After
        an error the workers are out of step: the wafer is only good to close."""
        if self._failed:
            raise CosimError(f"co-simulation stopped after an error: {self._failed}")
        try:
            for k, request in requests.items():
                self._workers[k].send(request)
            answers = {k: self._workers[k].receive(REPLY_TIMEOUT) for k in requests}
            for k, (status, value) in answers.items():
                if status == "error":
                    raise CosimError(f"{self._workers[k].name}: {value}")
        except CosimError as error:
            self._failed = str(error)
            raise
        return {k: value for k, (_, value) in answers.items()}

    def _everywhere(self, method, *args):
        return list(self._ask({k: (method, args) for k in range(len(self._workers))}).values())

    def _call(self, worker, method, *args):
        return self._ask({worker: (method, args)})[worker]

    def _tile_owner(self, x, y):
        return self._owner[self.die_of(x, y)]

    def route(self, x, y, route_write):
        self._call(self._tile_owner(x, y), "route", x, y, route_write)

    def load(self, x, y, code=(), data=b"", acc=()):
        self._call(self._tile_owner(x, y), "load", x, y, list(code), bytes(data), list(acc))

    def memory(self, x, y):
        return self._call(self._tile_owner(x, y), "memory", x, y)

    def status(self, x, y, register=0):
        return self._call(self._tile_owner(x, y), "status", x, y, register)

    def inject(self, side, index, data, color, ctrl=0):
        self._call(self._owner[self.edge_die(side, index)], "inject", side, index, data,
                   color, ctrl)

    def collect(self, side, index):
        return self._call(self._owner[self.edge_die(side, index)], "collect", side, index)

    def link_timing(self, link, latency, interval=1):
        self._everywhere("link_timing", link, latency, interval)
        self._latencies[link] = latency

    def start(self):
        self._everywhere("start")

    @property
    def cycle(self):
        return self._call(0, "cycle")

    @property
    def evaluated(self):
        return sum(self._everywhere("evaluated"))

    @property
    def idle(self):
        return all(self._everywhere("idle"))

    @property
    def window(self):
        """Cycles the workers run between exchanges: the least latency of the links cut
        between them (None: no link is cut)."""
        cut = [latency for (sender, receiver), latency in zip(self._ends, self._latencies)
               if self._owner[sender] != self._owner[receiver]]
        return min(cut, default=None)

    def step(self, cycles, until_idle=False):
        """Run up to ``cycles`` cycles (fewer when ``until_idle`` and every tile is idle),
        a window at a time; returns the cycles run."""
        if self._window is None:
            self._window = self.window or cycles
        done = 0
        while done < cycles:
            window = min(self._window, cycles - done)
            started = self._ask({k: ("start_window", (messages, window, until_idle))
                                 for k, messages in enumerate(self._pending)})
            ran = [cycles_run for cycles_run, _ in started.values()]
            # Every worker idle before the window's end: the wafer is idle where the last
            # became so (idle tiles stay idle).  Otherwise the window runs to its end.
            target = max(ran) if max(ran) < window else window
            exported = {k: messages for k, (_, messages) in started.items()
                        if messages is not None}
            exported.update(self._ask({k: ("end_window", (target - cycles_run,))
                                       for k, (cycles_run, messages) in started.items()
                                       if messages is None}))
            self._pending = [{} for _ in self._workers]
            for messages in exported.values():
                for (link, which), items in messages.items():
                    sender, receiver = self._ends[link]
                    self._pending[self._owner[receiver if which == 0 else sender]][
                        link, which] = items
            done += target
            if target < window:
                break
        return done

    def close(self):
        if self._workers:
            try:
                if not self._failed:
                    self._everywhere("close")
            finally:
                workers, self._workers = self._workers, []
                for worker in workers:
                    worker.close()
