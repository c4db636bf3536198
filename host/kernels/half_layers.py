"""The 16-bit float reference's blocks as tile code: :class:`host.half_model.HalfModel`'s
steps (:mod:`host.kernels.half`) for the stage programs of :mod:`host.kernels.stages`.

Vectors in data SRAM are fp16 or bf16 (the model's ``dtype``); the residual and the
products are fp32 accumulators.  Between tiles the residual and the running sums
travel as the fp32 words' bits (integer moves), and q, k and v as fp32 words
(:data:`rtl.isa.Dtype.FP32`), widened from and narrowed back to 16 bits exactly.

A product split over tiles keeps the reference's order: the feed-forward's slices
pass the running sums of ``w2 y`` on, each adding its columns to the sums of the
slices before it (:func:`host.kernels.half.gemv` with ``start`` False), so the bits
do not depend on how many tiles the mapper gives the block.
"""

import numpy as np

from host.half_model import DTYPES
from host.kernels import half as k
from host.kernels import vector
from host.kernels.kv_cache import KVCache
from host.kernels.program import POS, STAGE
from rtl.isa import Dtype

__all__ = ["HalfLayers"]

_DTYPES = {"fp16": Dtype.FP16, "bf16": Dtype.BF16}


class HalfLayers:
    """What the stages need of a numeric format, for the 16-bit float model."""
    wire = Dtype.FP32

    def __init__(self, model):
        self.model, self.config = model, model.config
        self.dtype = _DTYPES[model.dtype]
        #: The group-int8 weights (:class:`host.int8_model.Int8Model`), or None: fp16 or bf16.
        self.quantised = getattr(model, "quantised", None)
        c = self.config
        self.products = c.dim + 2 * c.kv_dim + c.head_dim   # q, k, v and RoPE's scratch
        #: How many tiles a layer's attention may share (:meth:`attention`).
        self.attention_parts = [n for n in range(1, c.n_kv_heads + 1) if c.n_kv_heads % n == 0]

    def _bytes(self, array):
        """float32 ``array`` (16-bit values) as the model's 16-bit format, in order."""
        return np.ascontiguousarray(array).astype(DTYPES[self.model.dtype]).tobytes()

    def _columns(self, weight):
        return self._bytes(weight.T)

    def _product(self, t, label, layer, name, rows=slice(None), columns=slice(None)):
        """Place rows and columns of matrix ``name`` of ``layer`` (None: the classifier)
        in ``t`` as ``label``; returns ``product(x, acc, loop, start=True)``, the code
        that computes (or, with ``start`` False, adds) its product with x
        (:func:`host.kernels.half.gemv`)."""
        weight = (self.model.wcls if layer is None else self.model.layers[layer][name])
        height, width = weight[rows, columns].shape
        if self.quantised is None:
            address = t.alloc(label, content=self._columns(weight[rows, columns]), align=2)
            return lambda x, acc, loop, start=True: k.gemv(
                t, address, height, width, x, acc, self.dtype, loop, start)
        matrix = k.Int8Matrix.place(t, label, self.quantised[layer, name], rows, columns)
        return lambda x, acc, loop, start=True: k.gemv_int8(
            t, matrix, height, width, x, acc, loop, start)

    def embedding_table(self, t, rows):
        if self.quantised is None:
            return t.alloc("embedding", content=self._bytes(self.model.embedding[rows]),
                           align=2)
        return k.Int8Matrix.place(t, "embedding", self.quantised[None, "embedding"],
                                  slice(None), rows)

    def embed(self, t, table, token, h):
        if self.quantised is None:
            k.embedding(t, table, self.config.dim, token, h, self.dtype)
        else:
            k.embedding_int8(t, table, self.config.dim, token, h)

    def qkv(self, t, layer, h, acc, loop):
        c, w, m, b = self.config, self.model.layers[layer], self.model, t.b
        hd, kv, dt = c.head_dim, c.kv_dim, self.dtype
        wq, wk, wv = (self._product(t, name, layer, name) for name in ("wq", "wk", "wv"))
        gain = t.alloc("attn_norm", content=self._bytes(w["attn_norm"]), align=2)
        cos, sin = (t.alloc(name, content=table.astype(np.float16).tobytes(), align=2)
                    for name, table in (("cos", m.cos), ("sin", m.sin)))
        x = t.alloc("x", 2 * c.dim, align=2)
        out = {name: t.alloc(name, 2 * length, align=2)
               for name, length in (("q", c.dim), ("k", kv), ("v", kv))}
        q_raw, k_raw, v_raw, scratch = acc, acc + c.dim, acc + c.dim + kv, acc + c.dim + 2 * kv

        def emit():
            k.rmsnorm(t, h, c.dim, gain, x, acc, dt)
            for product, dst in ((wq, q_raw), (wk, k_raw), (wv, v_raw)):
                product(x, dst, loop)
            t.accs(1, v_raw, kv)
            t.mem(0, out["v"], kv, dtype=dt)
            b.vmov(0, 1, float_=True)
            k.rope(t, q_raw, c.n_heads, hd, cos, sin, out["q"], scratch, dt)
            k.rope(t, k_raw, c.n_kv_heads, hd, cos, sin, out["k"], scratch, dt)

        return emit, out

    def attention(self, t, layer, h, acc, loop, users, part=0, parts=1, links=None):
        """The block's attention, or with ``parts`` > 1 slice ``part`` of it: the KV heads
        ``part * n_kv_heads / parts`` onwards, with their query heads, their KV cache and
        their columns of ``wo``.  The slices pass the running sums of ``wo`` on, as the
        feed-forward's do, on ``links.reduce_colors``; the last adds the residual."""
        c, b, dt = self.config, t.b, self.dtype
        hd, seq, group = c.head_dim, c.seq_len, c.n_heads // c.n_kv_heads
        kv_heads = range(part * c.n_kv_heads // parts, (part + 1) * c.n_kv_heads // parts)
        heads = range(kv_heads.start * group, kv_heads.stop * group)
        columns = slice(heads.start * hd, heads.stop * hd)
        wo = self._product(t, "wo", layer, "wo", columns=columns)
        cache = KVCache(t, c, users, dt, kv_heads)
        width = len(heads) * hd
        q = t.alloc("q rotated", 2 * width, align=2)
        out = t.alloc("attention out", 2 * width, align=2)
        probs = t.alloc("probabilities", 2 * seq, align=2)
        scores = t.acc("scores", seq)
        q_scratch, head_out = t.acc("q", hd), t.acc("head out", hd)
        exp_scratch = t.acc("exp", 2 * k.EXP_CHUNK)
        table = k.HeadTable(t, [k.HeadAddresses(q + 2 * (head - heads.start) * hd,
                                                cache.keys_of(head // group),
                                                cache.values_of(head // group),
                                                out + 2 * (head - heads.start) * hd)
                                for head in heads])
        before = links.reduce_colors[(part - 1) % 2] if part else None

        def emit(source, before_residual):
            t.mem(0, q, width, dtype=dt)
            source(1, "q", heads.start * hd, width)
            b.vmov(0, 1, float_=True)
            cache.append(source)
            before_residual()
            b.addi(STAGE, POS, 1)                      # positions 0..pos
            table.each(t, lambda: k.attention_head(
                t, table, cache.row, STAGE, scores, q_scratch, head_out, probs,
                self.model.score_scale, hd, dt, loop, exp_scratch))
            if before is not None:                     # the slices before: columns 0..
                vector.receive(t, acc, c.dim, before)
            wo(out, acc, loop, start=before is None)
            if part < parts - 1:
                vector.send(t, acc, c.dim, links.reduce_colors[part % 2])
            else:
                k.residual_add(t, h, acc, c.dim)

        return emit

    def ffn(self, t, layer, part, parts, h, links):
        c, w, dt = self.config, self.model.layers[layer], self.dtype
        units = c.hidden_dim // parts
        rows = slice(part * units, (part + 1) * units)
        w1, w3 = (self._product(t, name, layer, name, rows=rows) for name in ("w1", "w3"))
        w2 = self._product(t, "w2", layer, "w2", columns=rows)
        gain = t.alloc("ffn_norm", content=self._bytes(w["ffn_norm"]), align=2)
        x = t.alloc("x", 2 * c.dim, align=2)
        hidden = t.alloc("hidden", 2 * units, align=2)
        gate = t.acc("gate", max(units, c.dim + 1))    # also the norm's scratch
        up = t.acc("up", units)
        scratch = t.acc("silu", 3 * units)             # SiLU's, then the running sums
        total = scratch
        loop = links.loop_color
        before = links.reduce_colors[(part - 1) % 2] if part else None

        def emit(send):
            k.rmsnorm(t, h, c.dim, gain, x, gate, dt)
            w1(x, gate, loop)
            w3(x, up, loop)
            k.swiglu(t, gate, up, units, hidden, scratch, dt)
            if before is not None:                     # the slices before: columns 0..
                vector.receive(t, total, c.dim, before)
            w2(hidden, total, loop, start=before is None)
            if part < parts - 1:
                vector.send(t, total, c.dim, links.reduce_colors[part % 2])
                return
            k.residual_add(t, h, total, c.dim)
            send()

        return emit

    def classifier(self, t, chunks, h, loop):
        c, m, dt = self.config, self.model, self.dtype
        chunk = max(rows.stop - rows.start for rows in chunks)
        products = [(self._product(t, f"wcls {rows.start}", None, "wcls", rows=rows),
                     rows.stop - rows.start, rows.start) for rows in chunks]
        gain = t.alloc("final_norm", content=self._bytes(m.final_norm), align=2)
        x = t.alloc("x", 2 * c.dim, align=2)
        logits = t.acc("logits", max(chunk, c.dim + 1))   # also the norm's scratch

        def emit(best, best_index):
            k.rmsnorm(t, h, c.dim, gain, x, logits, dt)
            for product, length, first in products:
                product(x, logits, loop)
                k.argmax(t, logits, length, first, best, best_index)

        return emit
