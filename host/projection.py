"""``tessera project``: a model at the seed's scale, timed from the kernels' measured costs.

The wafer is WSE-3's grid of 762 x 1172 cores (84 dies of about 109 x 98), each
core tessera's float tile (:data:`host.costs.PARAMS`: 48 KiB of SRAM, 44 KiB of
it data, 1024 fp32 accumulators, 8 fp16 lanes) at 1.1 GHz.  The layers are
pipelined over regions, one after another, as the mapper places them; at this scale a
matrix does not fit a tile, so each product ``y = W x`` (``W`` of ``M x N``, 16-bit)
takes a block of ``R x C`` tiles, each with an ``M/R x N/C`` piece:

- the ``N/C`` elements of x that a column of tiles needs are multicast down it
  (``broadcast``);
- each tile runs the streamed product of its piece (``gemv``);
- the ``M/R`` partial sums of a row of tiles meet along a pipelined chain
  (``chain``), and y ends up in ``R`` pieces at the block's edge.

The block's shape is the fastest that fits the tiles given it (:func:`product`);
each block gets the same multiple of the tiles its weights need, the largest that
the wafer holds beside the KV caches, and the attention the tiles left over.  Products that share an input (q, k and v; the
feed-forward's gate and up) run side by side.  Between blocks the pieces of a vector
move a block's side in parallel (``transfer``).  RMSNorm reduces its sum of squares
along a chain and multicasts the scale back.

Attention keeps each user's KV cache beside it: a KV head's keys and values over a
grid of tiles, positions down one axis and head dimensions across the other
(WaferLLM's split, :mod:`host.kernels.distributed_attention`).  For each of the KV
head's query heads in turn (:func:`group_cycles`), each tile runs the measured
single-tile head (``attention``) on its positions and dimensions; the partial scores
meet along the dimensions (``chain``) and go back (``broadcast``); the partials of the
softmax (maximum, sum, weighted sums) meet along the positions in a chain that
rescales them by the running maximum (``combine``).  That distributed attention, and
the blocked products, are compositions of measured kernels that the mapper does not
build (its regions are the single tiles and rows of slices that
:mod:`host.pipeline_timing` times); ``tessera project --validate`` simulates both on
small grids against :func:`group_cycles` and :func:`block_cycles`.

One user's token passes every region in turn: its cycles are the sum of the
regions', the hops between them and the wafer links.  ``U`` users in flight take
the regions in turn, as :class:`host.kernels.stages.Schedule` has them do: each
user's token still takes the sum, and the pipeline starts a token every slowest
region's cycles, so the aggregate rate is ``min(U / sum, 1 / slowest)``.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from host.costs import PARAMS, Costs
from host.kernels.half import EXP_CHUNK
from host.model import ModelConfig, ModelError
from host.wafer import wafer_link_timing
from rtl.isa import Dtype, element_bytes

__all__ = ["MODELS", "WSE3", "ProjectionError", "Wafer", "load_model", "project",
           "product", "block_cycles", "group_cycles", "COSTS_FILE", "DEFAULT_CONTEXT"]

COSTS_FILE = Path(__file__).parent / "models" / "kernel_costs.json"
CLOCK_HZ = 1.1e9
#: The positions of the KV caches when ``--context`` does not say.
DEFAULT_CONTEXT = 4096
#: Published architecture hyperparameters (Meta's model cards).
MODELS = {
    "llama3.1-8b": dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, hidden_dim=14336,
                        vocab_size=128256),
    "llama3.1-70b": dict(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, hidden_dim=28672,
                         vocab_size=128256),
}
#: Bytes of an element of the weights and the KV cache: fp16.
ELEMENT = element_bytes(Dtype.FP16)


class ProjectionError(ValueError):
    """A model or wafer the projection cannot take; the message says why."""


@dataclass(frozen=True)
class Wafer:
    width: int
    height: int
    die: tuple                   # tiles of a die, for the die crossings along a path

    @property
    def tiles(self):
        return self.width * self.height


#: WSE-3 as the Cerebras SDK addresses it: 762 x 1172 PEs, 7 x 12 dies.
WSE3 = Wafer(762, 1172, (109, 98))


def load_model(name):
    """A model's :class:`host.model.ModelConfig`: a name of :data:`MODELS`, or a JSON file of
    the same fields."""
    if name in MODELS:
        fields = MODELS[name]
    else:
        path = Path(name)
        if not path.is_file():
            raise ProjectionError(f"unknown model {name!r}: give {', '.join(MODELS)} or a "
                                  f"JSON file of {', '.join(MODELS['llama3.1-8b'])}")
        try:
            fields = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ProjectionError(f"{name}: not a JSON model configuration ({error})") \
                from None
        if not isinstance(fields, dict):
            raise ProjectionError(f"{name}: a model configuration is a JSON object")
        wanted = set(MODELS["llama3.1-8b"])
        if set(fields) != wanted:
            missing, extra = wanted - set(fields), set(fields) - wanted
            raise ProjectionError(f"{name}: " + "; ".join(
                [f"missing {', '.join(sorted(missing))}"] * bool(missing)
                + [f"unknown {', '.join(sorted(extra))}"] * bool(extra)))
    try:
        return ModelConfig(**fields, seq_len=1)
    except (ModelError, TypeError) as error:
        raise ProjectionError(f"{name}: {error}") from None


def _crossings(wafer, hops):
    return hops // min(wafer.die)


def _ceil(a, b):
    return -(-a // b)


@dataclass
class Block:
    """A product's tiles and cycles."""
    rows: int
    cols: int
    grid: tuple                  # (R, C)
    cycles: float

    @property
    def tiles(self):
        return self.grid[0] * self.grid[1]

    @property
    def piece(self):
        """The elements of y each of its ``R`` rows of tiles ends with."""
        return _ceil(self.rows, self.grid[0])


