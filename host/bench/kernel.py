"""``tessera bench kernels``: every kernel's cycles on the simulated wafer, and its fitted cost.

Each point of a sweep is a program run on tiles of the native harness
(:func:`host.tile_run.run_tiles`, the float preset's tiles): the kernel between two
reads of the cycle counter, less the reads' own cycles (a run with no kernel between
them), or for the kernels that span tiles (``transfer``, ``wafer_link``, ``chain``,
``broadcast``) the cycle at which the last tile has its result, every tile having
started in cycle 0.  :class:`host.costs.CostModel` fits each sweep by least
squares, and the document keeps the points beside the coefficients.  Operands are
seeded random and nonzero: a zero x_j would skip its column's beats.
"""

from types import SimpleNamespace

import numpy as np

from host.costs import KERNELS, PARAMS, CostModel, Costs
from host.int8_model import quantise
from host.cosim import link_ends
from host.kernels import distributed_attention
from host.kernels import half as k
from host.kernels import vector
from host.kernels.kv_cache import KVCache
from host.kernels.program import ARG0, ARG1, POS, SLOT, STAGE, TileProgram
from host.tile_run import LOOP_COLOR, loop_route, run_tiles
from rtl.isa import Counter, Dtype
from rtl.wavelet import Dir

__all__ = ["SWEEPS", "measure", "run", "blocked_product", "distributed_head"]

FP16 = Dtype.FP16
#: Where a program leaves what it measured (a word of data SRAM), and the colors
#: the multi-tile sweeps alternate between neighbours.
RESULT = "measured"
COLORS = (0, 1)


def _stamp(t, start):
    """Store the cycle counter (``start``) or the cycles since the stored one."""
    b, at = t.b, t.symbols[RESULT][0]
    b.csrr(1, Counter.CYCLES)
    b.li(2, at)
    if not start:
        b.ld(3, 2, 0)
        b.sub(1, 1, 3)
    b.st(1, 2, 0)


def _measured(memory, t):
    return int.from_bytes(memory[t.symbols[RESULT][0]:][:4], "little")


def _half(rng, count):
    """``count`` nonzero fp16 values, as bytes."""
    values = rng.uniform(0.5, 1.5, count) * rng.choice((-1, 1), count)
    return values.astype(np.float16).tobytes()


def _timed(setup, routes=()):
    """Cycles of the kernel that ``setup(t, rng)`` places and returns as ``emit()``, on
    one tile: between two counter reads, less the reads'."""
    def cycles(emit):
        t = TileProgram(PARAMS, "kernel")
        t.word(RESULT, 0)
        emit = emit(t)
        _stamp(t, True)
        emit()
        _stamp(t, False)
        t.b.halt()
        memories, _ = run_tiles(PARAMS, {(0, 0): t}, routes=routes)
        return _measured(memories[0, 0], t)
    rng = np.random.default_rng(0)
    return cycles(lambda t: setup(t, rng)) - cycles(lambda t: lambda: None)


def _gemv(rows, cols):
    def setup(t, rng):
        w = t.alloc("w", content=_half(rng, rows * cols), align=2)
        x = t.alloc("x", content=_half(rng, cols), align=2)
        acc = t.acc("acc", rows)
        return lambda: k.gemv(t, w, rows, cols, x, acc, FP16, LOOP_COLOR)
    return _timed(setup, routes=[loop_route(0, 0)])


def _gemv_int8(rows, cols):
    def setup(t, rng):
        weight = rng.standard_normal((rows, cols)).astype(np.float32)
        matrix = k.Int8Matrix.place(t, "w", quantise(weight), slice(None), slice(None))
        x = t.alloc("x", content=_half(rng, cols), align=2)
        acc = t.acc("acc", rows)
        return lambda: k.gemv_int8(t, matrix, rows, cols, x, acc, LOOP_COLOR)
    return _timed(setup, routes=[loop_route(0, 0)])


def _rmsnorm(length):
    def setup(t, rng):
        h, scratch = t.acc("h", length), t.acc("scratch", length + 1)
        gain = t.alloc("gain", content=_half(rng, length), align=2)
        out = t.alloc("out", 2 * length, align=2)
        return lambda: k.rmsnorm(t, h, length, gain, out, scratch, FP16)
    return _timed(setup)


