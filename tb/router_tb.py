"""cocotb testbench of one router (Verilog module ``tessera_router``).

:class:`RouterTB` puts a credit-respecting :class:`tb.Sender` on each of the
five inputs, a credit-returning :class:`tb.Receiver` on each of the five
outputs, and checks every output against :class:`sim.fabric.RouterModel`
through a :class:`sim.fabric.Scoreboard`.  One coroutine (``FabricTB.run``)
serves all ports, one clock edge per cycle.

Environment: ``TESSERA_PARAMS`` (JSON of :class:`rtl.params.Params`),
``TESSERA_SEED``, ``TESSERA_WAVELETS`` (wavelets of ``random_traffic``).
"""

import random

import cocotb

from rtl.wavelet import PORTS, Dir, pack_addressed, unpack_addressed
from sim.fabric import RouteTable, RouterModel, Wavelet, router_deliveries
from tb import FabricTB, TBError, int_from_env, params_from_env, seed_from_env, seeded

PARAMS = params_from_env()
ALL_DIRS = list(Dir)


class RouterTB(FabricTB):
    """The router at (x, y) (default: the middle of the mesh) with route table ``routes``."""

    def __init__(self, dut, routes=None, x=None, y=None, label="router"):
        params = params_from_env()
        self.x = params.width // 2 if x is None else x
        self.y = params.height // 2 if y is None else y
        self.routes = routes if routes is not None else RouteTable(params)
        self.model = RouterModel(params, self.x, self.y, self.routes)
        super().__init__(
            dut, params, seed_from_env(),
            inputs={port: f"inputs__{port.value}" for port in Dir},
            outputs={port: f"outputs__{port.value}" for port in Dir},
            expect=lambda port, wavelet: router_deliveries(self.model, port, wavelet),
            label=label)

    async def start(self):
        def coordinates(dut):
            dut.x.value = self.x
            dut.y.value = self.y
        await super().start(self.routes.writes(), set_inputs=coordinates)
        if int(self.dut.config__ready.value) != 1:
            self.fail("config.ready is not 1")

    def record(self):
        """Log (cycle, wavelet) on every output, and every driven wavelet with its cycle."""
        self.driven = []
        for receiver in self.receivers.values():
            receiver.log = []
        self.on_drive = lambda tb, port, wavelet: tb.driven.append((tb.cycle, port, wavelet))

    def received(self, port, color=None):
        return [w for _, w in self.receivers[Dir(port)].log if color is None or w.color == color]

    def xy(self, dst_x, dst_y, payload, color=None, ctrl=0):
        color = self.params.first_xy_color if color is None else color
        return Wavelet(color, pack_addressed(dst_x, dst_y, payload), ctrl)


def random_outputs(rng):
    """A non-empty set of outputs: half the time one port, otherwise a multicast."""
    if rng.random() < 0.5:
        return {rng.choice(ALL_DIRS)}
    return set(rng.sample(ALL_DIRS, rng.randint(2, PORTS)))


def require(tb, condition, message):
    if not condition:
        tb.fail(message)


# --- a. constrained-random traffic ----------------------------------------------

class TrafficGenerator:
    """Keeps the senders' queues topped up with random wavelets, and varies the
    idle (injection rate) and back-pressure (stall) pattern of every port by phases."""

    RATES = (0.0, 0.3, 0.7, 1.0, 1.0, 1.0)
    STALLS = (0.0, 0.0, 0.0, 0.1, 0.3, 0.6, 0.95)

    def __init__(self, tb, total, rng, backlog=8):
        self.tb, self.total, self.rng = tb, total, rng
        params = tb.params
        self.static_colors = list(range(params.first_xy_color))
        self.xy_colors = list(range(params.first_xy_color, params.colors))
        self.position = [0] * params.first_xy_color   # where each color's switch will be
        self.seq = {}
        self.generated = 0
        self.backlog = backlog
        self.next_phase = 0
        self.phases = 0

    def finished(self):
        return self.generated >= self.total

    def new_phase(self):
        rng = self.rng
        for sender in self.tb.senders.values():
            sender.rate = rng.choice(self.RATES)
            sender.eager = rng.random() < 0.5
        for receiver in self.tb.receivers.values():
            receiver.stall = rng.choice(self.STALLS)
        self.next_phase = self.tb.cycle + rng.randint(20, 300)
        self.phases += 1

    def one(self, port):
        """Queue one wavelet on input ``port``: of a static color whose switch will
        take it from there, or else (and 30% of the time) of an XY color."""
        tb, rng = self.tb, self.rng
        static = [c for c in self.static_colors
                  if tb.routes.route(c, self.position[c]).accept is port]
        if self.xy_colors and (not static or rng.random() < 0.3):
            color = rng.choice(self.xy_colors)
            if rng.random() < 0.85:
                dst_x = min(255, max(0, tb.x + rng.randint(-2, 2)))
                dst_y = min(255, max(0, tb.y + rng.randint(-2, 2)))
            else:
                dst_x, dst_y = rng.randrange(256), rng.randrange(256)
            # The payload names the input, so that flows of one color are told apart.
            seq = self.seq[port, color] = self.seq.get((port, color), -1) + 1
            payload = (port.value << 13) | (seq & 0x1FFF)
            wavelet = Wavelet(color, tb.codec.addressed(dst_x, dst_y, payload),
                              int(rng.random() < 0.1))
        elif static:
            color = rng.choice(static)
            ctrl = int(rng.random() < 0.15)
            wavelet = Wavelet(color, rng.getrandbits(32), ctrl)
            if ctrl:
                self.position[color] = tb.routes.next_position(color, self.position[color])
        else:
            return False
        tb.senders[port].push(wavelet)
        self.generated += 1
        return True

    def __call__(self, tb):
        if tb.cycle >= self.next_phase:
            self.new_phase()
        for port, sender in tb.senders.items():
            while sender.pending < self.backlog and self.generated < self.total:
                if not self.one(port):
                    break


