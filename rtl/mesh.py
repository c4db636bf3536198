"""A W x H mesh of routers with every ramp and every edge link exposed."""

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .router import Router, router_signature
from .wavelet import PORTS, Dir, LinkSignature, pack, route_write_layout, unpack

__all__ = ["Mesh", "ROUTER_MODULE", "MESH_MODULE", "mesh_config_layout", "pack_mesh_config", "EDGES",
           "EDGE_OF", "edge_index", "place_instance"]

#: Verilog module name of the router that the hierarchical mesh instantiates.
ROUTER_MODULE = "tessera_router"
#: Verilog module name of the mesh.
MESH_MODULE = "tessera_mesh"

#: Edge-port groups of the mesh: (member prefix, the router port that faces out).
EDGES = (("north", Dir.N), ("east", Dir.E), ("south", Dir.S), ("west", Dir.W))
#: The edge group a router port facing out of the mesh belongs to.
EDGE_OF = {facing: prefix for prefix, facing in EDGES}


def place_instance(m, name, module, signature):
    """Add ``name``, an ``Instance`` of the Verilog ``module`` converted from a component
    with ``signature`` (ports named as Amaranth's Verilog backend names them, in the
    ``sync`` domain); returns an interface of ``signature`` to connect."""
    block = signature.create(path=(name,))
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in block.signature.flatten(block):
        direction = "i" if member.flow == In else "o"
        ports[f"{direction}_{'__'.join(str(part) for part in path)}"] = value
    m.submodules[name] = Instance(module, **ports)
    return block


def edge_index(port, x, y):
    """The index, within its edge group, of the link leaving router (x, y) on ``port``."""
    return x if port in (Dir.N, Dir.S) else y


def mesh_config_layout(params):
    """A route-table write addressed to the router at (x, y)."""
    return data.StructLayout({"x": 8, "y": 8, "write": route_write_layout(params)})


def pack_mesh_config(params, x, y, route_write):
    """The ``config`` word that writes ``route_write`` (see :func:`pack_route_write`) at (x, y)."""
    return pack(mesh_config_layout(params), {
        "x": x, "y": y, "write": unpack(route_write_layout(params), route_write)})


class Mesh(wiring.Component):
    """``params.width`` x ``params.height`` routers, tile ``(x, y)`` at index ``y * width + x``.

    Neighbouring routers are joined link to link.  The ramps are exposed as
    ``ramp_in[i]`` (core to router) and ``ramp_out[i]`` (router to core), and the
    links leaving the mesh as ``north_out[x]``, ``east_out[y]`` and so on, with
    ``*_in`` for the links entering it.  ``config`` writes the route table of the
    router named by its ``x`` and ``y``.

    With ``hierarchical=True`` (for Verilog) each router is an ``Instance`` of
    the module :data:`ROUTER_MODULE`, converted once per configuration; with
    ``False`` the routers are Amaranth submodules, for the Amaranth simulator.
    Latency and flow control are the router's: a hop is one cycle.
    """

    def __init__(self, params, *, hierarchical=True):
        self._params = params
        self._hierarchical = hierarchical
        link = LinkSignature(params)
        side_length = {Dir.N: params.width, Dir.S: params.width,
                       Dir.E: params.height, Dir.W: params.height}
        members = {
            "ramp_in": In(link).array(params.width * params.height),
            "ramp_out": Out(link).array(params.width * params.height),
            "config": In(stream.Signature(mesh_config_layout(params))),
            "overflow": Out(PORTS * params.width * params.height),
        }
        for prefix, facing in EDGES:
            members[f"{prefix}_in"] = In(link).array(side_length[facing])
            members[f"{prefix}_out"] = Out(link).array(side_length[facing])
        super().__init__(members)

    @property
    def params(self):
        return self._params

    def elaborate(self, platform):
        m = Module()
        params = self._params
        width, height = params.width, params.height
        routers = {}
        for y in range(height):
            for x in range(width):
                router = routers[x, y] = self._place(m, x, y)
                index = y * width + x
                wiring.connect(m, wiring.flipped(self.ramp_in[index]), router.inputs[Dir.RAMP.value])
                wiring.connect(m, router.outputs[Dir.RAMP.value], wiring.flipped(self.ramp_out[index]))
                addressed = (self.config.payload.x == x) & (self.config.payload.y == y)
                m.d.comb += [
                    router.config.valid.eq(self.config.valid & addressed),
                    router.config.payload.eq(self.config.payload.write),
                    self.overflow[index * PORTS:(index + 1) * PORTS].eq(router.overflow),
                ]
        m.d.comb += self.config.ready.eq(1)

        for (x, y), router in routers.items():
            for port in (Dir.N, Dir.E, Dir.S, Dir.W):
                dx, dy = port.step
                neighbour = routers.get((x + dx, y + dy))
                if neighbour is not None:
                    wiring.connect(m, router.outputs[port.value],
                                   neighbour.inputs[port.opposite.value])
                else:
                    prefix, i = EDGE_OF[port], edge_index(port, x, y)
                    wiring.connect(m, router.outputs[port.value],
                                   wiring.flipped(getattr(self, f"{prefix}_out")[i]))
                    wiring.connect(m, wiring.flipped(getattr(self, f"{prefix}_in")[i]),
                                   router.inputs[port.value])
        return m

    def _place(self, m, x, y):
        """Add the router at (x, y); returns its ports."""
        name = f"router_{x}_{y}"
        if self._hierarchical:
            router = place_instance(m, name, ROUTER_MODULE, router_signature(self._params))
        else:
            router = m.submodules[name] = Router(self._params)
        m.d.comb += [router.x.eq(x), router.y.eq(y)]
        return router
