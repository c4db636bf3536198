"""Pieces shared by the floating-point units of the vector lanes (:mod:`.float_mul`,
:mod:`.float_add`, :mod:`.float_convert`, :mod:`.float_widen`), whose arithmetic
:mod:`sim.fp` specifies: the fields of an fp32 operand, a leading-zero count,
rounding to nearest even and packing.

Every unit packs a rounded result the same way (:func:`round_pack`): the exponent
field of the unrounded result (0 for a subnormal), then its fraction, plus the
rounding increment.  The increment's carry out of the fraction steps the
exponent, so a subnormal that rounds up to the smallest normal, a significand
that rounds up to the next binade and the largest finite value that rounds up to
infinity need no case of their own.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from ..float_format import FP32

__all__ = ["Fp32", "is_nan", "unpack", "leading_zeros", "round_up", "increment", "round_pack"]

@dataclass(frozen=True)
class Fp32:
    """The fields of an fp32 bit pattern, as :func:`sim.fp.unpack` reads them.
    ``biased`` is the exponent field and ``magnitude`` the bits but the sign (which
    order finite values by magnitude); ``significand`` is the fraction with its leading
    bit (clear for a subnormal, 24 bits) and ``exponent`` the biased exponent but 1 for
    a subnormal, so that a finite value is ``significand * 2**(exponent - 150)``."""
    sign: Value
    biased: Value
    fraction: Value
    magnitude: Value
    significand: Value
    exponent: Value
    is_zero: Value
    is_inf: Value
    is_nan: Value


def is_nan(bits, fmt):
    """Whether ``bits`` (its sign, if any, above the exponent) is a NaN of
    :class:`rtl.float_format.FloatFormat` ``fmt``: the exponent field all ones, the
    fraction not zero."""
    bits, f = Value.cast(bits), fmt.fraction_bits
    return bits[f:f + fmt.exponent_bits].all() & bits[:f].any()


def unpack(m, bits, name):
    """The :class:`Fp32` fields of the 32-bit value ``bits``; the significand and the
    exponent, which feed shifters and adders, are signals ``name_significand`` and
    ``name_exponent``."""
    bits = Value.cast(bits)
    biased, fraction = bits[23:31], bits[:23]
    normal = biased.any()
    significand = Signal(24, name=f"{name}_significand")
    exponent = Signal(8, name=f"{name}_exponent")
    m.d.comb += [
        significand.eq(Cat(fraction, normal)),
        # A subnormal's last bit weighs as much as the smallest normal's: biased 0 reads as 1.
        exponent.eq(Cat(biased[0] | ~normal, biased[1:])),
    ]
    return Fp32(sign=bits[31], biased=biased, fraction=fraction, magnitude=bits[:31],
                significand=significand, exponent=exponent, is_zero=~bits[:31].any(),
                is_inf=biased.all() & ~fraction.any(), is_nan=is_nan(bits, FP32))


def leading_zeros(value):
    """The number of leading zeros of ``value`` padded at the bottom with zeros to a
    power-of-two width ``2**k`` (so ``2**k`` when ``value`` is 0), in ``k + 1`` bits.

    A tree: each level joins two halves' counts with one multiplexer, ``k`` levels
    in all, where a priority chain would be as deep as ``value`` is wide.  A node
    tests its halves for zero on their bits, not on their counts, so that it uses
    each count once: the expression does not repeat its subtrees.
    """
    value = Value.cast(value)
    padding = (1 << (len(value) - 1).bit_length()) - len(value)

    def is_zero(low, high):       # bits low..high of the padded value
        low, high = max(low - padding, 0), high - padding
        return ~value[low:high].any() if high > low else Const(1)

    def count(low, high):
        if high - low == 1:
            return is_zero(low, high)
        middle = (low + high) // 2
        high_zero, low_zero = is_zero(middle, high), is_zero(low, middle)
        # All of the high half zero: half plus the low half's count (which is at most half).
        return Cat(Mux(high_zero, count(low, middle)[:-1], count(middle, high)[:-1])
                   if high - low > 2 else Cat(),
                   high_zero & ~low_zero, high_zero & low_zero)

    return count(0, len(value) + padding)


def round_up(last, round_bit, sticky):
    """Whether a significand whose last kept bit is ``last`` rounds up to nearest, ties
    to even: the dropped bits (``round_bit``, the first, and ``sticky``, whether any
    other is set) are over half an ulp, or exactly half and ``last`` is odd."""
    return round_bit & (sticky | last)


def increment(value, carry):
    """``value + carry`` for a 1-bit ``carry``, one bit wider than ``value``: bit i
    toggles when every bit below it is set.  Those ANDs of ``value``'s bits do not wait
    for ``carry``, which arrives last (a rounding decision) and only selects: it is one
    multiplexer from the sum, where an adder's carry chain would start from it."""
    value = Value.cast(value)
    toggled = Cat(*(value[:bit].all() for bit in range(len(value) + 1)))
    return Mux(carry, Cat(value, Const(0, 1)) ^ toggled, value)


def round_pack(m, field, fraction, round_bit, sticky, name):
    """The exponent ``field`` and ``fraction`` of an unrounded result, held in a signal
    ``name``, rounded up by :func:`round_up` (see the module docstring):
    ``len(fraction) + len(field) + 1`` bits."""
    fraction = Value.cast(fraction)
    unrounded = Signal(len(fraction) + len(Value.cast(field)), name=name)
    m.d.comb += unrounded.eq(Cat(fraction, field))
    return increment(unrounded, round_up(fraction[0], round_bit, sticky))