def _swiglu(length):
    def setup(t, rng):
        a, u, scratch = t.acc("a", length), t.acc("u", length), t.acc("s", 3 * length)
        out = t.alloc("out", 2 * length, align=2)
        return lambda: k.swiglu(t, a, u, length, out, scratch, FP16)
    return _timed(setup)


def _residual(length):
    def setup(t, rng):
        h, delta = t.acc("h", length), t.acc("delta", length)
        return lambda: k.residual_add(t, h, delta, length)
    return _timed(setup)


def _argmax(length):
    def setup(t, rng):
        logits = t.acc("logits", length)
        t.b.li(ARG0, -(1 << 31))
        return lambda: k.argmax(t, logits, length, 0, ARG0, ARG0 + 1)
    return _timed(setup)


def _copy(length):
    def setup(t, rng):
        src, dst = t.acc("src", length), t.acc("dst", length)

        def emit():
            t.accs(0, dst, length)
            t.accs(1, src, length)
            t.b.vmov(0, 1)
        return emit
    return _timed(setup)


def _widen(length):
    def setup(t, rng):
        src, dst = t.alloc("src", content=_half(rng, length), align=2), t.acc("dst", length)
        return lambda: k.widen(t, src, length, dst, FP16)
    return _timed(setup)


def _narrow(length):
    def setup(t, rng):
        src, dst = t.acc("src", length), t.alloc("dst", 2 * length, align=2)

        def emit():
            t.accs(1, src, length)
            t.mem(0, dst, length, dtype=FP16)
            t.b.vmov(0, 1, float_=True)
        return emit
    return _timed(setup)


def _rope(heads, head_dim):
    def setup(t, rng):
        half = head_dim // 2
        src, scratch = t.acc("src", heads * head_dim), t.acc("scratch", head_dim)
        cos, sin = (t.alloc(name, content=_half(rng, half), align=2) for name in ("c", "s"))
        dst = t.alloc("dst", 2 * heads * head_dim, align=2)
        return lambda: k.rope(t, src, heads, head_dim, cos, sin, dst, scratch, FP16)
    return _timed(setup)


def _attention(context, head_dim):
    def setup(t, rng):
        head = k.HeadAddresses(
            t.alloc("q", content=_half(rng, head_dim), align=2),
            t.alloc("keys", content=_half(rng, head_dim * context), align=2),
            t.alloc("values", content=_half(rng, context * head_dim), align=2),
            t.alloc("out", 2 * head_dim, align=2))
        probs = t.alloc("probs", 2 * context, align=2)
        scores, q, out = t.acc("scores", context), t.acc("q", head_dim), t.acc("o", head_dim)
        scratch = t.acc("exp", 2 * k.EXP_CHUNK)
        b = t.b
        b.li(POS, context - 1)                # the user's positions 0..context-1, slots 0..
        b.addi(SLOT, POS, 0)
        b.li(STAGE, context)
        return lambda: k.attention_head(t, head, context, STAGE, scores, q, out, probs, 0.125,
                                        head_dim, FP16, LOOP_COLOR, scratch)
    return _timed(setup, routes=[loop_route(0, 0)])


def _kv_append(heads, head_dim):
    def setup(t, rng):
        config = SimpleNamespace(n_kv_heads=heads, head_dim=head_dim, seq_len=8)
        cache = KVCache(t, config, 1, FP16)
        dims = heads * head_dim
        kv = {name: t.alloc(name, content=_half(rng, dims), align=2) for name in "kv"}
        source = lambda d, name, offset, length: t.mem(d, kv[name] + 2 * offset, length,
                                                       dtype=FP16)
        return lambda: cache.append(source)
    return _timed(setup)


def _last_tile(tiles, last, **run):
    """Run ``tiles``; the cycle at which tile ``last`` stamped its result."""
    memories, _ = run_tiles(PARAMS, tiles, **run)
    return _measured(memories[last], tiles[last])


def _sender(length, color):
    t = TileProgram(PARAMS, "sender")
    vector.send(t, t.acc("data", length), length, color)
    t.b.halt()
    return t


