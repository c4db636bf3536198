"""The kernels: tile code for each step of :class:`host.model.QuantModel`.

Each function emits into a :class:`host.kernels.program.TileProgram` the
instructions of one step, with the arithmetic that :mod:`host.model`'s docstring
specifies, on operands at given data addresses (int8) or accumulator bases
(int32).  Vector operations run in microthread slot 0 and finish before the
kernel returns, unless a kernel says otherwise.
"""

from host.kernels.program import ARG0, ARG1, POS, SLOT, isqrt, reciprocal
from host.model import Q
from rtl.isa import Dtype

__all__ = ["zero", "gemv", "requant", "receive", "send", "rmsnorm", "rope", "attention_head", "column_products",
           "swiglu", "residual_add", "argmax", "embedding", "reduce_chain", "accumulate"]


def zero(t, base, length):
    """acc[base:base+length] = 0."""
    t.accs(0, base, length)
    t.b.vmul(0, 0, 0, scalar=True)            # r0 is 0


def gemv(t, weight, rows, cols, x, acc, loop=None):
    """acc[0:rows] = W x: ``W`` int8 column-major (column j at ``weight + j*rows``),
    ``x`` int8 at data address ``x``; ``loop`` as for :func:`column_products`."""
    zero(t, acc, rows)
    column_products(t, weight, rows, rows, cols, x, loop)


def column_products(t, weight, stride, rows, cols, x, loop=None):
    """The accumulators of descriptor d0 += sum_j W[:, j] * x_j: column j is ``rows``
    int8 at ``weight + j * stride``, x_j the int8 at ``x + j``.  ``cols`` is an int or
    a register (``("r", n)``); so is ``rows`` without ``loop``, and ``weight``.

    Without ``loop``, a scalar loop issues one ``VMACS`` a column.  With ``loop``, a
    color that the tile's router takes from the ramp straight back to it (and columns
    that follow each other, ``stride == rows``), slot 1 sends x around it while one
    ``VMACS`` in slot 0 multiplies each column by its x_j as it returns: no
    instruction per column, and a zero x_j costs no beat."""
    b = t.b
    if loop is not None:
        assert stride == rows, "a streamed product needs the columns back to back"
        t.mem(2, x, cols)
        t.fout(3, cols, loop)
        b.vmov(3, 2, async_=True, slot=1)
        if isinstance(cols, tuple):
            b.li(1, rows)
            b.mul(1, cols[1], 1)
            t.mem(1, weight, ("r", 1))
        else:
            t.mem(1, weight, rows * cols)
        t.fin(2, cols, loop)
        b.vmacs(0, 1, 2)
        b.wait(1)
        return
    column = t.fresh("columns")
    if isinstance(weight, tuple):
        b.addi(1, weight[1], 0)
    else:
        b.li(1, weight)
    b.li(2, x)
    if isinstance(cols, tuple):
        b.addi(3, cols[1], 0)
    else:
        b.li(3, cols)
    length = rows[1] if isinstance(rows, tuple) else 5
    if not isinstance(rows, tuple):
        b.li(5, rows)
    b.label(column)
    b.ldb(4, 2, 0)
    b.dmem(1, 1, length, 1)
    b.vmacs(0, 1, 4, scalar=True, async_=True)    # overlaps the next column's set-up
    b.addi(1, 1, stride)
    b.addi(2, 2, 1)
    b.bdec(3, column)
    b.wait(0)


def requant(t, acc, length, m, shift, wide, dst):
    """``dst = vqnt(vmul(acc, m), shift, wide)``; ``dst`` is ``("mem", address)`` (int8
    values, or a register holding the address as ``("mem", ("r", n))``) or
    ``("acc", base)``."""
    t.accs(0, acc, length)
    t.b.li(1, m)
    t.b.vmul(0, 0, 1, scalar=True)
    _dst(t, 1, dst, length)
    t.b.vqnt(1, 0, shift=shift, wide=wide)


def _dst(t, d, dst, length, stride=1):
    kind, where = dst
    if kind == "mem":
        t.mem(d, where, length, stride)
    else:
        t.accs(d, where, length)


def receive(t, acc, length, color):
    """acc[0:length] = the next ``length`` wavelets of ``color``."""
    t.accs(0, acc, length)
    t.fin(1, length, color)
    t.b.vmov(0, 1)


def send(t, acc, length, color):
    """Send acc[0:length] on ``color``."""
    t.accs(0, acc, length)
    t.fout(1, length, color)
    t.b.vmov(1, 0)


