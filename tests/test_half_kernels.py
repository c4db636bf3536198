"""Each float kernel of host/kernels/half.py against host/half_model.py, to the bit.

The kernels run on tiles of one simulated 4x4 die of the default preset with its
float lanes (host/tile_run.py); inputs are seeded random fp16 (``TESSERA_SEED``),
and a failing check prints the seed.  fp32 results in accumulators are sent out
of the west edge as words; 16-bit results are read from data SRAM.
"""

import numpy as np
import pytest

from host import half_model
from host.half_model import HalfModel, gemv, narrow
from host.int8_model import quantise
from host.kernels import half as k
from host.kernels.program import ARG0, ARG1, POS, SLOT, STAGE, TileProgram
from host.kernels.vector import reduce_chain, send
from host.model import ModelConfig, random_weights
from rtl.isa import Dtype
from rtl.params import preset
from rtl.wavelet import Dir
from host.tile_run import LOOP_COLOR, OUT_COLOR, loop_route, run_tiles

PARAMS = preset("float")    # the tiles stories260K runs on: one build for both
FP16 = Dtype.FP16


def _seeded(seed):
    return f"reproduce with TESSERA_SEED={seed}", np.random.default_rng(seed)


def _half(rng, *shape, scale=1.0):
    return narrow(rng.standard_normal(shape) * scale, "fp16")


def _bytes(values):
    return np.asarray(values, np.float32).astype(np.float16).tobytes()


def _read16(memory, address, length):
    return np.frombuffer(memory, np.float16, length, address).astype(np.float32)


def _bits(values):
    return [int(v) for v in np.asarray(values, np.float32).view(np.uint32)]


def _acc_image(base, values):
    return [0] * base + _bits(values)


def _tile(**arrays):
    """A tile program with fp16 arrays in its data SRAM, and their addresses."""
    t = TileProgram(PARAMS, "kernel")
    return t, {name: t.alloc(name, content=_bytes(value), align=2)
               for name, value in arrays.items()}


def _check(actual, expected, reproduce):
    actual, expected = _bits(actual), _bits(expected)
    bad = [i for i, (a, e) in enumerate(zip(actual, expected)) if a != e]
    assert len(actual) == len(expected) and not bad, (
        f"{len(bad)} of {len(expected)} differ, first at {bad[:1]}; {reproduce}")


@pytest.mark.parametrize("zeros", [0.0, 0.5])
def test_gemv(seed, zeros):
    reproduce, rng = _seeded(seed)
    rows, cols = 40, 48
    weight, x = _half(rng, rows, cols), _half(rng, cols)
    x[rng.random(cols) < zeros] = 0.0
    t, at = _tile(w=weight.T.reshape(-1), x=x)
    acc = t.acc("acc", rows)
    k.gemv(t, at["w"], rows, cols, at["x"], acc, FP16, LOOP_COLOR)
    send(t, acc, rows, OUT_COLOR)
    t.b.halt()
    _, sent = run_tiles(PARAMS, {(0, 0): t}, routes=[loop_route(0, 0)])
    _check(np.array(sent, np.uint32).view(np.float32), gemv(weight, x), reproduce)


def test_float_chain_of_partial_products(seed):
    """A product split by columns over three tiles in a row, its fp32 partial sums added
    along a pipelined chain (:func:`host.kernels.vector.reduce_chain` with ``float_``):
    the sums in chain order, each rounded to fp32."""
    reproduce, rng = _seeded(seed)
    rows, cols, tiles = 24, 48, 3
    weight, x = _half(rng, rows, cols), _half(rng, cols)
    width = cols // tiles
    programs, routes, partials = {}, [], []
    for n in range(tiles):
        x_tile = tiles - 1 - n                            # the chain runs west, to the edge
        part = slice(n * width, (n + 1) * width)
        partials.append(gemv(weight[:, part], x[part]))
        t, at = _tile(w=weight[:, part].T.reshape(-1), x=x[part])
        acc = t.acc("partial", rows)
        k.gemv(t, at["w"], rows, width, at["x"], acc, FP16, LOOP_COLOR)
        color_out = OUT_COLOR if n == tiles - 1 else n % 2
        reduce_chain(t, acc, rows, None if n == 0 else (n - 1) % 2, color_out, float_=True)
        t.b.halt()
        programs[x_tile, 0] = t
        routes.append(loop_route(x_tile, 0))
        if n < tiles - 1:
            routes += [(x_tile, 0, n % 2, Dir.RAMP, [Dir.W]),
                       (x_tile - 1, 0, n % 2, Dir.E, [Dir.RAMP])]
    _, sent = run_tiles(PARAMS, programs, routes=routes)
    expected = partials[0]
    for partial in partials[1:]:
        expected = (partial + expected).astype(np.float32)
    _check(np.array(sent, np.uint32).view(np.float32), expected, reproduce)


