"""A tiny Llama-style decoder and its two references.

The model is llama2.c's: token embedding, then ``n_layers`` blocks of
RMSNorm, multi-head attention with rotary position embedding (RoPE, pairs of
adjacent dimensions) and a KV cache, a residual add, RMSNorm, a SwiGLU
feed-forward (``w2(silu(w1 x) * w3 x)``) and a residual add; a final RMSNorm
and the classifier.  Tokens are bytes (:func:`encode`, :func:`decode`), so any
prompt text works.

:class:`FloatModel` is the float reference.  :class:`QuantModel` is the
integer-only reference: the wafer's arithmetic to the bit.  Every step of its
forward pass is one of the vector operations of the core (:mod:`sim.iss`):

- ``vmul(a, b)``: the low 32 bits of ``a * b``, signed;
- ``vqnt(x, s)``: ``(x + 2**(s-1)) >> s`` (no rounding term for s = 0),
  saturated to int8 (int16 when ``wide``);
- ``vtbl(x, T, s)``: the interpolated int16 table lookup of ``VTBL``;
- integer sums, maxima and the first arg-maximum, in int32;
- on scalars: ``isqrt`` (floor) and integer division (floor).

Numbers are fixed point.  A value ``v`` "in Q``f``" stands for ``v / 2**f``:

- the residual stream ``h``: Q7, clamped to int12 (``[-2048, 2047]``) after
  every add, so that ``sum(h * h)`` fits 32 bits for ``dim <= 256``;
- the matrix-vector inputs (normalised ``x``, ``q``, ``k``, ``v``, attention
  output): int8 Q5; the feed-forward's hidden vector: int8 Q4;
- weights: int8, one scale per matrix (``max |W| / 127``); norm gains: int8
  Q``f`` with the largest ``f`` that fits.  A matrix-vector product is an int32
  sum of int8 products, requantised by ``vqnt(vmul(acc, m), s)``, where
  ``m / 2**s`` approximates the real factor and ``m`` is small enough that
  ``acc * m`` cannot overflow (:func:`requantiser`).

The steps, as :meth:`QuantModel.step` runs them for one token at position
``pos``:

1. ``h = clamp(vqnt(vmul(E[token], m_e), s_e, wide))``.
2. Per layer, RMSNorm (:func:`rmsnorm_q`): ``ss = sum(h*h)``,
   ``ms = ss >> log2(dim)``, ``r = 2**16 // max(isqrt(ms), 1)``,
   ``t = vqnt(vmul(h, r), 9, wide)`` (``h / rms`` in Q7),
   ``x = vqnt(vmul(t, g), f_g + 2)`` (int8 Q5).
3. ``q, k, v = requant(Wq x), requant(Wk x), requant(Wv x)``, int8 Q5.
4. RoPE on ``q`` and ``k``, pair ``(a, b)`` at position ``pos`` with int8 Q7
   tables ``c, s``: ``a' = vqnt(a c - b s, 7)``, ``b' = vqnt(a s + b c, 7)``.
   ``k`` and ``v`` are appended to the layer's cache.
5. Per head, over positions ``t <= pos``: ``z_t = sum_j q_j k_tj``;
   ``d_t = z_t - max(z)``; ``e_t = vqnt(vmul(d_t, m_a), s_a, wide) + 512``
   (Q6, offset so that ``exp(-8)`` sits at 0);
   ``p_t = vqnt(vtbl(e_t, EXP, 3), 7)`` (int8 Q7 of ``exp``);
   ``o_j = sum_t p_t v_tj``; ``out_j = vqnt(vmul(o_j, 2**23 // sum(p)), 23)``.
6. ``h = clamp(h + requant(Wo out, wide))``.
7. RMSNorm again; ``a = requant(W1 x, wide)`` and ``u = requant(W3 x, wide)``
   (Q5); ``y = vqnt(vmul(vtbl(a + 512, SILU, 4), u), 9)`` (int8 Q4);
   ``h = clamp(h + requant(W2 y, wide))``.
8. Final RMSNorm; ``logits = Wcls x`` (int32); the next token is the first
   arg-maximum.

The tables (:func:`exp_table`, :func:`silu_table`, :func:`rope_tables`) and
the requantisers are computed from the float weights and the configuration by
this module alone; the wafer's kernels load the same numbers.
"""

import math
import struct
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

