"""Attention whose KV cache is spread over tiles, as the projection lays it out at scale:
tile code for the combine step between tiles, and the reference of its numerics.

A KV head's cache takes a grid of ``P x D`` tiles: positions split ``P`` ways, head
dimensions ``D`` ways (WaferLLM's split).  For each of its query heads in turn, tile
``(p, d)`` runs the single-tile head's steps (:func:`host.kernels.half.attention_head`)
on its share:

1. its partial scores ``z_t = sum_j K[j][t] q_j`` over its dimensions; with ``D > 1``
   they meet along the ``D`` tiles of its positions in a chain
   (:func:`host.kernels.vector.reduce_chain`), whose last tile multicasts the whole
   scores back, so that every tile of the positions has them;
2. its softmax with its own maximum: ``m = max(z * scale)``, ``e = exp(z * scale - m)``,
   ``S = ordered_sum(e)``, ``p = N(e)``; and its weighted sum ``o = sum_t p_t V[t]`` over
   its dimensions;
3. the partials ``(m, S, o)`` meet along the ``P`` tiles of its dimensions in a chain
   (:func:`combine`), each link rescaling by the running maximum, as flash
   attention's online softmax does: ``m' = max(m_in, m)``, ``a = exp(m_in - m')``,
   ``b = exp(m - m')``, ``(S', o') = (S, o) b + (S_in, o_in) a``.  The last tile
   writes ``out = N(o * reciprocal(S))`` (:func:`host.kernels.half.head_normalize`).
   A tile passes a head on and starts the next, so the heads' partials follow each
   other down the chain.

Every step is fp32, rounded once as the float lanes round (:mod:`sim.iss`), with the
non-linear functions of :mod:`sim.float_math`; :func:`reference` computes the same
steps in numpy, to the bit.
"""

import numpy as np

from host.half_model import F32, gemv, narrow
from host.kernels import float_math
from host.kernels import half as k
from host.kernels import vector
from rtl.isa import Dtype
from sim import float_math as spec

__all__ = ["combine", "reference"]


def _larger(t, register, other):
    """``register`` = the larger of the fp32 bits in ``register`` and ``other`` (the
    former on a tie), compared as :data:`host.kernels.half.KEY_MASK` orders them."""
    b, keep = t.b, t.fresh("combine_keep")
    b.li(3, k.KEY_MASK)
    for key, value in ((6, register), (7, other)):
        b.srai(key, value, 31)
        b.and_(key, key, 3)
        b.xor(key, key, value)
    b.bge(6, 7, keep)
    b.addi(register, other, 0)
    b.label(keep)


def combine(t, partial, dims, max_word, pair, scratch, color_in, color_out):
    """One tile's link of the chain that combines the partials: ``acc[partial]`` holds
    ``S`` and ``acc[partial+1:partial+1+dims]`` ``o``, the word at data ``max_word``
    the maximum ``m``.  From ``color_in`` (None at the chain's first tile) come the
    running ``m_in``, then ``S_in`` and ``o_in``, fp32; the running maximum goes on to
    ``color_out`` (None at the chain's end) as soon as it is known, so that the links'
    exps overlap, and the rescaled sums after it.  ``pair``: 2 accumulators;
    ``scratch``: 4."""
    b = t.b
    words = dims + 1
    b.li(2, max_word)
    b.ld(5, 2, 0)                             # r5: m
    if color_in is None:
        b.send(5, color_out)
        vector.send(t, partial, words, color_out)
        return
    b.recv(4, color_in)                       # r4: m_in
    b.addi(1, 4, 0)
    _larger(t, 1, 5)                          # r1: m' = max(m_in, m)
    if color_out is not None:
        b.send(1, color_out)
    vector.zero(t, pair, 2)
    for at, register in ((pair, 4), (pair + 1, 5)):
        t.accs(0, at, 1)
        b.vadd(0, 0, register, scalar=True)   # int32: the bits, exactly
    t.accs(0, pair, 2)
    b.vsub(0, 0, 1, scalar=True, float_=True)
    float_math.exp(t, pair, 2, scratch)       # (a, b)
    k.scalar_of(t, 4, pair + 1)
    t.accs(0, partial, words)
    b.vmul(0, 0, 4, scalar=True, float_=True)
    k.scalar_of(t, 5, pair)
    if color_out is not None:                 # set up first: the sums leave as the VMAC ends
        t.accs(2, partial, words)
        t.fout(3, words, color_out)
    t.accs(0, partial, words)
    t.fin(1, words, color_in, dtype=Dtype.FP32)
    b.vmac(0, 1, 5, scalar=True, float_=True)
    if color_out is not None:
        b.vmov(3, 2)                          # int32: the bits, exactly


def reference(q, keys, values, grid, score_scale, dtype="fp16"):
    """The head's 16-bit output as the grid computes it: ``q`` (head_dim), ``keys`` and
    ``values`` (context, head_dim), float32 holding 16-bit values, on ``grid`` = (P, D)
    tiles that split the positions and the dimensions evenly."""
    P, D = grid
    positions = np.split(np.arange(len(keys)), P)
    dimensions = np.split(np.arange(len(q)), D)
    partials = []
    for rows in positions:
        # The chain adds the tiles' partial scores in order (fp32 addition commutes).
        pieces = [gemv(keys[np.ix_(rows, dims)], q[dims]) for dims in dimensions]
        z = pieces[0]
        for piece in pieces[1:]:
            z = z + piece
        z = z * score_scale
        m = z.max()
        e = spec.exp(z - m)
        probs = narrow(e, dtype)
        partials.append((m, np.concatenate([[spec.ordered_sum(e)],
                                            gemv(values[rows].T, probs)]).astype(F32)))
    m, total = partials[0]
    for m_tile, local in partials[1:]:
        running = m if _key(m) >= _key(m_tile) else m_tile
        a, b = spec.exp(np.array([m - running, m_tile - running], F32))
        total = local * b + total * a
        m = running
    return narrow(total[1:] * spec.reciprocal(F32(total[0])), dtype)


def _key(value):
    """fp32 ``value``'s order key, as :func:`_larger` compares (-0 below +0)."""
    bits = int(np.array(value, F32).view(np.int32))
    return bits ^ ((bits >> 31) & k.KEY_MASK)