def test_a_product_split_over_two_tiles_is_the_whole_product(seed):
    """Tile (1, 0) adds the first columns and sends its running sums west; tile (0, 0)
    starts from them and adds the rest: the bits of one tile's product (the order
    :mod:`host.half_model` fixes, whatever the split)."""
    reproduce, rng = _seeded(seed)
    rows, cols, split = 32, 56, 24
    weight, x = _half(rng, rows, cols), _half(rng, cols)
    programs = {}
    for tile, part, first in (((1, 0), slice(0, split), True), ((0, 0), slice(split, cols), False)):
        t, at = _tile(w=weight[:, part].T.reshape(-1), x=x[part])
        acc = t.acc("acc", rows)
        if not first:
            t.accs(0, acc, rows)
            t.fin(1, rows, 0)
            t.b.vmov(0, 1)                    # the running sums, bit for bit
        k.gemv(t, at["w"], rows, len(x[part]), at["x"], acc, FP16, LOOP_COLOR, start=first)
        send(t, acc, rows, 0 if first else OUT_COLOR)
        t.b.halt()
        programs[tile] = t
    routes = [loop_route(0, 0), loop_route(1, 0), (1, 0, 0, Dir.RAMP, [Dir.W]),
              (0, 0, 0, Dir.E, [Dir.RAMP])]
    _, sent = run_tiles(PARAMS, programs, routes)
    _check(np.array(sent, np.uint32).view(np.float32), gemv(weight, x), reproduce)


def _model(dim=32, heads=4, kv_heads=2, seq_len=48):
    config = ModelConfig(dim=dim, hidden_dim=48, n_heads=heads, n_kv_heads=kv_heads,
                         seq_len=seq_len)
    return HalfModel(config, random_weights(config, seed=5), "fp16")


def test_rmsnorm(seed):
    reproduce, rng = _seeded(seed)
    reference, dim = _model(), 32
    for scale in (100.0, 1.0, 0.01):
        h = (rng.standard_normal(dim) * scale).astype(np.float32)
        gain = _half(rng, dim)
        t, at = _tile(gain=gain)
        out = t.alloc("x", 2 * dim, align=2)
        base, scratch = t.acc("h", dim), t.acc("scratch", dim + 1)
        k.rmsnorm(t, base, dim, at["gain"], out, scratch, FP16)
        t.b.halt()
        memories, _ = run_tiles(PARAMS, {(2, 1): t}, accs={(2, 1): _acc_image(base, h)})
        _check(_read16(memories[2, 1], out, dim), reference.rmsnorm(h, gain), reproduce)


def test_rope(seed):
    reproduce, rng = _seeded(seed)
    reference = _model()
    c = reference.config
    vector = (rng.standard_normal(c.dim) * 2).astype(np.float32)
    for pos in (0, 7, c.seq_len - 1):
        t, at = _tile(cos=reference.cos.reshape(-1), sin=reference.sin.reshape(-1))
        out = t.alloc("q", 2 * c.dim, align=2)
        base, scratch = t.acc("raw", c.dim), t.acc("scratch", c.head_dim)
        t.b.li(POS, pos)
        k.rope(t, base, c.n_heads, c.head_dim, at["cos"], at["sin"], out, scratch, FP16)
        t.b.halt()
        memories, _ = run_tiles(PARAMS, {(3, 2): t}, accs={(3, 2): _acc_image(base, vector)})
        _check(_read16(memories[3, 2], out, c.dim), reference.rope(vector, pos), reproduce)


@pytest.mark.parametrize("pos", [0, 5, 40])   # 41 scores: two chunks of exp
def test_attention_head(seed, pos):
    """User 1 of 2, at ``pos``: its scores, softmax and weighted values over the caches
    that hold both users' slots."""
    reproduce, rng = _seeded(seed)
    reference = _model()
    hd, seq, users, user = reference.config.head_dim, reference.config.seq_len, 2, 1
    rows = users * seq
    keys, values = _half(rng, rows, hd, scale=2.0), _half(rng, rows, hd)
    q = _half(rng, hd, scale=2.0)
    t, at = _tile(q=q, keys=keys.T.reshape(-1), values=values.reshape(-1))
    out = t.alloc("out", 2 * hd, align=2)
    probs = t.alloc("probs", 2 * seq, align=2)
    scores, q_scratch, out_scratch = t.acc("scores", seq), t.acc("q", hd), t.acc("o", hd)
    exp_scratch = t.acc("exp", 2 * k.EXP_CHUNK)
    t.b.li(POS, pos)
    t.b.li(SLOT, user * seq + pos)
    t.b.addi(STAGE, POS, 1)
    k.attention_head(t, k.HeadAddresses(at["q"], at["keys"], at["values"], out), rows, STAGE,
                     scores, q_scratch, out_scratch, probs, reference.score_scale, hd, FP16,
                     LOOP_COLOR, exp_scratch)
    send(t, out_scratch, hd, OUT_COLOR)       # o and reciprocal(S), left in place
    send(t, q_scratch, 1, OUT_COLOR)
    t.b.halt()
    memories, sent = run_tiles(PARAMS, {(0, 0): t}, routes=[loop_route(0, 0)])
    first = user * seq
    window = slice(first, first + pos + 1)
    expected_probs, o, scale = reference.attention_parts(q, keys[window], values[window])
    _check(_read16(memories[0, 0], probs, pos + 1), expected_probs, reproduce)
    _check(np.array(sent, np.uint32).view(np.float32), [*o, scale], reproduce)
    _check(_read16(memories[0, 0], out, hd), reference.attention(q, keys[window], values[window]),
           reproduce)


