"""Each kernel of host/kernels against host/model.py's numpy arithmetic, on tiles of a
simulated wafer (one 4x4 die of the default preset, the die RTL Verilated into the
native harness).

Inputs are seeded random (``TESSERA_SEED``); a failing check prints the seed.
Results the kernels leave in data SRAM are read through the back door; results in
accumulators are sent out of the wafer's west edge and collected.
"""

import numpy as np
import pytest

from host import model
from host.kernels import vector as k
from host.kernels.program import ARG0, ARG1, POS, TileProgram
from host.model import Q
from rtl.params import preset
from rtl.wavelet import Dir
from host.tile_run import LOOP_COLOR, OUT_COLOR, run_tiles

PARAMS = preset("default")


def _seeded(seed):
    return f"reproduce with TESSERA_SEED={seed}", np.random.default_rng(seed)


def _run(tiles, routes=(), inject=(), accs=None):
    """:func:`host.tile_run.run_tiles` on the default preset, the words signed."""
    memories, sent = run_tiles(PARAMS, tiles, routes, inject, accs)
    return memories, [_signed(word) for word in sent]


def _signed(word):
    return word - (1 << 32) if word >> 31 else word


def _acc_image(base, values):
    return [0] * base + [int(v) for v in values]


def _int8(memory, address, length):
    return np.frombuffer(memory, np.int8, length, address).astype(np.int64)


def _tile(name="kernel"):
    return TileProgram(PARAMS, name)


def _program_with_inputs(**arrays):
    """A tile program with int8 arrays placed in its data SRAM; returns it and their
    addresses."""
    t = _tile()
    return t, {name: t.alloc(name, content=value) for name, value in arrays.items()}




@pytest.mark.parametrize("streamed", [False, True], ids=["column-loop", "streamed"])
def test_gemv_slice_with_requantisation(seed, streamed):
    reproduce, rng = _seeded(seed)
    rows, cols = 48, 40
    weight = rng.integers(-127, 128, (rows, cols))
    x = rng.integers(-128, 128, cols)
    x[rng.random(cols) < 0.3] = 0                        # zeros are skipped, not lost
    linear = model.Linear(weight, *model.requantiser(0.004, 127 * 127 * cols), False)
    t, at = _program_with_inputs(w=weight.T.reshape(-1), x=x)
    out = t.alloc("y", rows)
    acc = t.acc("acc", rows)
    k.gemv(t, at["w"], rows, cols, at["x"], acc, loop=LOOP_COLOR if streamed else None)
    k.requant(t, acc, rows, linear.m, linear.shift, False, ("mem", out))
    t.b.halt()
    loop = [(1, 1, LOOP_COLOR, Dir.RAMP, [Dir.RAMP])] if streamed else []
    memories, _ = _run({(1, 1): t}, routes=loop)
    assert np.array_equal(_int8(memories[1, 1], out, rows), linear(x)), reproduce


def test_row_reduction_over_a_region_of_four_tiles(seed):
    """y = W x with W's columns split over tiles (3,0)..(0,0); the partial sums flow west
    along the row, each tile adding its own (a pipelined chain), and leave at the edge."""
    reproduce, rng = _seeded(seed)
    rows, cols, tiles = 32, 64, 4
    weight = rng.integers(-127, 128, (rows, cols))
    x = rng.integers(-128, 128, cols)
    slice_cols = cols // tiles
    programs, routes = {}, []
    for n in range(tiles):
        x_tile = tiles - 1 - n                            # the chain starts at the east end
        part = slice(n * slice_cols, (n + 1) * slice_cols)
        t, at = _program_with_inputs(w=weight[:, part].T.reshape(-1), x=x[part])
        acc = t.acc("partial", rows)
        k.gemv(t, at["w"], rows, slice_cols, at["x"], acc)
        color_in = None if n == 0 else (n - 1) % 2
        color_out = OUT_COLOR if n == tiles - 1 else n % 2
        k.reduce_chain(t, acc, rows, color_in, color_out)
        t.b.halt()
        programs[x_tile, 0] = t
        if n < tiles - 1:
            routes += [(x_tile, 0, n % 2, Dir.RAMP, [Dir.W]),
                       (x_tile - 1, 0, n % 2, Dir.E, [Dir.RAMP])]
    _, sent = _run(programs, routes)
    assert sent == list(weight @ x), reproduce


