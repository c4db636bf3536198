"""A plan's cycles a token, from the kernels' fitted costs instead of a simulation.

:func:`step_cycles` adds up the costs (:mod:`host.costs`) of the kernels that each
stage of a :class:`host.mapper.Plan` runs for an entry, in the order
:mod:`host.kernels.stages` and :mod:`host.kernels.half_layers` run them, and
:func:`token_cycles` the steps and the hops between them, as
:meth:`host.runtime.Generation.stage_cycles` measures them: a stage's compute runs
from its input being in to its output being on its way, and the hop into a step
from the step before starting its send to this step's input being in.  The slices
of a step work side by side until the running sums pass from each to the next
(each adds its product to the sums of the slices before it), so a step ends when
its last slice does.  Only the 16-bit float layers are timed.
"""

from dataclasses import dataclass

from host.kernels.stages import CLASSIFIER_CHUNK
from host.mapper import snake

__all__ = ["StepTime", "step_cycles", "token_cycles", "decode_contexts"]


@dataclass
class StepTime:
    name: str                    # its last stage's
    tiles: int
    compute: float               # of its last tile
    hop_in: float


def _qkv(costs, c):
    return (costs.rmsnorm(length=c.dim) + costs.gemv(rows=c.dim, cols=c.dim)
            + 2 * costs.gemv(rows=c.kv_dim, cols=c.dim) + costs.narrow(length=c.kv_dim)
            + costs.rope(heads=c.n_heads, head_dim=c.head_dim)
            + costs.rope(heads=c.n_kv_heads, head_dim=c.head_dim))


def _heads(costs, c, context, parts):
    """One slice's heads, its share of the query heads over ``context`` positions."""
    return c.n_heads // parts * costs.attention(context=context, head_dim=c.head_dim)


def _output(costs, c):
    """The residual staged for sending (:func:`host.kernels.stages._output`)."""
    return costs.copy(length=c.dim)


def _slice(costs, c, unit, context):
    """``(before, product, after)``: a slice's cycles before it takes the running sums of
    the slices before it, the product it adds to them, and after (its send of the sums,
    or the end of the step)."""
    kind, last = unit.kind, unit.part == unit.parts - 1
    embed = costs.widen(length=c.dim) if unit.embeds else 0.0
    end = (costs.residual(length=c.dim) + _output(costs, c) if last
           else costs.transfer(length=c.dim, hops=1, crossings=0))
    if kind == "embedding":
        return costs.widen(length=c.dim), 0.0, _output(costs, c)
    if kind == "attention":
        head = (costs.widen(length=c.dim) + costs.kv_append(heads=c.n_kv_heads,
                                                             head_dim=c.head_dim))
        return (embed + _qkv(costs, c) + head + _heads(costs, c, context, 1),
                costs.gemv(rows=c.dim, cols=c.dim), end)
    if kind == "qkv":
        return (embed + _qkv(costs, c), 0.0,
                costs.widen(length=c.dim + 2 * c.kv_dim) + _output(costs, c))
    if kind == "split attention":
        width = c.dim // unit.parts
        return (_heads(costs, c, context, unit.parts), costs.gemv(rows=c.dim, cols=width),
                end)
    if kind == "feed-forward":
        units = c.hidden_dim // unit.parts
        return (costs.rmsnorm(length=c.dim) + 2 * costs.gemv(rows=units, cols=c.dim)
                + costs.swiglu(length=units), costs.gemv(rows=c.dim, cols=units), end)
    if kind == "classifier":
        rows = c.vocab_size // unit.parts
        chunks = [min(CLASSIFIER_CHUNK, rows - first) for first in range(0, rows,
                                                                         CLASSIFIER_CHUNK)]
        own = costs.rmsnorm(length=c.dim) + sum(
            costs.gemv(rows=n, cols=c.dim) + costs.argmax(length=n) for n in chunks)
        return own, 0.0, 0.0 if last else costs.transfer(length=2, hops=1, crossings=0)
    raise ValueError(f"no timing for a {kind!r} stage")


def _hop(costs, plan, path, length, wafer_link):
    crossings = sum(plan.shape.die_of(*p) != plan.shape.die_of(*q)
                    for p, q in zip(path, path[1:]))
    cycles = costs.transfer(length=length, hops=len(path) - 1, crossings=crossings)
    rows = {plan.wafer_of_die_row(plan.shape.die_of(*p) // plan.shape.dies_x) for p in path}
    if wafer_link and len(rows) > 1:           # the link between wafers is slower
        cycles += (len(rows) - 1) * (costs.wafer_link(length=length, latency=wafer_link[0],
                                                      interval=wafer_link[1])
                                     - costs.wafer_link(length=length, latency=1, interval=1))
    return cycles


def _xy_path(a, b):
    """The tiles an XY-addressed wavelet passes from ``a`` to ``b``: along x, then y."""
    (ax, ay), (bx, by) = a, b
    step_x = 1 if bx >= ax else -1
    step_y = 1 if by >= ay else -1
    return ([(x, ay) for x in range(ax, bx + step_x, step_x)]
            + [(bx, y) for y in range(ay + step_y, by + step_y, step_y)])


def step_cycles(costs, plan, config, context, wafer_link=None):
    """Per step of ``plan``, a :class:`StepTime` for an entry whose attention covers
    ``context`` positions; ``wafer_link``: ``(latency, interval)`` of the links between
    the plan's wafers."""
    steps = {}
    for stage in plan.stages:
        steps.setdefault(stage.boundary, []).append(stage)
    result, previous = [], plan.stages[-1]
    tiles = list(snake(plan.shape.width, plan.shape.height))     # the stream's path
    for boundary in sorted(steps):
        stages = steps[boundary]
        finish = 0.0
        for stage in stages:                   # the running sums pass slice to slice
            before, product, after = _slice(costs, config, stage.unit, context)
            finish = max(before, finish) + product + after
        first = stages[0]
        if boundary == 0:                      # the token loop: XY-addressed, one word
            path, length = _xy_path(previous.tile, first.tile), 1
        else:
            path = tiles[tiles.index(previous.tile):tiles.index(first.tile) + 1]
            length = (config.dim + 2 * config.kv_dim + config.dim
                      if previous.unit.kind == "qkv" else config.dim)
        hop = _hop(costs, plan, path, length, wafer_link)
        result.append(StepTime(stages[-1].name, len(stages), finish, hop))
        previous = stages[-1]
    return result


def decode_contexts(prompt_len, tokens):
    """The contexts of the entries whose tokens :meth:`Generation.cycles_per_token`
    averages: positions ``prompt_len`` .. ``prompt_len + tokens - 2``, each over itself
    and the positions before."""
    return list(range(prompt_len + 1, prompt_len + tokens)) or [prompt_len]


def token_cycles(costs, plan, config, contexts, wafer_link=None, users=1):
    """A user's mean cycles a token over entries of ``contexts``: the steps' compute and
    the hops into them, in order; with ``users`` in flight, taking the steps in turn, at
    least ``users`` times the busiest step's (its compute and its input's hop)."""
    totals = []
    for context in contexts:
        steps = step_cycles(costs, plan, config, context, wafer_link)
        one = sum(step.compute + step.hop_in for step in steps)
        totals.append(max(one, users * max(step.compute + step.hop_in for step in steps)))
    return sum(totals) / len(totals)