@cocotb.test()
@seeded
async def random_traffic(dut):
    """Seeded random traffic on every color, every input and every output, with
    random static routes (multicast included, switches stepped by control
    wavelets), XY wavelets to destinations around the router, and phases of
    idle inputs and back-pressured outputs."""
    params, seed = PARAMS, seed_from_env()
    total = int_from_env("TESSERA_WAVELETS", 100_000)
    rng = random.Random(f"{seed}/random_traffic")
    routes = RouteTable(params)
    for color in range(params.first_xy_color):
        count = rng.randint(1, params.switch_positions)
        routes.program(color, [(rng.choice(ALL_DIRS), random_outputs(rng)) for _ in range(count)])
    tb = RouterTB(dut, routes, label="random_traffic")
    await tb.start()
    generator = TrafficGenerator(tb, total, rng)
    tb.on_cycle = generator
    await tb.run(until=lambda tb: generator.finished()
                 and not any(s.pending for s in tb.senders.values()))
    tb.on_cycle = None
    await tb.drain()
    require(tb, tb.injected == total, f"injected {tb.injected} of {total} wavelets")
    per_output = {port.name: tb.receivers[port].received for port in Dir}
    dut._log.info(
        "random_traffic seed=%d: %d wavelets in, %d copies out %s, %d cycles (%.2f in/cycle), "
        "%d phases", seed, tb.injected, tb.scoreboard.observed_count, per_output, tb.cycle,
        tb.injected / max(1, tb.cycle), generator.phases)


# --- b. color isolation ------------------------------------------------------------

@cocotb.test()
@cocotb.parametrize(flowing=["static", "xy"])
@seeded
async def color_isolation(dut, flowing):
    """Color 0 (static, W -> E) is never consumed at E; a second color on the
    same input and output link must still move one wavelet every cycle."""
    params = PARAMS
    blocked = 0
    routes = RouteTable(params).program(blocked, [(Dir.W, {Dir.E})])
    tb = RouterTB(dut, routes, label=f"color_isolation[{flowing}]")
    if flowing == "static":
        other = 1
        routes.program(other, [(Dir.W, {Dir.E})])

        def make(n):
            return Wavelet(other, n, 0)
    else:
        other = params.first_xy_color

        def make(n):
            return tb.xy(tb.x + 1, tb.y, n & 0xFFFF, color=other)
    await tb.start()
    tb.receivers[Dir.E].blocked = {blocked}
    tb.record()
    west = tb.senders[Dir.W]
    counter = {"blocked": 0, "other": 0}

    def feed(tb):
        if counter["blocked"] < 1000 and len(west.queues[blocked]) < 2:
            west.push(Wavelet(blocked, 0x8000_0000 | counter["blocked"], 0))
            counter["blocked"] += 1
        while len(west.queues[other]) < 2:
            west.push(make(counter["other"]))
            counter["other"] += 1
    tb.on_cycle = feed
    warmup, window = 40, 200
    await tb.run(cycles=warmup)
    start = tb.cycle
    await tb.run(cycles=window)
    arrivals = [cycle for cycle, w in tb.receivers[Dir.E].log
                if w.color == other and start < cycle <= start + window]
    require(tb, arrivals == list(range(start + 1, start + window + 1)),
            f"color {other} moved {len(arrivals)} wavelets in {window} cycles while color "
            f"{blocked} was blocked (want exactly 1 per cycle); gaps at "
            f"{sorted(set(range(start + 1, start + window + 1)) - set(arrivals))[:10]}")
    stuck = [w for _, w in tb.receivers[Dir.E].log if w.color == blocked]
    require(tb, len(stuck) == params.queue_depth,
            f"{len(stuck)} wavelets of the blocked color left, want {params.queue_depth} "
            f"(the receiver's credits)")
    tb.on_cycle = None
    await tb.drain()
    dut._log.info("color_isolation[%s]: %d cycles at one wavelet per cycle",
                  flowing, len(arrivals))