def _grid_options(limit):
    """Candidate tile counts along one side: every small one, then geometric steps."""
    values, value = set(range(1, min(limit, 64) + 1)), 64.0
    while value < limit:
        value *= 1.08
        values.add(min(limit, int(value)))
    return sorted(values)


def block_cycles(costs, wafer, rows, cols, grid):
    """A ``rows x cols`` product's cycles on a block of ``grid`` = (R, C) tiles: x's pieces
    multicast down the columns, the pieces' GEMVs, the chains along the rows."""
    R, C = grid
    r, c = _ceil(rows, R), _ceil(cols, C)
    return (costs.broadcast(length=c, tiles=R, crossings=_crossings(wafer, R))
            + costs.gemv(rows=r, cols=c)
            + costs.chain(length=r, tiles=C, crossings=_crossings(wafer, C - 1)))


def product(costs, wafer, rows, cols, tiles, budget=None, accumulators=None):
    """The fastest :class:`Block` of at most ``tiles`` tiles for a ``rows x cols`` product
    whose pieces (and their share of x) fit a tile; None if none fits."""
    budget = PARAMS.data_bytes if budget is None else budget
    accumulators = PARAMS.acc_words if accumulators is None else accumulators
    best = None
    for R in _grid_options(min(rows, tiles)):
        r = _ceil(rows, R)
        C = min(cols, tiles // R)
        if r > accumulators or C < 1:
            continue
        c = _ceil(cols, C)
        if ELEMENT * (r * c + c) > budget:
            continue
        cycles = block_cycles(costs, wafer, rows, cols, (R, C))
        if best is None or cycles < best.cycles:
            best = Block(rows, cols, (R, C), cycles)
    return best


def _tiles_for(rows, cols):
    """The fewest tiles whose data SRAM holds a ``rows x cols`` matrix at 16 bits."""
    return _ceil(ELEMENT * rows * cols, PARAMS.data_bytes)


def _between(costs, wafer, block, piece):
    """The pieces of a vector moving from one block to the next, side by side."""
    side = math.isqrt(block.tiles) + 1
    return costs.transfer(length=piece, hops=side, crossings=_crossings(wafer, side))


def _norm(costs, wafer, dim, pieces):
    """RMSNorm of a vector in ``pieces`` tiles: local squares and scaling, the sum along a
    chain and the scale multicast back."""
    return (costs.rmsnorm(length=_ceil(dim, pieces))
            + costs.chain(length=1, tiles=pieces, crossings=_crossings(wafer, pieces))
            + costs.broadcast(length=1, tiles=pieces, crossings=_crossings(wafer, pieces)))


@dataclass
class Attention:
    """One layer's attention for one user at ``context`` positions: a KV head's cache on
    ``grid`` (positions, dimensions) tiles."""
    grid: tuple
    tiles: int                   # all KV heads
    cycles: float


def group_cycles(costs, wafer, positions, dims, grid, heads):
    """The cycles of a KV head's ``heads`` query heads over its cache on ``grid`` = (P, D)
    tiles, each with ``positions`` positions and ``dims`` dimensions, one head after
    another: for each, the single-tile head on each share, and with D > 1 the partial
    scores' chain along the D tiles and their multicast back; with P > 1 the chain that
    combines the partials along the P tiles, whose length the heads pay once
    (:func:`host.bench.kernel.distributed_head` simulates it)."""
    P, D = grid
    head = costs.attention(context=positions, head_dim=dims)
    if D > 1:
        along = _crossings(wafer, D - 1)
        head += (costs.chain(length=positions, tiles=D, crossings=along)
                 + costs.broadcast(length=positions, tiles=D - 1, crossings=along))
    cycles = heads * head
    if P > 1:
        cycles += costs.combine(length=dims, tiles=P, heads=heads,
                                crossings=_crossings(wafer, P - 1))
    return cycles


def _attention(costs, wafer, c, context, most_tiles=None):
    """The fastest :class:`Attention` on at most ``most_tiles`` tiles (None: the fewest its
    KV cache needs); the single-tile head holds at most 64 dimensions in its code."""
    hd, group, best = c.head_dim, c.n_heads // c.n_kv_heads, None
    for split in [n for n in range(1, hd + 1) if hd % n == 0 and hd // n <= 64]:
        dims = hd // split
        # As host.bench.kernel.distributed_head lays a tile out.  Data: a position's key,
        # value and probability; each head's q, output and four-word entry in the head
        # table; two words (the table's pointer, the running maximum) and room to align.
        # Accumulators: a position's score; q, the partial output and its sum, exp's
        # chunks and a pair.
        heads_bytes = group * (2 * ELEMENT * dims + 16) + 8 + 8
        most = min((PARAMS.data_bytes - heads_bytes) // (ELEMENT * (2 * dims + 1)),
                   PARAMS.acc_words - (2 * dims + 1 + 2 * EXP_CHUNK + 2))
        if most < 1:
            continue
        fewest = _ceil(context, most)
        room = fewest if most_tiles is None else most_tiles // (split * c.n_kv_heads)
        for positions_tiles in _grid_options(min(context, room)):
            if positions_tiles < fewest:
                continue
            positions = _ceil(context, positions_tiles)
            cycles = (costs.broadcast(length=group * dims, tiles=positions_tiles,
                                      crossings=_crossings(wafer, positions_tiles))
                      + costs.kv_append(heads=1, head_dim=dims)
                      + group_cycles(costs, wafer, positions, dims, (positions_tiles, split),
                                     group))
            if best is None or cycles < best.cycles:
                best = Attention((positions_tiles, split),
                                 positions_tiles * split * c.n_kv_heads, cycles)
    return best


@dataclass
class Layer:
    """A decoder layer's regions: the blocks, the attention, and the cycles of each part."""
    blocks: dict                 # name -> Block
    attention: Attention
    parts: dict = field(default_factory=dict)   # what takes the cycles

    @property
    def cycles(self):
        return sum(self.parts.values())

    def tiles(self, users):
        return sum(b.tiles for b in self.blocks.values()) + users * self.attention.tiles


def _layer(costs, wafer, c, context, spread, attention_tiles=None):
    """A decoder layer's blocks with ``spread`` times the tiles their weights need (None
    if a block's pieces do not fit so few: their share of x, and rounding), and its
    attention on at most ``attention_tiles`` (None: the fewest)."""
    shapes = {"wq": (c.dim, c.dim), "wk": (c.kv_dim, c.dim), "wv": (c.kv_dim, c.dim),
              "wo": (c.dim, c.dim), "w1": (c.hidden_dim, c.dim),
              "w3": (c.hidden_dim, c.dim), "w2": (c.dim, c.hidden_dim)}
    blocks = {}
    for name, (rows, cols) in shapes.items():
        blocks[name] = product(costs, wafer, rows, cols, int(spread * _tiles_for(rows, cols)))
        if blocks[name] is None:
            return None
    attention = _attention(costs, wafer, c, context, attention_tiles)
    if attention is None:
        raise ProjectionError(f"a KV head of {c.head_dim} dimensions fits no grid of tiles")
    b, h = blocks, blocks["w2"].grid[0]          # the residual's pieces: w2's rows of tiles
    layer = Layer(blocks, attention)
    layer.parts = {
        "attention norm": _norm(costs, wafer, c.dim, h),
        "q, k, v": max(b[n].cycles for n in ("wq", "wk", "wv")) + _between(costs, wafer,
                                                                       b["wq"], b["wq"].piece),
        "rope": costs.rope(heads=_ceil(c.n_heads, b["wq"].grid[0]), head_dim=c.head_dim),
        "attention": attention.cycles,
        "wo": b["wo"].cycles + _between(costs, wafer, b["wo"], b["wo"].piece),
        "residuals": 2 * costs.residual(length=b["wo"].piece),
        "ffn norm": _norm(costs, wafer, c.dim, b["wo"].grid[0]),
        "w1, w3": max(b["w1"].cycles, b["w3"].cycles),
        "swiglu": costs.swiglu(length=b["w1"].piece)
        + _between(costs, wafer, b["w1"], b["w1"].piece),
        "w2": b["w2"].cycles + _between(costs, wafer, b["w2"], b["w2"].piece),
    }
    return layer


def _ends(costs, wafer, c, spread):
    """The embedding and the classifier: (their tiles, the lookup's cycles, the
    classifier's), or None if the classifier's pieces do not fit so few tiles."""
    embedding = int(spread * _tiles_for(c.vocab_size, c.dim))
    pieces = min(c.dim, embedding)               # each tile holds a column piece of rows
    lookup = costs.widen(length=_ceil(c.dim, pieces)) + costs.transfer(
        length=_ceil(c.dim, pieces), hops=math.isqrt(embedding) + 1,
        crossings=_crossings(wafer, math.isqrt(embedding) + 1))
    classifier = product(costs, wafer, c.vocab_size, c.dim, embedding)
    if classifier is None:
        return None
    rows = classifier.grid[0]
    pick = (_norm(costs, wafer, c.dim, pieces) + classifier.cycles
            + costs.argmax(length=classifier.piece)
            + costs.chain(length=2, tiles=rows, crossings=_crossings(wafer, rows)))
    return embedding + classifier.tiles, lookup, pick


#: The multiples of their weights' fewest tiles that the blocks are tried with.
SPREADS = (1.0, 1.05, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0,
           24.0, 32.0, 48.0, 64.0)


def _kv_bytes(c, context, users):
    return 2 * c.n_layers * c.kv_dim * context * users * ELEMENT


def project(config, costs=None, wafer=WSE3, wafers=1, users=1, context=DEFAULT_CONTEXT,
            clock_hz=CLOCK_HZ):
    """The projection's report (a dict) for ``config`` on ``wafers`` of ``wafer`` with
    ``users`` in flight at ``context`` positions each."""
    costs = costs or Costs.load(COSTS_FILE)
    c = config
    if wafers < 1 or users < 1 or context < 1:
        raise ProjectionError(f"--wafers, --users and --context must be at least 1, not "
                              f"{wafers}, {users} and {context}")
    if c.n_layers < wafers:
        raise ProjectionError(f"{wafers} wafers for {c.n_layers} layers: each wafer needs a "
                              f"layer")
    total = wafer.tiles * wafers
    weight_bytes = ELEMENT * (c.n_layers * (2 * c.dim * c.dim + 2 * c.kv_dim * c.dim
                                            + 3 * c.hidden_dim * c.dim)
                              + 2 * c.vocab_size * c.dim)
    capacity = total * PARAMS.data_bytes
    kv_bytes = _kv_bytes(c, context, users)
    if weight_bytes + kv_bytes > capacity:
        need = weight_bytes + kv_bytes
        what = (f"its weights ({weight_bytes / 1e9:.1f} GB)" if weight_bytes > capacity
                else f"its weights ({weight_bytes / 1e9:.1f} GB) and {users} users' KV "
                     f"caches at {context} positions ({kv_bytes / 1e9:.1f} GB)")
        raise ProjectionError(f"{what} do not fit the data SRAM of {wafers} wafer(s) "
                              f"({capacity / 1e9:.1f} GB): {need / capacity:.2f}x too "
                              f"much")
    # The largest spread whose placement fits: the same multiple for every block.
    placed = None
    for spread in SPREADS:
        layer = _layer(costs, wafer, c, context, spread)
        end = _ends(costs, wafer, c, spread)
        if layer is None or end is None:
            continue
        ends, lookup, pick = end
        used = c.n_layers * layer.tiles(users) + ends
        if used > total:
            break
        placed = (spread, layer, ends, lookup, pick, used)
    if placed is None:
        raise ProjectionError(f"{users} users' KV caches at {context} positions and the "
                              f"weights need more tiles than {wafers} wafer(s) have "
                              f"({total:,}): the KV caches' tiles are not full")
    spread, layer, ends, lookup, pick, used = placed
    # The tiles left over go to the attention, which the KV caches' fewest leave slow.
    spare = (total - used) // (c.n_layers * users) + layer.attention.tiles
    layer = _layer(costs, wafer, c, context, spread, spare)
    used = c.n_layers * layer.tiles(users) + ends
    per_wafer = _ceil(c.n_layers, wafers)
    # Between wafers: the residual's pieces share the links of one wafer edge.
    links = min(wafer.width, layer.blocks["w2"].grid[0])
    latency, interval = wafer_link_timing(links, clock_hz)
    piece = _ceil(c.dim, links)
    crossing = costs.wafer_link(length=piece, latency=latency, interval=interval) - \
        costs.wafer_link(length=piece, latency=1, interval=1)
    back = costs.wafer_link(length=1, latency=latency, interval=interval) - \
        costs.wafer_link(length=1, latency=1, interval=1)
    crossings = (wafers - 1) * crossing + (wafers - 1) * back   # the token goes back
    loop = costs.transfer(length=1, hops=wafer.width + wafer.height,
                          crossings=_crossings(wafer, wafer.width + wafer.height))
    token = c.n_layers * layer.cycles + lookup + pick + crossings + loop
    slowest = max(layer.parts["attention"] + sum(v for k, v in layer.parts.items()
                                                  if k in _ATTENTION_REGION),
                  sum(v for k, v in layer.parts.items() if k not in _ATTENTION_REGION
                      and k != "attention"), pick)
    per_user = max(token, users * slowest)
    weight_tiles = used - c.n_layers * users * layer.attention.tiles
    return {
        "model": {name: getattr(c, name) for name in MODELS["llama3.1-8b"]},
        "wafer": {"tiles": wafer.tiles, "width": wafer.width, "height": wafer.height,
                  "wafers": wafers, "tile": PARAMS.to_dict()},
        "users": users, "context": context, "clock_ghz": clock_hz / 1e9,
        "weight_bytes": weight_bytes, "kv_cache_bytes": kv_bytes,
        "sram_bytes": capacity, "fits": True,
        "tiles_per_layer": {"by_memory": sum(
            _tiles_for(b.rows, b.cols) for b in layer.blocks.values()),
            "by_compute": sum(b.tiles for b in layer.blocks.values()),
            "kv_cache_per_user": layer.attention.tiles},
        "spread": spread, "tiles_used": used, "weight_tiles": weight_tiles,
        "blocks": {name: {"rows": b.rows, "cols": b.cols, "grid": list(b.grid),
                          "cycles": b.cycles} for name, b in layer.blocks.items()},
        "attention_grid": list(layer.attention.grid),
        "layer_cycles": layer.parts, "layer_total_cycles": layer.cycles,
        "layers_per_wafer": per_wafer,
        "embedding_cycles": lookup, "classifier_cycles": pick,
        "wafer_crossing_cycles_per_token": crossings, "token_loop_cycles": loop,
        "wafer_link": {"links": links, "latency_cycles": latency, "interval_cycles": interval},
        "cycles_per_token": token,
        "tokens_per_second": clock_hz / token,
        "per_user_cycles_per_token": per_user,
        "aggregate_tokens_per_second": users * clock_hz / per_user,
        "slowest_region_cycles": slowest,
        "weight_bandwidth_bound_cycles": weight_bytes / (weight_tiles * PARAMS.lanes),
    }


#: The layer's parts in its attention region (the rest are in its feed-forward one).
_ATTENTION_REGION = ("attention norm", "q, k, v", "rope", "wo")


#: The seed's figures: (wafers, tokens/s for one user) at 16-bit weights.
SEED = {"llama3.1-8b": (1, 1800), "llama3.1-70b": (4, 450)}


def users_curve(config, costs, wafers=1, context=DEFAULT_CONTEXT):
    """``[(users, one user's tokens/s, all users' tokens/s)]`` for U = 1 up to the
    pipeline's regions (two a layer and the classifier's), or as many as the KV caches
    allow."""
    points = []
    for users in range(1, 2 * config.n_layers + 2):
        try:
            report = project(config, costs, wafers=wafers, users=users, context=context)
        except ProjectionError:
            if not points:
                raise
            break
        points.append((users, CLOCK_HZ / report["per_user_cycles_per_token"],
                       report["aggregate_tokens_per_second"]))
    return points


def plot(curve, name, path):
    """The seed's chart, from the projection: all users' tokens/s against one user's."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, chart = pyplot.subplots(figsize=(6, 4), dpi=120)
    chart.plot([p[1] for p in curve], [p[2] for p in curve], "o-", markersize=3,
               label=f"tessera projection, U = 1..{curve[-1][0]}")
    if name in SEED:
        wafers, rate = SEED[name]
        chart.plot([rate], [rate], "*", markersize=12, color="crimson",
                   label=f"the seed: {rate:,} tokens/s, one user, {wafers} wafer(s)")
    chart.set_xlabel("tokens/s per user (1.1 GHz)")
    chart.set_ylabel("tokens/s, all users")
    chart.set_title(f"{name}: throughput against one user's speed")
    chart.set_xlim(left=0)
    chart.set_ylim(bottom=0)
    chart.grid(alpha=0.3)
    chart.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)


def summary(report):
    """The report in a few lines, with what takes a token's cycles."""
    c, name = report["model"], report.get("model_name", "the model")
    layers, parts = c["n_layers"], report["layer_cycles"]
    token = report["cycles_per_token"]
    shares = [(f"{part} (x{layers})", layers * cycles) for part, cycles in parts.items()]
    shares += [("classifier", report["classifier_cycles"]),
               ("wafer links", report["wafer_crossing_cycles_per_token"]),
               ("token loop and embedding", report["token_loop_cycles"]
                + report["embedding_cycles"])]
    shares.sort(key=lambda item: -item[1])
    t = report["tiles_per_layer"]
    lines = [
        f"{name}: {layers} layers, dim {c['dim']}, on {report['wafer']['wafers']} wafer(s) of "
        f"{report['wafer']['width']}x{report['wafer']['height']} tiles, {report['users']} "
        f"user(s) at {report['context']} positions",
        f"weights {report['weight_bytes'] / 1e9:.1f} GB + KV caches "
        f"{report['kv_cache_bytes'] / 1e9:.1f} GB in {report['sram_bytes'] / 1e9:.1f} GB of "
        f"data SRAM; tiles a layer: {t['by_memory']:,} by memory, {t['by_compute']:,} by "
        f"compute, + {t['kv_cache_per_user']:,} a user's KV cache; {report['tiles_used']:,} "
        f"tiles in use",
        f"one user: {token:,.0f} cycles a token, {report['tokens_per_second']:,.0f} tokens/s at "
        f"{report['clock_ghz']:g} GHz (the weights' bandwidth bound: "
        f"{report['weight_bandwidth_bound_cycles']:,.0f} cycles)",
        f"{report['users']} user(s) in flight: {report['aggregate_tokens_per_second']:,.0f} "
        f"tokens/s in all (the slowest region {report['slowest_region_cycles']:,.0f} cycles a "
        f"token)",
        "where a token's cycles go: " + "; ".join(
            f"{part} {cycles / token:.0%}" for part, cycles in shares[:5] if cycles > 0),
    ]
    if report["wafer"]["wafers"] > 1:
        links = report["wafer_crossing_cycles_per_token"]
        lines.append(f"the links between wafers: {links:,.0f} cycles a token "
                     f"({links / token:.1%}), at {report['wafer_link']['latency_cycles']:,} "
                     f"cycles of latency")
    if name in SEED and report["users"] == 1:
        wafers, rate = SEED[name]
        ratio = report["tokens_per_second"] / rate
        lines.append(f"the seed: {rate:,} tokens/s on {wafers} wafer(s); projected "
                     f"{ratio:.2f}x of it" + ("" if 0.5 <= ratio <= 2 else
                                             f", outside 2x: {shares[0][0]} sets the time"))
    return "\n".join(lines)
