"""cocotb testbench of the mesh (Verilog module ``tessera_mesh``).

:class:`MeshTB` drives every link into the mesh (the ramps and the edge
links) with a :class:`tb.Sender`, receives every link out of it with a
:class:`tb.Receiver`, and checks them all against
:class:`sim.fabric.MeshModel` through a :class:`sim.fabric.Scoreboard`.

Environment: ``TESSERA_PARAMS``, ``TESSERA_SEED``, ``TESSERA_MESH_WAVELETS``
(XY wavelets of ``random_mesh_traffic``).
"""

import random

import cocotb

from rtl.mesh import EDGES
from rtl.wavelet import Dir
from sim.fabric import MeshModel, RouteTable, Wavelet, edge, ramp
from tb import FabricTB, int_from_env, params_from_env, seed_from_env, seeded

PARAMS = params_from_env()

#: The static color routed along ROW: in from the west edge, copied to every
#: ramp of the row, out of the east edge.
ROW_COLOR = 0
ROW = 1


def side_length(params, prefix):
    return params.width if prefix in ("north", "south") else params.height


class MeshTB(FabricTB):
    def __init__(self, dut, routes=None, label="mesh"):
        params = params_from_env()
        self.model = MeshModel(params, routes)
        tiles = params.width * params.height
        inputs = {ramp(i): f"ramp_in__{i}" for i in range(tiles)}
        outputs = {ramp(i): f"ramp_out__{i}" for i in range(tiles)}
        for prefix, _ in EDGES:
            for i in range(side_length(params, prefix)):
                inputs[edge(prefix, i)] = f"{prefix}_in__{i}"
                outputs[edge(prefix, i)] = f"{prefix}_out__{i}"
        super().__init__(dut, params, seed_from_env(), inputs, outputs,
                         expect=lambda link, wavelet: self.model.inject(link, wavelet),
                         label=label)

    async def start(self):
        await super().start(self.model.config_words())

    def xy(self, dst, payload, color=None, ctrl=0):
        """An XY wavelet for the ramp of tile ``dst``."""
        color = self.params.first_xy_color if color is None else color
        width = self.params.width
        return Wavelet(color, self.codec.addressed(dst % width, dst // width, payload), ctrl)


def row_routes(params, row=ROW, color=ROW_COLOR):
    """Route tables for ``color``: west edge -> every ramp of ``row`` -> east edge."""
    routes = {}
    for x in range(params.width):
        routes[x, row] = RouteTable(params).program(color, [(Dir.W, {Dir.RAMP, Dir.E})])
    return routes


def require(tb, condition, message):
    if not condition:
        tb.fail(message)


@cocotb.test()
@seeded
async def random_mesh_traffic(dut):
    """Random XY traffic between every pair of ramps, plus a static color
    multicast along a row (west edge -> each ramp of the row -> east edge),
    with phases of idle sources and back-pressured sinks."""
    params, seed = PARAMS, seed_from_env()
    total = int_from_env("TESSERA_MESH_WAVELETS", 4000)
    rng = random.Random(f"{seed}/random_mesh_traffic")
    tb = MeshTB(dut, row_routes(params), label="random_mesh_traffic")
    await tb.start()
    tiles = params.width * params.height
    source_bits = max(1, (tiles - 1).bit_length())
    seq_bits = 16 - source_bits
    xy_colors = list(range(params.first_xy_color, params.colors))
    row_in = tb.senders[edge("west", ROW)]
    state = {"generated": 0, "row": 0, "next_phase": 0, "seq": [0] * tiles}
    row_total = max(1, total // 8)

    def traffic(tb):
        if tb.cycle >= state["next_phase"]:
            for sender in tb.senders.values():
                sender.rate = rng.choice((0.0, 0.2, 0.5, 1.0))
                sender.eager = rng.random() < 0.5
            for receiver in tb.receivers.values():
                receiver.stall = rng.choice((0.0, 0.0, 0.2, 0.5, 0.9))
            state["next_phase"] = tb.cycle + rng.randint(30, 200)
        while state["generated"] < total and sum(
                tb.senders[ramp(i)].pending for i in range(tiles)) < 4 * tiles:
            src, dst = rng.randrange(tiles), rng.randrange(tiles)
            seq = state["seq"][src]
            state["seq"][src] += 1
            # The payload names the source ramp: flows of one color are told apart.
            payload = (src << seq_bits) | (seq & ((1 << seq_bits) - 1))
            tb.senders[ramp(src)].push(tb.xy(dst, payload, color=rng.choice(xy_colors),
                                             ctrl=int(rng.random() < 0.1)))
            state["generated"] += 1
        while state["row"] < row_total and row_in.pending < 4:
            row_in.push(Wavelet(ROW_COLOR, rng.getrandbits(32), int(rng.random() < 0.1)))
            state["row"] += 1

    tb.on_cycle = traffic
    await tb.run(until=lambda tb: state["generated"] >= total and state["row"] >= row_total
                 and not any(s.pending for s in tb.senders.values()))
    tb.on_cycle = None
    await tb.drain()
    got_east = tb.receivers[edge("east", ROW)].received
    require(tb, got_east == row_total,
            f"east edge of row {ROW} got {got_east} wavelets, want {row_total}")
    dut._log.info("random_mesh_traffic seed=%d: %d XY + %d row wavelets in, %d copies out, "
                  "%d cycles", seed, total, row_total, tb.scoreboard.observed_count, tb.cycle)


@cocotb.test()
@seeded
async def hop_latency(dut):
    """On an idle mesh a wavelet crossing k router-to-router hops arrives k + 1
    cycles after it was driven (XY between ramps, and along the static row
    route to each ramp of the row and to the east edge); a stream across the
    whole mesh keeps one wavelet per cycle."""
    params = PARAMS
    tb = MeshTB(dut, row_routes(params), label="hop_latency")
    await tb.start()
    width, tiles = params.width, params.width * params.height
    driven, arrived = {}, {}
    tb.on_drive = lambda tb, link, wavelet: driven.setdefault((link, wavelet), tb.cycle)
    tb.on_receive = lambda tb, link, wavelet, key: arrived.setdefault((link, wavelet), tb.cycle)

    async def one(link, wavelet, sinks, hops):
        tb.senders[link].push(wavelet)
        await tb.run(until=lambda tb: not tb.busy())
        for sink, k in zip(sinks, hops):
            latency = arrived[sink, wavelet] - driven[link, wavelet]
            require(tb, latency == k + 1,
                    f"{link} -> {sink}: {k} hops took {latency} cycles, want {k + 1}")
        return max(hops)

    measured = set()
    corner = tiles - 1
    pairs = [(0, 0), (0, 1), (0, width), (0, width + 1), (5 % tiles, corner), (0, corner - 1),
             (0, corner),
             (corner, 0), (width - 1, tiles - width)]
    for n, (src, dst) in enumerate(pairs):
        k = tb.model.hops(src, dst)
        await one(ramp(src), tb.xy(dst, n), [ramp(dst)], [k])
        measured.add(k)
    # The static row: tile x of the row is x hops from the west edge, the east edge width - 1.
    wavelet = Wavelet(ROW_COLOR, 0xC0FFEE, 0)
    sinks = [ramp(ROW * width + x) for x in range(width)] + [edge("east", ROW)]
    hops = list(range(width)) + [width - 1]
    await one(edge("west", ROW), wavelet, sinks, hops)
    measured.update(hops)
    # Throughput across the whole mesh: one wavelet per cycle, hop after hop.
    stream = [tb.xy(corner, 0x8000 | i) for i in range(100)]
    for wavelet in stream:
        tb.senders[ramp(0)].push(wavelet)
    await tb.run(until=lambda tb: not tb.busy())
    cycles = sorted(arrived[ramp(corner), w] for w in stream)
    require(tb, cycles == list(range(cycles[0], cycles[0] + len(stream))),
            f"a stream of {len(stream)} wavelets across the mesh took "
            f"{cycles[-1] - cycles[0] + 1} cycles")
    require(tb, cycles[0] - driven[ramp(0), stream[0]] == tb.model.hops(0, corner) + 1,
            "stream latency")
    await tb.drain()
    dut._log.info("hop_latency: k + 1 cycles for k in %s; 100-wavelet stream over %d hops at "
                  "one per cycle", sorted(measured), tb.model.hops(0, corner))