# --- c. multicast --------------------------------------------------------------------

@cocotb.test()
@cocotb.parametrize(backpressure=[0.0, 0.5])
@seeded
async def multicast(dut, backpressure):
    """Two static colors multicast from two inputs to overlapping output sets
    (the ramp included); every copy arrives, in order, on every output."""
    params, seed = PARAMS, seed_from_env()
    rng = random.Random(f"{seed}/multicast/{backpressure}")
    fanout = {0: (Dir.N, {Dir.E, Dir.S, Dir.W, Dir.RAMP}),
              1: (Dir.W, {Dir.N, Dir.S, Dir.RAMP})}
    routes = RouteTable(params)
    for color, (accept, outputs) in fanout.items():
        routes.program(color, [(accept, outputs)])
    tb = RouterTB(dut, routes, label=f"multicast[{backpressure}]")
    await tb.start()
    tb.record()
    sent = {}
    for color, (accept, _) in fanout.items():
        # Control wavelets too: with one position the switch wraps onto the same route.
        sent[color] = [Wavelet(color, rng.getrandbits(32), int(rng.random() < 0.1))
                       for _ in range(300)]
        for wavelet in sent[color]:
            tb.senders[accept].push(wavelet)
    for receiver in tb.receivers.values():
        receiver.stall = backpressure
    await tb.run(until=lambda tb: not tb.busy())
    await tb.drain()
    for color, (_, outputs) in fanout.items():
        for port in Dir:
            got = tb.received(port, color)
            want = sent[color] if port in outputs else []
            require(tb, got == want,
                    f"color {color} on {port.name}: {len(got)} wavelets, want {len(want)} "
                    f"in order; first difference at "
                    f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)}")
    dut._log.info("multicast[%s]: %d copies in %d cycles", backpressure,
                  tb.scoreboard.observed_count, tb.cycle)


# --- d. switch advance -------------------------------------------------------------

@cocotb.test()
@seeded
async def switch_advance(dut):
    """Control wavelets step a color between two positions: to other outputs
    (color 1: W -> E, then W -> S), and from another input (color 2: N -> RAMP,
    then S -> RAMP, whose wavelets wait until the switch comes to them)."""
    params = PARAMS
    if params.switch_positions < 2 or params.first_xy_color < 3:
        raise TBError("switch_advance needs 2 switch positions and 3 static colors")
    routes = RouteTable(params)
    routes.program(1, [(Dir.W, {Dir.E}), (Dir.W, {Dir.S})])
    routes.program(2, [(Dir.N, {Dir.RAMP}), (Dir.S, {Dir.RAMP})])
    tb = RouterTB(dut, routes, label="switch_advance")
    await tb.start()
    tb.record()
    for receiver in tb.receivers.values():
        receiver.stall = 0.3

    def segment(color, count, tag):
        body = [Wavelet(color, (tag << 16) | i, 0) for i in range(count)]
        return body + [Wavelet(color, (tag << 16) | 0xFFFF, 1)]

    # Color 1: positions 0, 1, 0, 1 in turn; the control wavelet closing a segment
    # still goes where its segment goes.
    segments = [segment(1, 10, 1), segment(1, 5, 2), segment(1, 7, 3), segment(1, 3, 4)[:-1]]
    for part in segments:
        for wavelet in part:
            tb.senders[Dir.W].push(wavelet)
    # Color 2: the S wavelets are sent first but wait for the switch.
    from_south = segment(2, 6, 5)
    from_north = segment(2, 4, 6)
    for wavelet in from_south:
        tb.senders[Dir.S].push(wavelet)
    await tb.run(cycles=60)
    require(tb, tb.received(Dir.RAMP, 2) == [],
            "color 2 left from S while its switch was on N")
    for wavelet in from_north:
        tb.senders[Dir.N].push(wavelet)
    again = [Wavelet(2, (7 << 16) | i, 0) for i in range(3)]
    for wavelet in again:
        tb.senders[Dir.N].push(wavelet)
    await tb.run(until=lambda tb: not tb.busy())
    await tb.drain()
    checks = {
        (Dir.E, 1): segments[0] + segments[2],
        (Dir.S, 1): segments[1] + segments[3],
        (Dir.RAMP, 2): from_north + from_south + again,
    }
    for (port, color), want in checks.items():
        got = tb.received(port, color)
        require(tb, got == want, f"color {color} on {port.name}: got "
                f"{[hex(w.data) for w in got]}, want {[hex(w.data) for w in want]}")
    for port in (Dir.N, Dir.W):
        require(tb, tb.received(port) == [], f"unexpected wavelets on {port.name}")
    require(tb, tb.model.positions[1] == 1 and tb.model.positions[2] == 0,
            f"model switch positions {tb.model.positions[:3]}")