def send_behind(t, sources, out, color, dtype=Dtype.INT):
    """Send ``sources`` on ``color`` in order, without waiting for the fabric: each
    ``(kind, address, length)`` (kind ``"mem"``, of ``dtype`` elements, or ``"acc"``)
    is copied into the accumulators from ``out`` on (16-bit floats widened to fp32),
    and slot 1 sends them from there, a word each, while the program goes on.  It
    first waits for slot 1, so the previous send has left ``out`` (every streamed GEMV
    also waits for slot 1 before using it)."""
    b = t.b
    b.wait(1)
    at = out
    for kind, address, length in sources:
        t.accs(0, at, length)
        if kind == "mem":
            t.mem(1, address, length, dtype=dtype)
        else:
            t.accs(1, address, length)
        b.vmov(0, 1, float_=kind == "mem" and dtype != Dtype.INT)
        at += length
    t.accs(0, out, at - out)
    t.fout(1, at - out, color)
    b.vmov(1, 0, async_=True, slot=1)


def rmsnorm(t, h, dim, gain, gain_shift, out, scratch):
    """int8 Q5 at data ``out`` = RMSNorm of the residual acc[h:h+dim] (Q7) with int8
    gains at ``gain`` (Q``gain_shift``); ``scratch``: ``dim`` accumulators."""
    b = t.b
    t.accs(0, h, dim)
    t.accs(1, scratch, dim)
    b.vmul(1, 0, 0)
    b.vsum(ARG0, 1)
    b.srai(ARG0, ARG0, dim.bit_length() - 1)
    t.call(isqrt)
    skip = t.fresh("norm_nonzero")
    b.bne(ARG0, 0, skip)
    b.addi(ARG0, 0, 1)
    b.label(skip)
    b.addi(ARG1, ARG0, 0)
    b.li(3, Q.NORM_RECIP)
    t.call(reciprocal)
    t.accs(0, h, dim)
    t.accs(1, scratch, dim)
    b.vmul(1, 0, ARG0, scalar=True)
    b.vqnt(1, 1, shift=Q.NORM_T, wide=True)
    t.mem(2, gain, dim)
    b.vmul(1, 1, 2)
    t.mem(0, out, dim)
    b.vqnt(0, 1, shift=gain_shift + Q.RESIDUAL - Q.ACT)


def rope(t, src, heads, head_dim, cos, sin, dst, stride, pos_step, scratch):
    """Rotate the int8 Q5 vector at ``src`` (per head: the ``head_dim // 2`` first and then
    the second members of the pairs) by the int8 Q7 tables at ``cos`` and ``sin`` (a row
    of ``head_dim // 2`` per position; row r15).  The result goes to
    ``dst + r15 * pos_step``, ``stride`` bytes between elements, in the same order.
    ``scratch``: ``head_dim`` accumulators."""
    b, half = t.b, head_dim // 2
    b.li(6, half)
    b.mul(6, POS, 6)                          # the position's row of the tables
    b.li(1, sin)
    b.add(7, 6, 1)
    b.li(1, cos)
    b.add(6, 6, 1)
    t.mem(4, ("r", 6), half)
    t.mem(5, ("r", 7), half)
    t.accs(6, scratch, half)
    t.accs(7, scratch + half, half)
    b.li(3, pos_step)
    b.mul(3, POS, 3)
    b.li(1, dst)
    b.add(3, 3, 1)                            # r3: where element 0 goes
    for head in range(heads):
        t.mem(0, src + head * head_dim, half)
        t.mem(1, src + head * head_dim + half, half)
        for which, (pa, pb, combine) in enumerate(((4, 5, b.vsub), (5, 4, b.vadd))):
            b.vmul(6, 0, pa)                  # a cos  |  a sin
            b.vmul(7, 1, pb)                  # b sin  |  b cos
            combine(6, 6, 7)
            b.li(1, (head * head_dim + which * half) * stride)
            b.add(2, 3, 1)
            t.mem(2, ("r", 2), half, stride)
            b.vqnt(2, 6, shift=Q.ROPE)


def attention_head(t, q, keys, key_rows, values, length, heads_out, scratch, out_scratch,
                   probs, exp_table, score_scale, head_dim, loop=None):
    """One head over positions 0..r15 of the current user (``length``: a register holding
    r15 + 1), whose first slot is r14 - r15.

    ``q``: int8 Q5 (``head_dim``); ``keys``: the transposed key cache, row ``j`` (one
    dimension, every slot) at ``keys + j * key_rows``; ``values``: the value cache,
    slot ``s``'s ``head_dim`` values at ``values + s * head_dim``; ``heads_out``:
    where the int8 Q5 result goes; ``scratch``: ``seq_len`` accumulators for the scores;
    ``out_scratch``: ``head_dim``; ``probs``: ``seq_len`` bytes; ``loop``: as for
    :func:`column_products` (the probabilities stream around it)."""
    b = t.b
    b.sub(6, SLOT, POS)                       # the user's first slot
    b.li(7, keys)
    b.add(7, 7, 6)
    zero(t, scratch, ("r", length))
    # scores: z += K[j] * q_j for each dimension j
    column_products(t, ("r", 7), key_rows, ("r", length), head_dim, q)
    # p = vqnt(exp table at vqnt((z - max z) * m, s, wide) + offset, 7)
    b.vrmax(1, 0)
    b.vsub(0, 0, 1, scalar=True)
    b.li(1, score_scale[0])
    b.vmul(0, 0, 1, scalar=True)
    b.vqnt(0, 0, shift=score_scale[1], wide=True)
    b.li(1, Q.EXP_OFFSET)
    b.vadd(0, 0, 1, scalar=True)
    t.mem(2, exp_table, Q.TABLE)
    b.vtbl(0, 0, 2, shift=Q.EXP_SHIFT)
    t.mem(3, probs, ("r", length))
    b.vqnt(3, 0, shift=Q.EXP_OUT - Q.PROB)
    b.vsum(ARG1, 3)
    # o = sum_t p_t V[t]; out = vqnt(o * (2**23 // sum p), 23)
    b.sub(6, SLOT, POS)
    b.li(7, head_dim)
    b.mul(6, 6, 7)
    b.li(7, values)
    b.add(7, 7, 6)
    zero(t, out_scratch, head_dim)
    column_products(t, ("r", 7), head_dim, head_dim, ("r", length), probs, loop)
    b.li(3, Q.ATTN_RECIP)
    t.call(reciprocal)
    t.accs(0, out_scratch, head_dim)
    b.vmul(0, 0, ARG0, scalar=True)
    t.mem(1, heads_out, head_dim)
    b.vqnt(1, 0, shift=Q.ATTN_RECIP)


