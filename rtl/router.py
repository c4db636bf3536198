"""The 5-port color router of a tile: N, E, S, W and the ramp to the core."""

import operator
from functools import reduce

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .router_properties import RouterProperties
from .wavelet import (ADDRESSED, DATA_BITS, PORTS, Dir, LinkSignature, route_layout,
                      route_write_layout, wavelet_layout)

__all__ = ["Router", "router_signature", "round_robin"]


def router_signature(params):
    """The router's ports, also used to bind an ``Instance`` of its Verilog module."""
    return wiring.Signature({
        "inputs": In(LinkSignature(params)).array(PORTS),
        "outputs": Out(LinkSignature(params)).array(PORTS),
        "x": In(8),
        "y": In(8),
        "config": In(stream.Signature(route_write_layout(params))),
        "overflow": Out(PORTS),
    })


def round_robin(m, requests, pointer, name):
    """Pick the first set bit of ``requests`` at or after ``pointer``, wrapping around.

    Returns ``(any, index, one_hot)`` as combinational signals.  The requests at or
    after the pointer and then all of them form one word of twice the width, whose
    lowest set bit is the choice; a prefix OR finds it in log2 of the width levels.
    """
    count = len(requests)
    pending = Signal(count, name=f"{name}_requests")
    ahead = Signal(count, name=f"{name}_ahead")
    lowest = Signal(2 * count, name=f"{name}_lowest")
    one_hot = Signal(count, name=f"{name}_one_hot")
    m.d.comb += [
        pending.eq(requests),
        ahead.eq(pending & Cat(Const(1) if i >= (1 << len(pointer)) - 1 else pointer <= i
                               for i in range(count))),
        lowest.eq(_lowest_set_bit(Cat(ahead, pending))),
        one_hot.eq(lowest[:count] | lowest[count:]),
    ]
    index = Signal(range(count), name=f"{name}_index")
    for bit in range(len(index)):
        mask = sum(1 << i for i in range(count) if i >> bit & 1)
        m.d.comb += index[bit].eq((one_hot & mask).any())
    return pending.any(), index, one_hot


def _lowest_set_bit(value):
    """``value`` with every set bit but the lowest cleared, through a Kogge-Stone prefix
    OR of the bits below each one."""
    below = [Const(0)] + [value[i] for i in range(len(value) - 1)]
    distance = 1
    while distance < len(value):
        below = [below[i] | below[i - distance] if i >= distance else below[i]
                 for i in range(len(value))]
        distance *= 2
    return Cat(value[i] & ~below[i] for i in range(len(value)))


def move_queues(m, depth, count, head, tail, link, leaving, same):
    """A cycle of the per-color queues of an input: the wavelet on ``link`` joins its color's
    queue when there is room (or its head leaves in the same cycle), and the head of each
    color set in ``leaving`` (one bit per color, at most one set) leaves; ``same`` says
    that the arriving color is the one leaving.  ``count``, ``head`` and ``tail`` are
    :class:`Packed` registers; returns whether the arriving wavelet was accepted.

    The counters move color by color, so that the arriving color selects none of them on
    the way in; the acceptance, for the queue's write, is the arriving color's.
    """
    accepted = []
    for c in range(len(leaving)):
        arrives = link.valid & (link.wavelet.color == c)
        leaves_c = leaving[c]
        accepted.append(arrives & ((count[c] != depth) | leaves_c))
        with m.If(accepted[c]):
            m.d.sync += tail[c].eq(Mux(tail[c] == depth - 1, 0, tail[c] + 1))
        with m.If(leaves_c):
            m.d.sync += head[c].eq(Mux(head[c] == depth - 1, 0, head[c] + 1))
        m.d.sync += count[c].eq(count[c] + accepted[c] - leaves_c)
    return link.valid & ((count[link.wavelet.color] != depth) | same)


class Packed:
    """``count`` unsigned fields of ``width`` bits in one signal, indexed by a value."""

    def __init__(self, count, width, name):
        self.width = width
        self.signal = Signal(count * width, name=name)

    def __getitem__(self, index):
        if isinstance(index, int):
            return self.signal[index * self.width:(index + 1) * self.width]
        return self.signal.word_select(index, self.width)


class Offer:
    """What one input offers the outputs in a cycle."""

    def __init__(self, params, name):
        self.valid = Signal(name=f"offer_valid_{name}")
        self.mask = Signal(PORTS, name=f"offer_mask_{name}")        # outputs it wants
        self.wavelet = Signal(wavelet_layout(params), name=f"offer_{name}")
        self.taken = Signal(PORTS, name=f"taken_{name}")            # outputs that took it
        self.one_hot = Signal(params.colors, name=f"offer_one_hot_{name}")  # its color


