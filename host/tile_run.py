"""Kernels on tiles of a simulated wafer: load, run to the halt, read back.

Shared by the kernel tests (``tests/test_kernels.py``, ``tests/test_half_kernels.py``)
and the kernel cost sweeps (:mod:`host.bench.kernel`): dies of ``params`` in the
native harness (one 4x4 die unless told otherwise), programs and accumulator images
written through the back door, the wavelets that leave the west edge of row 0 on
:data:`OUT_COLOR` collected.
"""

from host.wafer import Wafer
from rtl.wavelet import Dir, pack_route_write

__all__ = ["OUT_COLOR", "LOOP_COLOR", "run_tiles", "loop_route"]

OUT_COLOR = 2
#: A color the kernels stream their GEMV operands around (:func:`loop_route`).
LOOP_COLOR = 3
#: Cycles a run may take before it counts as hung.
CYCLE_LIMIT = 2_000_000


def loop_route(x, y):
    """The route that takes :data:`LOOP_COLOR` from tile (x, y)'s ramp back to it."""
    return (x, y, LOOP_COLOR, Dir.RAMP, [Dir.RAMP])


def run_tiles(params, tiles, routes=(), inject=(), accs=None, dies=(1, 1), die=(4, 4),
              link_timing=()):
    """Run ``{(x, y): TileProgram}`` on ``dies`` dies of ``die`` tiles, with accumulator
    images ``accs`` (by tile) written through the back door and ``link_timing``
    ``(link, latency, interval)`` given to die links; every program must halt without a
    fault.  Returns the data memories and the words that left the west edge of row 0
    on :data:`OUT_COLOR`, unsigned."""
    wafer = Wafer(dies, die, params)
    try:
        for link, latency, interval in link_timing:
            wafer.link_timing(link, latency, interval)
        for x, y, color, accept, outputs in [(0, 0, OUT_COLOR, Dir.RAMP, [Dir.W]), *routes]:
            wafer.route(x, y, pack_route_write(params, color, 0, accept, outputs, True))
        images = {tile: program.finish() for tile, program in tiles.items()}
        for (x, y), (code, data) in images.items():
            wafer.load(x, y, code=code, data=data, acc=(accs or {}).get((x, y), ()))
        wafer.start()
        for side, index, data, color in inject:
            wafer.inject(side, index, data, color)
        while not wafer.idle and wafer.cycle < CYCLE_LIMIT:
            wafer.step(200_000, until_idle=True)
        wafer.step(16)                  # the last wavelets on their way to the edge
        for (x, y) in tiles:
            status = wafer.status(x, y)
            assert status["halted"] and not status["fault"], ((x, y), status)
        memories = {tile: wafer.memory(*tile) for tile in tiles}
        sent = [data for _, data, color, _ in wafer.collect("west", 0) if color == OUT_COLOR]
        return memories, sent
    finally:
        wafer.close()