def test_rmsnorm(seed):
    reproduce, rng = _seeded(seed)
    dim = 32
    for scale in (2047, 300, 3):                          # loud, typical, nearly silent
        h = rng.integers(-scale, scale + 1, dim)
        norm = model.Norm.make(1 + 0.2 * rng.standard_normal(dim))
        t, at = _program_with_inputs(gain=norm.gain)
        out = t.alloc("x", dim)
        base = t.acc("h", dim)
        scratch = t.acc("scratch", dim)
        k.rmsnorm(t, base, dim, at["gain"], norm.shift, out, scratch)
        t.b.halt()
        memories, _ = _run({(2, 1): t}, accs={(2, 1): _acc_image(base, h)})
        assert np.array_equal(_int8(memories[2, 1], out, dim), model.rmsnorm_q(h, norm)), \
            f"{reproduce}, scale {scale}"


def test_rope(seed):
    reproduce, rng = _seeded(seed)
    config = model.ModelConfig()
    cos, sin = model.rope_tables(config)
    heads, hd = config.n_heads, config.head_dim
    for pos in (0, 5, config.seq_len - 1):
        vector = rng.integers(-128, 128, config.dim)
        expected = model.rope_q(vector, cos[pos], sin[pos])
        # The kernel reads each head as (first members, second members) of its pairs.
        order = np.concatenate([np.r_[s:s + hd:2, s + 1:s + hd:2]
                                for s in range(0, config.dim, hd)])
        t, at = _program_with_inputs(v=vector[order], cos=cos.reshape(-1), sin=sin.reshape(-1))
        out = t.alloc("out", config.dim)
        scratch = t.acc("scratch", hd)
        t.b.li(POS, pos)
        k.rope(t, at["v"], heads, hd, at["cos"], at["sin"], out, 1, 0, scratch)
        t.b.halt()
        memories, _ = _run({(3, 2): t})
        assert np.array_equal(_int8(memories[3, 2], out, config.dim), expected[order]), \
            f"{reproduce}, pos {pos}"


@pytest.mark.parametrize("streamed", [False, True], ids=["column-loop", "streamed"])
def test_attention_head_and_its_softmax(seed, streamed):
    """Scores over a key cache, the table softmax, and the weighted sum of values, at a few
    positions: the probabilities (int8 Q7) and the head's output, both to the bit."""
    reproduce, rng = _seeded(seed)
    config = model.ModelConfig()
    hd, seq = config.head_dim, config.seq_len
    qmodel = model.QuantModel(config, model.random_weights(config))
    for pos in (0, 9, seq - 1):
        q = rng.integers(-128, 128, hd)
        keys = rng.integers(-128, 128, (pos + 1, hd))
        values = rng.integers(-128, 128, (pos + 1, hd))
        key_cache = np.zeros((hd, seq), np.int64)             # transposed, as the stage keeps it
        key_cache[:, :pos + 1] = keys.T
        value_cache = np.zeros((seq, hd), np.int64)            # the head's own block
        value_cache[:pos + 1] = values
        t, at = _program_with_inputs(q=q, keys=key_cache.reshape(-1),
                                     values=value_cache.reshape(-1))
        exp = t.table16("exp", model.exp_table())
        out, probs = t.alloc("out", hd), t.alloc("probs", seq)
        scores, head_out = t.acc("scores", seq), t.acc("head out", hd)
        length = 13
        t.b.li(length, pos + 1)
        k.attention_head(t, at["q"], at["keys"], seq, at["values"], length, out, scores,
                         head_out, probs, exp, qmodel.score_scale, hd,
                         LOOP_COLOR if streamed else None)
        t.b.halt()
        loop = [(1, 2, LOOP_COLOR, Dir.RAMP, [Dir.RAMP])] if streamed else []
        memories, _ = _run({(1, 2): t}, routes=loop)
        z = keys @ q
        e = model.vqnt(model.vmul(z - z.max(), qmodel.score_scale[0]), qmodel.score_scale[1],
                       wide=True) + Q.EXP_OFFSET
        p = model.vqnt(model.vtbl(e, model.exp_table(), Q.EXP_SHIFT), Q.EXP_OUT - Q.PROB)
        assert np.array_equal(_int8(memories[1, 2], probs, pos + 1), p), reproduce
        assert np.array_equal(_int8(memories[1, 2], out, hd),
                              model.attention_q(q, keys, values, qmodel.score_scale)), \
            f"{reproduce}, pos {pos}"


