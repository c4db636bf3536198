"""The integer datapath: ``lanes`` 32-bit lanes and the reductions across them, pipelined."""

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import Op, VFlag
from .stages import delay

__all__ = ["IntegerLanes", "first_maximum"]

#: Lanes compared all against all in E2; the groups' winners are compared in E3.
GROUP = 4


def first_maximum(m, candidates, name):
    """The first maximum of ``candidates``, a list of ``(valid, value, lane)``, by comparing
    every pair at once: one comparator deep, not a tree of log2(len) of them.  Returns
    ``(valid, value, lane)``."""
    count = len(candidates)
    beats = {}                               # (i, j), i < j: candidate j beats candidate i
    for i in range(count):
        for j in range(i + 1, count):
            (valid_i, a, _), (valid_j, b, _) = candidates[i], candidates[j]
            beats[i, j] = Signal(name=f"{name}_{j}_beats_{i}")
            m.d.comb += beats[i, j].eq(valid_j & (~valid_i | (b > a)))
    chosen_values, chosen_lanes = [], []
    for k, (valid_k, value_k, lane_k) in enumerate(candidates):
        # k wins when valid, larger than every earlier one and not smaller than a later one.
        wins = Cat(valid_k, *(beats[i, k] for i in range(k)),
                   *(~beats[k, j] for j in range(k + 1, count))).all()
        chosen_values.append(Mux(wins, value_k, 0))
        chosen_lanes.append(Mux(wins, lane_k, 0))
    value = Signal(signed(32), name=name)
    lane = Signal(candidates[0][2].shape(), name=f"{name}_lane")
    m.d.comb += [value.eq(functools.reduce(operator.or_, chosen_values)),
                 lane.eq(functools.reduce(operator.or_, chosen_lanes))]
    valid = Cat(candidate[0] for candidate in candidates).any()
    return valid, value, lane