# --- e. XY addressing --------------------------------------------------------------

@cocotb.test()
@seeded
async def xy_addressing(dut):
    """Every XY color, from every input, to a destination in each direction:
    x first (E/W), then y (S/N), then the ramp; 8-bit compares at the extremes."""
    params = PARAMS
    if not params.xy_colors:
        return
    tb = RouterTB(dut, label="xy_addressing")
    x, y = tb.x, tb.y
    table = [((x + 1, y), Dir.E), ((x + 2, y + 1), Dir.E), ((x + 1, 0), Dir.E), ((255, 255), Dir.E),
             ((x, y + 1), Dir.S), ((x, 255), Dir.S),
             ((x, y), Dir.RAMP)]
    if x > 0:
        table += [((x - 1, y), Dir.W), ((0, 255), Dir.W), ((x - 1, y - 1 if y else 0), Dir.W)]
    if y > 0:
        table += [((x, y - 1), Dir.N), ((x, 0), Dir.N)]
    await tb.start()
    tb.record()
    want = {}
    for color in range(params.first_xy_color, params.colors):
        for port in Dir:
            for index, ((dst_x, dst_y), direction) in enumerate(table):
                payload = (port.value << 8) | index
                wavelet = tb.xy(dst_x, dst_y, payload, color=color, ctrl=index & 1)
                want[color, wavelet.data] = direction
                tb.senders[port].push(wavelet)

    def check(tb, port, wavelet, key):
        direction = want[wavelet.color, wavelet.data]
        if port is not direction:
            dst_x, dst_y, _ = unpack_addressed(wavelet.data)
            tb.fail(f"router at ({x}, {y}): wavelet for ({dst_x}, {dst_y}) left on "
                    f"{port.name}, want {direction.name}")
    tb.on_receive = check
    await tb.run(until=lambda tb: not tb.busy())
    await tb.drain()
    require(tb, tb.scoreboard.observed_count == len(want),
            f"{tb.scoreboard.observed_count} wavelets out, want {len(want)}")


# --- f. throughput and latency ---------------------------------------------------------

@cocotb.test()
@cocotb.parametrize(flow=["static", "xy"])
@seeded
async def throughput_latency(dut, flow):
    """One flow, one wavelet per cycle, no back-pressure: a wavelet driven in
    cycle t is on the output in cycle t + 1, and the output carries one wavelet
    every cycle."""
    params = PARAMS
    count = 200
    routes = RouteTable(params).program(0, [(Dir.W, {Dir.E})])
    tb = RouterTB(dut, routes, label=f"throughput_latency[{flow}]")
    await tb.start()
    tb.record()
    if flow == "static":
        source, sink = Dir.W, Dir.E
        wavelets = [Wavelet(0, 0x5A00_0000 | i, 0) for i in range(count)]
    else:
        source, sink = Dir.RAMP, Dir.N
        wavelets = [tb.xy(tb.x, tb.y - 1, i) for i in range(count)]
    for wavelet in wavelets:
        tb.senders[source].push(wavelet)
    await tb.run(until=lambda tb: not tb.busy())
    await tb.drain()
    driven = {w: cycle for cycle, _, w in tb.driven}
    arrived = {w: cycle for cycle, w in tb.receivers[sink].log}
    latencies = sorted({arrived[w] - driven[w] for w in wavelets})
    require(tb, latencies == [1], f"latencies {latencies}, want [1]")
    cycles = sorted(arrived.values())
    require(tb, cycles == list(range(cycles[0], cycles[0] + count)),
            f"{count} wavelets took {cycles[-1] - cycles[0] + 1} cycles on {sink.name}")
    dut._log.info("throughput_latency[%s]: %d wavelets in %d consecutive cycles, latency 1",
                  flow, count, count)
