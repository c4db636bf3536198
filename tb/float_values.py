"""Seeded random floating-point operands that favour the corner classes, and numpy references.

Uniform random bit patterns almost never give a subnormal, a tie or a
cancellation, so each draw picks a class first: the special values, the edges
of the exponent range, fractions with long runs of ones or zeros (which make
rounding carries and ties), and pairs built to cancel or to need a long
alignment shift.

The references are numpy's own arithmetic, independent of :mod:`sim.fp`.
"""

import numpy as np

from sim.fp import FP32

__all__ = ["value", "pair", "specials", "ieee_maximum", "ieee_minimum", "bits32", "floats32"]


def bits32(values):
    """float32 values (any array-like) as their bit patterns, in int64."""
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.int64)


def floats32(bits):
    return np.asarray(bits, dtype=np.int64).astype(np.uint32).view(np.float32)


def ieee_maximum(x, y):
    """IEEE 754-2019 maximum of float32 arrays: NaN if either is NaN, -0 < +0."""
    with np.errstate(all="ignore"):
        larger = np.where(x > y, x, np.where(y > x, y, np.where(np.signbit(x), y, x)))
    return np.where(np.isnan(x) | np.isnan(y), np.float32("nan"), larger).astype(np.float32)


def ieee_minimum(x, y):
    """IEEE 754-2019 minimum of float32 arrays."""
    with np.errstate(all="ignore"):
        smaller = np.where(x < y, x, np.where(y < x, y, np.where(np.signbit(x), x, y)))
    return np.where(np.isnan(x) | np.isnan(y), np.float32("nan"), smaller).astype(np.float32)


def specials(fmt):
    """±0, the smallest and largest subnormal, the smallest normal, 1, the largest finite,
    ±infinity, and NaNs (quiet and signalling, both signs)."""
    f = fmt.fraction_bits
    magnitudes = [0, 1, (1 << f) - 1, 1 << f, fmt.bias << f, fmt.infinity - 1, fmt.infinity,
                  fmt.infinity | 1 << (f - 1), fmt.infinity | 1, fmt.infinity | (1 << f) - 1]
    return [m | sign for m in magnitudes for sign in (0, fmt.sign_bit)]


def _fraction(rng, bits):
    choice = rng.randrange(6)
    if choice == 0:
        return 0
    if choice == 1:
        return (1 << bits) - 1
    if choice == 2:                                   # a run of ones from the top, or bottom
        run = rng.randrange(bits + 1)
        return ((1 << run) - 1) << (bits - run) if rng.random() < 0.5 else (1 << run) - 1
    if choice == 3:                                   # one bit
        return 1 << rng.randrange(bits)
    return rng.getrandbits(bits)


def value(rng, fmt):
    """One operand of ``fmt``."""
    e_bits, f = fmt.exponent_bits, fmt.fraction_bits
    top = fmt.exponent_mask
    choice = rng.random()
    if choice < 0.1:
        return rng.choice(specials(fmt))
    if choice < 0.3:
        return rng.getrandbits(fmt.bits)
    exponent = rng.choice([0, 0, 1, 2, top - 1, top - 2, fmt.bias, fmt.bias - 1, fmt.bias + 1,
                           rng.randrange(top), rng.randrange(top), rng.randrange(min(top, 30))])
    return rng.getrandbits(1) << (e_bits + f) | exponent << f | _fraction(rng, f)


def pair(rng, fmt=FP32):
    """Two operands: independent, or built to cancel, to tie, or to be far apart."""
    a = value(rng, fmt)
    choice = rng.random()
    if choice < 0.5:
        return a, value(rng, fmt)
    f = fmt.fraction_bits
    exponent = a >> f & fmt.exponent_mask
    if choice < 0.7:                                  # b close to -a: cancellation
        return a, (a ^ fmt.sign_bit) + rng.randint(-3, 3) & (1 << fmt.bits) - 1
    if choice < 0.85:                                 # b a power of two below a: ties
        shift = rng.randint(f, f + 3)
        low = max(exponent - shift, 0)
        return a, rng.getrandbits(1) << (fmt.bits - 1) | low << f | _fraction(rng, f) & 1
    shift = rng.randint(f + 2, 2 * fmt.bias)          # a long alignment shift
    low = max(exponent - shift, 0)
    return a, rng.getrandbits(1) << (fmt.bits - 1) | low << f | _fraction(rng, f)
