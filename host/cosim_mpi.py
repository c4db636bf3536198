"""The MPI transport of parallel co-simulation (:mod:`host.cosim`): one rank per group
of dies, on one machine or many (``mpiexec -n N``, ``docs/cosim-mpi.md``).

Rank 0 is the coordinator and also simulates its own dies; it does the host's work
too (loading, collecting tokens, the report).  Every other rank runs
:func:`serve_ranks` and does only what rank 0 asks.  Each rank simulates its dies in
a process it forks (:class:`host.cosim.ForkedWorker`), so that a crash of the
simulation is reported to rank 0 by the rank, and the run ends with one line naming
it.  Requests and answers are pickled objects on one tag; every wait polls with a
deadline, so that nothing waits for ever.

Importing this module initialises MPI: import it only under ``mpiexec``.
"""

import time

from mpi4py import MPI

from .cosim import IDLE_TIMEOUT, REPLY_TIMEOUT, CosimError, ForkedWorker

__all__ = ["Ranks", "rank", "size", "serve_ranks", "release_ranks"]

COMM = MPI.COMM_WORLD
TAG = 21


def rank():
    return COMM.Get_rank()


def size():
    return COMM.Get_size()


def _wait(test, timeout, what):
    """Poll ``test()`` until it is true, sleeping a little (a fiftieth of the time
    waited so far, at most a millisecond) between tries; raise ``CosimError(what)``
    after ``timeout`` seconds."""
    started = time.monotonic()
    while not test():
        waited = time.monotonic() - started
        if waited > timeout:
            raise CosimError(f"{what} in {timeout:g} s")
        time.sleep(min(1e-3, waited / 50))


def _receive(source, timeout, what):
    _wait(lambda: COMM.Iprobe(source=source, tag=TAG), timeout, what)
    return COMM.recv(source=source, tag=TAG)


def _send(message, dest, timeout, what):
    request = COMM.isend(message, dest=dest, tag=TAG)
    _wait(lambda: request.test()[0], timeout, what)


class _RankWorker:
    """Rank 0's handle on another rank."""

    def __init__(self, number):
        self.number = number
        self.name = f"rank {number}"

    def send(self, request):
        _send(request, self.number, REPLY_TIMEOUT, f"{self.name}: took no request")

    def receive(self, timeout):
        return _receive(self.number, timeout, f"{self.name}: no answer")

    def close(self):
        pass                       # the rank serves the next wafer, until release_ranks


class Ranks:
    """The transport over MPI: every rank of ``COMM_WORLD`` a worker, rank 0 (this
    process) one of them."""

    name = "mpi"
    one_machine = False

    def __init__(self):
        if rank() != 0:
            raise CosimError(f"rank {rank()} cannot coordinate: rank 0 does")
        self.workers = size()

    def open(self):
        return ([ForkedWorker("rank 0's worker process")]
                + [_RankWorker(k) for k in range(1, self.workers)])


class _RankEndpoint:
    def request(self):
        return _receive(0, IDLE_TIMEOUT, f"rank {rank()}: no request from rank 0")

    def reply(self, answer):
        _send(answer, 0, IDLE_TIMEOUT, f"rank {rank()}: rank 0 took no answer")


def serve_ranks():
    """Every rank but 0: pass rank 0's requests to this rank's worker process, and its
    answers back (or its death, as an error), until rank 0 releases the ranks."""
    endpoint = _RankEndpoint()
    worker = ForkedWorker("its worker process")
    try:
        while (request := endpoint.request())[0] != "quit":
            try:
                worker.send(request)
                answer = worker.receive(REPLY_TIMEOUT)
            except CosimError as error:
                answer = "error", str(error)
            endpoint.reply(answer)
    finally:
        worker.close()


def release_ranks():
    """Rank 0, at the end of the run: let every other rank end."""
    for k in range(1, size()):
        _send(("quit", ()), k, REPLY_TIMEOUT, f"rank {k}: took no quit")
