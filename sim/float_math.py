"""The non-linear functions, defined to the bit: fp32 instruction sequences, written in numpy.

The core has no exp, divide or square root.  Each function here is a fixed
sequence of the float lanes' fp32 operations and the integer lanes' int32
operations on accumulators, and :mod:`host.kernels.float_math` emits the same
sequence as tile code.  This module is its specification in numpy float32,
which rounds every operation to nearest even as the lanes do (:mod:`sim.iss`),
so a kernel's result is checked to the bit, not to a tolerance.

Every numbered step of a docstring below is one vector operation.  ``bits``
reads an fp32 word as an int32 (the accumulators hold either; the operation
that uses a word decides), int32 arithmetic wraps, ``ftoi`` and ``itof`` are
``VFTOI`` (to nearest even, saturating, NaN to 0) and ``VITOF``.  The methods
are the classic ones: an integer seed on the float's bits (the exponent field
halved or negated), Newton steps, and for ``exp`` a Cody-Waite range reduction
with Cephes' polynomial.  The accuracy each reaches is measured by
``tests/test_float_math.py`` against float64, over its domain; outside the
domain the result is still defined (by the same steps) but not accurate.
"""

import numpy as np

__all__ = ["exp", "reciprocal", "rsqrt", "silu", "rms_scale", "ordered_sum",
           "RECIPROCAL_STEPS", "RSQRT_STEPS"]

F32, I32 = np.float32, np.int32

RECIPROCAL_SEED = 0x7EF311C3     # bits(1/x) ~ SEED - bits(x): within 5.1 % over fp32's normals
RECIPROCAL_STEPS = 3             # Newton steps: the error squares each time
RSQRT_SEED = F32(0x5F3759DF)     # bits(1/sqrt(x)) ~ SEED - bits(x) / 2: within 3.5 %
RSQRT_STEPS = 3
EXP_LOW, EXP_HIGH = F32(-86.0), F32(88.0)   # exp's clamp: 2**n * p stays a normal fp32
SILU_HIGH = F32(80.0)            # silu's exp(-x) stays below 2**126, reciprocal's domain
LOG2E = F32(1.44269504088896341)
LN2_HIGH = F32(0.693359375)      # ln 2 in 9 bits, so n * LN2_HIGH is exact for |n| < 2**15
LN2_LOW = F32(-2.12194440e-4)    # ln 2 - LN2_HIGH
EXP_POLYNOMIAL = [F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                   4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)]
EXPONENT_ONE = 1 << 23           # adds 1 to an fp32's exponent field


def _f32(x):
    return np.asarray(x, dtype=F32)


def _bits(x):
    return _f32(x).view(I32)


def _float(bits):
    return np.asarray(bits, dtype=I32).view(F32)


def _ftoi(x):
    wide = np.rint(_f32(x).astype(np.float64))
    wide = np.where(np.isnan(wide), 0, np.clip(wide, -2.0 ** 31, 2.0 ** 31 - 1))
    return wide.astype(I32)


def _wrap(value):
    return np.asarray(value, dtype=np.int64).astype(np.uint32).view(I32)


def reciprocal(x):
    """1 / x, for finite normal ``|x| < 2**126``:

    1. ``y = bits(x) * -1`` (int32);  2. ``y = y + RECIPROCAL_SEED`` (int32);
    3. ``m = x * -1``;  then ``RECIPROCAL_STEPS`` times: ``e = m * y``;
    ``e = e + 2``; ``y = y * e``  (``y * (2 - x y)``).  A negative x works too: the
    wrapped subtraction flips the seed's sign bit with x's."""
    with np.errstate(all="ignore"):
        y = _float(_wrap(_bits(x).astype(np.int64) * -1 + RECIPROCAL_SEED))
        m = _f32(x) * F32(-1)
        for _ in range(RECIPROCAL_STEPS):
            y = y * ((m * y) + F32(2))
    return y


