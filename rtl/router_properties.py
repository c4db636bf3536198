"""What the router promises, as properties proven by k-induction (``make formal``).

:class:`rtl.router.Router` elaborates them for the ``formal`` platform only.  The
neighbours on its ten links are :mod:`rtl.formal`'s models; the route table is
written only during reset.  Each property holds for every port and color, except
that the tracked wavelet and the round robins' waits are those of one color and one
input, which the solver may choose freely; each has a cover that shows its condition
happens.

- Credits: an output's credit counter for a color plus the wavelets its neighbour
  holds of that color equal the queue depth, so a counter never exceeds the depth.
- Queues: a sender that respects its credits never finds a queue full (its credits
  plus the queue's count equal the depth), so no wavelet is refused or dropped.
- Order: a tracked wavelet, chosen as it arrives, sits behind exactly the wavelets of
  its color that came before it, in the memory slot they imply, and is what its input
  offers once it is at the head; an output sends exactly the offer it granted, and
  an input is granted only outputs it still wants.  So within a color nothing is lost,
  duplicated or reordered.
- Fairness, for each of the two round robins: an input that keeps asking for an
  output is granted it within ``PORTS`` (5) cycles; while a color of an input is ready
  (its head holds credits on all of its outputs, or is half sent), at most
  ``colors - 1`` wavelets of other colors leave that input before it.
- Fairness in cycles: a color that stays ready at an input leaves it within
  ``PORTS * colors`` cycles.
"""

from amaranth.asserts import AnyConst
from amaranth.hdl import Array, Assert, Assume, Const, Cover, Mux, ResetSignal, Signal

from .formal import Queues, credit_receiver, queue_properties, tracked_wavelet, wrap
from .wavelet import DATA_BITS, PORTS

__all__ = ["RouterProperties"]


def _distance(start, to, count):
    """How many steps a round robin over ``count`` takes from ``start`` to ``to``."""
    return Mux(to >= start, to - start, to + count - start)