def _receiver(length, color, name="receiver"):
    t = TileProgram(PARAMS, name)
    t.word(RESULT, 0)
    vector.receive(t, t.acc("data", length), length, color)
    _stamp(t, True)
    t.b.halt()
    return t


_STEPS = {(1, 0): Dir.E, (-1, 0): Dir.W, (0, 1): Dir.S, (0, -1): Dir.N}


def _line(tiles, color, every=False):
    """Routes that take ``color`` from the first of ``tiles`` (a straight line of
    neighbours) to the last one's ramp, or with ``every`` to each one's after the first
    (a multicast)."""
    (x0, y0), (x1, y1) = tiles[:2]
    step = _STEPS[x1 - x0, y1 - y0]
    routes = [(*tiles[0], color, Dir.RAMP, [step])]
    for x, y in tiles[1:-1]:
        routes.append((x, y, color, step.opposite, [Dir.RAMP] * every + [step]))
    return routes + [(*tiles[-1], color, step.opposite, [Dir.RAMP])]


def _east(first, last, y, color):
    """Routes that take ``color`` from tile ``first``'s ramp east to tile ``last``'s."""
    return _line([(x, y) for x in range(first, last + 1)], color)


#: The wafer of the sweeps that span tiles: three dies of 4x4 in a row, so that a
#: path along row 0 crosses a die boundary after every 4 tiles.
DIES, DIE = (3, 1), (4, 4)


def _crossings(first, last):
    return last // DIE[0] - first // DIE[0]


def _on_row(programs, last, routes, **run):
    return _last_tile(programs, (last, 0), routes=routes, dies=DIES, die=DIE, **run)


def _transfer(length, hops, crossings):
    first = DIE[0] - 1 if crossings else 0     # the crossings come first
    last = first + hops
    assert _crossings(first, last) == crossings, (hops, crossings)
    programs = {(first, 0): _sender(length, 0), (last, 0): _receiver(length, 0)}
    return _on_row(programs, last, _east(first, last, 0, 0))


def _wafer_link(length, latency, interval):
    """Across the die boundary after tile 3 of row 0, its links given the timing."""
    sender = DIE[0] - 1
    links = [link for link, ends in enumerate(link_ends(*DIES, PARAMS.replace(
        width=DIE[0], height=DIE[1]))) if set(ends) == {0, 1}]
    programs = {(sender, 0): _sender(length, 0), (sender + 1, 0): _receiver(length, 0)}
    return _on_row(programs, sender + 1, _east(sender, sender + 1, 0, 0),
                   link_timing=[(link, latency, interval) for link in links])


def _chain(length, tiles, crossings):
    assert _crossings(0, tiles - 1) == crossings
    programs, routes = {}, []
    for x in range(tiles):
        t = TileProgram(PARAMS, f"chain {x}")
        acc = t.acc("partial", length)
        color_in = COLORS[(x - 1) % 2] if x else None
        if x < tiles - 1:
            vector.reduce_chain(t, acc, length, color_in, COLORS[x % 2], float_=True)
            routes += _east(x, x + 1, 0, COLORS[x % 2])
        else:
            t.word(RESULT, 0)
            vector.accumulate(t, acc, length, color_in, float_=True)
            _stamp(t, True)
        t.b.halt()
        programs[x, 0] = t
    return _on_row(programs, tiles - 1, routes)


def _broadcast(length, tiles, crossings):
    """From tile 0 of row 0 to the ``tiles`` after it, multicast."""
    assert _crossings(0, tiles) == crossings
    programs = {(0, 0): _sender(length, 0)}
    for x in range(1, tiles + 1):
        programs[x, 0] = _receiver(length, 0, f"receiver {x}")
    return _on_row(programs, tiles, _line([(x, 0) for x in range(tiles + 1)], 0, every=True))


#: The colors of a blocked product: x multicast down the columns; the loops of the tiles'
#: GEMVs are :data:`LOOP_COLOR`, the chains along the rows :data:`COLORS`.
X_COLOR = 4


