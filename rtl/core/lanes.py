"""The integer datapath: ``lanes`` 32-bit lanes and the reductions across them."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import Op, VFlag

__all__ = ["IntegerLanes"]


def _tree(values, combine):
    """``values`` combined pairwise, log2(len) deep (in element order)."""
    while len(values) > 1:
        values = [combine(values[n], values[n + 1]) for n in range(0, len(values), 2)]
    return values[0]


class IntegerLanes(wiring.Component):
    """One beat's arithmetic, combinational, as :meth:`sim.iss.Core._beat` defines it.

    - ``op``/``flags``: the operation and its immediate (shift, ``WIDE``).
    - ``xs``, ``ys``: the operands of each lane, signed 32-bit; ``accs``: the
      destination's old values (``VMAC``, ``VMACS``).
    - ``values``: each lane's result, in the same cycle.  ``VTBL`` runs on lane 0:
      ``table_index`` is ``x >> shift``, ``table`` the two int16 entries read,
      ``table_length`` the table's entries.
    - ``lane_sum``, ``best``, ``best_lane``: the sum and the first maximum of the
      lanes set in ``lane_valid``, in element order (the reductions).
    """

    def __init__(self, params):
        self._params = params
        lanes = params.lanes
        super().__init__({
            "op": In(6),
            "flags": In(14),
            "xs": In(signed(32)).array(lanes),
            "ys": In(signed(32)).array(lanes),
            "accs": In(signed(32)).array(lanes),
            "lane_valid": In(lanes),
            "table_index": In(signed(32)),
            "table": In(32),
            "table_length": In(16),
            "values": Out(signed(32)).array(lanes),
            "lane_sum": Out(32),
            "best": Out(signed(32)),
            "best_lane": Out(range(lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._params.lanes
        op, flags, xs, ys = self.op, self.flags, self.xs, self.ys
        shift = flags[:5]
        table_value = self._table(m, shift)
        rounding = (Const(1, 33) << shift) >> 1     # 2**(shift-1), or 0 for no shift
        wide = flags.bit_select(VFlag.WIDE.bit_length() - 1, 1)
        for k in range(lanes):
            x, y, value = xs[k], ys[k], self.values[k]
            scaled = Signal(signed(33), name=f"quantised{k}")
            m.d.comb += scaled.eq((x + rounding) >> shift)
            limit = Mux(wide, (1 << 15) - 1, (1 << 7) - 1)
            with m.Switch(op):
                with m.Case(Op.VMOV):
                    m.d.comb += value.eq(x)
                with m.Case(Op.VADD):
                    m.d.comb += value.eq(x + y)
                with m.Case(Op.VSUB):
                    m.d.comb += value.eq(x - y)
                with m.Case(Op.VMUL):
                    m.d.comb += value.eq(x * y)
                with m.Case(Op.VMAX):
                    m.d.comb += value.eq(Mux(x > y, x, y))
                with m.Case(Op.VMIN):
                    m.d.comb += value.eq(Mux(x < y, x, y))
                with m.Case(Op.VQNT):
                    m.d.comb += value.eq(Mux(scaled > limit, limit,
                                             Mux(scaled < -limit - 1, -limit - 1, scaled)))
                with m.Case(Op.VTBL):
                    m.d.comb += value.eq(table_value)
                with m.Case(Op.VMAC, Op.VMACS):
                    m.d.comb += value.eq(self.accs[k] + x * y)

        valid = self.lane_valid
        m.d.comb += self.lane_sum.eq(_tree([Mux(valid[k], xs[k], 0) for k in range(lanes)],
                                           lambda a, b: a + b))
        # The first maximum, as a tree of (valid, value, lane): log2(lanes) comparisons
        # deep, not a chain of lanes - 1.  Lane 0 is always valid (a beat has an element).
        candidates = [(Const(1) if k == 0 else valid[k], xs[k], Const(k, range(lanes)))
                      for k in range(lanes)]
        level = 0
        while len(candidates) > 1:
            pairs = []
            for n in range(0, len(candidates), 2):
                (valid_a, a, lane_a), (valid_b, b, lane_b) = candidates[n:n + 2]
                right = Signal(name=f"max{level}_{n // 2}_right")   # b wins only if larger
                m.d.comb += right.eq(valid_b & (~valid_a | (b > a)))
                value = Signal(signed(32), name=f"max{level}_{n // 2}")
                lane = Signal(range(lanes), name=f"max{level}_{n // 2}_lane")
                m.d.comb += [value.eq(Mux(right, b, a)), lane.eq(Mux(right, lane_b, lane_a))]
                pairs.append((valid_a | valid_b, value, lane))
            candidates, level = pairs, level + 1
        _, best, best_lane = candidates[0]
        m.d.comb += [self.best.eq(best), self.best_lane.eq(best_lane)]
        return m

    def _table(self, m, shift):
        """VTBL's interpolation between the two entries read (sim.iss's docstring)."""
        x0, index = self.xs[0], self.table_index
        entry = [self.table[16 * e:16 * (e + 1)].as_signed() for e in range(2)]
        fraction = Signal(32)
        m.d.comb += fraction.eq(x0.as_unsigned() & ((Const(1, 33) << shift) - 1)[:32])
        value = Signal(signed(32))
        with m.If(index < 0):
            m.d.comb += value.eq(entry[0])
        with m.Elif(index >= self.table_length - 1):
            m.d.comb += value.eq(entry[1])
        with m.Else():
            m.d.comb += value.eq(entry[0] + (((entry[1] - entry[0]) * fraction) >> shift))
        return value
