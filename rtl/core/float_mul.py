"""One lane's fp32 multiplier, :func:`sim.fp.mul` bit for bit, in two stages.

``op`` (:class:`MultiplierOp`) 0, ``PASS``, gives ``a`` unchanged; 1, ``MUL``,
``a * b``.  Subnormal operands and results are IEEE's; the product rounds to
nearest, ties to even, and overflows to an infinity; a NaN result is the
canonical NaN.

- Stage 1, from the inputs to a register: the 24 x 24-bit product of the
  significands and, beside it from the operands alone, the right shift that
  normalises it.  The product's leading bit is at 46 - lz(a) - lz(b) or one
  above (lz: a significand's leading zeros), and the shift takes that estimate
  to the rounding window's top; for a result below the normals, the shift is
  the one to the smallest normal's exponent instead.  The special results
  (``PASS``, NaN, an infinity, a zero operand) are chosen here too.
- Stage 2, to the ``result`` register: the shift, the estimate's one-bit
  correction, rounding and packing (:func:`.float_parts.round_pack`), overflow.

An input presented in cycle t gives its result in cycle t + 2; the stages
always advance.  Reset: none (the registers' values after a reset mean nothing).
"""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..float_format import CANONICAL_NAN, FP32

from .float_parts import leading_zeros, round_pack, unpack

__all__ = ["FloatMultiplier", "MultiplierOp"]

#: The largest shift: shifted this far, even the highest leading bit (product bit 47)
#: lands below the round bit (window bit 48), so any longer shift rounds to zero too.
#: The window keeps this many bits below the product, every bit a shift moves down.
_MAX_SHIFT = 72


class MultiplierOp(enum.IntEnum):
    PASS = 0
    MUL = 1


class FloatMultiplier(wiring.Component):
    """See the module docstring."""

    def __init__(self):
        super().__init__({"op": In(1), "a": In(32), "b": In(32), "result": Out(32)})

    def elaborate(self, platform):
        m = Module()
        a, b = unpack(m, self.a, "a"), unpack(m, self.b, "b")

        # Stage 1.  The value is product * 2**(ea + eb - 300), ea and eb the biased exponents
        # of the significands' leading bits.  Shifted right by p, the position of its
        # leading bit, the product has that bit at window bit 72, and the result's exponent
        # field is p - t + 1, t = 174 - ea - eb; below the normals (p < t) the shift is t
        # and the field 0.  p is q = 46 - lz(a) - lz(b) or q + 1: the shift here is q (or
        # t), and stage 2 corrects it.
        zeros = Signal(7)
        m.d.comb += zeros.eq(leading_zeros(a.significand) + leading_zeros(b.significand))
        estimate = 46 - zeros                                # q
        subnormal_shift = 174 - a.exponent - b.exponent      # t
        excess = a.exponent + b.exponent - zeros - 128       # q - t
        product = Signal(48)
        shift = Signal(range(_MAX_SHIFT + 1))
        field_base = Signal(9)          # max(q - t, 0): the field less the leading bit, for q
        m.d.sync += [
            product.eq(a.significand * b.significand),
            shift.eq(Mux(excess >= 0, estimate,
                         Mux(subnormal_shift > _MAX_SHIFT, _MAX_SHIFT, subnormal_shift))),
            field_base.eq(Mux(excess >= 0, excess, 0)),
        ]
        sign = Signal()
        m.d.sync += sign.eq(a.sign ^ b.sign)

        # The special results: PASS, NaN (a NaN operand, or 0 * inf), an infinity, a zero.
        nan = a.is_nan | b.is_nan | (a.is_inf & b.is_zero) | (b.is_inf & a.is_zero)
        infinite = a.is_inf | b.is_inf
        passes = self.op == MultiplierOp.PASS
        special = Signal()
        special_value = Signal(32)
        signed_zero = Cat(Const(0, 31), a.sign ^ b.sign)
        m.d.sync += [
            special.eq(passes | nan | infinite | a.is_zero | b.is_zero),
            special_value.eq(Mux(passes, self.a,
                                 Mux(nan, CANONICAL_NAN[FP32],
                                     Mux(infinite, signed_zero | FP32.infinity, signed_zero)))),
        ]

        # Stage 2.  The leading bit is at window bit 72, or at 73 when it was one above q
        # (then the significand, round bit and sticky bits are one bit higher).
        window = Signal(_MAX_SHIFT + 2)
        m.d.comb += window.eq(Cat(Const(0, _MAX_SHIFT), product) >> shift)
        carried = window[73]
        kept = Mux(carried, window[50:74], window[49:73])
        round_bit = Mux(carried, window[49], window[48])
        sticky = window[:48].any() | (carried & window[48])
        # The exponent field: a subnormal's leading bit (window bit 72) is clear.
        field = field_base + Mux(carried, 2, window[72])
        packed = round_pack(m, field, kept[:23], round_bit, sticky, "unrounded")
        overflow = packed[31] | packed[23:31].all()
        m.d.sync += self.result.eq(
            Mux(special, special_value,
                Cat(Mux(overflow, FP32.infinity, packed[:31]), sign)))
        return m
