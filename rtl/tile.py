"""A tile: one core and its router, joined by the ramp.

The tile converts to one Verilog module per configuration (:data:`TILE_MODULE`),
which a die places with ``Instance``.  Its fabric ports are the router's four
mesh links; the core's back door and status come out for the loader and the
host.

``quiescent`` says that no state of the tile changes in this cycle, nor any but the
``CYCLES`` counter's in the cycles after, as long as no wavelet and no credit arrives on
its links: the core is quiescent (:mod:`rtl.core`), and the router sends nothing and
returns no credit, on its mesh links or its ramp, so nothing moves in it (its state
changes only when a wavelet or a credit moves).  The wafer harness skips such a tile
(``sim/native/tile_model.h``); a tile built ``skippable`` takes the cycles it skipped
on ``skipped`` (see :class:`rtl.core.Core`).
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .core import Core, activity_layout, backdoor_signature
from .isa import COUNTERS
from .router import Router
from .wavelet import PORTS, Dir, LinkSignature, route_write_layout

__all__ = ["Tile", "tile_signature", "TILE_MODULE", "MESH_PORTS"]

#: Verilog module name of the tile.
TILE_MODULE = "tessera_tile"
#: The router ports that face other tiles, in the order of ``inputs`` and ``outputs``.
MESH_PORTS = (Dir.N, Dir.E, Dir.S, Dir.W)


def tile_signature(params, skippable=False):
    link = LinkSignature(params)
    skipped = {"skipped": In(32)} if skippable else {}
    return wiring.Signature({
        "inputs": In(link).array(len(MESH_PORTS)),
        "outputs": Out(link).array(len(MESH_PORTS)),
        "x": In(8),
        "y": In(8),
        "config": In(stream.Signature(route_write_layout(params))),
        "overflow": Out(len(Dir)),
        "enable": In(1),
        "backdoor": In(backdoor_signature(params)),
        "halted": Out(1),
        "idle": Out(1),
        "quiescent": Out(1),
        "fault": Out(3),
        "fault_pc": Out(16),
        "pc": Out(16),
        "activity": Out(activity_layout()),
        "counters": Out(32).array(COUNTERS),
        **skipped,
    })


class Tile(wiring.Component):
    def __init__(self, params, skippable=False):
        self._params = params
        self._skippable = skippable
        super().__init__(tile_signature(params, skippable))

    @property
    def params(self):
        return self._params

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = router = Router(self._params)
        m.submodules.core = core = Core(self._params, self._skippable)
        for index, port in enumerate(MESH_PORTS):
            wiring.connect(m, wiring.flipped(self.inputs[index]), router.inputs[port.value])
            wiring.connect(m, router.outputs[port.value], wiring.flipped(self.outputs[index]))
        wiring.connect(m, core.to_router, router.inputs[Dir.RAMP.value])
        wiring.connect(m, router.outputs[Dir.RAMP.value], core.from_router)
        wiring.connect(m, wiring.flipped(self.config), router.config)
        wiring.connect(m, wiring.flipped(self.backdoor), core.backdoor)
        m.d.comb += [router.x.eq(self.x), router.y.eq(self.y), self.overflow.eq(router.overflow),
                     core.enable.eq(self.enable), self.halted.eq(core.halted),
                     self.idle.eq(core.idle), self.fault.eq(core.fault),
                     self.fault_pc.eq(core.fault_pc), self.pc.eq(core.pc),
                     self.activity.eq(core.activity)]
        for n in range(COUNTERS):
            m.d.comb += self.counters[n].eq(core.counters[n])
        if self._skippable:
            m.d.comb += core.skipped.eq(self.skipped)
        moving = Cat(*(router.outputs[p].valid for p in range(PORTS)),
                     *(router.inputs[p].credit for p in range(PORTS))).any()
        m.d.comb += self.quiescent.eq(core.quiescent & ~moving)
        return m