def swiglu(t, a, u, length, silu_table, out):
    """int8 Q4 at ``out`` = vqnt(silu(a) * u, 9) for acc[a], acc[u] (int16 Q5)."""
    b = t.b
    t.accs(0, a, length)
    t.accs(1, u, length)
    b.li(1, Q.SILU_OFFSET)
    b.vadd(0, 0, 1, scalar=True)
    t.mem(2, silu_table, Q.TABLE)
    b.vtbl(0, 0, 2, shift=Q.SILU_SHIFT)
    b.vmul(0, 0, 1)
    t.mem(3, out, length)
    b.vqnt(3, 0, shift=Q.SILU_OUT + Q.ACT - Q.HIDDEN)


def residual_add(t, h, delta, length):
    """acc[h] = clamp(acc[h] + acc[delta]) to int12."""
    b = t.b
    t.accs(0, h, length)
    t.accs(1, delta, length)
    b.vadd(0, 0, 1)
    _clamp_residual(t)


def _clamp_residual(t):
    """Clamp the accumulators of descriptor d0 to the residual's int12."""
    b = t.b
    b.li(1, Q.RESIDUAL_MAX)
    b.vmin(0, 0, 1, scalar=True)
    b.li(1, -Q.RESIDUAL_MAX - 1)
    b.vmax(0, 0, 1, scalar=True)


def argmax(t, logits, length, offset, best, best_index):
    """Fold acc[logits:logits+length] (entries ``offset``.. of the whole vector) into the
    running maximum: registers ``best`` (value) and ``best_index``; the first maximum wins."""
    b, keep = t.b, t.fresh("argmax_keep")
    t.accs(0, logits, length)
    b.vrmax(1, 0)
    b.bge(best, 1, keep)                      # not strictly greater: keep the earlier one
    b.addi(best, 1, 0)
    b.vargmax(best_index, 0)
    if offset:
        b.addi(best_index, best_index, offset)
    b.label(keep)


def embedding(t, table, dim, token, m, shift, h):
    """acc[h:h+dim] = clamp(vqnt(E[token] * m, shift, wide)), ``E`` int8 row-major at
    ``table``, the token in register ``token``."""
    b = t.b
    b.li(1, dim)
    b.mul(1, token, 1)
    b.li(2, table)
    b.add(1, 1, 2)
    t.mem(1, ("r", 1), dim)
    t.accs(0, h, dim)
    b.vmov(0, 1)
    b.li(1, m)
    b.vmul(0, 0, 1, scalar=True)
    b.vqnt(0, 0, shift=shift, wide=True)
    _clamp_residual(t)


def accumulate(t, acc, length, color, float_=False):
    """acc[0:length] += the next ``length`` wavelets of ``color`` (the end of a chain);
    ``float_``: fp32 sums, else int32."""
    t.accs(0, acc, length)
    t.fin(1, length, color, dtype=Dtype.FP32 if float_ else Dtype.INT)
    t.b.vadd(0, 0, 1, float_=float_)


def reduce_chain(t, acc, length, color_in, color_out, float_=False):
    """One link of a chain reduction: send acc[0:length] plus the partial sums arriving on
    ``color_in`` (None at the chain's first tile) on ``color_out``, element by element as
    they arrive, so the chain is pipelined; ``float_``: fp32 sums, else int32."""
    dtype = Dtype.FP32 if float_ else Dtype.INT
    t.accs(0, acc, length)
    t.fout(1, length, color_out, dtype=dtype)
    if color_in is None:
        t.b.vmov(1, 0, float_=float_)
    else:
        t.fin(2, length, color_in, dtype=dtype)
        t.b.vadd(1, 0, 2, float_=float_)