def rsqrt(x):
    """1 / sqrt(x), for normal ``x > 0``:

    1. ``s = itof(bits(x))``;  2. ``s = s * -0.5``;  3. ``s = s + RSQRT_SEED``;
    4. ``y = bits(ftoi(s))`` (the seed, the integer halving done in fp32);
    5. ``h = x * -0.5``;  then ``RSQRT_STEPS`` times: ``e = y * y``; ``e = e * h``;
    ``e = e + 1.5``; ``y = y * e``  (``y * (1.5 - x/2 y y)``)."""
    with np.errstate(all="ignore"):
        s = (_bits(x).astype(F32) * F32(-0.5)) + RSQRT_SEED
        y = _float(_ftoi(s))
        h = _f32(x) * F32(-0.5)
        for _ in range(RSQRT_STEPS):
            y = y * (((y * y) * h) + F32(1.5))
    return y


def exp(x):
    """e**x: exact to the clamp, ``e**-86`` below and ``e**88`` above:

    1. ``x = max(x, EXP_LOW)``;  2. ``x = min(x, EXP_HIGH)``;  3. ``n = x * LOG2E``;
    4. ``n = ftoi(n)``;  5. ``t = itof(n)``;  6. ``t = t * LN2_HIGH``;  7. ``r = x - t``;
    8. ``t = itof(n)``;  9. ``t = t * LN2_LOW``;  10. ``r = r - t`` (so ``|r| <~ ln2/2``);
    11. ``p = r * P0``, then for each of P1 .. P5 ``p = p + Pk``; ``p = p * r`` (the last
    without the multiplication);  ``p = p * r``; ``p = p * r``; ``p = p + r``;
    ``p = p + 1`` (Cephes' ``1 + r + r**2 P(r)``);  then ``n = n * EXPONENT_ONE`` and
    ``bits(result) = bits(p) + n`` (int32): p times 2**n, by its exponent field."""
    with np.errstate(all="ignore"):
        x = np.minimum(np.maximum(_f32(x), EXP_LOW), EXP_HIGH)
        n = _ftoi(x * LOG2E)
        r = x - n.astype(F32) * LN2_HIGH
        r = r - n.astype(F32) * LN2_LOW
        p = r * EXP_POLYNOMIAL[0]
        for k, coefficient in enumerate(EXP_POLYNOMIAL[1:]):
            p = p + coefficient
            if k < len(EXP_POLYNOMIAL) - 2:
                p = p * r
        p = ((p * r) * r + r) + F32(1)
        return _float(_wrap(_bits(p).astype(np.int64) + n.astype(np.int64) * EXPONENT_ONE))


def silu(x):
    """x / (1 + e**-x):  1. ``s = x * -1``;  2. ``s = min(s, SILU_HIGH)``;  ``s = exp(s)``;
    ``s = s + 1``;  ``s = reciprocal(s)``;  ``x = x * s``."""
    with np.errstate(all="ignore"):
        s = np.minimum(_f32(x) * F32(-1), SILU_HIGH)
        return _f32(x) * reciprocal(exp(s) + F32(1))


def ordered_sum(x):
    """``VSUM``'s fp32 sum: from -0, one element after another, each addition rounded."""
    total = F32(-0.0)
    with np.errstate(all="ignore"):
        for value in _f32(x).ravel():
            total = F32(total + value)
    return total


def rms_scale(x, eps):
    """An RMSNorm's scale, ``1 / sqrt(mean(x**2) + eps)``, as one fp32:
    ``q = x * x``; ``s = ordered_sum(q)`` (a register); ``s = s * fp32(1/len(x))``;
    ``s = s + eps``; ``s = rsqrt(s)`` (the last three on one accumulator)."""
    with np.errstate(all="ignore"):
        total = ordered_sum(_f32(x) * _f32(x))
        return rsqrt(_f32([total * F32(1 / len(x)) + F32(eps)]))[0]
