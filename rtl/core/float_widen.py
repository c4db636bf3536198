"""Operands to fp32, exactly, combinationally: :func:`sim.fp.widen` and int8.

:func:`widen` takes the raw operand and its kind (:class:`WidenFrom`) and gives
the fp32 value a lane computes on: fp32 itself with any NaN made the canonical
one; fp16 or bf16 from the low 16 bits (:func:`sim.fp.widen`: an fp16 subnormal
becomes an fp32 normal, a bf16 subnormal stays subnormal, a NaN becomes the
canonical NaN); a signed int8 from the low 8 bits, exactly.

fp16 subnormals and int8 magnitudes are the only values that need normalising,
so they share one leading-zero count and one shift.
"""

import enum

from amaranth.hdl import Cat, Const, Mux, Signal

from ..float_format import BF16, CANONICAL_NAN, FP32

from .float_parts import is_nan, leading_zeros

__all__ = ["widen", "WidenFrom"]


class WidenFrom(enum.IntEnum):
    FP32 = 0
    FP16 = 1
    BF16 = 2
    INT8 = 3


def widen(m, bits, dtype):
    """The fp32 value of ``bits`` read as ``dtype`` (a :class:`WidenFrom`), a 32-bit
    :class:`Signal` driven from ``m.d.comb``."""
    half = bits[:16]
    fp16_sign, fp16_exponent, fp16_fraction = half[15], half[10:15], half[:10]
    integer = bits[:8].as_signed()
    is_int8 = dtype == WidenFrom.INT8

    # An fp16 subnormal, fraction * 2**-24, or an int8's magnitude, normalised: its
    # leading one to bit 15 of a 16-bit word, from bit p = 15 - zeros.
    small = Signal(16)
    m.d.comb += small.eq(Mux(is_int8, abs(integer), fp16_fraction))
    zeros = leading_zeros(small)
    normalised = Signal(16)
    m.d.comb += normalised.eq(small << zeros)
    # Biased exponents: p - 24 + 127 for the fp16 subnormal, p + 127 for the integer.
    exponent = Mux(is_int8, 142 - zeros, 118 - zeros)[:8]
    from_small = Mux(small == 0, 0, Cat(Const(0, 8), normalised[:15], exponent))

    fp16 = Signal(32)
    with m.Switch(fp16_exponent):
        with m.Case(0):
            m.d.comb += fp16.eq(Cat(from_small, fp16_sign))
        with m.Case(0b11111):
            m.d.comb += fp16.eq(Mux(fp16_fraction.any(), CANONICAL_NAN[FP32],
                                    Cat(Const(0, 31), fp16_sign) | FP32.infinity))
        with m.Default():
            m.d.comb += fp16.eq(Cat(Const(0, 13), fp16_fraction, fp16_exponent + 112, fp16_sign))

    value = Signal(32)
    with m.Switch(dtype):
        with m.Case(WidenFrom.FP32):
            m.d.comb += value.eq(Mux(is_nan(bits, FP32), CANONICAL_NAN[FP32], bits))
        with m.Case(WidenFrom.FP16):
            m.d.comb += value.eq(fp16)
        with m.Case(WidenFrom.BF16):
            m.d.comb += value.eq(Mux(is_nan(half, BF16), CANONICAL_NAN[FP32],
                                     Cat(Const(0, 16), half)))
        with m.Case(WidenFrom.INT8):
            m.d.comb += value.eq(Cat(from_small, integer[7]))
    return value