class IntegerLanes(wiring.Component):
    """One beat's arithmetic, as :meth:`sim.iss.Core._execute_beat` defines it, in three
    stages: operands enter in E1 and results leave in E4, three cycles later.

    - E1 inputs: ``op``, ``flags`` (shift, ``WIDE``), ``lane_valid``, ``position`` (of the
      beat's first element) and each lane's operands ``xs``, ``ys`` (signed 32-bit).
    - E2 computes each lane's value (``VMAC``/``VMACS``: the product) and, for the
      reductions, the sum of the valid lanes and the first maximum of each group of
      :data:`GROUP` lanes; E3 finds the first maximum of the groups.
    - E4 inputs: ``accs``, the destination's old values (``VMAC``, ``VMACS``), and the
      slot's running ``result`` and ``result_index``.  Outputs: ``values``, each lane's
      value (``VMAC``/``VMACS``: the product), ``accumulated``, what an accumulator
      destination takes (``VMAC``/``VMACS``: ``accs`` plus the product; otherwise
      ``values``), and ``new_result``/``new_index``, the reduction after this beat.  Only
      ``accumulated`` waits for ``accs``: ``VMAC``/``VMACS`` write nothing else.

    The stages always advance (a bubble is a beat with no lane valid); reset: none.
    """

    def __init__(self, params):
        self._params = params
        lanes = params.lanes
        super().__init__({
            "op": In(6),
            "flags": In(14),
            "lane_valid": In(lanes),
            "position": In(16),
            "xs": In(signed(32)).array(lanes),
            "ys": In(signed(32)).array(lanes),
            "accs": In(signed(32)).array(lanes),
            "result": In(32),
            "result_index": In(16),
            "values": Out(signed(32)).array(lanes),
            "accumulated": Out(signed(32)).array(lanes),
            "new_result": Out(32),
            "new_index": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._params.lanes
        # E1 -> E2: the operands.
        op2, flags2, valid2, position2 = (
            delay(m, signal, f"{name}_e2") for signal, name in (
                (self.op, "op"), (self.flags, "flags"), (self.lane_valid, "lane_valid"),
                (self.position, "position")))
        xs = [Signal(signed(32), name=f"x{k}") for k in range(lanes)]
        ys = [Signal(signed(32), name=f"y{k}") for k in range(lanes)]
        m.d.sync += [reg.eq(value) for reg, value in zip(xs + ys, [*self.xs, *self.ys])]

        # E2 -> E3: each lane's value, the lanes' sum and the groups' first maxima.
        op3, position3 = delay(m, op2, "op_e3"), delay(m, position2, "position_e3")
        values3 = [Signal(signed(32), name=f"value{k}_e3") for k in range(lanes)]
        m.d.sync += [reg.eq(self._lane(m, op2, flags2, x, y, k))
                     for k, (reg, x, y) in enumerate(zip(values3, xs, ys))]
        lane_sum = Signal(32)
        m.d.sync += lane_sum.eq(sum(Mux(valid2[k], xs[k], 0) for k in range(lanes)))
        groups = []
        for g in range(0, lanes, GROUP):
            # Lane 0 is always valid: a beat has an element.
            members = [(Const(1) if k == 0 else valid2[k], xs[k], Const(k, range(lanes)))
                       for k in range(g, min(g + GROUP, lanes))]
            winner = first_maximum(m, members, f"group{g // GROUP}")
            registers = (Signal(name=f"group{g // GROUP}_valid"),
                         Signal(signed(32), name=f"group{g // GROUP}_best"),
                         Signal(range(lanes), name=f"group{g // GROUP}_lane"))
            m.d.sync += [reg.eq(value) for reg, value in zip(registers, winner)]
            groups.append(registers)

        # E3 -> E4: the values, the sum, the first maximum of the beat.
        op4, position4 = delay(m, op3, "op_e4"), delay(m, position3, "position_e4")
        values4 = [Signal(signed(32), name=f"value{k}_e4") for k in range(lanes)]
        m.d.sync += [reg.eq(value) for reg, value in zip(values4, values3)]
        beat_sum, best, best_lane = Signal(32), Signal(signed(32)), Signal(range(lanes))
        _, group_best, group_lane = first_maximum(m, groups, "beat")
        m.d.sync += [beat_sum.eq(lane_sum), best.eq(group_best), best_lane.eq(group_lane)]

        # E4: accumulate, and the reduction's running result.
        accumulates = (op4 == Op.VMAC) | (op4 == Op.VMACS)
        for k in range(lanes):
            m.d.comb += [self.values[k].eq(values4[k]),
                         self.accumulated[k].eq(Mux(accumulates, self.accs[k] + values4[k],
                                                    values4[k]))]
        improves = best > self.result.as_signed()
        # A beat of more than one element starts at a multiple of lanes: the index is
        # its position with the lane's bits set.
        m.d.comb += [
            self.new_result.eq(Mux(op4 == Op.VSUM, self.result + beat_sum,
                                   Mux(improves, best, self.result))),
            self.new_index.eq(Mux(improves, position4 | best_lane, self.result_index)),
        ]
        return m

    @staticmethod
    def _lane(m, op, flags, x, y, k):
        """Lane ``k``'s value in E2 (``VMAC``/``VMACS``: the product, accumulated in E4)."""
        shift = flags[:5]
        rounding = (Const(1, 33) << shift) >> 1     # 2**(shift-1), or 0 for no shift
        wide = flags.bit_select(VFlag.WIDE.bit_length() - 1, 1)
        scaled = Signal(signed(33), name=f"quantised{k}")
        m.d.comb += scaled.eq((x + rounding) >> shift)
        limit = Mux(wide, (1 << 15) - 1, (1 << 7) - 1)
        value = Signal(signed(32), name=f"value{k}_e2")
        with m.Switch(op):
            with m.Case(Op.VMOV):
                m.d.comb += value.eq(x)
            with m.Case(Op.VADD):
                m.d.comb += value.eq(x + y)
            with m.Case(Op.VSUB):
                m.d.comb += value.eq(x - y)
            with m.Case(Op.VMUL, Op.VMAC, Op.VMACS):
                m.d.comb += value.eq(x * y)
            with m.Case(Op.VMAX):
                m.d.comb += value.eq(Mux(x > y, x, y))
            with m.Case(Op.VMIN):
                m.d.comb += value.eq(Mux(x < y, x, y))
            with m.Case(Op.VQNT):
                m.d.comb += value.eq(Mux(scaled > limit, limit,
                                         Mux(scaled < -limit - 1, -limit - 1, scaled)))
        return value
