"""One lane's conversions from fp32 and int32, combinational, as :mod:`sim.fp` specifies.

:class:`ConvertOp`:

- ``PASS``: ``a`` unchanged;
- ``TO_FP16``, ``TO_BF16``: :func:`sim.fp.narrow`, the fp32 ``a`` rounded to nearest
  even (subnormal when small, an infinity when too large, the canonical NaN for a
  NaN), zero-extended to 32 bits;
- ``TO_INT32``: :func:`sim.fp.to_int32`, rounded to nearest even, saturating (the
  infinities too), 0 for a NaN;
- ``FROM_INT32``: :func:`sim.fp.from_int32` of ``a`` as a signed int32, rounded to
  nearest even.

Another ``op`` gives 0.  Each conversion is one shift of the significand (or of
the integer's magnitude), by an amount that the exponent (or a leading-zero
count) gives, then rounding by one increment (:func:`.float_parts.increment`).
"""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..float_format import BF16, CANONICAL_NAN, FP16

from .float_parts import increment, leading_zeros, round_pack, round_up, unpack

__all__ = ["FloatConverter", "ConvertOp"]


class ConvertOp(enum.IntEnum):
    PASS = 0
    TO_FP16 = 1
    TO_BF16 = 2
    TO_INT32 = 3
    FROM_INT32 = 4


class FloatConverter(wiring.Component):
    """See the module docstring."""

    def __init__(self):
        super().__init__({"op": In(3), "a": In(32), "result": Out(32)})

    def elaborate(self, platform):
        m = Module()
        x = unpack(m, self.a, "a")
        results = {
            ConvertOp.PASS: self.a,
            ConvertOp.TO_FP16: self._to_fp16(m, x),
            ConvertOp.TO_BF16: self._to_bf16(m, x),
            ConvertOp.TO_INT32: self._to_int32(x),
            ConvertOp.FROM_INT32: self._from_int32(m, self.a),
        }
        with m.Switch(self.op):
            for op, value in results.items():
                with m.Case(op):
                    m.d.comb += self.result.eq(value)
        return m

    @staticmethod
    def _to_fp16(m, x):
        # fp16's biased exponent is fp32's less 112; below 113 the result is subnormal and
        # the significand shifts right by up to 12 more than the 13 bits that fp16 lacks
        # (at 12 more, 25 in all, even the leading bit lies below the rounding position).
        normal = x.biased >= 113
        extra = Mux(normal, 0, Mux(x.biased <= 101, 12, 113 - x.biased))[:4]
        shifted = Cat(Const(0, 12), x.significand) >> extra    # dropped bits below bit 25
        exponent = Mux(normal, x.biased - 112, 0)[:5]
        packed = round_pack(m, exponent, shifted[25:35], shifted[24], shifted[:24].any(),
                            "fp16_unrounded")
        return Mux(x.is_nan, CANONICAL_NAN[FP16],
                   Cat(Mux(x.biased >= 143, FP16.infinity, packed[:15]), x.sign))

    @staticmethod
    def _to_bf16(m, x):
        # The same exponent as fp32: the fraction's low 16 bits round away.
        packed = round_pack(m, x.biased, x.fraction[16:], x.fraction[15], x.fraction[:15].any(),
                            "bf16_unrounded")
        return Mux(x.is_nan, CANONICAL_NAN[BF16], Cat(packed[:15], x.sign))

    @staticmethod
    def _to_int32(x):
        # From biased 126 (0.5 <= |a| < 1) to 157 (|a| < 2**31): the significand shifted
        # left by biased - 126 has its integer part above bit 24.
        scaled = x.significand << (x.biased - 126)[:5]
        magnitude = scaled[24:55]
        up = round_up(scaled[24], scaled[23], scaled[:23].any())
        # -(magnitude + up) = ~magnitude + !up: one incrementer either way.
        integer = increment(Mux(x.sign, ~Cat(magnitude, Const(0, 1)), magnitude), up ^ x.sign)
        return Mux(x.is_nan | (x.biased < 126), 0,
                   Mux(x.biased >= 158, Mux(x.sign, 1 << 31, (1 << 31) - 1), integer[:32]))

    @staticmethod
    def _from_int32(m, a):
        negative = a[31]
        # The leading zeros of the ones' complement, counted beside the negation: they are
        # the magnitude's, or one more when the magnitude is a power of two (then the
        # shift carries it to bit 32 and the fraction is 0).
        ones = Mux(negative, ~a, a)
        zeros = Signal(6)
        m.d.comb += zeros.eq(leading_zeros(ones))
        normalised = ((ones + negative)[:32] << zeros)[:33]
        power = normalised[32]
        exponent = (158 - zeros + power)[:8]     # 127 + 31 - zeros, one more for a power of two
        packed = round_pack(m, exponent, normalised[8:31], normalised[7], normalised[:7].any(),
                            "int_unrounded")
        return Mux(a == 0, 0, Cat(packed[:31], negative))