__all__ = ["ModelConfig", "ModelError", "FloatWeights", "FloatModel", "QuantModel",
           "random_weights", "teacher_forced", "agreement", "encode", "decode", "save_weights", "load_weights",
           "load_llama2c", "vqnt", "vmul", "vtbl", "isqrt", "requantiser", "exp_table",
           "silu_table", "rope_tables", "Q"]


class ModelError(ValueError):
    """A configuration, weight file or prompt that the model cannot take."""


@dataclass(frozen=True)
class ModelConfig:
    dim: int = 32
    hidden_dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    n_kv_heads: int = 2
    vocab_size: int = 256
    seq_len: int = 64

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 1:
                raise ModelError(f"model {field.name} must be a positive integer, not {value!r}")
        if self.dim % self.n_heads or self.head_dim % 2:
            raise ModelError(f"dim {self.dim} must split into {self.n_heads} heads of even size")
        if self.n_heads % self.n_kv_heads:
            raise ModelError(f"n_heads {self.n_heads} must be a multiple of n_kv_heads "
                             f"{self.n_kv_heads}")

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    @property
    def kv_dim(self):
        return self.n_kv_heads * self.head_dim

    def check_integer(self):
        """The integer reference's limits (see the module docstring)."""
        if self.dim & (self.dim - 1) or self.dim > 256:
            raise ModelError(f"the integer model needs dim a power of two up to 256, "
                             f"not {self.dim}")
        if self.vocab_size < 256:
            raise ModelError(f"byte tokens need vocab_size >= 256, not {self.vocab_size}")


class Q:
    """Fixed-point formats and constants of the integer model (module docstring)."""
    RESIDUAL = 7                 # h
    RESIDUAL_MAX = 2047          # h is clamped to int12
    ACT = 5                      # x, q, k, v, attention output (int8)
    HIDDEN = 4                   # silu(a) * u (int8)
    NORM_RECIP = 16              # r = 2**16 // rms
    NORM_T = 9                   # t = h * r >> 9: h / rms in Q7
    ROPE = 7                     # cos, sin (int8)
    EXP_IN = 6                   # softmax table input
    EXP_OFFSET = 512             # exp(-8) at index 0 of the table
    EXP_SHIFT = 3                # 65 entries, 8 input steps apart
    EXP_OUT = 14                 # table entries
    PROB = 7                     # p (int8): EXP_OUT - 7
    ATTN_RECIP = 23              # out = o * (2**23 // sum p) >> 23
    SILU_OFFSET = 512            # silu(-16) at index 0
    SILU_SHIFT = 4               # 65 entries, 16 input steps apart
    SILU_OUT = 8                 # table entries
    TABLE = 65


# --- tokenizer ---

def encode(text):
    """Byte tokens of ``text`` (UTF-8)."""
    return list(text.encode("utf-8"))


def decode(tokens):
    return bytes(int(t) & 0xFF for t in tokens).decode("utf-8", errors="replace")


# --- weights ---

@dataclass
class FloatWeights:
    """float32 arrays; matrices are ``[out, in]`` as in llama2.c."""
    embedding: np.ndarray        # (vocab, dim)
    attn_norm: np.ndarray        # (layers, dim)
    wq: np.ndarray               # (layers, dim, dim)
    wk: np.ndarray               # (layers, kv_dim, dim)
    wv: np.ndarray               # (layers, kv_dim, dim)
    wo: np.ndarray               # (layers, dim, dim)
    ffn_norm: np.ndarray         # (layers, dim)
    w1: np.ndarray               # (layers, hidden, dim)
    w2: np.ndarray               # (layers, dim, hidden)
    w3: np.ndarray               # (layers, hidden, dim)
    final_norm: np.ndarray       # (dim,)
    wcls: np.ndarray             # (vocab, dim)

    @staticmethod
    def shapes(c):
        L = c.n_layers
        return {"embedding": (c.vocab_size, c.dim), "attn_norm": (L, c.dim),
                "wq": (L, c.dim, c.dim), "wk": (L, c.kv_dim, c.dim),
                "wv": (L, c.kv_dim, c.dim), "wo": (L, c.dim, c.dim), "ffn_norm": (L, c.dim),
                "w1": (L, c.hidden_dim, c.dim), "w2": (L, c.dim, c.hidden_dim),
                "w3": (L, c.hidden_dim, c.dim), "final_norm": (c.dim,),
                "wcls": (c.vocab_size, c.dim)}


