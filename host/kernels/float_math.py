"""The non-linear functions as tile code: :mod:`sim.float_math`'s sequences, step by step.

Each kernel works in place on fp32 accumulators ``acc[x:x+length]``, with the
scratch accumulators it names, and emits exactly the vector operations that
:mod:`sim.float_math` specifies, in its order, so its results equal that
module's to the bit (``tests/test_float_math.py`` runs them on the ISS).  They
need a core with float lanes.  Descriptors ``d0``..``d2`` and registers ``r1``..``r3``
are the kernels' scratch, as :mod:`host.kernels.program` allows.
"""

import numpy as np

from host.kernels.vector import zero
from sim import float_math as spec

__all__ = ["reciprocal", "rsqrt", "exp", "silu", "rms_scale"]


def _scratch(scratch, length, count):
    """``count`` scratch bases: ``scratch`` itself when it is a tuple of them (for a
    length held in a register), else ``count`` consecutive runs of ``length`` from it."""
    if isinstance(scratch, tuple):
        assert len(scratch) >= count, "too few scratch bases"
        return scratch[:count]
    return tuple(scratch + n * length for n in range(count))


def _operands(t, length, *bases):
    """Descriptors d0, d1, ... = ACC(base, length) for each base; returns their numbers."""
    for d, base in enumerate(bases):
        t.accs(d, base, length)
    return range(len(bases))


def _constant(t, register, value):
    """``register`` = the fp32 bits of ``value``."""
    t.b.li(register, int(np.float32(value).view(np.uint32)))


def _newton(t, steps, body):
    """``body()`` emitted once, run ``steps`` times by a counted loop in r3."""
    again = t.fresh("newton")
    t.b.li(3, steps)
    t.b.label(again)
    body()
    t.b.bdec(3, again)


def reciprocal(t, x, length, scratch):
    """acc[x:x+length] = ``sim.float_math.reciprocal`` of it; ``scratch``: ``2 * length``."""
    b = t.b
    X, Y, E = _operands(t, length, x, scratch, scratch + length)
    b.li(1, -1)
    b.vmul(Y, X, 1, scalar=True)                       # int32: -bits(x)
    b.li(1, spec.RECIPROCAL_SEED)
    b.vadd(Y, Y, 1, scalar=True)
    _constant(t, 1, -1.0)
    b.vmul(X, X, 1, scalar=True, float_=True)          # x becomes m = -x
    _constant(t, 2, 2.0)

    def step():
        b.vmul(E, X, Y, float_=True)
        b.vadd(E, E, 2, scalar=True, float_=True)
        b.vmul(Y, Y, E, float_=True)
    _newton(t, spec.RECIPROCAL_STEPS, step)
    b.vmov(X, Y)


def rsqrt(t, x, length, scratch):
    """acc[x:x+length] = ``sim.float_math.rsqrt`` of it; ``scratch``: ``2 * length``."""
    b = t.b
    X, Y, S = _operands(t, length, x, scratch, scratch + length)
    b.vitof(S, X)                                      # the bits, as a number
    _constant(t, 1, -0.5)
    b.vmul(S, S, 1, scalar=True, float_=True)
    _constant(t, 2, spec.RSQRT_SEED)
    b.vadd(S, S, 2, scalar=True, float_=True)
    b.vftoi(Y, S)
    b.vmul(X, X, 1, scalar=True, float_=True)          # x becomes h = -x/2
    _constant(t, 2, 1.5)

    def step():
        b.vmul(S, Y, Y, float_=True)
        b.vmul(S, S, X, float_=True)
        b.vadd(S, S, 2, scalar=True, float_=True)
        b.vmul(Y, Y, S, float_=True)
    _newton(t, spec.RSQRT_STEPS, step)
    b.vmov(X, Y)


def exp(t, x, length, scratch):
    """acc[x:x+length] = ``sim.float_math.exp`` of it; ``scratch``: ``2 * length`` (or two
    bases, :func:`_scratch`)."""
    b = t.b
    X, N, T = _operands(t, length, x, *_scratch(scratch, length, 2))

    def by_constant(op, dst, src, value):
        _constant(t, 1, value)
        op(dst, src, 1, scalar=True, float_=True)
    by_constant(b.vmax, X, X, spec.EXP_LOW)
    by_constant(b.vmin, X, X, spec.EXP_HIGH)
    by_constant(b.vmul, N, X, spec.LOG2E)
    b.vftoi(N, N)
    for ln2_part in (spec.LN2_HIGH, spec.LN2_LOW):
        b.vitof(T, N)
        by_constant(b.vmul, T, T, ln2_part)
        b.vsub(X, X, T, float_=True)
    first, *rest = spec.EXP_POLYNOMIAL
    by_constant(b.vmul, T, X, first)
    for k, coefficient in enumerate(rest):
        by_constant(b.vadd, T, T, coefficient)
        if k < len(rest) - 1:
            b.vmul(T, T, X, float_=True)
    b.vmul(T, T, X, float_=True)
    b.vmul(T, T, X, float_=True)
    b.vadd(T, T, X, float_=True)
    by_constant(b.vadd, T, T, 1.0)
    b.li(1, spec.EXPONENT_ONE)
    b.vmul(N, N, 1, scalar=True)                       # int32: n in the exponent field
    b.vadd(X, T, N)                                    # int32: p times 2**n


def silu(t, x, length, scratch):
    """acc[x:x+length] = ``sim.float_math.silu`` of it; ``scratch``: ``3 * length``."""
    b = t.b
    X, S = _operands(t, length, x, scratch)
    _constant(t, 1, -1.0)
    b.vmul(S, X, 1, scalar=True, float_=True)
    _constant(t, 1, spec.SILU_HIGH)
    b.vmin(S, S, 1, scalar=True, float_=True)
    exp(t, scratch, length, scratch + length)
    (S,) = _operands(t, length, scratch)
    _constant(t, 1, 1.0)
    b.vadd(S, S, 1, scalar=True, float_=True)
    reciprocal(t, scratch, length, scratch + length)
    X, S = _operands(t, length, x, scratch)
    b.vmul(X, X, S, float_=True)


def rms_scale(t, x, length, eps, dst, scratch):
    """acc[dst] = ``sim.float_math.rms_scale`` of acc[x:x+length] (fp32); ``scratch``:
    ``max(length, 2)`` accumulators.  A ``VSUM`` of acc[dst] gives it in a register."""
    b = t.b
    X, Q = _operands(t, length, x, scratch)
    b.vmul(Q, X, X, float_=True)
    b.vsum(2, Q, float_=True)
    zero(t, dst, 1)
    (D,) = _operands(t, 1, dst)
    b.vadd(D, D, 2, scalar=True)                       # int32: the sum's bits, exactly
    _constant(t, 1, 1 / length)
    b.vmul(D, D, 1, scalar=True, float_=True)
    _constant(t, 1, eps)
    b.vadd(D, D, 1, scalar=True, float_=True)
    rsqrt(t, dst, 1, scratch)
