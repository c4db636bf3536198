"""``VTBL``'s lookup on lane 0: the index, the table read, the interpolation, pipelined."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .stages import delay

__all__ = ["TableLookup"]


class TableLookup(wiring.Component):
    """``VTBL`` as :func:`sim.iss.interpolate` defines it, from E1 to E4.

    - E1 inputs: ``valid`` (a ``VTBL`` beat is in E1), its element ``x``, its ``flags``
      (the shift s) and its table's ``base`` and ``length``.  E1 finds the index
      ``i = x >> s``, the entry ``i0`` to read and the weights ``f = x & (2**s - 1)``
      and ``2**s - f``.
    - E2 outputs: ``reads``, the beat is in E2 and reads ``T[i0], T[i0+1]`` at
      ``address`` through the SRAM's second port.
    - E3 input: ``entries``, the 4 bytes read.  E3 weighs each entry.
    - E4 output: ``value``: ``T[0]`` below the table, ``T[length-1]`` above it, else
      ``(T[i0] * (2**s - f) + T[i0+1] * f) >> s``, which is the ISS's
      ``T[i0] + ((T[i0+1] - T[i0]) * f) >> s`` without its subtraction in series.

    The stages always advance; reset: none.
    """

    def __init__(self):
        super().__init__({
            "valid": In(1),
            "x": In(signed(32)),
            "flags": In(14),
            "base": In(16),
            "length": In(16),
            "reads": Out(1),
            "address": Out(16),
            "entries": In(32),
            "value": Out(signed(32)),
        })

    def elaborate(self, platform):
        m = Module()
        # E1: the index, clamped to the table, and the weights.
        shift = self.flags[:5]
        index = Signal(signed(32))
        last_low = Signal(signed(17))               # length - 2: the last entry pair
        m.d.comb += [index.eq(self.x >> shift), last_low.eq(self.length - 2)]
        below, above = index < 0, index > last_low
        low = Mux(below, 0, Mux(above, last_low, index))
        fraction = self.x.as_unsigned() & ((Const(1, 33) << shift) - 1)[:32]
        low2 = delay(m, low[:16], "table_low_e2", 16)
        base2 = delay(m, self.base, "table_base_e2", 16)
        fraction2 = delay(m, fraction, "table_fraction_e2", 32)
        weight2 = delay(m, (Const(1, 33) << shift) - fraction, "table_weight_e2", 32)
        shift2 = delay(m, shift, "table_shift_e2", 5)
        below2 = delay(m, below, "table_below_e2", 1)
        above2 = delay(m, above, "table_above_e2", 1)
        m.d.sync += self.reads.eq(self.valid)

        # E2: the read.
        m.d.comb += self.address.eq(base2 + (low2 << 1))
        fraction3 = delay(m, fraction2, "table_fraction_e3", 32)
        weight3 = delay(m, weight2, "table_weight_e3", 32)
        shift3 = delay(m, shift2, "table_shift_e3", 5)
        below3 = delay(m, below2, "table_below_e3", 1)
        above3 = delay(m, above2, "table_above_e3", 1)

        # E3: the entries, weighed.
        first, second = self.entries[:16].as_signed(), self.entries[16:].as_signed()
        near = delay(m, first * weight3, "table_near_e4", signed(49))
        far = delay(m, second * fraction3, "table_far_e4", signed(49))
        edge = delay(m, Mux(below3, first, second), "table_edge_e4", signed(16))
        inside = delay(m, ~below3 & ~above3, "table_inside_e4", 1)
        shift4 = delay(m, shift3, "table_shift_e4", 5)

        # E4: the interpolation.
        m.d.comb += self.value.eq(Mux(inside, (near + far) >> shift4, edge))
        return m
