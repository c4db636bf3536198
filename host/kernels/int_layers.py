"""The integer reference's blocks as tile code: :class:`host.model.QuantModel`'s steps
(:mod:`host.kernels.vector`) for the stage programs of :mod:`host.kernels.stages`.

Vectors in data SRAM are int8; the residual and the products are int32
accumulators.  q, k and v travel between tiles as int32 words, one an element.
"""

import numpy as np

from host.kernels import vector as k
from host.kernels.kv_cache import KVCache
from host.kernels.program import POS, STAGE
from host.model import exp_table, silu_table
from rtl.isa import Dtype

__all__ = ["IntLayers"]



def columns(weight, head_dim=None):
    """A matrix in column-major order, for :func:`host.kernels.vector.gemv`.  With
    ``head_dim``, each head's rows are reordered to put the first members of the RoPE
    pairs before the second (what :func:`host.kernels.vector.rope` reads)."""
    if head_dim is not None:
        order = np.concatenate([np.concatenate([np.arange(s, s + head_dim, 2),
                                                np.arange(s + 1, s + head_dim, 2)])
                                for s in range(0, weight.shape[0], head_dim)])
        weight = weight[order]
    return np.ascontiguousarray(weight.T).reshape(-1)


class IntLayers:
    """What the stages need of a numeric format, for the integer model."""
    #: Vectors' element type in data SRAM, and on the fabric between tiles.
    dtype = wire = Dtype.INT
    #: How many tiles a layer's attention may share: its heads are not split.
    attention_parts = [1]

    def __init__(self, model):
        self.model, self.config = model, model.config
        c = self.config
        self.products = max(c.dim, c.kv_dim)

    def embedding_table(self, t, rows):
        """The embedding table's ``rows`` (a slice) in data SRAM: its address."""
        return t.alloc("embedding", content=self.model.embedding[rows].reshape(-1))

    def embed(self, t, table, token, h):
        """acc[h] = the row of register ``token`` (counted from the table's first row)."""
        m = self.model
        k.embedding(t, table, self.config.dim, token, m.embed_m, m.embed_shift, h)

    def qkv(self, t, layer, h, acc, loop):
        """RMSNorm of acc[h], then q, k, v (int8 Q5) with q and k rotated, in data SRAM:
        code to emit, and the addresses it leaves them at."""
        c, w = self.config, self.model.layers[layer]
        hd, kv = c.head_dim, c.kv_dim
        wq, wk, wv = (t.alloc(name, content=columns(w[name].weight,
                                                    hd if name != "wv" else None))
                      for name in ("wq", "wk", "wv"))
        gain = t.alloc("attn_norm", content=w["attn_norm"].gain)
        cos = t.alloc("cos", content=self.model.cos.reshape(-1))
        sin = t.alloc("sin", content=self.model.sin.reshape(-1))
        x = t.alloc("x", c.dim)
        raw = t.alloc("q k raw", c.dim + kv)
        out = {"q": t.alloc("q", c.dim), "k": t.alloc("k", kv), "v": t.alloc("v", kv)}

        def emit():
            k.rmsnorm(t, h, c.dim, gain, w["attn_norm"].shift, x, acc)
            for weight, rows, name, dst in ((wq, c.dim, "wq", raw), (wk, kv, "wk", raw + c.dim),
                                            (wv, kv, "wv", out["v"])):
                k.gemv(t, weight, rows, c.dim, x, acc, loop=loop)
                k.requant(t, acc, rows, w[name].m, w[name].shift, False, ("mem", dst))
            k.rope(t, raw, c.n_heads, hd, cos, sin, out["q"], 1, 0, acc)
            k.rope(t, raw + c.dim, c.n_kv_heads, hd, cos, sin, out["k"], 1, 0, acc)

        return emit, out

    def attention(self, t, layer, h, acc, loop, users, part=0, parts=1, links=None):
        """Code that appends k and v to the KV cache, attends over it per head, applies
        ``wo`` and adds the residual, called with ``source`` (as for
        :meth:`host.kernels.kv_cache.KVCache.append`, which also gives ``"q"``) and
        ``before_residual()``, which brings the residual into acc[h]."""
        assert parts == 1, "the integer attention is not split by heads"
        c, w, b = self.config, self.model.layers[layer], t.b
        hd, seq = c.head_dim, c.seq_len
        wo = t.alloc("wo", content=columns(w["wo"].weight))
        exp = t.table16("exp", exp_table())
        cache = KVCache(t, c, users)
        q = t.alloc("q rotated", c.dim)
        heads = t.alloc("attention out", c.dim)
        probs = t.alloc("probabilities", seq)
        scores = t.acc("scores", seq)
        out = t.acc("head out", hd)

        def emit(source, before_residual):
            t.mem(0, q, c.dim)
            source(1, "q", 0, c.dim)
            b.vmov(0, 1)
            cache.append(source)
            before_residual()
            b.addi(STAGE, POS, 1)                       # positions 0..pos
            group = c.n_heads // c.n_kv_heads
            for head in range(c.n_heads):
                kv_head = head // group
                k.attention_head(t, q + head * hd, cache.keys_of(kv_head), cache.row,
                                 cache.values_of(kv_head), STAGE, heads + head * hd, scores,
                                 out, probs, exp, self.model.score_scale, hd, loop)
            k.gemv(t, wo, c.dim, c.dim, heads, acc, loop=loop)
            k.requant(t, acc, c.dim, w["wo"].m, w["wo"].shift, True, ("acc", acc))
            k.residual_add(t, h, acc, c.dim)

        return emit

    def ffn(self, t, layer, part, parts, h, links):
        """Code for slice ``part`` of ``parts`` of a layer's feed-forward block (the hidden
        units ``part * hidden / parts`` onwards, their rows of ``w1`` and ``w3`` and their
        columns of ``w2``), called with ``send()`` on the last slice.  The slices work
        side by side on the same input, and their partial sums of ``w2 y`` flow from
        slice to slice on ``links.reduce_colors`` (:func:`host.kernels.vector.reduce_chain`);
        the last adds them up, requantises, adds the residual and sends it on."""
        c, w = self.config, self.model.layers[layer]
        units = c.hidden_dim // parts
        rows = slice(part * units, (part + 1) * units)
        w1, w3 = (t.alloc(n, content=columns(w[n].weight[rows])) for n in ("w1", "w3"))
        w2 = t.alloc("w2", content=columns(w["w2"].weight[:, rows]))
        gain = t.alloc("ffn_norm", content=w["ffn_norm"].gain)
        silu = t.table16("silu", silu_table())
        x = t.alloc("x", c.dim)
        hidden = t.alloc("hidden", units)
        gate = t.acc("gate", max(units, c.dim))   # also the norm's scratch and the partial sum
        up = t.acc("up", units)
        loop = links.loop_color
        before = links.reduce_colors[(part - 1) % 2] if part else None

        def emit(send):
            k.rmsnorm(t, h, c.dim, gain, w["ffn_norm"].shift, x, gate)
            for weight, n, acc in ((w1, "w1", gate), (w3, "w3", up)):
                k.gemv(t, weight, units, c.dim, x, acc, loop=loop)
                k.requant(t, acc, units, w[n].m, w[n].shift, True, ("acc", acc))
            k.swiglu(t, gate, up, units, silu, hidden)
            k.gemv(t, w2, c.dim, units, hidden, gate, loop=loop)
            if part < parts - 1:
                k.reduce_chain(t, gate, c.dim, before, links.reduce_colors[part % 2])
                return
            if before is not None:
                k.accumulate(t, gate, c.dim, before)
            k.requant(t, gate, c.dim, w["w2"].m, w["w2"].shift, True, ("acc", gate))
            k.residual_add(t, h, gate, c.dim)
            send()

        return emit

    def classifier(self, t, chunks, h, loop):
        """Code that folds the logits of the classifier's rows, a pass of the
        accumulators a slice of ``chunks``, into the running maximum (``best``,
        ``best_index`` registers: the largest logit and its index, the first one on
        ties)."""
        c, m = self.config, self.model
        chunk = max(rows.stop - rows.start for rows in chunks)
        weights = []
        for rows in chunks:
            part, first = m.wcls[rows], rows.start
            weights.append((t.alloc(f"wcls {first}", content=columns(part)), len(part), first))
        gain = t.alloc("final_norm", content=m.final_norm.gain)
        x = t.alloc("x", c.dim)
        logits = t.acc("logits", max(chunk, c.dim))       # also the norm's scratch

        def emit(best, best_index):
            k.rmsnorm(t, h, c.dim, gain, m.final_norm.shift, x, logits)
            for address, length, first in weights:
                k.gemv(t, address, length, c.dim, x, logits, loop=loop)
                k.argmax(t, logits, length, first, best, best_index)

        return emit
