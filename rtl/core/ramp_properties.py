"""What the ramp promises, as properties proven by k-induction (``make formal``).

:class:`rtl.core.ramp.RampInput` and :class:`rtl.core.ramp.RampOutput` elaborate them for
the ``formal`` platform only; the router on the other end of each link is one of
:mod:`rtl.formal`'s models, and the core (which drives ``pop``, ``reserve`` and ``send``)
is assumed to keep its side of the contract the ports' documentation states.

- Input: the queues agree with their pointers and with the router's credits, so no
  wavelet is refused, and a tracked wavelet of any color comes out of ``head`` when it
  is popped, after exactly the wavelets that came before it.
- Output: a color's credits, plus the credits the core has reserved and not yet used,
  plus the wavelets the router holds, equal the queue depth: a counter never exceeds
  the depth, and the router's queue never overflows.
"""

from amaranth.asserts import AnyConst
from amaranth.hdl import Array, Assert, Assume, Cover, Signal

from ..formal import credit_receiver, queue_properties, tracked_wavelet

__all__ = ["ramp_input_properties", "ramp_output_properties"]


def ramp_input_properties(m, ramp, queues, accepted):
    colors, depth = queues.colors, queues.depth
    color = AnyConst(ramp.pop_color.shape())
    m.d.comb += [Assume(color < colors),
                 Assume(~ramp.pop_valid | ((ramp.pop_color < colors)
                                           & ramp.nonempty.bit_select(ramp.pop_color, 1)))]
    queue_properties(m, queues, ramp.link, accepted, "ramp_in")
    leaves = ramp.pop_valid & (ramp.pop_color == color)
    tracking, ahead, tracked = tracked_wavelet(m, queues, color,
                                      accepted & (ramp.link.wavelet.color == color),
                                      ramp.link.wavelet.data, leaves, "ramp_in")
    head_leaves = tracking & leaves & (ahead == 0)
    m.d.comb += [Assert(~head_leaves | (ramp.head == tracked)),
                 Cover(queues.count[color] == depth),
                 Cover(head_leaves & (queues.count[color] == depth))]


def ramp_output_properties(m, ramp, credits, params):
    colors, depth = params.colors, params.queue_depth
    held = credit_receiver(m, ramp.link, colors, depth, "ramp_out")
    color = AnyConst(ramp.reserve_color.shape())
    m.d.comb += [Assume(color < colors),
                 Assume(~ramp.reserve | ((ramp.reserve_color < colors)
                                         & ramp.credit_free.bit_select(ramp.reserve_color, 1)))]
    for c in range(colors):
        # Credits the core took and has not sent with yet: it sends only with one.
        reserved = Signal(range(depth + 1), name=f"reserved_c{c}")
        reserving = ramp.reserve & (ramp.reserve_color == c)
        sending = ramp.send & (ramp.wavelet.color == c)
        m.d.comb += Assume(~sending | reserving | (reserved != 0))
        m.d.sync += reserved.eq(reserved + reserving - sending)
        m.d.comb += [Assert(credits[c] <= depth),
                     Assert(credits[c] + reserved + held[c] == depth)]
    m.d.comb += [Cover(Array(credits)[color] == 0), Cover(Array(held)[color] == depth)]
