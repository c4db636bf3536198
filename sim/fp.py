"""The floating-point arithmetic of the vector lanes, in Python integers: its specification.

Values are bit patterns (ints).  The formats are IEEE 754 binary16 (``FP16``),
bfloat16 (``BF16``) and binary32 (``FP32``) (:class:`FloatFormat`).  Every
operation works in fp32:

- a 16-bit operand widens to fp32 exactly (:func:`widen`); an fp16 subnormal
  becomes an fp32 normal, a bf16 subnormal an fp32 subnormal;
- the operation's exact result is rounded once to fp32, to nearest with ties to
  even (:func:`round_value`);
- a 16-bit destination then takes that fp32 result rounded to nearest even
  again (:func:`narrow`).  When every operand is of the destination's format
  this equals rounding the exact result once: fp32 keeps at least 2p + 2 bits
  of a p-bit format (Figueroa, 1995).  It is also what numpy's float16 and
  ml_dtypes' bfloat16 compute.

Subnormals are IEEE's: neither inputs nor results are flushed to zero.  A
result too large for its format after rounding is an infinity of its sign
(round to nearest never gives the largest finite instead).  A NaN result, from
a NaN operand or an invalid operation (inf - inf, 0 * inf), is the one
canonical quiet NaN of the format, positive (:data:`CANONICAL_NAN`): payloads
and signs of NaN operands are not kept.  An exact zero sum is +0 unless both
addends are -0.  There are no exception flags.

:func:`maximum` and :func:`minimum` are IEEE 754-2019's maximum and minimum: a
NaN if either operand is one, and -0 below +0.  The same order (:func:`key`,
NaN above +infinity) ranks the elements of a reduction.
"""

from rtl.float_format import BF16, CANONICAL_NAN, FP16, FP32, FloatFormat

