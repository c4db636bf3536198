"""The mapper: the tiny LLM as a pipeline of wafer regions.

Each layer gets a region of tiles sized by its memory: its attention block
(weights ``wq wk wv wo``, the RoPE tables, the softmax table and the layer's
whole KV cache) on one tile, or on two in a row when it does not fit one
(RMSNorm, ``wq wk wv`` and RoPE on the first; the KV cache, attention and ``wo``
on the second; for a 16-bit float model the second may be several tiles side by
side, each with some of the KV heads, their cache and their columns of ``wo``,
``head_tiles``), and its feed-forward block (``w1 w3 w2``, the SiLU table) on as
few tiles as fit its slices: each slice takes some hidden units (their rows of
``w1`` and ``w3``, their columns of ``w2``), all slices work side by side on the
same input, and their partial sums meet in the last (so more slices also mean
fewer cycles; ``ffn_tiles`` asks for a number).  Layer 0's first tile also
looks the tokens up in the embedding table (or, when the table does not fit
there, embedding tiles before it do, a chain that shares its rows), and the
classifier ends the pipeline, on as few tiles as fit its slices of rows (side
by side on the same input, the running maximum passed from slice to slice).
The stages
follow a snake through the wafer (east along even rows, west along odd ones),
so consecutive regions are neighbours and every hop of the residual stream is
one link.  The classifier sends each generated token back to the first tile
as an XY-addressed wavelet, closing the token loop on the wafer; the first
tile, on the west edge, also echoes it out of the wafer to the host.

Colors: the residual stream alternates static colors 0 and 1 from link to link
(a tile receives on one and sends on the other); static color 2 carries tokens
out to the host; static color 3 goes from each tile's ramp back to it, for the
streamed GEMV (:func:`host.kernels.vector.gemv`); static colors 4 and 5,
alternating, carry the partial sums (or the running maximum) from slice to slice; generated tokens go
back to the first tile on the first XY-addressed color.

:func:`plan` checks that everything fits: a tile per stage, each stage's
program, data and accumulators in its tile, the colors, no two routes for one
color at a router, and no cycle among the static channels.  A failure raises
:class:`MapError` naming the layer and the shortfall.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

from host.kernels import stages
from host.kernels.program import FitError
from rtl.wavelet import Dir, pack_route_write

__all__ = ["Unit", "MapError", "TooFewTiles", "Stage", "Plan", "plan", "STREAM_COLORS",
           "HOST_COLOR", "LOOP_COLOR", "REDUCE_COLORS"]

STREAM_COLORS = (0, 1)
HOST_COLOR = 2
LOOP_COLOR = 3
REDUCE_COLORS = (4, 5)


class MapError(ValueError):
    """The model does not fit the wafer; the message says where and by how much."""


class TooFewTiles(MapError):
    """Every stage fits a tile, but the wafer has too few tiles for the pipeline."""


class Unit(NamedTuple):
    """What one tile runs: a stage ``kind`` of ``layer``, slice ``part`` of ``parts``;
    ``embeds``: it also looks the tokens up (layer 0's first tile)."""
    kind: str
    layer: int | None
    part: int = 0
    parts: int = 1
    embeds: bool = False


@dataclass
class Stage:
    name: str
    kind: str                    # a Unit's kind
    layer: int | None
    tile: tuple
    code: list
    data: bytes
    log: int                     # data address of the stage's entry records (stages.read_log;
                                 # None on a running wafer)
    weight_bytes: int
    boundary: int = 0            # its step along the stream (the slices of a step share it)
    unit: Unit = None            # what it runs

@dataclass
class Plan:
    shape: object                # host.wafer.WaferShape
    stages: list
    routes: list                 # (x, y, color, accept Dir, [output Dir])
    token_color: int
    host_color: int
    schedule: object             # host.kernels.stages.Schedule (or Slots, a running wafer)
    token_bits: int              # of a generated token's tag (host.kernels.stages.untag)
    unused: list = field(default_factory=list)
    wafers: int = 1              # the shape's die rows split evenly among them
    request_color: int = None    # a running wafer's (``serving``): requests to the first tile

    @property
    def steps(self):
        """Pipeline stages: the steps along the stream."""
        return self.stages[-1].boundary + 1

    def wafer_of_die_row(self, die_y):
        return die_y // (self.shape.dies_y // self.wafers)

    @property
    def embed_tile(self):
        return self.stages[0].tile

    def route_words(self, params):
        return [(x, y, pack_route_write(params, color, 0, accept, outputs, True))
                for x, y, color, accept, outputs in self.routes]

    def labels(self):
        """Each used tile's short label in :meth:`map_text`: ``{(x, y): "A0"}``."""
        return {stage.tile: _label(stage) for stage in self.stages}

    def map_text(self):
        """The placement as a small map: one cell per tile, ``.`` for unused ones."""
        labels = self.labels()
        width = max(len(label) for label in labels.values())
        rows, wafer_rows = [], self.shape.height // self.wafers
        for y in range(self.shape.height):
            if y and y % wafer_rows == 0:
                rows.append(f"-- wafer {y // wafer_rows}")
            rows.append(" ".join(labels.get((x, y), ".").rjust(width)
                                 for x in range(self.shape.width)))
        key = ("A<n> attention of layer n (Q<n> its q, k and v when it takes two tiles), "
               "F<n> feed-forward of layer n, C classifier, E embedding (when layer 0's first "
               "tile has no room for it); the stream snakes from the first tile (which also "
               "embeds the tokens) to C")
        return "\n".join(rows + [key])


def _label(stage):
    return {"embedding": "E", "classifier": "C"}.get(stage.kind) or \
        f"{_LETTERS[stage.kind]}{stage.layer}"


_LETTERS = {"attention": "A", "split attention": "A", "qkv": "Q", "feed-forward": "F"}


def snake(width, height):
    """Tile coordinates in pipeline order."""
    for y in range(height):
        for x in (range(width) if y % 2 == 0 else range(width - 1, -1, -1)):
            yield x, y


def _direction(a, b):
    step = (b[0] - a[0], b[1] - a[1])
    return next(d for d in Dir if d.step == step and d != Dir.RAMP)


def plan(model, shape, prompts, counts, split_attention=False, ffn_tiles=None,
         serial_prefill=False, wafers=1, head_tiles=None, serving=False, stop_token=None):
    """The plan of a generation on the wafer ``shape`` (:class:`host.wafer.WaferShape`):
    for each user ``u``, ``counts[u]`` tokens after the prompt ``prompts[u]`` (tokens),
    users in flight side by side, each with its own KV cache.

    A layer's attention block takes two tiles (:func:`host.kernels.stages.qkv_stage`
    and :func:`host.kernels.stages.split_attention_stage`) when it does not fit in one,
    or everywhere with ``split_attention``; failing that, or with ``head_tiles``, the
    second is that many tiles, each with some of the KV heads (16-bit float models).  Its feed-forward block takes the fewest
    tiles whose slices fit (:func:`host.kernels.stages.ffn_stage`), or ``ffn_tiles``.
    ``serial_prefill``: see :class:`host.kernels.stages.Schedule`.

    With ``wafers`` > 1 the shape's die rows are that many wafers, one above the other,
    and the layers are shared out among them in order, whole (an embedding tile with the
    first, the classifier with the last): each wafer's stages start at its first tile
    along the snake, and the stream passes through the unused rest of the wafer before,
    so only the residual stream and the generated tokens cross between wafers.

    ``serving``: the plan of a running wafer (:class:`host.kernels.stages.Slots`) with a
    slot for each of ``prompts``, which are empty (``counts`` is not used): requests join
    and leave while it runs, on the second XY-addressed color (:attr:`Plan.request_color`),
    each ending at its ``max_tokens`` or at ``stop_token`` (None: none)."""
    layers, params = stages.layers_of(model), shape.params
    c = layers.config
    if params.first_xy_color < 6 or params.xy_colors < 1:
        raise MapError(f"the pipeline needs 6 static colors and 1 XY-addressed color; the "
                       f"tiles have {params.first_xy_color} static and {params.xy_colors} "
                       f"XY-addressed")
    if ffn_tiles is not None and (ffn_tiles < 1 or c.hidden_dim % ffn_tiles):
        raise MapError(f"the feed-forward block's {c.hidden_dim} hidden units do not split "
                       f"evenly over {ffn_tiles} tiles")
    if head_tiles is not None and head_tiles not in layers.attention_parts:
        raise MapError(f"the attention's {c.n_kv_heads} KV heads do not split over {head_tiles} "
                       f"tiles here (it splits over {', '.join(map(str, layers.attention_parts))})")
    if wafers < 1 or shape.dies_y % wafers:
        raise MapError(f"{shape.dies_y} rows of dies do not split into {wafers} wafers")
    if wafers > c.n_layers:
        raise MapError(f"{wafers} wafers for a {c.n_layers}-layer model: each wafer needs a "
                       f"layer")
    if serving and params.xy_colors < 2:
        raise MapError(f"a running wafer needs 2 XY-addressed colors (the generated tokens and "
                       f"the requests); the tiles have {params.xy_colors}")
    tiles = list(snake(shape.width, shape.height))
    token_color = params.first_xy_color
    request_color = token_color + 1 if serving else None
    schedule = (stages.Slots(len(prompts), c.seq_len, stop_token) if serving else
                stages.Schedule(tuple(len(p) for p in prompts), tuple(counts), c.seq_len,
                                serial_prefill))
    token_bits, max_users = stages.tag_bits(c.vocab_size)
    if schedule.users > max_users:
        raise MapError(f"{schedule.users} users: a generated token's user tag has room for "
                       f"{max_users}")

    def build(unit, boundary=0, schedule=schedule):
        kind, layer, part, parts, embeds = unit
        links = stages.Links(color_in=STREAM_COLORS[(boundary - 1) % 2],
                             color_out=STREAM_COLORS[boundary % 2], token_color=token_color,
                             host_color=HOST_COLOR, embed_tile=tiles[0],
                             token_bits=token_bits, loop_color=LOOP_COLOR,
                             reduce_colors=REDUCE_COLORS, request_color=request_color)
        if kind == "embedding":
            return stages.embedding_stage(params, layers, links, schedule, prompts, part, parts)
        if kind == "classifier":
            return stages.classifier_stage(params, layers, links, schedule, part, parts)
        if kind == "feed-forward":
            return stages.ffn_stage(params, layers, layer, links, schedule, part, parts)
        if kind == "split attention":
            return stages.split_attention_stage(params, layers, layer, links, schedule, part,
                                                parts)
        if embeds:
            return _STAGES[kind](params, layers, layer, links, schedule, prompts)
        return _STAGES[kind](params, layers, layer, links, schedule)

    def shortfall(*units, schedule=schedule):
        """The first of ``units`` that does not fit its tile, as a message; or None."""
        for unit in units:
            try:
                build(unit, schedule=schedule)[0].finish()
            except FitError as error:
                return str(error)
        return None

    def users_that_fit(units):
        """How many users' KV caches ``units`` hold (each user as the first)."""
        for users in range(schedule.users - 1, 0, -1):
            if shortfall(*units, schedule=schedule.first(users)) is None:
                return users
        return 0

    def slices(kind, counts, layer=None):
        """The fewest slices (of the ``counts`` tried) of a ``kind`` whose every slice fits
        its tile, each a Unit."""
        problems = []
        for n in counts:
            units = [Unit(kind, layer, i, n) for i in range(n)]
            problems.append(shortfall(*units))
            if problems[-1] is None:
                return units
        raise MapError(f"{problems[0]}; and no split into up to {counts[-1]} tiles fits")

    # Steps along the stream; the tiles of one step work side by side on the same input.
    steps = []
    for layer in range(c.n_layers):
        whole = [[Unit("attention", layer)]]
        split = [[[Unit("qkv", layer)], [Unit("split attention", layer, i, n) for i in range(n)]]
                 for n in layers.attention_parts]
        options = ([split[layers.attention_parts.index(head_tiles)]] if head_tiles
                   else split if split_attention else [whole] + split)
        if layer == 0:      # the first tile also embeds; failing that, tiles of their own
            embeds = [[[option[0][0]._replace(embeds=True)]] + option[1:] for option in options]
            options = embeds + [[[unit] for unit in slices("embedding",
                                                           _divisors(c.vocab_size))]
                                + option for option in options]
        for option in options:
            units = [unit for step in option for unit in step]
            if (problem := shortfall(*units)) is None:
                steps += option
                break
        else:
            if schedule.users > 1 and (most := users_that_fit(units)):
                raise MapError(f"{schedule.users} users need more KV cache than layer "
                               f"{layer}'s attention tiles hold: {most} fit")
            raise MapError(problem)
        counts = [ffn_tiles] if ffn_tiles else [n for n in range(1, c.hidden_dim + 1)
                                                if c.hidden_dim % n == 0]
        steps.append(slices("feed-forward", counts, layer))
    steps.append(slices("classifier", _divisors(c.vocab_size)))
    if not serving:
        schedule = dataclasses.replace(schedule, depth=len(steps))
    units = [(unit, boundary) for boundary, step in enumerate(steps) for unit in step]
    places = _places(units, tiles, shape, wafers, c.n_layers)
    result = []
    for index, (unit, boundary) in zip(places, units):
        try:
            program, log = build(unit, boundary, schedule)
            code, data = program.finish()
        except FitError as error:
            raise MapError(str(error)) from None
        weights = sum(size for name, (_, size) in program.symbols.items()
                      if name.split()[0] in WEIGHTS or name.endswith("norm"))
        result.append(Stage(program.name, unit.kind, unit.layer, tiles[index], code, data, log,
                            weights, boundary, unit))
    routes = _routes(result, tiles)
    _check_routes(routes)
    return Plan(shape, result, routes, token_color, HOST_COLOR, schedule, token_bits,
                unused=[tile for i, tile in enumerate(tiles) if i not in places], wafers=wafers,
                request_color=request_color)


#: The data a stage's weight bytes count (with the norms' gains): the matrices and the
#: embedding table, with their scales for group int8 (a symbol's first word).
WEIGHTS = ("wq", "wk", "wv", "wo", "w1", "w2", "w3", "wcls", "embedding")

#: The most tiles the mapper shares an embedding table or a classifier among.
MAX_TABLE_SLICES = 8


def _divisors(total):
    return [n for n in range(1, MAX_TABLE_SLICES + 1) if total % n == 0]


def _places(units, tiles, shape, wafers, layers):
    """Each unit's index into ``tiles``: in order along the snake, each wafer's units from
    that wafer's first tile."""
    per_wafer = len(tiles) // wafers           # whole rows of tiles, in snake order
    places, wafer, index = [], 0, 0
    for count, (unit, _) in enumerate(units):
        kind, layer = unit.kind, unit.layer
        home = {"embedding": 0, "classifier": wafers - 1}.get(kind)
        home = layer * wafers // layers if home is None else home
        if home != wafer:
            wafer, index = home, home * per_wafer
        if index >= (wafer + 1) * per_wafer:
            where = f"layer {layer} {kind}" if layer is not None else kind
            room = (f"wafer {wafer}'s {shape.width}x{shape.height // wafers} tiles"
                    if wafers > 1 else f"the {shape.width}x{shape.height}-tile wafer")
            raise TooFewTiles(f"the model does not fit {room}: {where} has no tile (the "
                              f"pipeline needs {len(units)} tiles, {len(units) - count} short)")
        places.append(index)
        index += 1
    return places


_STAGES = {"attention": stages.attention_stage, "qkv": stages.qkv_stage}


def _routes(stage_list, tiles):
    """Every route of the plan: the residual stream from step to step (multicast to every
    slice of a feed-forward step; along the snake through unused tiles to the next
    wafer), the partial sums between slices, the loopback of every tile and the host's
    port."""
    table = {}                                   # (x, y, color) -> (accept, [outputs])
    order = {tile: i for i, tile in enumerate(tiles)}

    def hop(a, b, color):
        path = tiles[order[a]:order[b] + 1]
        for p, q in zip(path, path[1:]):
            way = _direction(p, q)
            table.setdefault((*p, color), (Dir.RAMP, []))[1].append(way)
            table.setdefault((*q, color), (way.opposite, []))
        table[(*b, color)][1].append(Dir.RAMP)

    for index, (a, b) in enumerate(zip(stage_list, stage_list[1:])):
        stream = STREAM_COLORS[a.boundary % 2]
        if b.boundary == a.boundary:             # slices of one step: pass the input on
            way = _direction(a.tile, b.tile)
            table[(*a.tile, STREAM_COLORS[(a.boundary - 1) % 2])][1].append(way)
            table[(*b.tile, STREAM_COLORS[(a.boundary - 1) % 2])] = (way.opposite, [Dir.RAMP])
            part = index - next(i for i, s in enumerate(stage_list) if s.boundary == a.boundary)
            hop(a.tile, b.tile, REDUCE_COLORS[part % 2])
        else:
            hop(a.tile, b.tile, stream)
    embed = stage_list[0].tile
    if embed[0] != 0:
        raise MapError("the first tile (it embeds the tokens) must sit on the west edge, "
                       "where the host is")
    for stage in stage_list:
        table[(*stage.tile, LOOP_COLOR)] = (Dir.RAMP, [Dir.RAMP])
    table[(*embed, HOST_COLOR)] = (Dir.RAMP, [Dir.W])
    return [(x, y, color, accept, outputs) for (x, y, color), (accept, outputs) in table.items()]


def _check_routes(routes):
    """No router holds two routes for one color; the static channels have no cycle."""
    seen = {}
    for x, y, color, accept, outputs in routes:
        if (x, y, color) in seen:
            raise MapError(f"route conflict at tile ({x}, {y}): color {color} is routed twice")
        seen[x, y, color] = (accept, outputs)
    # Channel (tile, color) -> the channels it feeds: a cycle could deadlock.
    feeds = {}
    for (x, y, color), (accept, outputs) in seen.items():
        for out in outputs:
            if out != Dir.RAMP:
                dx, dy = out.step
                feeds.setdefault((x, y, color), []).append((x + dx, y + dy, color))
    state = {}

    def visit(node):
        state[node] = "open"
        for nxt in feeds.get(node, ()):
            if state.get(nxt) == "open":
                raise MapError(f"cyclic channel dependency through tile {nxt[:2]}, "
                               f"color {nxt[2]}")
            if nxt not in state:
                visit(nxt)
        state[node] = "done"

    for node in list(feeds):
        if node not in state:
            visit(node)
