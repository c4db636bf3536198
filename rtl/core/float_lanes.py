"""The floating-point datapath: ``lanes // 2`` fp32 lanes, from E1 to E6.

A long beat of :mod:`sim.iss`, lane by lane:

- **E1** widens each operand to fp32 by its type (:func:`.float_widen.widen`),
  except ``VITOF``'s integers, which pass as they are;
- **E2, E3**: :class:`.float_mul.FloatMultiplier` multiplies (``VMUL``,
  ``VMAC``, ``VMACS``, ``VDEQ``) or passes x;
- **E4, E5**: :class:`.float_add.FloatAdder` adds to the multiplier's result
  y (``VADD``; ``VSUB`` with y's sign flipped), the accumulator (``VMAC``,
  ``VMACS``, read in E3 and so an input of E4) or the slot's running sum
  (``VSUM``, an input of E4); or takes the maximum or minimum with y; or passes;
- **E6**: :class:`.float_convert.FloatConverter` rounds to the destination's
  16-bit type, converts to or from int32, or passes: ``values``.

E1 inputs: ``op``, ``convert`` (a :class:`.float_convert.ConvertOp`, chosen at
launch), ``x_from``, ``y_from`` (:class:`.float_widen.WidenFrom`), ``raw_x``
(VITOF), and each lane's raw operands ``xs``, ``ys``; ``widened_xs`` gives the
widened first operands back in E1 (the float maxima rank them on the integer
lanes).  E4 inputs: ``accs`` and ``sum``; E6 outputs: ``values`` and, from
lane 0, ``new_sum`` (``VSUM``'s, before any conversion).  The stages always
advance.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import Op
from .float_add import AdderOp, FloatAdder
from .float_convert import ConvertOp, FloatConverter
from .float_mul import FloatMultiplier, MultiplierOp
from .float_widen import widen
from .stages import delay

__all__ = ["FloatLanes"]

_SIGN = 1 << 31


class FloatLanes(wiring.Component):
    """See the module docstring."""

    def __init__(self, params):
        self._width = params.float_width
        width = self._width
        super().__init__({
            "op": In(6),
            "convert": In(3),
            "x_from": In(2),
            "y_from": In(2),
            "raw_x": In(1),
            "xs": In(32).array(width),
            "ys": In(32).array(width),
            "widened_xs": Out(32).array(width),
            "accs": In(32).array(width),
            "sum": In(32),
            "values": Out(32).array(width),
            "new_sum": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        op = self.op

        def is_op(*ops):
            return Cat(op == o for o in ops).any()

        multiplies = is_op(Op.VMUL, Op.VMAC, Op.VMACS, Op.VDEQ)
        adder_op = Mux(is_op(Op.VADD, Op.VSUB, Op.VMAC, Op.VMACS, Op.VSUM), AdderOp.ADD,
                       Mux(op == Op.VMAX, AdderOp.MAX,
                           Mux(op == Op.VMIN, AdderOp.MIN, AdderOp.PASS)))
        # The adder's second operand, from E4: y, the accumulator or the running sum.
        addend = Mux(is_op(Op.VMAC, Op.VMACS), 1, Mux(op == Op.VSUM, 2, 0))
        negate = op == Op.VSUB
        mul_op = delay(m, Mux(multiplies, MultiplierOp.MUL, MultiplierOp.PASS), "mul_op_e2")
        adder_op4, addend4, negate4 = (
            delay(m, delay(m, delay(m, value, f"{name}_e2"), f"{name}_e3"), f"{name}_e4")
            for value, name in ((adder_op, "adder_op"), (addend, "addend"), (negate, "negate")))
        convert6 = self.convert
        for stage in range(2, 7):
            convert6 = delay(m, convert6, f"convert_e{stage}")
        for k in range(self._width):
            x = Signal(32, name=f"float_x{k}")
            m.d.comb += x.eq(Mux(self.raw_x, self.xs[k], widen(m, self.xs[k], self.x_from)))
            m.d.comb += self.widened_xs[k].eq(x)
            y2 = delay(m, widen(m, self.ys[k], self.y_from), f"float_y{k}_e2")
            y4 = delay(m, delay(m, y2, f"float_y{k}_e3"), f"float_y{k}_e4")

            m.submodules[f"mul{k}"] = mul = FloatMultiplier()
            m.d.comb += [mul.op.eq(mul_op), mul.a.eq(delay(m, x, f"float_x{k}_e2")),
                         mul.b.eq(y2)]
            m.submodules[f"add{k}"] = add = FloatAdder()
            second = Mux(addend4 == 1, self.accs[k], Mux(addend4 == 2, self.sum, y4))
            m.d.comb += [add.op.eq(adder_op4), add.a.eq(mul.result),
                         add.b.eq(second ^ Mux(negate4, _SIGN, 0))]
            m.submodules[f"convert{k}"] = convert = FloatConverter()
            m.d.comb += [convert.op.eq(convert6), convert.a.eq(add.result),
                         self.values[k].eq(convert.result)]
            if k == 0:                                # VSUM's running sum, one lane wide
                m.d.comb += self.new_sum.eq(add.result)
        return m


def convert_op(op, sixteen, bf16):
    """The converter's operation for ``op`` (chosen at launch); ``sixteen``: the destination
    holds fp16 or bf16 (``bf16``) elements."""
    return Mux(op == Op.VFTOI, ConvertOp.TO_INT32,
               Mux(op == Op.VITOF, ConvertOp.FROM_INT32,
                   Mux(sixteen, Mux(bf16, ConvertOp.TO_BF16, ConvertOp.TO_FP16),
                       ConvertOp.PASS)))