__all__ = ["FloatFormat", "FP16", "BF16", "FP32", "CANONICAL_NAN", "unpack", "round_value",
           "widen", "narrow", "add", "sub", "mul", "maximum", "minimum", "to_int32",
           "from_int32", "key", "from_key", "is_nan", "is_zero"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def is_nan(fmt, bits):
    return bits & ~fmt.sign_bit > fmt.infinity


def is_zero(fmt, bits):
    return bits & ~fmt.sign_bit == 0


def unpack(fmt, bits):
    """``(kind, sign, significand, exponent)``: kind is "nan", "inf" or "finite", and a
    finite value is ``(-1)**sign * significand * 2**exponent`` (zero: significand 0)."""
    sign = bits >> (fmt.bits - 1) & 1
    biased = bits >> fmt.fraction_bits & fmt.exponent_mask
    fraction = bits & ((1 << fmt.fraction_bits) - 1)
    if biased == fmt.exponent_mask:
        return ("nan" if fraction else "inf"), sign, 0, 0
    if biased == 0:
        return "finite", sign, fraction, fmt.lowest_exponent
    return "finite", sign, fraction | 1 << fmt.fraction_bits, fmt.lowest_exponent + biased - 1


def round_value(fmt, sign, significand, exponent):
    """The bits of ``(-1)**sign * significand * 2**exponent`` rounded to nearest, ties to
    even, in ``fmt``: subnormal when small, an infinity when it overflows."""
    if significand == 0:
        return fmt.sign_bit if sign else 0
    # The exponent of the result's last bit: the leading bit's less the fraction's bits,
    # but never below the subnormals'.
    last = max(exponent + significand.bit_length() - 1 - fmt.fraction_bits,
               fmt.lowest_exponent)
    shift = last - exponent
    if shift > 0:
        kept, dropped = significand >> shift, significand & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        significand = kept + (dropped > half or dropped == half and kept & 1)
    else:
        significand <<= -shift
    if significand >> (fmt.fraction_bits + 1):      # rounding carried into a new bit
        significand >>= 1
        last += 1
    sign_bits = fmt.sign_bit if sign else 0
    if significand >> fmt.fraction_bits == 0:       # subnormal (or rounded to zero)
        return sign_bits | significand
    biased = last - fmt.lowest_exponent + 1
    if biased >= fmt.exponent_mask:
        return sign_bits | fmt.infinity
    return sign_bits | biased << fmt.fraction_bits | significand & ((1 << fmt.fraction_bits) - 1)


def _convert(source, target, bits):
    kind, sign, significand, exponent = unpack(source, bits)
    if kind == "nan":
        return CANONICAL_NAN[target]
    if kind == "inf":
        return (target.sign_bit if sign else 0) | target.infinity
    return round_value(target, sign, significand, exponent)


def widen(fmt, bits):
    """A ``fmt`` value as fp32: exact (a NaN becomes the canonical one)."""
    return _convert(fmt, FP32, bits)


def narrow(fmt, bits):
    """An fp32 value rounded to ``fmt`` (to nearest even; the canonical NaN for a NaN)."""
    return _convert(FP32, fmt, bits)


def add(a, b):
    """fp32 ``a + b``."""
    kind_a, sign_a, sig_a, exp_a = unpack(FP32, a)
    kind_b, sign_b, sig_b, exp_b = unpack(FP32, b)
    if "nan" in (kind_a, kind_b) or kind_a == kind_b == "inf" and sign_a != sign_b:
        return CANONICAL_NAN[FP32]
    if kind_a == "inf":
        return a
    if kind_b == "inf":
        return b
    low = min(exp_a, exp_b)
    total = ((-sig_a if sign_a else sig_a) << (exp_a - low)) + \
            ((-sig_b if sign_b else sig_b) << (exp_b - low))
    if total == 0:
        return FP32.sign_bit if sign_a and sign_b else 0
    return round_value(FP32, total < 0, abs(total), low)


def sub(a, b):
    """fp32 ``a - b``: ``a + (-b)``."""
    return add(a, b ^ FP32.sign_bit)


def mul(a, b):
    """fp32 ``a * b``."""
    kind_a, sign_a, sig_a, exp_a = unpack(FP32, a)
    kind_b, sign_b, sig_b, exp_b = unpack(FP32, b)
    sign = sign_a ^ sign_b
    zero_a, zero_b = kind_a == "finite" and sig_a == 0, kind_b == "finite" and sig_b == 0
    if "nan" in (kind_a, kind_b) or kind_a == "inf" and zero_b or kind_b == "inf" and zero_a:
        return CANONICAL_NAN[FP32]
    if "inf" in (kind_a, kind_b):
        return (FP32.sign_bit if sign else 0) | FP32.infinity
    return round_value(FP32, sign, sig_a * sig_b, exp_a + exp_b)


def key(bits):
    """A signed integer that orders fp32 values: -inf < ... < -0 < +0 < ... < +inf < NaN
    (every NaN has the canonical NaN's key)."""
    if is_nan(FP32, bits):
        bits = CANONICAL_NAN[FP32]
    return bits if bits < FP32.sign_bit else (bits ^ 0x7FFFFFFF) - (1 << 32)


def from_key(value):
    """The fp32 bits whose :func:`key` is ``value``."""
    return value if value >= 0 else (value + (1 << 32)) ^ 0x7FFFFFFF


def maximum(a, b):
    """IEEE 754-2019 maximum: NaN if either is NaN; -0 < +0."""
    return from_key(max(key(a), key(b)))


def minimum(a, b):
    """IEEE 754-2019 minimum: NaN if either is NaN; -0 < +0."""
    if is_nan(FP32, a) or is_nan(FP32, b):
        return CANONICAL_NAN[FP32]
    return from_key(min(key(a), key(b)))


def to_int32(bits):
    """fp32 to int32, rounded to nearest even; saturating (the infinities too); NaN is 0."""
    kind, sign, significand, exponent = unpack(FP32, bits)
    if kind == "nan":
        return 0
    if kind == "inf":
        return INT32_MIN if sign else INT32_MAX
    if exponent >= 0:
        magnitude = significand << exponent
    else:
        kept, dropped = significand >> -exponent, significand & ((1 << -exponent) - 1)
        half = 1 << (-exponent - 1)
        magnitude = kept + (dropped > half or dropped == half and kept & 1)
    value = -magnitude if sign else magnitude
    return min(max(value, INT32_MIN), INT32_MAX)


def from_int32(value):
    """int32 to fp32, rounded to nearest even."""
    return round_value(FP32, value < 0, abs(value), 0)