class Router(wiring.Component):
    """A wormhole-free, credit-flow-controlled color router.

    Every input port has one queue per color (``queue_depth`` wavelets each, held
    in one memory per port), so a stalled color never blocks another.  Colors
    below ``params.first_xy_color`` follow a static route: each entry of the
    route table names the one input the color is accepted from and a mask of
    outputs (several bits multicast, the ramp included).  A control wavelet
    (``ctrl = 1``) is forwarded by the current entry and then steps its color
    to the next switch position, wrapping after the entry marked ``last``.  The
    top ``xy_colors`` colors are XY-addressed: each wavelet goes east/west until
    its ``dst_x`` matches, then north/south, then to the ramp.

    Allocation is separable, so its cost grows linearly with the color count:
    each input first picks one of its colors (round-robin over colors that are
    waiting and hold credits on all of their outputs), then each output picks
    one of the five inputs (round-robin).  One round a cycle: a second one, for
    the inputs that won nothing, lifted 8x8 uniform saturation from 0.401 to 0.417
    wavelets/node/cycle but doubled the logic depth (89 gate levels against 42).
    An XY wavelet's output here is computed as it arrives and kept in the queue
    beside it, so allocation starts from registers.  A multicast wavelet may leave
    on its outputs in different cycles; its input stays on it until every copy is
    out.

    Latency: a wavelet on an input link is written into its color's queue at
    the clock edge; from the next cycle it can be at the head of that queue and
    on an output link, which the next router writes into its queue at the
    following edge.  So a hop costs one cycle, and the queues are the only
    registers on the path.  The outputs (wavelets and returned credits) are
    driven from this router's registers alone, and the inputs go only into
    registers, so no combinational path crosses a link and a mesh can be
    simulated one router at a time (see ``sim/native/mesh.h``).  Back-pressure
    is by credits (see :mod:`rtl.wavelet`): a credit spent in cycle t comes back
    for use in cycle t + 2, so ``queue_depth = 2`` sustains one wavelet per cycle
    per color.

    Reset empties the queues, fills the credit counters to ``queue_depth`` and
    puts every switch at position 0.  The route table is not reset, so it can
    be written over ``config`` while the router is held in reset.

    ``overflow`` flags, per input port and sticky until reset, a wavelet that
    arrived for a full queue (an upstream that ignored its credits); the
    wavelet is dropped.
    """

    def __init__(self, params):
        self._params = params
        super().__init__(router_signature(params))

    @property
    def params(self):
        return self._params

    def elaborate(self, platform):
        m = Module()
        params = self._params
        colors, depth = params.colors, params.queue_depth
        static_colors = range(params.first_xy_color)
        xy_colors = range(params.first_xy_color, colors)

        route_table = self._route_table(m, static_colors)
        properties = RouterProperties(m, self) if platform == "formal" else None

        # has_credit[o][c]: output o may send color c this cycle.
        credits = [[Signal(range(depth + 1), init=depth, name=f"credits_{Dir(o).name}_c{c}")
                    for c in range(colors)] for o in range(PORTS)]
        has_credit = [Signal(colors, name=f"has_credit_{Dir(o).name}") for o in range(PORTS)]
        for o in range(PORTS):
            m.d.comb += has_credit[o].eq(Cat(credits[o][c] != 0 for c in range(colors)))

        # Each input offers one wavelet; each output takes one of the offers for it.
        offers = [Offer(params, Dir(p).name) for p in range(PORTS)]
        for port in range(PORTS):
            self._input_port(m, Dir(port), route_table, has_credit, static_colors, xy_colors,
                             offers[port], properties)

        for out_port in range(PORTS):
            link = self.outputs[out_port]
            pointer = Signal(range(PORTS), name=f"out_pointer_{Dir(out_port).name}")
            requests = Cat(offer.valid & offer.mask[out_port] for offer in offers)
            granted, winner, grant = round_robin(m, requests, pointer,
                                                 f"out_{Dir(out_port).name}")
            for p, offer in enumerate(offers):
                m.d.comb += offer.taken[out_port].eq(grant[p])
            sent = Signal(wavelet_layout(params), name=f"sent_{Dir(out_port).name}")
            m.d.comb += [sent.eq(Array(offer.wavelet for offer in offers)[winner]),
                         link.valid.eq(granted), link.wavelet.eq(sent)]
            with m.If(granted):
                m.d.sync += pointer.eq(Mux(winner == PORTS - 1, 0, winner + 1))
            for c in range(colors):
                returned = link.credit & (link.credit_color == c)
                spent = Cat(grant[p] & offer.one_hot[c] for p, offer in enumerate(offers)).any()
                m.d.sync += credits[out_port][c].eq(credits[out_port][c] + returned - spent)
            if properties:
                properties.output_port(Dir(out_port), link, credits[out_port], pointer, grant,
                                       offers)
        return m

    def _route_table(self, m, static_colors):
        """Route-table registers and switch positions.

        Returns ``(accepts, routes_to, switches)``: ``accepts[p]`` and ``routes_to[o]``
        have one bit per color (set when the color's current entry takes input p,
        or sends to output o), so that allocation works on whole color vectors;
        ``switches[c]`` is ``(entry, position)`` of static color c.
        """
        params = self._params
        positions = params.switch_positions
        m.d.comb += self.config.ready.eq(1)
        switches = []
        table = Array(Array(Signal(route_layout(params), reset_less=True, name=f"route_c{c}_pos{k}")
                            for k in range(positions))
                      for c in static_colors)
        write = self.config.payload
        if static_colors:
            with m.If(self.config.valid & (write.color < len(static_colors))
                      & (write.position < positions)):
                m.d.sync += table[write.color][write.position].eq(write.route)
        for c in static_colors:
            entries = table[c]
            position = Signal(range(positions), name=f"switch_c{c}")
            entry = Signal(route_layout(params), name=f"route_c{c}")
            m.d.comb += entry.eq(Array(entries)[position])
            switches.append((entry, position))
        accepts = [Signal(params.colors, name=f"accepts_{Dir(p).name}") for p in range(PORTS)]
        routes_to = [Signal(params.colors, name=f"routes_to_{Dir(o).name}") for o in range(PORTS)]
        for p in range(PORTS):
            m.d.comb += accepts[p].eq(Cat(entry.accept == Dir(p) for entry, _ in switches))
            m.d.comb += routes_to[p].eq(Cat(entry.outputs[p] for entry, _ in switches))
        return accepts, routes_to, switches

    def _input_port(self, m, port, route_table, has_credit, static_colors, xy_colors, offer,
                    properties):
        params = self._params
        colors, depth = params.colors, params.queue_depth
        slot_bits = (depth - 1).bit_length()  # queue slots are addressed as {color, slot}
        link = self.inputs[port.value]
        name = port.name

        # A queue word: the data, ctrl and (for the XY colors) the output the wavelet will
        # take here, computed as it arrives, so that allocation starts from registers.
        route_bits = PORTS if xy_colors else 0
        m.submodules[f"queue_{name}"] = queue = Memory(
            shape=unsigned(DATA_BITS + 1 + route_bits), depth=colors << slot_bits, init=[])
        # Per-color counters packed into one vector each and indexed by the color:
        # a shift in simulation and a multiplexer in hardware, not a test per color.
        count = Packed(colors, depth.bit_length(), f"count_{name}")
        head = Packed(colors, max(1, slot_bits), f"head_{name}")
        tail = Packed(colors, max(1, slot_bits), f"tail_{name}")

        def address(slot, color):
            return Cat(slot[:slot_bits], color) if slot_bits else color

        queued = Signal(colors, name=f"queued_{name}")
        m.d.comb += queued.eq(Cat(count[c] != 0 for c in range(colors)))

        def head_word(color, read_port):
            """The oldest wavelet (data and ctrl) in the queue of ``color``."""
            m.d.comb += read_port.addr.eq(address(head[color], color))
            return read_port.data

        # wants[o]: the colors whose head wavelet here is bound for output o.
        accepts, routes_to, switches = route_table
        xy_masks = [head_word(Const(c, params.color_bits),
                              queue.read_port(domain="comb"))[DATA_BITS + 1:]
                    for c in xy_colors]
        wants = [Signal(colors, name=f"wants_{name}_{Dir(o).name}") for o in range(PORTS)]
        for o in range(PORTS):
            static = (accepts[port.value] & routes_to[o])[:len(static_colors)]
            m.d.comb += wants[o].eq(Cat(static, *(mask[o] for mask in xy_masks)))
        routed = reduce(operator.or_, wants)
        credited = reduce(operator.and_, (~wants[o] | has_credit[o] for o in range(PORTS)))
        eligible = Signal(colors, name=f"eligible_{name}")
        m.d.comb += eligible.eq(queued & routed & credited)

        # A multicast wavelet that went out on only some of its outputs holds the port.
        locked = Signal(name=f"locked_{name}")
        locked_color = Signal(params.color_bits, name=f"locked_color_{name}")
        locked_one_hot = Signal(colors, name=f"locked_one_hot_{name}")
        remaining = Signal(PORTS, name=f"remaining_{name}")
        color_pointer = Signal(range(colors), name=f"color_pointer_{name}")

        # The offer: the locked color, or the eligible one the round robin picks.
        any_eligible, picked, picked_one_hot = round_robin(m, eligible, color_pointer,
                                                           f"in_{name}")
        picked_wants = reduce(operator.or_, (
            Mux(picked_one_hot[c], Cat(wants[o][c] for o in range(PORTS)), 0)
            for c in range(colors)))
        # The color is a signal of its own, apart from the offer's wavelet, which its queue
        # read fills: no combinational loop through one vector.
        color = Signal(params.color_bits, name=f"offer_color_{name}")
        word = head_word(color, queue.read_port(domain="comb"))
        ctrl = word[DATA_BITS]
        # The color also one-hot, so that what follows from it needs no comparisons.
        color_one_hot = offer.one_hot
        m.d.comb += [color.eq(Mux(locked, locked_color, picked)),
                     color_one_hot.eq(Mux(locked, locked_one_hot, picked_one_hot)),
                     offer.valid.eq(locked | any_eligible),
                     offer.mask.eq(Mux(locked, remaining, picked_wants)),
                     offer.wavelet.data.eq(word[:DATA_BITS]), offer.wavelet.ctrl.eq(ctrl),
                     offer.wavelet.color.eq(color)]
        left = Signal(PORTS, name=f"left_{name}")
        done = Signal(name=f"done_{name}")
        m.d.comb += [left.eq(offer.mask & ~offer.taken),
                     done.eq(offer.valid & (left == 0))]
        with m.If(done):
            m.d.sync += [locked.eq(0), color_pointer.eq(Mux(color == colors - 1, 0, color + 1))]
        with m.Elif(offer.taken.any()):
            m.d.sync += [locked.eq(1), locked_color.eq(color), locked_one_hot.eq(color_one_hot),
                         remaining.eq(left)]
        with m.Elif(offer.valid):
            # Refused: the offer stays first while it stays eligible, so a color the pointer
            # reaches sooner cannot take its place each time it becomes eligible.  This is
            # what bounds a ready head's wait in cycles (rtl/router_properties.py).
            m.d.sync += color_pointer.eq(color)
        m.d.comb += [link.credit.eq(done), link.credit_color.eq(color)]

        # A control wavelet steps its color's switch once all of its copies are out.
        for c in static_colors:
            entry, position = switches[c]
            with m.If(done & ctrl & color_one_hot[c]):
                wrap = entry.last | (position == params.switch_positions - 1)
                m.d.sync += position.eq(Mux(wrap, 0, position + 1))

        # Every arriving wavelet is written into its color's queue.
        write = queue.write_port()
        route = ([self._xy_output(m, link.wavelet.data, name)] if xy_colors else [])
        accepted = move_queues(m, depth, count, head, tail, link, Mux(done, color_one_hot, 0),
                               done & (color == link.wavelet.color))
        m.d.comb += [write.addr.eq(address(tail[link.wavelet.color], link.wavelet.color)),
                     write.data.eq(Cat(link.wavelet.data, link.wavelet.ctrl, *route)),
                     write.en.eq(accepted)]
        with m.If(link.valid & ~accepted):
            m.d.sync += self.overflow[port.value].eq(1)
        if properties:
            properties.input_port(
                port, link, queue, address, count, head, tail, accepted, write.data, offer,
                color, done, eligible, wants, has_credit,
                (locked, locked_color, locked_one_hot, remaining, color_pointer),
                self.overflow[port.value])

    def _xy_output(self, m, data_word, name):
        """One-hot output mask of dimension-ordered XY routing for an addressed wavelet."""
        dest = ADDRESSED(data_word)
        mask = Signal(PORTS, name=f"xy_mask_{name}")
        with m.If(dest.dst_x > self.x):
            m.d.comb += mask.eq(1 << Dir.E.value)
        with m.Elif(dest.dst_x < self.x):
            m.d.comb += mask.eq(1 << Dir.W.value)
        with m.Elif(dest.dst_y > self.y):
            m.d.comb += mask.eq(1 << Dir.S.value)
        with m.Elif(dest.dst_y < self.y):
            m.d.comb += mask.eq(1 << Dir.N.value)
        with m.Else():
            m.d.comb += mask.eq(1 << Dir.RAMP.value)
        return mask