def test_swiglu(seed):
    reproduce, rng = _seeded(seed)
    n = 40
    a = (rng.standard_normal(n) * 4).astype(np.float32)
    u = (rng.standard_normal(n) * 4).astype(np.float32)
    a[:3] = [0.0, -30.0, 30.0]
    t, _ = _tile()
    out = t.alloc("y", 2 * n, align=2)
    base_a, base_u, scratch = t.acc("a", n), t.acc("u", n), t.acc("scratch", 3 * n)
    k.swiglu(t, base_a, base_u, n, out, scratch, FP16)
    t.b.halt()
    memories, _ = run_tiles(PARAMS, {(2, 3): t}, accs={(2, 3): _bits(np.concatenate([a, u]))})
    expected = narrow(half_model.float_math.silu(a) * u, "fp16")
    _check(_read16(memories[2, 3], out, n), expected, reproduce)


def test_argmax_over_chunks_takes_the_first_largest(seed):
    reproduce, rng = _seeded(seed)
    n, chunk = 96, 32
    logits = (rng.standard_normal(n) - 3).astype(np.float32)   # mostly negative
    logits[70] = logits[40] = logits.max() + 1                  # a tie: the first wins
    logits[5] = -0.0
    t, _ = _tile()
    base = t.acc("logits", n)
    t.b.li(ARG0, k.INT32_MIN)
    t.b.addi(ARG1, 0, 0)
    for start in range(0, n, chunk):
        k.argmax(t, base + start, chunk, start, ARG0, ARG1)
    t.b.st(ARG1, 0, 0)
    t.b.halt()
    memories, _ = run_tiles(PARAMS, {(3, 3): t}, accs={(3, 3): _bits(logits)})
    assert int.from_bytes(memories[3, 3][:4], "little") == int(np.argmax(logits)) == 40, reproduce


def test_embedding(seed):
    reproduce, rng = _seeded(seed)
    vocab, dim, token = 20, 32, 13
    table = _half(rng, vocab, dim)
    t, at = _tile(table=table.reshape(-1))
    h = t.acc("h", dim)
    t.b.li(STAGE, token)
    k.embedding(t, at["table"], dim, STAGE, h, FP16)
    send(t, h, dim, OUT_COLOR)
    t.b.halt()
    _, sent = run_tiles(PARAMS, {(0, 0): t})
    _check(np.array(sent, np.uint32).view(np.float32), table[token], reproduce)


@pytest.mark.parametrize("group", [16, 64])
def test_a_group_int8_product_is_the_product_of_its_dequantised_rows(seed, group):
    """Rows 10..50 of a 60-row matrix, so that groups are cut at the slice's edges (four
    pieces a column at groups of 16, one at 64: a turn of one column, and of two); 60
    columns at 40 rows a column: two blocks of 25 columns and a rest of 10.  The
    product adds to accumulators that already hold a sum, as a slice after the first
    does, and a third of x is zero."""
    reproduce, rng = _seeded(seed)
    rows, cols = slice(10, 50), 60
    quantised = quantise(rng.standard_normal((60, cols)).astype(np.float32), group)
    x = _half(rng, cols)
    x[rng.random(cols) < 1 / 3] = 0.0
    before = rng.standard_normal(40).astype(np.float32)
    t, at = _tile(x=x)
    matrix = k.Int8Matrix.place(t, "w", quantised, rows, slice(None))
    acc = t.acc("acc", 40)
    k.gemv_int8(t, matrix, 40, cols, at["x"], acc, LOOP_COLOR, start=False)
    send(t, acc, 40, OUT_COLOR)
    t.b.halt()
    _, sent = run_tiles(PARAMS, {(0, 0): t}, routes=[loop_route(0, 0)],
                        accs={(0, 0): _acc_image(acc, before)})
    weight, expected = narrow(quantised.values()[rows], "fp16"), before
    for j in range(cols):
        if x[j] != 0:
            expected = expected + weight[:, j] * x[j]
    _check(np.array(sent, np.uint32).view(np.float32), expected, reproduce)


def test_a_group_int8_embedding_is_its_row_dequantised_in_fp32(seed):
    reproduce, rng = _seeded(seed)
    vocab, dim, rows, token = 20, 40, slice(5, 15), 7
    quantised = quantise(rng.standard_normal((vocab, dim)).astype(np.float32), 16, axis=1)
    t = TileProgram(PARAMS, "kernel")
    table = k.Int8Matrix.place(t, "embedding", quantised, slice(None), rows)
    h = t.acc("h", dim)
    t.b.li(STAGE, token)
    k.embedding_int8(t, table, dim, STAGE, h)
    send(t, h, dim, OUT_COLOR)
    t.b.halt()
    _, sent = run_tiles(PARAMS, {(0, 0): t})
    _check(np.array(sent, np.uint32).view(np.float32), quantised.values()[rows][token],
           reproduce)
