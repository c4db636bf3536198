"""The 16-bit float reference: the wafer's float arithmetic on the model, to the bit.

:class:`HalfModel` runs llama2.c's forward pass (:mod:`host.model`) as the float
lanes do (:mod:`sim.fp`, :mod:`sim.iss`): weights and activations in a 16-bit
format (fp16, or bf16), every operation computed in fp32 and rounded once to
nearest even, numpy float32 doing exactly that.  ``N(v)`` below is ``v`` rounded
to the 16-bit format (:func:`sim.fp.narrow`); ``W16`` is a float32 weight rounded
once to it.

- **Products** ``y = W x`` (``gemv``): ``y`` starts at +0 and adds the column
  products ``W16[:, j] * x16[j]`` for ``j = 0, 1, ...`` in order, one fp32
  rounding an addition (the products of two 16-bit floats are exact in fp32).
  This is ``VMACS``; it skips a ±0 ``x16[j]``, which changes no bit, since a sum
  that starts at +0 never becomes -0.  However a product is split over tiles,
  the order stays this one: the tiles pass the running sum on.
- **RMSNorm** of the residual ``h`` (fp32) with gain ``g``:
  ``x16 = N((h * s) * g16)``, ``s = sim.float_math.rms_scale(h, 1e-5)``.
- **Embedding**: ``h = E16[token]`` widened to fp32.
- **Attention**, per layer: ``q, k, v = Wq x16, Wk x16, Wv x16``; RoPE on ``q`` and
  ``k`` in fp32 with fp16 tables ``c16, s16`` of the pair's angle:
  ``a' = N(a c - b s)``, ``b' = N(a s + b c)``, each product rounded and then
  the difference or the sum; ``v16 = N(v)``.  Within each head the kernels keep
  the first members of the RoPE pairs before the second (dimensions 0, 2, 4, ...,
  then 1, 3, 5, ...): :func:`head_order`; ``Wq`` and ``Wk``'s rows are stored so,
  and sums over a head's dimensions run in that order.  Per head over positions
  ``t <= pos``: ``z_t = (sum_j q16_j k16_tj) * fp32(1/sqrt(head_dim))``;
  ``e_t = exp(z_t - max z)`` (:func:`sim.float_math.exp`);
  ``S = ordered_sum(e)`` (``VSUM``: from -0, in position order);
  ``o_j = sum_t N(e_t) v16_tj`` (position order, from +0);
  ``out16 = N(o * reciprocal(S))`` (:func:`sim.float_math.reciprocal`).
  Then ``h = h + Wo out16``.
- **Feed-forward**: ``x16`` = RMSNorm; ``a = W1 x16``, ``u = W3 x16``;
  ``y16 = N(silu(a) * u)`` (:func:`sim.float_math.silu`); ``h = h + W2 y16``.
- **Classifier**: ``x16`` = final RMSNorm; ``logits = Wcls x16``; the next token
  is the first index of the largest (``VARGMAX``).
"""

import math

import ml_dtypes
import numpy as np

from host.model import ModelError, _generate, _rope_angles
from sim import float_math

__all__ = ["HalfModel", "DTYPES", "head_order", "narrow"]

F32 = np.float32
#: The 16-bit formats, by the name ``--dtype`` gives them.
DTYPES = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16}
NORM_EPS = 1e-5
#: A layer's weight matrices, in the order the blocks use them.
MATRICES = ("wq", "wk", "wv", "wo", "w1", "w3", "w2")


def narrow(values, dtype):
    """fp32 ``values`` rounded to nearest even in ``dtype``, back as float32 (exact);
    beyond the format's range, infinities."""
    with np.errstate(over="ignore"):
        return np.asarray(values, F32).astype(DTYPES[dtype]).astype(F32)


def head_order(head_dim):
    """A head's dimensions as the kernels store them: even ones, then odd ones."""
    return np.concatenate([np.arange(0, head_dim, 2), np.arange(1, head_dim, 2)])


def gemv(weight, x):
    """``weight @ x`` (both float32 holding 16-bit values) in the column order, rounded
    as ``VMACS`` rounds."""
    total = np.zeros(weight.shape[0], F32)
    for j in range(weight.shape[1]):
        if x[j] != 0:
            total = total + weight[:, j] * x[j]
    return total


