"""The float kernels: tile code for each step of :class:`host.half_model.HalfModel`.

The counterparts of :mod:`host.kernels.vector` on the float lanes.  Vectors in
data SRAM hold 16-bit floats of the model's ``dtype`` (:data:`rtl.isa.Dtype.FP16`
or ``BF16``, 2 bytes an element); accumulators hold fp32.  Each kernel emits
the operations that :mod:`host.half_model`'s docstring specifies, in its order, so
that its results equal the reference's to the bit.  Between tiles, fp32 vectors
travel as 32-bit words and are moved with integer ``VMOV``, which keeps every bit.
"""

import numpy as np

from host.half_model import NORM_EPS
from host.kernels import float_math
from host.kernels.program import ARG0, ARG1, POS, SLOT, FitError
from host.kernels.vector import zero
from rtl.isa import Dtype

__all__ = ["gemv", "gemv_int8", "Int8Matrix", "column_products", "widen", "rmsnorm", "rope",
           "HeadAddresses", "HeadTable", "attention_head", "head_scores", "head_softmax",
           "head_weighted_sum", "head_normalize", "register_into_acc", "swiglu",
           "residual_add", "argmax", "embedding", "embedding_int8", "scalar_of"]

#: ``sign_extend(bits >> 31) & KEY_MASK`` flips a negative fp32's other bits, so that
#: signed integer order is float order (NaNs aside): -0 below +0, -inf lowest.
KEY_MASK = 0x7FFFFFFF
INT32_MIN = -(1 << 31)
#: Scores an attention head exponentiates at once (:func:`_exp_in_chunks`).
EXP_CHUNK = 32
#: fp16 elements of the buffer that :func:`gemv_int8` dequantises blocks of columns into.
DEQUANTISED = 1024


def _fp32(value):
    return int(np.float32(value).view(np.int32))


def widen(t, src, length, dst, dtype):
    """acc[dst:dst+length] = the 16-bit floats at data ``src``, in fp32 (exact)."""
    t.mem(1, src, length, dtype=dtype)
    t.accs(0, dst, length)
    t.b.vmov(0, 1, float_=True)


def gemv(t, weight, rows, cols, x, acc, dtype, loop, start=True):
    """acc[0:rows] = W x (or, with ``start`` False, acc += W x, continuing a product whose
    earlier columns another tile added): ``W`` column-major 16-bit floats (column j at
    ``weight + 2 j rows``), ``x`` 16-bit floats at data ``x``; streamed around ``loop``."""
    if start:
        zero(t, acc, rows)
    column_products(t, weight, rows, cols, x, dtype, loop)


def column_products(t, weight, rows, cols, x, dtype, loop):
    """The fp32 accumulators of descriptor d0 += sum_j W[:, j] x_j, j in order: slot 1
    sends x around ``loop`` (a color the router takes from the ramp back to it) while one
    ``VMACS`` multiplies each column by its x_j as it returns; a ±0 x_j costs no beat.
    ``weight`` and ``cols`` are ints or registers (``("r", n)``)."""
    b = t.b
    t.mem(2, x, cols, dtype=dtype)
    t.fout(3, cols, loop, dtype=dtype)
    b.vmov(3, 2, float_=True, async_=True, slot=1)
    if isinstance(cols, tuple):
        b.li(1, rows)
        b.mul(1, cols[1], 1)
        t.mem(1, weight, ("r", 1), dtype=dtype)
    else:
        t.mem(1, weight, rows * cols, dtype=dtype)
    t.fin(2, cols, loop, dtype=dtype)
    b.vmacs(0, 1, 2, float_=True)
    b.wait(1)