class RouterProperties:
    """The router's properties; the router hands each port's registers to it."""

    def __init__(self, m, router):
        self.m = m
        self.params = params = router.params
        # One color to track and to time, and one port to cover: any the solver likes.
        self.color = AnyConst(params.color_bits)
        self.port = AnyConst(range(PORTS))
        self.runs = []   # per input: the cycles its offer's color has been offered in a row
        m.d.comb += [Assume(self.color < params.colors), Assume(self.port < PORTS),
                     Assume(~router.config.valid | ResetSignal())]

    def input_port(self, port, link, queue, address, count, head, tail, accepted, word,
                   offer, color, done, eligible, wants, has_credit, lock, overflow):
        """``lock`` is ``(locked, locked_color, locked_one_hot, remaining, color_pointer)``."""
        m, params = self.m, self.params
        colors, depth = params.colors, params.queue_depth
        name = port.name
        here = self.port == port.value
        locked, locked_color, locked_one_hot, remaining, color_pointer = lock

        queues = Queues(queue, address, count, head, tail, colors, depth)
        queue_properties(m, queues, link, accepted, name)
        m.d.comb += [Assert(~overflow), Cover(here & (count[self.color] == depth)),
                     Cover(here & accepted & (link.wavelet.color == self.color)
                           & (count[self.color] == depth - 1))]

        # The offer: a color it may send, to outputs it wants; a multicast holds its input
        # only while the rest of its outputs still want it and hold its credit.
        m.d.comb += [Assert(color_pointer < colors), Assert((offer.taken & ~offer.mask) == 0),
                     Cover(here & locked & (remaining & (remaining - 1) != 0))]
        with m.If(locked):
            m.d.comb += [Assert(locked_color < params.first_xy_color),  # XY is unicast
                         Assert(locked_one_hot == (Const(1, colors) << locked_color)[:colors]),
                         Assert(count[locked_color] != 0), Assert(remaining != 0)]
            for o in range(PORTS):
                m.d.comb += Assert(~remaining[o] | (wants[o].bit_select(locked_color, 1)
                                                    & has_credit[o].bit_select(locked_color, 1)))

        # An XY wavelet's output, computed as it arrived and kept beside it, is one output.
        for c in range(params.first_xy_color, colors):
            for s in range(depth):
                stored = queue.read_port(domain="comb")
                mask = stored.data[DATA_BITS + 1:]
                m.d.comb += stored.addr.eq(address(Const(s, max(1, (depth - 1).bit_length())),
                                                   Const(c, params.color_bits)))
                with m.If(wrap(s + depth - head[c], depth) < count[c]):
                    m.d.comb += Assert((mask != 0) & ((mask & (mask - 1)) == 0))
            m.d.comb += Cover(here & (count[c] == depth))

        # Order: one wavelet of the chosen color, from its arrival to its departure.
        leaves = done & (color == self.color)
        tracking, ahead, tracked = tracked_wavelet(
            m, queues, self.color, accepted & (link.wavelet.color == self.color), word, leaves,
            name)
        with m.If(tracking & (ahead == 0) & offer.valid & (color == self.color)):
            m.d.comb += Assert(offer.wavelet.data == tracked[:DATA_BITS])
            m.d.comb += Assert(offer.wavelet.ctrl == tracked[DATA_BITS])
        m.d.comb += Cover(here & tracking & leaves & (ahead == 0) & (count[self.color] == depth))

        # Fairness of the input's round robin: while the chosen color is ready (its head
        # has credits on all of its outputs, or is half sent), at most colors - 1 wavelets
        # of other colors leave this input before it.  Each that leaves moves the pointer
        # past itself, nearer the chosen color, except one already half sent when the
        # chosen color became ready.
        passed = Signal(range(colors), name=f"passed_{name}")
        ready = eligible.bit_select(self.color, 1) | (locked & (locked_color == self.color))
        with m.If(ready & ~leaves):
            m.d.sync += passed.eq(passed + done)
        with m.Else():
            m.d.sync += passed.eq(0)
        with m.If(ready & (passed != 0)):
            m.d.comb += Assert(passed + _distance(color_pointer, self.color, colors) < colors)
            with m.If(locked & (locked_color != self.color)):
                m.d.comb += Assert(_distance(color_pointer, locked_color, colors)
                                   < _distance(color_pointer, self.color, colors))
        m.d.comb += Cover(here & ready & (passed == colors - 1))

        # Fairness in cycles: a ready color leaves within PORTS * colors cycles.  The rank:
        # the offer moves only forward, towards the chosen color (a refused offer keeps
        # the pointer), and each color offered on the way is offered for one run of at
        # most PORTS cycles (the outputs' bound, through ``run`` <= their ``starving``).
        run = Signal(range(PORTS + 2), name=f"run_{name}")        # cycles this color offered
        offered_before = Signal(name=f"offered_before_{name}")
        color_before = Signal.like(color, name=f"color_before_{name}")
        run_before = Signal.like(run, name=f"run_before_{name}")
        m.d.sync += [offered_before.eq(offer.valid & ~done), color_before.eq(color),
                     run_before.eq(run)]
        m.d.comb += run.eq(Mux(offered_before & offer.valid & (color_before == color),
                               run_before + 1, 0))
        self.runs.append(run)
        waiting = Signal(range(PORTS * colors + 1), name=f"waiting_{name}")
        m.d.sync += waiting.eq(Mux(ready & ~leaves, waiting + 1, 0))
        with m.If(here & ready):
            m.d.comb += [Assert(offer.valid),
                         Assert(waiting + PORTS * _distance(color, self.color, colors)
                                <= PORTS * (colors - 1) + run),
                         Assert(waiting < PORTS * colors)]
        m.d.comb += Cover(here & ready & (waiting == PORTS))

    def output_port(self, out_port, link, credits, pointer, grant, offers):
        m, params = self.m, self.params
        held = credit_receiver(m, link, params.colors, params.queue_depth, f"out_{out_port.name}")
        for c in range(params.colors):
            m.d.comb += [Assert(credits[c] <= params.queue_depth),
                         Assert(credits[c] + held[c] == params.queue_depth)]
        full = Array(held)[self.color] == params.queue_depth  # and so no credit left here
        m.d.comb += [Assert(pointer < PORTS), Cover((self.port == out_port.value) & full)]
        for p, offer in enumerate(offers):
            m.d.comb += Assert(~grant[p] | (link.valid & (link.wavelet.as_value()
                                                          == offer.wavelet.as_value())))

        # Fairness of the output's round robin: an input that keeps asking for it is served
        # within PORTS cycles.  Each cycle it is not, the pointer moves nearer to it.
        asking = Array(offer.valid & offer.mask[out_port.value] for offer in offers)[self.port]
        served = Array(grant)[self.port]
        starving = Signal(range(PORTS), name=f"starving_{out_port.name}")
        m.d.sync += starving.eq(Mux(asking & ~served, starving + 1, 0))
        m.d.comb += [Assert(starving + _distance(pointer, self.port, PORTS) < PORTS),
                     Assert(~asking | (starving >= Array(self.runs)[self.port])),
                     Cover(asking & (starving == PORTS - 1))]