class HalfModel:
    """The reference of the module docstring, for ``dtype`` "fp16" or "bf16"."""

    def __init__(self, config, weights, dtype="fp16"):
        if dtype not in DTYPES:
            raise ModelError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
        self.config, self.dtype, c = config, dtype, config
        w = weights
        order = np.concatenate([head * c.head_dim + head_order(c.head_dim)
                                for head in range(c.n_heads)])
        half = lambda array: narrow(array, dtype)
        self.embedding = self._table(w.embedding)
        self.wcls = self._matrix(None, "wcls", w.wcls)
        self.final_norm = half(w.final_norm)
        rows = {"wq": order, "wk": order[:c.kv_dim]}
        self.layers = [{
            "attn_norm": half(w.attn_norm[i]), "ffn_norm": half(w.ffn_norm[i]),
            **{name: self._matrix(i, name, getattr(w, name)[i][rows.get(name, slice(None))])
               for name in MATRICES},
        } for i in range(c.n_layers)]
        angles = np.array([_rope_angles(c, pos) for pos in range(c.seq_len)])
        self.cos, self.sin = (narrow(f(angles), "fp16") for f in (np.cos, np.sin))
        self.score_scale = F32(1 / math.sqrt(c.head_dim))

    def _matrix(self, layer, name, weight):
        """Matrix ``name`` of ``layer`` (None: the classifier's) as the products use it,
        its rows in the kernels' order: ``W16``."""
        return narrow(weight, self.dtype)

    def _table(self, embedding):
        """The embedding table as the lookup reads it: ``E16``."""
        return narrow(embedding, self.dtype)

    def new_cache(self):
        c = self.config
        return [np.zeros((2, c.seq_len, c.kv_dim), F32) for _ in range(c.n_layers)]

    def rmsnorm(self, h, gain):
        return narrow((h * float_math.rms_scale(h, NORM_EPS)) * gain, self.dtype)

    def rope(self, vector, pos):
        """Rotate a vector in head order: per head, the pairs' first members, then the
        second ones."""
        hd, half = self.config.head_dim, self.config.head_dim // 2
        heads = vector.reshape(-1, hd)
        a, b = heads[:, :half], heads[:, half:]
        c, s = self.cos[pos], self.sin[pos]
        rotated = np.concatenate([a * c - b * s, a * s + b * c], axis=1)
        return narrow(rotated.reshape(-1), self.dtype)

    def attention(self, q, keys, values):
        """One head: ``q`` (head_dim), ``keys`` and ``values`` (positions, head_dim)."""
        _, o, scale = self.attention_parts(q, keys, values)
        return narrow(o * scale, self.dtype)

    def attention_parts(self, q, keys, values):
        """One head's steps: the 16-bit probabilities ``N(e)``, the fp32 weighted sum
        ``o`` and ``reciprocal(S)``."""
        z = gemv(keys, q) * self.score_scale
        e = float_math.exp(z - z.max())
        total = float_math.ordered_sum(e)
        probs = narrow(e, self.dtype)
        return probs, gemv(values.T, probs), float_math.reciprocal(F32(total))

    def attention_block(self, layer, h, pos, cache):
        c, w = self.config, self.layers[layer]
        x = self.rmsnorm(h, w["attn_norm"])
        q = self.rope(gemv(w["wq"], x), pos)
        cache[layer][0, pos] = self.rope(gemv(w["wk"], x), pos)
        cache[layer][1, pos] = narrow(gemv(w["wv"], x), self.dtype)
        hd, group = c.head_dim, c.n_heads // c.n_kv_heads
        out = np.concatenate([
            self.attention(q[head * hd:(head + 1) * hd],
                           cache[layer][0, :pos + 1, (head // group) * hd:(head // group + 1) * hd],
                           cache[layer][1, :pos + 1, (head // group) * hd:(head // group + 1) * hd])
            for head in range(c.n_heads)])
        return h + gemv(w["wo"], out)

    def ffn_block(self, layer, h):
        w = self.layers[layer]
        x = self.rmsnorm(h, w["ffn_norm"])
        y = narrow(float_math.silu(gemv(w["w1"], x)) * gemv(w["w3"], x), self.dtype)
        return h + gemv(w["w2"], y)

    def logits(self, h):
        return gemv(self.wcls, self.rmsnorm(h, self.final_norm))

    def step(self, token, pos, cache):
        h = self.embedding[token].copy()
        for layer in range(self.config.n_layers):
            h = self.ffn_block(layer, self.attention_block(layer, h, pos, cache))
        return self.logits(h)

    def generate(self, prompt, count):
        return _generate(self, prompt, count)