def blocked_product(rows, cols, grid):
    """The measured cycles of a product over a block of ``grid`` = (R, C) tiles, as
    :func:`host.projection.product` lays one out at scale: row 0 holds x, each of its
    C tiles multicasting its ``cols / C`` elements down its column; tile (j, 1 + i) runs
    the streamed GEMV of its ``rows / R`` x ``cols / C`` piece; the partial sums meet
    along each row in a chain, to the cycle at which the last row's end has them."""
    R, C = grid
    assert rows % R == 0 and cols % C == 0 and R < DIE[1], (rows, cols, grid)
    r, c = rows // R, cols // C
    rng = np.random.default_rng(0)
    programs, routes = {}, []
    for j in range(C):
        t = TileProgram(PARAMS, f"x {j}")
        x = t.alloc("x", content=_half(rng, c), align=2)
        t.mem(0, x, c, dtype=FP16)
        t.fout(1, c, X_COLOR, dtype=FP16)
        t.b.vmov(1, 0, float_=True)
        t.b.halt()
        programs[j, 0] = t
        routes.append((j, 0, X_COLOR, Dir.RAMP, [Dir.S]))
        for i in range(1, R + 1):
            routes.append((j, i, X_COLOR, Dir.N, [Dir.RAMP] + [Dir.S] * (i < R)))
            routes.append(loop_route(j, i))
            t = TileProgram(PARAMS, f"piece {i - 1}, {j}")
            w = t.alloc("w", content=_half(rng, r * c), align=2)
            x = t.alloc("x", 2 * c, align=2)
            acc = t.acc("partial", r)
            t.mem(0, x, c, dtype=FP16)
            t.fin(1, c, X_COLOR, dtype=FP16)
            t.b.vmov(0, 1, float_=True)
            k.gemv(t, w, r, c, x, acc, FP16, LOOP_COLOR)
            color_in = COLORS[(j - 1) % 2] if j else None
            if j < C - 1:
                vector.reduce_chain(t, acc, r, color_in, COLORS[j % 2], float_=True)
                routes += _east(j, j + 1, i, COLORS[j % 2])
            else:
                t.word(RESULT, 0)
                vector.accumulate(t, acc, r, color_in, float_=True)
                _stamp(t, True)
            t.b.halt()
            programs[j, i] = t
    memories, _ = run_tiles(PARAMS, programs, routes=routes, dies=DIES, die=DIE)
    return max(_measured(memories[C - 1, i], programs[C - 1, i]) for i in range(1, R + 1))


def _fp32_bits(values):
    return [int(v) for v in np.asarray(values, np.float32).view(np.int32)]


def _combine(length, tiles, heads, crossings):
    """The chain that combines a distributed head's partials
    (:func:`host.kernels.distributed_attention.combine`) along row 0, ``length``
    dimensions a tile, for ``heads`` heads one after another, every tile's partials in
    place in cycle 0: to the cycle at which the last tile has the last head's combined
    sums (its normalisation is the single-tile head's)."""
    assert _crossings(0, tiles - 1) == crossings
    rng = np.random.default_rng(0)
    programs, accs = {}, {}
    for x in range(tiles):
        t = TileProgram(PARAMS, f"combine {x}")
        partial, pair, scratch = t.acc("partial", length + 1), t.acc("pair", 2), t.acc("s", 4)
        top = t.word("max", _fp32_bits([rng.uniform(-4, 4)])[0])
        last = x == tiles - 1
        for _ in range(heads):
            distributed_attention.combine(t, partial, length, top, pair, scratch,
                                          COLORS[(x - 1) % 2] if x else None,
                                          None if last else COLORS[x % 2])
        if last:
            t.word(RESULT, 0)
            _stamp(t, True)
        t.b.halt()
        programs[x, 0] = t
        accs[x, 0] = _fp32_bits([rng.uniform(1, 8), *rng.uniform(-1, 1, length)])
    routes = [route for x in range(tiles - 1) for route in _east(x, x + 1, 0, COLORS[x % 2])]
    return _on_row(programs, tiles - 1, routes, accs=accs)


#: The colors of a distributed head: the partial scores' chains down the columns
#: alternate between :data:`COLORS`, the whole scores go back up on SCORES_BACK, the
#: partials' chains along the rows alternate between COMBINE_COLORS (tile (0, 0) sends
#: only the first, so that :data:`host.tile_run.OUT_COLOR`'s route there is left alone).
SCORES_BACK, COMBINE_COLORS = 5, (4, 2)


