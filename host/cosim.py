"""Parallel co-simulation: one wafer, its dies split across worker processes.

Each worker holds a :class:`host.wafer.Wafer` that simulates only its own dies
(``local``).  A die-to-die link whose ends sit in two workers carries nothing
that is due in less than the link latency L (:mod:`sim/native/wafer.cpp`), so
the workers run windows of L cycles independently and then swap what each link
end pushed for the other: conservative lookahead.  The result is the same, bit
for bit and cycle for cycle, as one process simulating the whole wafer.

Here the coordinator is this process, and it relays the messages (a star).
``docs/cosim-mpi.md`` describes the same scheme over MPI, across machines.
"""

import multiprocessing

from rtl.mesh import EDGES
from rtl.wavelet import Dir

from .wafer import Wafer, WaferShape, library

__all__ = ["ParallelWafer", "link_ends"]


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


def _serve(connection, arguments):
    wafer = Wafer(*arguments["args"], **arguments["kwargs"])
    while True:
        method, args = connection.recv()
        if method == "close":
            wafer.close()
            connection.send(("ok", None))
            return
        try:
            connection.send(("ok", getattr(wafer, method)(*args)))
        except Exception as error:  # reported to the coordinator, which raises it
            connection.send(("error", f"{type(error).__name__}: {error}"))


class ParallelWafer:
    """A :class:`host.wafer.Wafer` split by die columns across ``workers`` processes.

    It offers the wafer's loading, running and reading methods; ``step`` runs whole
    windows of the link latency and has no ``until_idle``.
    """

    def __init__(self, dies, die, params, defects=(), latency=1, workers=2, harness="tiles"):
        dies_x, dies_y = dies
        if not 1 <= workers <= dies_x:
            raise ValueError(f"{workers} workers for {dies_x} columns of dies")
        self._geometry = WaferShape(dies, die, params)
        self._geometry.check_memory(harness)
        library(params.replace(width=die[0], height=die[1]), harness)  # once, before forking
        self.params = self._geometry.params
        self.width, self.height = self._geometry.width, self._geometry.height
        self.latency = latency
        self._owner = {}
        self._connections = []
        context = multiprocessing.get_context("fork")
        for worker in range(workers):
            columns = range(worker * dies_x // workers, (worker + 1) * dies_x // workers)
            local = [dy * dies_x + dx for dy in range(dies_y) for dx in columns]
            self._owner.update({d: worker for d in local})
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, {
                "args": (dies, die, params), "kwargs": {
                    "defects": defects, "latency": latency, "local": local,
                    "harness": harness}}), daemon=True)
            process.start()
            self._connections.append(ours)
        self._ends = link_ends(dies_x, dies_y, self._geometry.params)
        self._pending = [{} for _ in self._connections]   # messages for the next window

    def _call(self, worker, method, *args):
        self._connections[worker].send((method, args))
        return self._result(worker)

    def _result(self, worker):
        status, value = self._connections[worker].recv()
        if status == "error":
            raise RuntimeError(f"worker {worker}: {value}")
        return value

    def _everywhere(self, method, *args):
        for connection in self._connections:
            connection.send((method, args))
        return [self._result(worker) for worker in range(len(self._connections))]

    def _tile_owner(self, x, y):
        return self._owner[self._geometry.die_of(x, y)]

    def route(self, x, y, route_write):
        self._call(self._tile_owner(x, y), "route", x, y, route_write)

    def load(self, x, y, code=(), data=b"", acc=()):
        self._call(self._tile_owner(x, y), "load", x, y, list(code), bytes(data), list(acc))

    def memory(self, x, y):
        return self._call(self._tile_owner(x, y), "memory", x, y)

    def status(self, x, y, register=0):
        return self._call(self._tile_owner(x, y), "status", x, y, register)

    def inject(self, side, index, data, color, ctrl=0):
        owner = self._owner[self._geometry.edge_die(side, index)]
        self._call(owner, "inject", side, index, data, color, ctrl)

    def collect(self, side, index):
        return self._call(self._owner[self._geometry.edge_die(side, index)], "collect",
                          side, index)

    def start(self):
        self._everywhere("start")

    def step(self, cycles):
        """Run ``cycles`` cycles (a multiple of the latency is the natural unit)."""
        done = 0
        while done < cycles:
            window = min(self.latency, cycles - done)
            # One round trip a window: deliver the last window's messages, run, collect.
            for connection, messages in zip(self._connections, self._pending):
                connection.send(("window", (messages, window)))
            self._pending = [{} for _ in self._connections]
            for worker in range(len(self._connections)):
                for (link, which), items in self._result(worker).items():
                    sender, receiver = self._ends[link]
                    consumer = self._owner[receiver if which == 0 else sender]
                    self._pending[consumer][link, which] = items
            done += window
        return done

    def close(self):
        if self._connections:
            self._everywhere("close")
            self._connections = []
