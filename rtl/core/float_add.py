"""One lane's fp32 adder, with IEEE 754-2019 maximum and minimum, in two stages.

:class:`AdderOp`: ``PASS`` gives ``a`` unchanged, ``ADD`` :func:`sim.fp.add`, ``MAX``
:func:`sim.fp.maximum` and ``MIN`` :func:`sim.fp.minimum`, bit for bit.  A
subtraction is an ``ADD`` of ``b`` with its sign flipped by the caller.

- Stage 1, from the inputs to a register: the significand of the operand with the
  smaller exponent aligned to the other's, keeping three bits below the other's
  last (guard, round and a sticky bit, the OR of every bit shifted past them),
  and the two added, or subtracted when the signs differ, the smaller magnitude
  from the larger, so that the sum is never negative.  The special results
  (``PASS``, ``MAX``, ``MIN``, NaN, an infinity, an exact zero) are chosen here.
- Stage 2, to the ``result`` register: the sum normalised (it carried into a new
  bit, or it lost leading bits to a cancellation: a left shift by its leading
  zeros, but never below the smallest normal's exponent, which leaves a
  subnormal), rounded to nearest even and packed
  (:func:`.float_parts.round_pack`), with overflow to infinity.

The three bits are enough: a difference that cancels more than one leading bit
comes from exponents at most one apart, which shift nothing out; and when the
sticky bit is set the sum is odd and the exact sum lies within one of it, so
the two round alike.

An input presented in cycle t gives its result in cycle t + 2; the stages
always advance.  Reset: none (the registers' values after a reset mean nothing).
"""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..float_format import CANONICAL_NAN, FP32

from .float_parts import leading_zeros, round_pack, unpack

__all__ = ["FloatAdder", "AdderOp"]

#: The longest alignment shift, all that 5 bits hold: from 27 on, the whole 27-bit frame
#: shifts out into the sticky bit.
_MAX_ALIGN = 31


class AdderOp(enum.IntEnum):
    PASS = 0
    ADD = 1
    MAX = 2
    MIN = 3


class FloatAdder(wiring.Component):
    """See the module docstring."""

    def __init__(self):
        super().__init__({"op": In(2), "a": In(32), "b": In(32), "result": Out(32)})

    def elaborate(self, platform):
        m = Module()
        a, b = unpack(m, self.a, "a"), unpack(m, self.b, "b")

        # Stage 1.  The operand with the smaller exponent (b when they are equal) moves to
        # the other's.  The exponents' differences both ways at once, their order the sign
        # of one: the shift waits for no 31-bit magnitude comparison.
        a_above_by, b_above_by = a.exponent - b.exponent, b.exponent - a.exponent
        b_above = a_above_by[-1]
        distance = Mux(b_above, b_above_by, a_above_by)[:8]
        align = Mux(distance[5:].any(), _MAX_ALIGN, distance[:5])
        # Each significand with three bits below its last.
        moving = Signal(27)
        m.d.comb += moving.eq(Cat(Const(0, 3), Mux(b_above, a.significand, b.significand)))
        staying = Cat(Const(0, 3), Mux(b_above, b.significand, a.significand))
        # The sticky bit, whether any bit shifts out of the frame: the shift selects one of
        # the moving significand's prefix ORs, so it is ready with the shifted bits.
        sticky = Cat(*(moving[:bits].any() for bits in range(_MAX_ALIGN + 1))).bit_select(align, 1)
        shifted = moving >> align
        aligned = Cat(shifted[0] | sticky, shifted[1:27])
        # With equal exponents (nothing shifted) the operands enter the adder by magnitude,
        # so that a difference is never negative.
        a_smaller = Signal()
        m.d.comb += a_smaller.eq(a.magnitude < b.magnitude)
        swap = a_smaller & ~b_above
        large = Mux(swap, aligned, staying)
        small = Mux(swap, staying, aligned)
        # The difference as large + ~small + 1, in one adder: the carry in enters through
        # bit 0 of both addends.
        subtract = a.sign ^ b.sign
        small = Mux(subtract, ~Cat(small, Const(0, 1)), small)
        total = Signal(28)
        m.d.sync += total.eq((Cat(subtract, large, Const(0, 1)) + Cat(subtract, small))[1:29])
        exponent = Signal(8)
        sign = Signal()
        m.d.sync += [exponent.eq(Mux(b_above, b.exponent, a.exponent)),
                     sign.eq(Mux(a_smaller, b.sign, a.sign))]
        same_magnitude = a.magnitude == b.magnitude

        # The special results.  Maximum and minimum are IEEE 754-2019's: -0 < +0.
        any_nan = a.is_nan | b.is_nan
        a_less = Mux(subtract, a.sign, Mux(a.sign, ~a_smaller & ~same_magnitude, a_smaller))
        added = Mux(any_nan | (a.is_inf & b.is_inf & subtract), CANONICAL_NAN[FP32],
                    Mux(a.is_inf, self.a,
                        Mux(b.is_inf, self.b,
                            # An exact zero: +0 unless both addends are -0.
                            Cat(Const(0, 31), a.sign & b.sign))))
        exact_zero = (same_magnitude & subtract) | (a.is_zero & b.is_zero)
        special = Signal()
        special_value = Signal(32)
        with m.Switch(self.op):
            with m.Case(AdderOp.PASS):
                m.d.sync += [special.eq(1), special_value.eq(self.a)]
            with m.Case(AdderOp.ADD):
                m.d.sync += [special.eq(any_nan | a.is_inf | b.is_inf | exact_zero),
                             special_value.eq(added)]
            with m.Case(AdderOp.MAX):
                m.d.sync += [special.eq(1),
                             special_value.eq(Mux(any_nan, CANONICAL_NAN[FP32],
                                                  Mux(a_less, self.b, self.a)))]
            with m.Case(AdderOp.MIN):
                m.d.sync += [special.eq(1),
                             special_value.eq(Mux(any_nan, CANONICAL_NAN[FP32],
                                                  Mux(a_less, self.a, self.b)))]

        # Stage 2.  total's bit 26 has the larger operand's exponent.  Normalise the leading
        # bit to bit 27: shift left by the leading zeros or, below the normals, by that
        # exponent (then bit 27 is the smallest normal's leading bit).
        zeros = Signal(6)
        m.d.comb += zeros.eq(leading_zeros(total))
        normal = zeros <= exponent
        normalised = Signal(28)
        m.d.comb += normalised.eq(total << Mux(normal, zeros, exponent[:5]))
        # The exponent field: exponent + 1 - zeros for a normal result, 0 for a subnormal.
        field = Mux(normal, exponent + 1 - zeros, 0)[:9]
        packed = round_pack(m, field, normalised[4:27], normalised[3], normalised[:3].any(),
                            "unrounded")
        overflow = packed[31] | packed[23:31].all()
        m.d.sync += self.result.eq(
            Mux(special, special_value,
                Cat(Mux(overflow, FP32.infinity, packed[:31]), sign)))
        return m