def test_silu_multiply(seed):
    reproduce, rng = _seeded(seed)
    n = 64
    a = rng.integers(-700, 700, n)                           # beyond the table's +-16 too
    u = rng.integers(-300, 300, n)
    t = _tile()
    out = t.alloc("out", n)
    silu = t.table16("silu", model.silu_table())
    a_at, u_at = t.acc("a", n), t.acc("u", n)
    k.swiglu(t, a_at, u_at, n, silu, out)
    t.b.halt()
    memories, _ = _run({(2, 3): t}, accs={(2, 3): [*a, *u]})
    assert np.array_equal(_int8(memories[2, 3], out, n), model.swiglu_q(a, u)), reproduce


def test_residual_add_clamps_to_int12(seed):
    reproduce, rng = _seeded(seed)
    n = 32
    h = rng.integers(-2048, 2048, n)
    delta = rng.integers(-3000, 3000, n)
    t = _tile()
    h_at, delta_at = t.acc("h", n), t.acc("delta", n)
    k.residual_add(t, h_at, delta_at, n)
    k.send(t, h_at, n, OUT_COLOR)
    t.b.halt()
    _, sent = _run({(0, 0): t}, accs={(0, 0): [*h, *delta]})
    assert sent == list(model.clamp_residual(h + delta)), reproduce


def test_send_behind_sends_what_the_sources_held_while_the_program_goes_on(seed):
    """int8 data and int32 accumulators go out in order, as they were at the call: the
    program changes a source while slot 1 is still sending the first copy, then sends
    again (which waits for the first send to leave the accumulators)."""
    reproduce, rng = _seeded(seed)
    q, h = rng.integers(-128, 128, 20), rng.integers(-2048, 2048, 12)
    t, at = _program_with_inputs(q=q)
    h_at, out = t.acc("h", len(h)), t.acc("out", len(q) + len(h))
    sources = [("mem", at["q"], len(q)), ("acc", h_at, len(h))]
    k.send_behind(t, sources, out, OUT_COLOR)
    t.accs(0, h_at, len(h))
    t.b.li(1, -1)
    t.b.vmul(0, 0, 1, scalar=True)
    k.send_behind(t, sources, out, OUT_COLOR)
    t.b.halt()
    _, sent = _run({(0, 0): t}, accs={(0, 0): [*h]})
    assert sent == [*q, *h, *q, *-h], reproduce


def test_argmax_over_chunks_keeps_the_first_maximum(seed):
    reproduce, rng = _seeded(seed)
    chunk, chunks = 64, 3
    logits = rng.integers(-5000, 5000, chunk * chunks)
    logits[[17, 100, 150]] = 9999                             # a tie across chunks: 17 wins
    t = _tile()
    result = t.alloc("result", 8, align=4)
    base = t.acc("logits", chunk * chunks)
    t.b.li(ARG0, -(1 << 31))
    t.b.addi(ARG1, 0, 0)
    for n in range(chunks):
        k.argmax(t, base + n * chunk, chunk, n * chunk, ARG0, ARG1)
    t.b.li(1, result)
    t.b.st(ARG0, 1, 0)
    t.b.st(ARG1, 1, 4)
    t.b.halt()
    memories, _ = _run({(3, 3): t}, accs={(3, 3): list(logits)})
    best, index = np.frombuffer(memories[3, 3], np.int32, 2, result)
    assert (best, index) == (9999, 17), reproduce


def test_embedding_lookup(seed):
    reproduce, rng = _seeded(seed)
    config = model.ModelConfig()
    weights = model.random_weights(config, seed=int(rng.integers(1000)))
    qmodel = model.QuantModel(config, weights)
    tokens = [0, 255, int(rng.integers(256))]
    t, at = _program_with_inputs(table=qmodel.embedding.reshape(-1))
    h = t.acc("h", config.dim)
    for token in tokens:
        t.b.li(13, token)
        k.embedding(t, at["table"], config.dim, 13, qmodel.embed_m, qmodel.embed_shift, h)
        k.send(t, h, config.dim, OUT_COLOR)
    t.b.halt()
    _, sent = _run({(0, 0): t})
    expected = [int(v) for token in tokens for v in qmodel.embed(token)]
    assert sent == expected, reproduce