def distributed_head(q, keys, values, grid):
    """The query heads ``q`` (heads x head_dim) of one KV head, whose fp16 ``keys`` and
    ``values`` (context x head_dim) are spread on ``grid`` = (P, D) tiles, as
    :func:`host.projection.group_cycles` lays them out: tile (p, d), at x = p and y = d,
    holds positions ``p`` and dimensions ``d`` of the cache and ``d`` of each query, and
    runs :mod:`host.kernels.distributed_attention`'s steps for each head in turn (one copy
    of the code, :class:`host.kernels.half.HeadTable`).  Returns the cycle at which the
    last of the tiles (P - 1, d) has its 16-bit piece of the last head's output, and the
    outputs (heads x head_dim)."""
    P, D = grid
    heads, (context, head_dim) = len(q), keys.shape
    assert context % P == 0 and head_dim % D == 0 and P <= DIES[0] * DIE[0] and D <= DIE[1]
    n, c = context // P, head_dim // D
    half = lambda array: np.ascontiguousarray(array, np.float16).tobytes()
    programs, routes = {}, []
    for p in range(P):
        column = [(p, d) for d in range(D)]
        for d in range(D - 1):
            routes += _line(column[d:d + 2], COLORS[d % 2])
        if D > 1:
            routes += _line(column[::-1], SCORES_BACK, every=True)
        for d in range(D):
            positions, dims = slice(p * n, (p + 1) * n), slice(d * c, (d + 1) * c)
            t = TileProgram(PARAMS, f"head {p}, {d}")
            keys_at = t.alloc("keys", content=half(keys[positions, dims].T), align=2)
            values_at = t.alloc("values", content=half(values[positions, dims]), align=2)
            table = k.HeadTable(t, [k.HeadAddresses(
                t.alloc(f"q {h}", content=half(q[h, dims]), align=2), keys_at, values_at,
                t.alloc(f"out {h}", 2 * c, align=2)) for h in range(heads)])
            probs, top = t.alloc("probs", 2 * n, align=2), t.word("max", 0)
            scores, q_scratch, partial = t.acc("scores", n), t.acc("q", c), t.acc("o", c + 1)
            scratch, pair = t.acc("exp", 2 * k.EXP_CHUNK), t.acc("pair", 2)
            b = t.b
            b.li(POS, n - 1)                  # positions 0..n-1, slots 0..
            b.addi(SLOT, POS, 0)
            b.li(STAGE, n)

            def head():                       # emitted once, run for each head
                k.head_scores(t, table, n, STAGE, scores, q_scratch, c, FP16)
                if D > 1:
                    color_in = COLORS[(d - 1) % 2] if d else None
                    if d < D - 1:
                        vector.reduce_chain(t, scores, n, color_in, COLORS[d % 2], float_=True)
                        vector.receive(t, scores, n, SCORES_BACK)
                    else:
                        vector.accumulate(t, scores, n, color_in, float_=True)
                        vector.send(t, scores, n, SCORES_BACK)
                k.head_softmax(t, STAGE, scores, probs, np.float32(1 / np.sqrt(head_dim)),
                               FP16, scratch, max_word=top)
                k.head_weighted_sum(t, table, STAGE, partial + 1, probs, c, FP16, LOOP_COLOR)
                k.register_into_acc(t, partial, ARG1)
                if P > 1:
                    distributed_attention.combine(
                        t, partial, c, top, pair, scratch,
                        COMBINE_COLORS[(p - 1) % 2] if p else None,
                        COMBINE_COLORS[p % 2] if p < P - 1 else None)
                if p == P - 1:
                    k.head_normalize(t, table, partial, partial + 1, scratch, c, FP16)
            table.each(t, head)
            if p == P - 1:
                t.word(RESULT, 0)
                _stamp(t, True)
            t.b.halt()
            programs[p, d] = t
            routes.append(loop_route(p, d))
            if p < P - 1:
                routes += _line([(p, d), (p + 1, d)], COMBINE_COLORS[p % 2])
    memories, _ = run_tiles(PARAMS, programs, routes=routes, dies=DIES, die=DIE)
    ends = [programs[P - 1, d] for d in range(D)]
    out = [[np.frombuffer(memories[P - 1, d][t.symbols[f"out {h}"][0]:][:2 * c], np.float16)
            for d, t in enumerate(ends)] for h in range(heads)]
    return max(_measured(memories[P - 1, d], t) for d, t in enumerate(ends)), \
        np.array([np.concatenate(pieces) for pieces in out], np.float32)