def random_weights(config, seed=0):
    """Seeded default weights.  The classifier rows of bytes that are not printable
    ASCII are zero, so that greedy decoding of the random model prints text."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in FloatWeights.shapes(config).items():
        if name.endswith("norm"):
            arrays[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            scale = 1.0 if name == "embedding" else 1.0 / math.sqrt(shape[-1])
            arrays[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    printable = np.zeros(config.vocab_size, bool)
    printable[32:127] = True
    arrays["wcls"][~printable] = 0
    return FloatWeights(**arrays)


MAGIC = b"TSRAWGT\0"
VERSION = 1
_HEADER = struct.Struct("<8sII7iI")       # magic, version, header size, config, payload crc


def save_weights(path, config, weights):
    """Write ``config`` and ``weights`` (float32) to ``path``: a header with a magic, a
    version, the configuration and a CRC-32 of the payload, then the arrays in
    :meth:`FloatWeights.shapes` order."""
    payload = b"".join(np.ascontiguousarray(getattr(weights, name), np.float32).tobytes()
                       for name in FloatWeights.shapes(config))
    header = _HEADER.pack(MAGIC, VERSION, _HEADER.size,
                          *(getattr(config, f.name) for f in fields(ModelConfig)),
                          zlib.crc32(payload))
    Path(path).write_bytes(header + payload)


def _read(path):
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ModelError(f"cannot read weight file {path}: {error.strerror}") from None


def _arrays(shapes, payload, path, offset=0):
    """float32 arrays of ``shapes`` read from ``payload`` at ``offset``; and the end."""
    arrays = {}
    for name, shape in shapes.items():
        count = int(np.prod(shape))
        if offset + 4 * count > len(payload):
            raise ModelError(f"{path}: the file ends inside {name}; it does not match its "
                             f"header")
        arrays[name] = np.frombuffer(payload, np.float32, count, offset).reshape(shape).copy()
        offset += 4 * count
    return arrays, offset


def load_weights(path):
    """``(config, weights)`` from a file :func:`save_weights` wrote; checks the magic,
    the version, the configuration, the length and the CRC."""
    blob = _read(path)
    if len(blob) < _HEADER.size or blob[:8] != MAGIC:
        raise ModelError(f"{path} is not a tessera weight file (bad magic)")
    magic, version, size, *values, crc = _HEADER.unpack_from(blob)
    if version != VERSION or size != _HEADER.size:
        raise ModelError(f"{path}: weight file version {version} (header {size} bytes); "
                         f"this reader knows version {VERSION}")
    config = ModelConfig(*values)
    payload = blob[size:]
    arrays, used = _arrays(FloatWeights.shapes(config), payload, path)
    if used != len(payload):
        raise ModelError(f"{path}: {len(payload) - used} bytes beyond the weights its header "
                         f"describes")
    if zlib.crc32(payload) != crc:
        raise ModelError(f"{path}: the weights do not match their checksum")
    return config, FloatWeights(**arrays)


_LLAMA2C = struct.Struct("<7i")


def load_llama2c(path):
    """``(config, weights)`` from a llama2.c float32 checkpoint (legacy version 0:
    seven int32 of config, then the arrays; a negative vocabulary size means the
    classifier is stored after the RoPE tables instead of shared with the embedding)."""
    blob = _read(path)
    if len(blob) < _LLAMA2C.size:
        raise ModelError(f"{path} is too short for a llama2.c checkpoint")
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = _LLAMA2C.unpack_from(blob)
    shared = vocab > 0
    config = ModelConfig(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len)
    shapes = FloatWeights.shapes(config)
    classifier = {"wcls": shapes.pop("wcls")}     # the other arrays are in llama2.c's order
    arrays, offset = _arrays(shapes, blob, path, _LLAMA2C.size)
    offset += 4 * seq_len * config.head_dim       # the old RoPE tables, unused
    if shared:
        arrays["wcls"], end = arrays["embedding"].copy(), offset
    else:
        more, end = _arrays(classifier, blob, path, offset)
        arrays.update(more)
    if end != len(blob):
        raise ModelError(f"{path}: {len(blob) - end} bytes beyond the weights its header "
                         f"describes")
    return config, FloatWeights(**arrays)



# --- the float reference ---

def _rope_angles(config, pos):
    i = np.arange(0, config.head_dim, 2)
    return pos / (10000.0 ** (i / config.head_dim))


class FloatModel:
    def __init__(self, config, weights):
        self.config, self.w = config, weights

    def generate(self, prompt, count):
        """Greedy decoding: the ``count`` tokens after ``prompt``, and every position's
        logits (prompt and generated)."""
        return _generate(self, prompt, count)

    def new_cache(self):
        c = self.config
        return [np.zeros((2, c.seq_len, c.kv_dim)) for _ in range(c.n_layers)]

    def step(self, token, pos, cache):
        c, w = self.config, self.w
        h = w.embedding[token].astype(np.float64)
        for layer in range(c.n_layers):
            x = _rmsnorm(h, w.attn_norm[layer])
            q, k, v = w.wq[layer] @ x, w.wk[layer] @ x, w.wv[layer] @ x
            q, k = _rope(q, c, pos), _rope(k, c, pos)
            cache[layer][0, pos], cache[layer][1, pos] = k, v
            out = np.zeros(c.dim)
            hd = c.head_dim
            for head in range(c.n_heads):
                kv = head // (c.n_heads // c.n_kv_heads)
                keys = cache[layer][0, :pos + 1, kv * hd:(kv + 1) * hd]
                values = cache[layer][1, :pos + 1, kv * hd:(kv + 1) * hd]
                scores = keys @ q[head * hd:(head + 1) * hd] / math.sqrt(hd)
                p = np.exp(scores - scores.max())
                out[head * hd:(head + 1) * hd] = (p / p.sum()) @ values
            h = h + w.wo[layer] @ out
            x = _rmsnorm(h, w.ffn_norm[layer])
            a = w.w1[layer] @ x
            h = h + w.w2[layer] @ (a / (1 + np.exp(-a)) * (w.w3[layer] @ x))
        return w.wcls @ _rmsnorm(h, w.final_norm)


def _rmsnorm(h, gain):
    return h / np.sqrt(np.mean(h * h) + 1e-5) * gain


def _rope(vector, config, pos):
    angles = np.tile(_rope_angles(config, pos), len(vector) // config.head_dim)
    a, b = vector[0::2], vector[1::2]
    out = np.empty_like(vector)
    out[0::2] = a * np.cos(angles) - b * np.sin(angles)
    out[1::2] = a * np.sin(angles) + b * np.cos(angles)
    return out


def teacher_forced(model, tokens):
    """The logits at every position of ``tokens``, each from the tokens before it."""
    cache = model.new_cache()
    return [model.step(token, pos, cache) for pos, token in enumerate(tokens)]


def agreement(float_model, quant_model, tokens):
    """How closely the two references agree on ``tokens`` (teacher forced): the share of
    positions whose top token is the same, and the mean correlation of the logits."""
    pairs = list(zip(teacher_forced(float_model, tokens), teacher_forced(quant_model, tokens)))
    return {"top1_agreement": float(np.mean([np.argmax(f) == np.argmax(q) for f, q in pairs])),
            "logit_correlation": float(np.mean([np.corrcoef(f, q)[0, 1] for f, q in pairs]))}


def _generate(model, prompt, count):
    c = model.config
    if not prompt:
        raise ModelError("the prompt is empty")
    if len(prompt) + count - 1 > c.seq_len:        # the last new token is not fed back
        raise ModelError(f"the prompt ({len(prompt)} tokens) and {count} new tokens exceed "
                         f"the context of {c.seq_len}")
    cache, logits, tokens = model.new_cache(), [], []
    token = prompt[0]
    for pos in range(len(prompt) + count - 1):
        logits.append(model.step(token, pos, cache))
        token = prompt[pos + 1] if pos + 1 < len(prompt) else int(np.argmax(logits[-1]))
        if pos + 1 >= len(prompt):
            tokens.append(token)
    return tokens, logits


# --- integer primitives: the core's vector operations, in numpy ---

def _int(x):
    return np.asarray(x, dtype=np.int64)


def vmul(a, b):
    """Low 32 bits of the product, signed (``VMUL``)."""
    product = (_int(a) * _int(b)) & 0xFFFFFFFF
    return np.where(product >= 1 << 31, product - (1 << 32), product)


def vqnt(x, shift, wide=False):
    """``VQNT``: round half up by ``shift`` bits, saturate to int8 (int16 if ``wide``)."""
    x = _int(x)
    rounded = (x + (1 << (shift - 1))) >> shift if shift else x
    bits = 16 if wide else 8
    return np.clip(rounded, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def vtbl(x, table, shift):
    """``VTBL``: the int16 ``table`` at ``x >> shift``, interpolated (see :mod:`sim.iss`)."""
    x, table = _int(x), _int(table)
    index, fraction = x >> shift, x & ((1 << shift) - 1)
    low = np.clip(index, 0, len(table) - 2)
    t0, t1 = table[low], table[low + 1]
    inside = t0 + (((t1 - t0) * fraction) >> shift)
    return np.where(index < 0, t0, np.where(index >= len(table) - 1, t1, inside))


def isqrt(n):
    return math.isqrt(int(n))


def requantiser(factor, acc_bound):
    """``(m, s)`` with ``m / 2**s`` close to ``factor`` and ``acc_bound * m < 2**31``."""
    limit = (2 ** 31 - 1) // max(acc_bound, 1)
    for shift in range(31, -1, -1):
        m = round(factor * 2 ** shift)
        if 1 <= m <= limit:
            return m, shift
    raise ModelError(f"no fixed-point multiplier for factor {factor}")


def exp_table():
    """int16 Q14 of ``exp(x)`` for x from -8 to 0 in 65 steps (softmax)."""
    x = (np.arange(Q.TABLE) * (1 << Q.EXP_SHIFT) - Q.EXP_OFFSET) / (1 << Q.EXP_IN)
    return np.round(np.exp(x) * (1 << Q.EXP_OUT)).astype(np.int64)


def silu_table():
    """int16 Q8 of ``silu(x)`` for x from -16 to 16 in 65 steps (feed-forward)."""
    x = (np.arange(Q.TABLE) * (1 << Q.SILU_SHIFT) - Q.SILU_OFFSET) / (1 << Q.ACT)
    return np.round(x / (1 + np.exp(-x)) * (1 << Q.SILU_OUT)).astype(np.int64)


def rope_tables(config):
    """int8 Q7 ``(cos, sin)``, each ``(seq_len, head_dim // 2)``."""
    angles = np.array([_rope_angles(config, pos) for pos in range(config.seq_len)])
    scale = 1 << Q.ROPE
    return tuple(np.clip(np.round(f(angles) * scale), -127, 127).astype(np.int64)
                 for f in (np.cos, np.sin))


def _quantise(matrix):
    """int8 matrix and its scale (one per matrix)."""
    scale = float(np.abs(matrix).max()) / 127 or 1.0
    return np.clip(np.round(matrix / scale), -127, 127).astype(np.int64), scale


def _gain(vector):
    """int8 Q``f`` of a norm gain with the largest ``f`` that fits, and ``f``."""
    largest = float(np.abs(vector).max()) or 1.0
    shift = max(0, min(14, int(math.floor(math.log2(127 / largest)))))
    return np.clip(np.round(vector * 2 ** shift), -127, 127).astype(np.int64), shift


@dataclass
class Linear:
    """An int8 matrix with the requantiser of its output."""
    weight: np.ndarray           # int8 values, (out, in)
    m: int
    shift: int
    wide: bool

    @classmethod
    def make(cls, matrix, q_in, q_out, wide):
        weight, scale = _quantise(matrix)
        m, shift = requantiser(scale * 2.0 ** (q_out - q_in), 127 * 127 * matrix.shape[1])
        return cls(weight, m, shift, wide)

    def __call__(self, x):
        return vqnt(vmul(self.weight @ _int(x), self.m), self.shift, self.wide)


@dataclass
class Norm:
    gain: np.ndarray
    shift: int

    @classmethod
    def make(cls, vector):
        return cls(*_gain(vector))


def rmsnorm_q(h, norm):
    """Integer RMSNorm of the residual ``h`` (Q7, int12): int8 Q5."""
    h = _int(h)
    ss = int(vmul(h, h).sum())
    ms = ss >> int(math.log2(len(h)))
    r = (1 << Q.NORM_RECIP) // max(isqrt(ms), 1)
    t = vqnt(vmul(h, r), Q.NORM_T, wide=True)
    return vqnt(vmul(t, norm.gain), norm.shift + Q.RESIDUAL - Q.ACT)


def clamp_residual(h):
    return np.clip(_int(h), -Q.RESIDUAL_MAX - 1, Q.RESIDUAL_MAX)


def rope_q(vector, cos, sin):
    """Rotate int8 Q5 pairs by int8 Q7 ``cos``, ``sin`` of one position (tiled per head)."""
    vector = _int(vector)
    reps = len(vector) // (2 * len(cos))
    c, s = np.tile(cos, reps), np.tile(sin, reps)
    a, b = vector[0::2], vector[1::2]
    out = np.empty_like(vector)
    out[0::2] = vqnt(vmul(a, c) - vmul(b, s), Q.ROPE)
    out[1::2] = vqnt(vmul(a, s) + vmul(b, c), Q.ROPE)
    return out


def attention_q(q, keys, values, scale):
    """One head: ``q`` (hd), ``keys``/``values`` (positions, hd), all int8 Q5; ``scale``
    the score requantiser ``(m, s)``.  Returns int8 Q5."""
    z = _int(keys) @ _int(q)
    e = vqnt(vmul(z - z.max(), scale[0]), scale[1], wide=True) + Q.EXP_OFFSET
    p = vqnt(vtbl(e, exp_table(), Q.EXP_SHIFT), Q.EXP_OUT - Q.PROB)
    o = p @ _int(values)
    recip = (1 << Q.ATTN_RECIP) // int(p.sum())
    return vqnt(vmul(o, recip), Q.ATTN_RECIP)


def swiglu_q(a, u):
    """``silu(a) * u`` for ``a``, ``u`` int16 Q5: int8 Q4."""
    silu = vtbl(_int(a) + Q.SILU_OFFSET, silu_table(), Q.SILU_SHIFT)
    return vqnt(vmul(silu, u), Q.SILU_OUT + Q.ACT - Q.HIDDEN)


class QuantModel:
    """The integer reference (module docstring), quantised from float weights."""

    def __init__(self, config, weights):
        config.check_integer()
        self.config = c = config
        a, r = Q.ACT, Q.RESIDUAL
        self.embedding, scale = _quantise(weights.embedding)
        self.embed_m, self.embed_shift = requantiser(scale * 2 ** r, 127)
        self.layers = []
        for i in range(c.n_layers):
            self.layers.append({
                "attn_norm": Norm.make(weights.attn_norm[i]),
                "wq": Linear.make(weights.wq[i], a, a, False),
                "wk": Linear.make(weights.wk[i], a, a, False),
                "wv": Linear.make(weights.wv[i], a, a, False),
                "wo": Linear.make(weights.wo[i], a, r, True),
                "ffn_norm": Norm.make(weights.ffn_norm[i]),
                "w1": Linear.make(weights.w1[i], a, a, True),
                "w3": Linear.make(weights.w3[i], a, a, True),
                "w2": Linear.make(weights.w2[i], Q.HIDDEN, r, True),
            })
        self.final_norm = Norm.make(weights.final_norm)
        self.wcls, _ = _quantise(weights.wcls)
        # Scores are Q10 (Q5 * Q5); the table wants (score / sqrt(hd)) in Q6.
        self.score_scale = requantiser(2.0 ** (Q.EXP_IN - 2 * a) / math.sqrt(c.head_dim),
                                       1 << 16)
        self.cos, self.sin = rope_tables(c)

    def new_cache(self):
        c = self.config
        return [np.zeros((2, c.seq_len, c.kv_dim), np.int64) for _ in range(c.n_layers)]

    def embed(self, token):
        return clamp_residual(vqnt(vmul(self.embedding[token], self.embed_m),
                                   self.embed_shift, wide=True))

    def attention_block(self, layer, h, pos, cache):
        """Steps 2 to 6 of one layer: the new residual."""
        c, w = self.config, self.layers[layer]
        x = rmsnorm_q(h, w["attn_norm"])
        q = rope_q(w["wq"](x), self.cos[pos], self.sin[pos])
        cache[layer][0, pos] = rope_q(w["wk"](x), self.cos[pos], self.sin[pos])
        cache[layer][1, pos] = w["wv"](x)
        hd, group = c.head_dim, c.n_heads // c.n_kv_heads
        out = np.concatenate([
            attention_q(q[head * hd:(head + 1) * hd],
                        cache[layer][0, :pos + 1, (head // group) * hd:(head // group + 1) * hd],
                        cache[layer][1, :pos + 1, (head // group) * hd:(head // group + 1) * hd],
                        self.score_scale)
            for head in range(c.n_heads)])
        return clamp_residual(h + w["wo"](out))

    def ffn_block(self, layer, h):
        """Step 7 of one layer: the new residual."""
        w = self.layers[layer]
        x = rmsnorm_q(h, w["ffn_norm"])
        return clamp_residual(h + w["w2"](swiglu_q(w["w1"](x), w["w3"](x))))

    def logits(self, h):
        return self.wcls @ rmsnorm_q(h, self.final_norm)

    def step(self, token, pos, cache):
        h = self.embed(token)
        for layer in range(self.config.n_layers):
            h = self.ffn_block(layer, self.attention_block(layer, h, pos, cache))
        return self.logits(h)

    def generate(self, prompt, count):
        return _generate(self, prompt, count)