def gemv_int8(t, weight, rows, cols, x, acc, loop, start=True):
    """:func:`gemv` for a group-int8 matrix (:mod:`host.int8_model`), ``weight`` a
    :class:`Int8Matrix`: blocks of columns are dequantised into a buffer of fp16
    (:data:`DEQUANTISED` elements, one a tile) and multiplied as :func:`gemv` does, so
    the sums are :func:`gemv`'s on the dequantised matrix."""
    b = t.b
    if rows > DEQUANTISED:
        raise FitError(f"{t.name}: a group-int8 product of {rows} rows: its columns "
                       f"dequantise into a buffer of {DEQUANTISED}")
    if start:
        zero(t, acc, rows)
    buffer = t.symbols["dequantised"][0] if "dequantised" in t.symbols else \
        t.alloc("dequantised", 2 * DEQUANTISED, align=2)
    block = min(cols, DEQUANTISED // rows)
    b.li(2, weight.address)                   # r2: the next column's int8
    b.li(3, weight.scales)                    # r3: its scales
    b.li(4, x)                                # r4: its x
    blocks, rest = divmod(cols, block)
    if blocks > 1:
        top = t.fresh("block")
        b.li(5, blocks)
        b.label(top)
        _block_products(t, weight, buffer, rows, block, acc, loop)
        b.bdec(5, top)
    elif blocks:
        _block_products(t, weight, buffer, rows, block, acc, loop)
    if rest:
        _block_products(t, weight, buffer, rows, rest, acc, loop)


def _block_products(t, weight, buffer, rows, columns, acc, loop):
    """Dequantise the next ``columns`` columns (from r2 and r3) into ``buffer`` and add
    their products with x (from r4) to acc[acc:acc+rows]; r2, r3 and r4 move past them.
    The pieces' ``VDEQ``s take the two slots in turn, so that one's set-up overlaps
    the other's beats: a turn of the loop takes two columns when a column has an odd
    number of pieces."""
    b = t.b
    b.li(7, buffer)
    per_turn = 1 + len(weight.pieces) % 2
    turns, rest = divmod(columns, per_turn)
    if turns:
        top = t.fresh("dequantise")
        b.li(6, turns)
        b.li(9, weight.pieces[-1][1])         # what a turn leaves in r9
        b.label(top)
        _dequantise(t, weight, per_turn, weight.pieces[-1][1])
        b.bdec(6, top)
    if rest:
        _dequantise(t, weight, rest, weight.pieces[-1][1] if turns else None)
    t.accs(0, acc, rows)
    column_products(t, buffer, rows, columns, ("r", 4), Dtype.FP16, loop)
    b.addi(4, 4, 2 * columns)


def _dequantise(t, weight, columns, length_in_r9):
    """``VDEQ`` the next ``columns`` columns (from r2, scales from r3) to fp16 at r7, the
    slots in turn; r2, r3 and r7 move past them, and r9 holds the last piece's length
    (``length_in_r9``: what it holds before, if known)."""
    b, pieces = t.b, weight.pieces
    for turn in range(columns * len(pieces)):
        length, slot = pieces[turn % len(pieces)][1], turn % 2
        if length != length_in_r9:
            b.li(9, length)
            length_in_r9 = length
        b.ld(1, 3, 4 * turn)
        t.mem(4 + 2 * slot, ("r", 2), ("r", 9))
        t.mem(5 + 2 * slot, ("r", 7), ("r", 9), dtype=Dtype.FP16)
        b.vdeq(5 + 2 * slot, 4 + 2 * slot, 1, scalar=True, async_=True, slot=slot)
        b.addi(2, 2, length)
        b.addi(7, 7, 2 * length)
    b.addi(3, 3, 4 * columns * len(pieces))


class Int8Matrix:
    """Where a group-int8 matrix is: its int8 at ``address``, column-major; each column
    cut into ``pieces`` (``(start, length)`` in the column, in order), piece ``k`` of
    column ``j`` scaled by the fp32 word at ``scales + 4 (j len(pieces) + k)``."""

    def __init__(self, address, scales, pieces):
        self.address, self.scales, self.pieces = address, scales, pieces

    @classmethod
    def place(cls, t, label, quantised, along, across):
        """Place a part of a group-int8 weight (:class:`host.int8_model.Quantised`) in
        ``t`` as ``label``: the slices ``along`` its groups (a column's rows; for the
        embedding, a row's elements) and ``across`` them."""
        q, scale = (np.moveaxis(array, quantised.axis, 0) for array in (quantised.q,
                                                                         quantised.scale))
        span = range(*along.indices(q.shape[0]))
        pieces = quantised.pieces(span)
        scales = np.array([scale[start, across] for start, _ in pieces], np.float32)
        address = t.alloc(label, content=np.ascontiguousarray(q[along, across].T).tobytes())
        scales = t.alloc(f"{label} scales", content=scales.T.tobytes(), align=4)
        return cls(address, scales, [(start - span.start, stop - start)
                                     for start, stop in pieces])


def scalar_of(t, register, acc):
    """``register`` = the fp32 accumulator ``acc`` (a float ``VSUM`` of one: -0 + x is x)."""
    t.accs(7, acc, 1)
    t.b.vsum(register, 7, float_=True)


def register_into_acc(t, acc, register):
    """acc[acc] = the bits of ``register``, exactly (an integer add to 0)."""
    zero(t, acc, 1)
    t.accs(0, acc, 1)
    t.b.vadd(0, 0, register, scalar=True)


def rmsnorm(t, h, dim, gain, out, scratch, dtype):
    """``out`` (data, 16-bit) = N((h * s) * g) for the fp32 residual acc[h:h+dim] and the
    16-bit gains at data ``gain``, ``s`` the RMS scale; ``scratch``: ``dim + 1``
    accumulators (at least 3)."""
    b = t.b
    float_math.rms_scale(t, h, dim, NORM_EPS, scratch + dim, scratch)
    scalar_of(t, ARG0, scratch + dim)
    t.accs(0, h, dim)
    t.accs(1, scratch, dim)
    b.vmul(1, 0, ARG0, scalar=True, float_=True)
    t.mem(2, gain, dim, dtype=dtype)
    t.mem(0, out, dim, dtype=dtype)
    b.vmul(0, 1, 2, float_=True)


def rope(t, src, heads, head_dim, cos, sin, dst, scratch, dtype):
    """``dst`` (data, 16-bit) = the fp32 vector acc[src:] rotated, per head in head order
    (the pairs' first members, then the second ones), by the fp16 tables at ``cos`` and
    ``sin`` (a row of ``head_dim // 2`` per position; row r15): ``a' = N(a c - b s)``,
    ``b' = N(a s + b c)``.  ``scratch``: ``head_dim`` accumulators."""
    b, half = t.b, head_dim // 2
    b.li(6, 2 * half)
    b.mul(6, POS, 6)                          # the position's row of the tables
    b.li(1, sin)
    b.add(7, 6, 1)
    b.li(1, cos)
    b.add(6, 6, 1)
    t.mem(4, ("r", 6), half, dtype=Dtype.FP16)
    t.mem(5, ("r", 7), half, dtype=Dtype.FP16)
    t.accs(6, scratch, half)
    t.accs(7, scratch + half, half)
    for head in range(heads):
        t.accs(0, src + head * head_dim, half)
        t.accs(1, src + head * head_dim + half, half)
        for which, (pa, pb, combine) in enumerate(((4, 5, b.vsub), (5, 4, b.vadd))):
            b.vmul(6, 0, pa, float_=True)     # a cos  |  a sin
            b.vmul(7, 1, pb, float_=True)     # b sin  |  b cos
            t.mem(2, dst + 2 * (head * head_dim + which * half), half, dtype=dtype)
            combine(2, 6, 7, float_=True)


class HeadAddresses:
    """Where an attention head's operands are (:func:`attention_head`): ``q``, ``keys``,
    ``values`` and ``out``, data addresses."""

    NAMES = ("q", "keys", "values", "out")

    def __init__(self, q, keys, values, out):
        self.q, self.keys, self.values, self.out = q, keys, values, out

    def load(self, t, register, name):
        """Code that puts the address ``name`` into ``register``."""
        t.b.li(register, getattr(self, name))


class HeadTable:
    """The addresses of several heads (:class:`HeadAddresses`) in a table in data SRAM,
    four words a head, and a word that points at the current head's: one copy of the
    head's code serves them all (:meth:`each`), where unrolled heads would outgrow the
    code memory."""

    def __init__(self, t, heads):
        words = [getattr(head, name) for head in heads for name in HeadAddresses.NAMES]
        self.table = t.alloc("heads", content=np.array(words, "<i4").tobytes(), align=4)
        self.pointer = t.word("head", self.table)
        self.end = self.table + 4 * len(words)

    def load(self, t, register, name):
        t.b.li(register, self.pointer)
        t.b.ld(register, register, 0)
        t.b.ld(register, register, 4 * HeadAddresses.NAMES.index(name))

    def each(self, t, body):
        """``body()`` once, run for each head in turn."""
        b, top = t.b, t.fresh("head")
        b.label(top)
        body()
        b.li(1, self.pointer)
        b.ld(2, 1, 0)
        b.addi(2, 2, 4 * len(HeadAddresses.NAMES))
        b.st(2, 1, 0)
        b.li(3, self.end)
        b.bne(2, 3, top)
        b.li(2, self.table)
        b.st(2, 1, 0)


def attention_head(t, head, key_rows, length, scores, q_scratch, out_scratch, probs,
                   score_scale, head_dim, dtype, loop, exp_scratch):
    """One head over positions 0..r15 of the current user (``length``: a register holding
    r15 + 1), whose first slot is r14 - r15, as :meth:`host.half_model.HalfModel.attention`.

    ``head`` says where its operands are (:class:`HeadAddresses` or
    :class:`HeadTable`): ``q``, 16-bit (``head_dim``); ``keys``, the transposed key
    cache, row ``j`` (one dimension, every slot) at ``keys + 2 j key_rows``;
    ``values``, slot ``s``'s ``head_dim`` values at ``values + 2 s head_dim``; ``out``,
    where the 16-bit result goes.  Accumulators: ``scores`` (the context),
    ``q_scratch`` and ``out_scratch`` (``head_dim`` each), ``exp_scratch`` (``2 *
    EXP_CHUNK``); ``probs``: the context's 16-bit probabilities in data.  Its steps
    (:func:`head_scores`, :func:`head_softmax`, :func:`head_weighted_sum`,
    :func:`head_normalize`) also serve a head whose cache is spread over tiles
    (:mod:`host.kernels.distributed_attention`)."""
    head_scores(t, head, key_rows, length, scores, q_scratch, head_dim, dtype)
    head_softmax(t, length, scores, probs, score_scale, dtype, exp_scratch)
    head_weighted_sum(t, head, length, out_scratch, probs, head_dim, dtype, loop)
    register_into_acc(t, q_scratch, ARG1)
    head_normalize(t, head, q_scratch, out_scratch, exp_scratch, head_dim, dtype)


def head_scores(t, head, key_rows, length, scores, q_scratch, head_dim, dtype):
    """acc[scores:scores+length] = the head's raw scores ``z_t = sum_j K[j][t] q_j``, the
    dimensions in order (:func:`attention_head`'s operands)."""
    b = t.b
    head.load(t, 3, "q")
    widen(t, ("r", 3), head_dim, q_scratch, dtype)
    zero(t, scores, ("r", length))
    b.sub(6, SLOT, POS)                       # the user's first slot
    b.slli(6, 6, 1)
    head.load(t, 7, "keys")
    b.add(7, 7, 6)
    for j in range(head_dim):
        scalar_of(t, 4, q_scratch + j)
        t.accs(0, scores, ("r", length))
        t.mem(1, ("r", 7), ("r", length), dtype=dtype)
        b.vmacs(0, 1, 4, scalar=True, float_=True)
        if j < head_dim - 1:
            b.li(1, 2 * key_rows)
            b.add(7, 7, 1)


def head_softmax(t, length, scores, probs, score_scale, dtype, exp_scratch, max_word=None):
    """``e = exp(z * scale - max)`` in place of the raw scores, ARG1 = their ordered sum
    ``S``, the 16-bit ``N(e)`` at data ``probs``; with ``max_word``, the maximum's fp32
    bits stored there too."""
    b = t.b
    t.accs(0, scores, ("r", length))
    b.li(1, _fp32(score_scale))
    b.vmul(0, 0, 1, scalar=True, float_=True)
    b.vrmax(1, 0, float_=True)
    b.vsub(0, 0, 1, scalar=True, float_=True)
    if max_word is not None:
        b.li(2, max_word)
        b.st(1, 2, 0)
    _exp_in_chunks(t, scores, length, exp_scratch)
    t.accs(0, scores, ("r", length))
    b.vsum(ARG1, 0, float_=True)
    t.mem(1, probs, ("r", length), dtype=dtype)
    b.vmov(1, 0, float_=True)


def head_weighted_sum(t, head, length, out_scratch, probs, head_dim, dtype, loop):
    """acc[out_scratch:+head_dim] = ``o = sum_t p_t V[t]`` in position order, the 16-bit
    probabilities ``p`` at data ``probs`` streamed around ``loop``."""
    b = t.b
    b.sub(6, SLOT, POS)
    b.li(7, 2 * head_dim)
    b.mul(6, 6, 7)
    head.load(t, 7, "values")
    b.add(7, 7, 6)
    zero(t, out_scratch, head_dim)
    column_products(t, ("r", 7), head_dim, ("r", length), probs, dtype, loop)


def head_normalize(t, head, total, out_scratch, exp_scratch, head_dim, dtype):
    """The head's 16-bit ``out = N(o * reciprocal(S))``, ``S`` the fp32 accumulator
    ``total`` (overwritten) and ``o`` acc[out_scratch:+head_dim]."""
    b = t.b
    float_math.reciprocal(t, total, 1, exp_scratch)
    scalar_of(t, ARG1, total)
    t.accs(0, out_scratch, head_dim)
    head.load(t, 3, "out")
    t.mem(1, ("r", 3), head_dim, dtype=dtype)
    b.vmul(1, 0, ARG1, scalar=True, float_=True)


def _exp_in_chunks(t, base, length, scratch):
    """acc[base:base+length] = exp of it (``length`` a register, at least 1), in place,
    :data:`EXP_CHUNK` elements at a time: exp works element by element, so the bits are
    those of one pass, and its scratch does not grow with the context."""
    b, more, full = t.b, t.fresh("exp_chunk"), t.fresh("exp_full")
    b.li(5, base)                             # r5: where the chunk starts
    b.addi(6, length, 0)                      # r6: the elements left
    b.label(more)
    b.li(7, EXP_CHUNK)                        # r7: this chunk's length
    b.bge(6, 7, full)
    b.addi(7, 6, 0)
    b.label(full)
    float_math.exp(t, ("r", 5), ("r", 7), (scratch, scratch + EXP_CHUNK))
    b.add(5, 5, 7)
    b.sub(6, 6, 7)
    b.bne(6, 0, more)


def swiglu(t, a, u, length, out, scratch, dtype):
    """``out`` (data, 16-bit) = N(silu(a) * u) for fp32 acc[a], acc[u]; acc[a] is
    overwritten; ``scratch``: ``3 * length`` accumulators."""
    float_math.silu(t, a, length, scratch)
    t.accs(0, a, length)
    t.accs(1, u, length)
    t.mem(2, out, length, dtype=dtype)
    t.b.vmul(2, 0, 1, float_=True)


def residual_add(t, h, delta, length):
    """acc[h] = acc[h] + acc[delta], in fp32."""
    t.accs(0, h, length)
    t.accs(1, delta, length)
    t.b.vadd(0, 0, 1, float_=True)


def argmax(t, logits, length, offset, best, best_index):
    """Fold the fp32 acc[logits:logits+length] (entries ``offset``.. of the whole vector)
    into the running maximum: ``best`` holds its order key (:data:`KEY_MASK`; start it at
    :data:`INT32_MIN`), ``best_index`` its index; the first maximum wins."""
    b, keep = t.b, t.fresh("argmax_keep")
    t.accs(0, logits, length)
    b.vrmax(1, 0, float_=True)
    b.srai(2, 1, 31)
    b.li(3, KEY_MASK)
    b.and_(2, 2, 3)
    b.xor(1, 1, 2)
    b.bge(best, 1, keep)                      # not strictly greater: keep the earlier one
    b.addi(best, 1, 0)
    b.vargmax(best_index, 0, float_=True)
    if offset:
        b.addi(best_index, best_index, offset)
    b.label(keep)


def embedding_int8(t, table, dim, token, h):
    """acc[h:h+dim] = row ``token`` (a register) of the group-int8 table ``table`` (an
    :class:`Int8Matrix` whose rows are its columns: row-major, pieces along a row),
    dequantised to fp32: ``fp32(q s)``."""
    b = t.b
    b.li(1, dim)
    b.mul(1, token, 1)
    b.li(2, table.address)
    b.add(2, 2, 1)                            # r2: the row's int8
    b.li(1, 4 * len(table.pieces))
    b.mul(1, token, 1)
    b.li(3, table.scales)
    b.add(3, 3, 1)                            # r3: its scales
    for piece, (start, length) in enumerate(table.pieces):
        b.ld(1, 3, 4 * piece)
        b.addi(4, 2, start)
        t.mem(1, ("r", 4), length)
        t.accs(0, h + start, length)
        b.vdeq(0, 1, 1, scalar=True)


def embedding(t, table, dim, token, h, dtype):
    """acc[h:h+dim] = row ``token`` (a register) of the 16-bit table at ``table``, in fp32."""
    b = t.b
    b.li(1, 2 * dim)
    b.mul(1, token, 1)
    b.li(2, table)
    b.add(1, 1, 2)
    t.mem(1, ("r", 1), dim, dtype=dtype)
    t.accs(0, h, dim)
    b.vmov(0, 1, float_=True)