def _grid(**axes):
    names = list(axes)
    shapes = [{}]
    for name in names:
        shapes = [{**shape, name: value} for shape in shapes for value in axes[name]]
    return shapes


#: Each kernel's measurement and the shapes it is swept over (the accumulators, 1024
#: words, and the data SRAM bound them).
SWEEPS = {
    "gemv": (_gemv, [*_grid(rows=(8, 16, 40, 64, 128), cols=(8, 32, 96)),
                     *_grid(rows=(256, 512, 1000), cols=(4, 16))]),
    "gemv_int8": (_gemv_int8, [*_grid(rows=(16, 64, 100, 256), cols=(8, 32, 96)),
                               *_grid(rows=(512, 1000), cols=(4, 16))]),
    "rmsnorm": (_rmsnorm, _grid(length=(16, 64, 128, 288, 500))),
    "swiglu": (_swiglu, _grid(length=(8, 32, 64, 128, 200))),
    "residual": (_residual, _grid(length=(16, 64, 288, 500))),
    "argmax": (_argmax, _grid(length=(16, 64, 128, 512, 1000))),
    "copy": (_copy, _grid(length=(16, 64, 288, 500))),
    "widen": (_widen, _grid(length=(16, 64, 288, 500))),
    "narrow": (_narrow, _grid(length=(16, 64, 288, 500))),
    "rope": (_rope, _grid(heads=(1, 2, 4, 8), head_dim=(8, 16, 32, 64))),
    "attention": (_attention, [*_grid(context=(1, 8, 33, 100, 256), head_dim=(8, 16, 32)),
                               *_grid(context=(1, 8, 33, 64), head_dim=(48, 64)),
                               *_grid(context=(600,), head_dim=(8,))]),
    "kv_append": (_kv_append, _grid(heads=(1, 2, 4, 8), head_dim=(8, 16, 32, 64))),
    "transfer": (_transfer, [*_grid(length=(1, 16, 64, 288), hops=(1, 3), crossings=(0,)),
                             *_grid(length=(1, 16, 64, 288), hops=(1, 4), crossings=(1,)),
                             *_grid(length=(1, 16, 64, 288), hops=(5, 8), crossings=(2,))]),
    "wafer_link": (_wafer_link, _grid(length=(1, 16, 64), latency=(1, 8, 40),
                                      interval=(1, 2, 5))),
    "chain": (_chain, [{**shape, "crossings": _crossings(0, shape["tiles"] - 1)}
                       for shape in _grid(length=(1, 16, 64, 288), tiles=(2, 3, 5, 8, 12))]),
    "broadcast": (_broadcast, [{**shape, "crossings": _crossings(0, shape["tiles"])}
                               for shape in _grid(length=(1, 16, 64, 288),
                                                  tiles=(1, 2, 4, 7, 11))]),
    "combine": (_combine, [{**shape, "crossings": _crossings(0, shape["tiles"] - 1)}
                           for shape in [*_grid(length=(8, 16, 32, 64), tiles=(2, 3, 5, 8, 12),
                                                heads=(1,)),
                                         *_grid(length=(8, 64), tiles=(2, 3, 5, 8, 12),
                                                heads=(2, 8))]]),
}
assert set(SWEEPS) == set(KERNELS)


def measure(kernel, shape):
    """The measured cycles of ``kernel`` at ``shape``."""
    return SWEEPS[kernel][0](**shape)


def run(kernels=None, progress=print):
    """Sweep ``kernels`` (default: all) and fit each: a :class:`host.costs.Costs`."""
    lanes, models = PARAMS.float_width, {}
    for kernel in kernels or SWEEPS:
        _, shapes = SWEEPS[kernel]
        points = [{"shape": shape, "cycles": measure(kernel, shape)} for shape in shapes]
        models[kernel] = CostModel.fit(kernel, lanes, points)
        if progress:
            progress(f"{kernel}: {len(points)} points, worst error "
                     f"{models[kernel].worst_error:.1%}")
    return Costs(models, PARAMS.to_dict())
