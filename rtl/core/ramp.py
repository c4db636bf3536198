"""The ramp: the core's two credit links with its router (:class:`rtl.wavelet.LinkSignature`)."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..formal import Queues
from ..router import Packed, move_queues
from ..wavelet import DATA_BITS, LinkSignature, wavelet_layout
from .ramp_properties import ramp_input_properties, ramp_output_properties

__all__ = ["RampInput", "RampOutput"]


class RampInput(wiring.Component):
    """One queue of ``queue_depth`` wavelets per color, for the wavelets from the router.

    - ``link``: the router's ramp output.  A sender that respects its credits never
      finds a queue full; a wavelet accepted in cycle t is counted in ``nonempty``
      from cycle t + 1.
    - ``pop_valid``/``pop_color``: take the head of a color's queue this cycle (at most
      one a cycle).  ``head`` shows that wavelet's data in the same cycle, and its
      credit goes back to the router in the same cycle.
    - Reset: every queue empty.
    """

    def __init__(self, params):
        self._params = params
        super().__init__({
            "link": In(LinkSignature(params)),
            "pop_valid": In(1),
            "pop_color": In(params.color_bits),
            "nonempty": Out(params.colors),
            "head": Out(DATA_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        colors, depth = p.colors, p.queue_depth
        slot_bits = (depth - 1).bit_length()
        m.submodules.queue = queue = Memory(shape=unsigned(DATA_BITS), depth=colors << slot_bits,
                                            init=[])
        count = Packed(colors, depth.bit_length(), "count")
        head = Packed(colors, max(1, slot_bits), "head")
        tail = Packed(colors, max(1, slot_bits), "tail")

        def address(slot, color):
            return Cat(slot[:slot_bits], color) if slot_bits else color

        pop, pop_color = self.pop_valid, self.pop_color
        m.d.comb += self.nonempty.eq(Cat(count[c] != 0 for c in range(colors)))
        read = queue.read_port(domain="comb")
        m.d.comb += [read.addr.eq(address(head[pop_color], pop_color)), self.head.eq(read.data)]

        link = self.link
        arriving = link.wavelet.color
        write = queue.write_port()
        accepted = move_queues(m, depth, count, head, tail, link,
                               Mux(pop, 1 << pop_color, 0)[:colors], pop & (pop_color == arriving))
        m.d.comb += [write.addr.eq(address(tail[arriving], arriving)),
                     write.data.eq(link.wavelet.data), write.en.eq(accepted),
                     link.credit.eq(pop), link.credit_color.eq(pop_color)]
        if platform == "formal":
            ramp_input_properties(m, self, Queues(queue, address, count, head, tail, colors,
                                                  depth), accepted)
        return m


class RampOutput(wiring.Component):
    """The credits for the router's ramp queues, one counter per color, and the link.

    - ``reserve``: take a credit of ``reserve_color`` this cycle; the taker checks
      ``credit_free`` first (the link has no back-pressure).  A vector beat takes its
      credit when it issues and sends a cycle later; ``SEND`` does both at once.
    - ``send``: drive ``link`` with ``wavelet`` this cycle.
    - ``credit_free``: a bit per color, set while a credit is left.  A credit taken or
      returned in cycle t counts from cycle t + 1.
    - Reset: ``queue_depth`` credits for every color.
    """

    def __init__(self, params):
        self._params = params
        super().__init__({
            "link": Out(LinkSignature(params)),
            "reserve": In(1),
            "reserve_color": In(params.color_bits),
            "send": In(1),
            "wavelet": In(wavelet_layout(params)),
            "credit_free": Out(params.colors),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        credits = [Signal(range(p.queue_depth + 1), init=p.queue_depth, name=f"credit_c{c}")
                   for c in range(p.colors)]
        link = self.link
        m.d.comb += [link.valid.eq(self.send), link.wavelet.eq(self.wavelet),
                     self.credit_free.eq(Cat(credit != 0 for credit in credits))]
        for color, credit in enumerate(credits):
            spent = self.reserve & (self.reserve_color == color)
            returned = link.credit & (link.credit_color == color)
            m.d.sync += credit.eq(credit + returned - spent)
        if platform == "formal":
            ramp_output_properties(m, self, credits, p)
        return m
