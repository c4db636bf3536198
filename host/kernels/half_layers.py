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
        c = self.config
        self.products = c.dim + 2 * c.kv_dim + c.head_dim   # q, k, v and RoPE's scratch
        #: How many tiles a layer's attention may share (:meth:`attention`).
        self.attention_parts = [n for n in range(1, c.n_kv_heads + 1) if c.n_kv_heads % n == 0]

    def _bytes(self, array):
        """float32 ``array`` (16-bit values) as the model's 16-bit format, in order."""
        return np.ascontiguousarray(array).astype(DTYPES[self.model.dtype]).tobytes()

    def _columns(self, weight):
        return self._bytes(weight.T)

    def embedding_table(self, t, rows):
        return t.alloc("embedding", content=self._bytes(self.model.embedding[rows]), align=2)

    def embed(self, t, table, token, h):
        k.embedding(t, table, self.config.dim, token, h, self.dtype)

    def qkv(self, t, layer, h, acc, loop):
        c, w, m, b = self.config, self.model.layers[layer], self.model, t.b
        hd, kv, dt = c.head_dim, c.kv_dim, self.dtype
        wq, wk, wv = (t.alloc(name, content=self._columns(w[name]), align=2)
                      for name in ("wq", "wk", "wv"))
        gain = t.alloc("attn_norm", content=self._bytes(w["attn_norm"]), align=2)
        cos, sin = (t.alloc(name, content=table.astype(np.float16).tobytes(), align=2)
                    for name, table in (("cos", m.cos), ("sin", m.sin)))
        x = t.alloc("x", 2 * c.dim, align=2)
        out = {name: t.alloc(name, 2 * length, align=2)
               for name, length in (("q", c.dim), ("k", kv), ("v", kv))}
        q_raw, k_raw, v_raw, scratch = acc, acc + c.dim, acc + c.dim + kv, acc + c.dim + 2 * kv

        def emit():
            k.rmsnorm(t, h, c.dim, gain, x, acc, dt)
            for weight, rows, dst in ((wq, c.dim, q_raw), (wk, kv, k_raw), (wv, kv, v_raw)):
                k.gemv(t, weight, rows, c.dim, x, dst, dt, loop)
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
        c, w, b, dt = self.config, self.model.layers[layer], t.b, self.dtype
        hd, seq, group = c.head_dim, c.seq_len, c.n_heads // c.n_kv_heads
        kv_heads = range(part * c.n_kv_heads // parts, (part + 1) * c.n_kv_heads // parts)
        heads = range(kv_heads.start * group, kv_heads.stop * group)
        columns = slice(heads.start * hd, heads.stop * hd)
        wo = t.alloc("wo", content=self._columns(w["wo"][:, columns]), align=2)
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
            k.gemv(t, wo, c.dim, width, out, acc, dt, loop, start=before is None)
            if part < parts - 1:
                vector.send(t, acc, c.dim, links.reduce_colors[part % 2])
            else:
                k.residual_add(t, h, acc, c.dim)

        return emit

    def ffn(self, t, layer, part, parts, h, links):
        c, w, dt = self.config, self.model.layers[layer], self.dtype
        units = c.hidden_dim // parts
        rows = slice(part * units, (part + 1) * units)
        w1, w3 = (t.alloc(n, content=self._columns(w[n][rows]), align=2) for n in ("w1", "w3"))
        w2 = t.alloc("w2", content=self._columns(w["w2"][:, rows]), align=2)
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
            k.gemv(t, w1, units, c.dim, x, gate, dt, loop)
            k.gemv(t, w3, units, c.dim, x, up, dt, loop)
            k.swiglu(t, gate, up, units, hidden, scratch, dt)
            if before is not None:                     # the slices before: columns 0..
                vector.receive(t, total, c.dim, before)
            k.gemv(t, w2, c.dim, units, hidden, total, dt, loop, start=before is None)
            if part < parts - 1:
                vector.send(t, total, c.dim, links.reduce_colors[part % 2])
                return
            k.residual_add(t, h, total, c.dim)
            send()

        return emit

    def classifier(self, t, chunks, h, loop):
        c, m, dt = self.config, self.model, self.dtype
        chunk = max(rows.stop - rows.start for rows in chunks)
        weights = []
        for rows in chunks:
            part, first = m.wcls[rows], rows.start
            weights.append((t.alloc(f"wcls {first}", content=self._columns(part), align=2),
                            len(part), first))
        gain = t.alloc("final_norm", content=self._bytes(m.final_norm), align=2)
        x = t.alloc("x", 2 * c.dim, align=2)
        logits = t.acc("logits", max(chunk, c.dim + 1))   # also the norm's scratch

        def emit(best, best_index):
            k.rmsnorm(t, h, c.dim, gain, x, logits, dt)
            for address, length, first in weights:
                k.gemv(t, address, length, c.dim, x, logits, dt, loop)
                k.argmax(t, logits, length, first, best, best_index)

        return emit
