"""``tessera project --validate``: the timing of the kernels' fitted costs against simulated runs.

Two kinds of held-out run, neither used by the fits:

- runs of :func:`host.runtime.generate`: their measured cycles a token (user 0's)
  against :func:`host.pipeline_timing.token_cycles` on the same plan.  They cover the
  single tile and the slices (stories260K on the default wafer), depth (a 32-layer
  seeded model at fp16), users in flight (four, each with its own KV cache,
  attention split over two tiles) and the link between wafers;
- products over blocks of tiles, as the projection lays them out at scale
  (:func:`host.bench.kernel.blocked_product`), against
  :func:`host.projection.block_cycles`;
- the query heads of a KV head whose cache is spread over a grid of tiles, as the
  projection lays it out at scale (:func:`host.bench.kernel.distributed_head`),
  against :func:`host.projection.group_cycles`.  Their fp16 outputs must also be the
  bits of :func:`host.kernels.distributed_attention.reference` on the same seeded
  inputs.
"""

from dataclasses import dataclass, field

import numpy as np

from host import pipeline_timing, runtime, workload
from host.bench import kernel, pipeline
from host.costs import Costs
from host.half_model import F32, narrow
from host.kernels import distributed_attention
from host.projection import COSTS_FILE, Wafer, block_cycles, group_cycles
from host.wafer import WaferShape, wafer_link_timing
from rtl.params import preset

__all__ = ["Case", "CASES", "QUICK", "BLOCKS", "HEADS", "QUICK_HEADS", "run_case",
           "run_block", "run_head", "BOUND"]

#: The largest relative error the projection may make on a held-out run.
BOUND = 0.10


@dataclass(frozen=True)
class Case:
    name: str
    model: str                   # a workload name (host.workload.load)
    dies: tuple
    tokens: int
    users: int = 1
    layers: int = None           # of the seeded model
    layout: dict = field(default_factory=dict)   # host.mapper.plan's options
    wafer_link_us: float = None  # with layout["wafers"] > 1


CASES = (
    Case("stories260K, default wafer", "stories260K", (2, 1), 32),
    Case("seeded 32 layers, fp16", "seeded", (3, 2), 8, layers=32),
    Case("stories260K, 4 users", "stories260K", (2, 2), 16, users=4),
    Case("stories260K, 2 wafers, 1 us link", "stories260K", (2, 2), 16,
         layout={"wafers": 2}, wafer_link_us=1.0),
)
#: The cases ``make test`` runs, with fewer tokens.
QUICK = tuple(Case(c.name, c.model, c.dies, 6, c.users, c.layers, c.layout, c.wafer_link_us)
              for c in CASES)


#: Blocked products: (rows, cols, (R, C)), on the sweeps' wafer of three 4x4 dies in a
#: row (the chains of 5 and more tiles cross a die boundary).
BLOCKS = ((96, 256, (3, 8)), (96, 264, (2, 12)), (64, 128, (1, 4)), (240, 96, (3, 3)))


#: The sweeps' wafer, as the projection sees it.
SWEEP_WAFER = Wafer(kernel.DIES[0] * kernel.DIE[0], kernel.DIE[1], kernel.DIE)


def run_block(block, costs):
    """``{"case", "measured", "predicted", "error"}``: a blocked product's cycles."""
    rows, cols, grid = block
    measured = kernel.blocked_product(rows, cols, grid)
    predicted = block_cycles(costs, SWEEP_WAFER, rows, cols, grid)
    return {"case": f"{rows}x{cols} product on {grid[0]}x{grid[1]} tiles",
            "measured": measured, "predicted": predicted, "error": predicted / measured - 1}


#: Distributed attention: (context, head_dim, (P, D), query heads), positions split P
#: ways along row 0 of the sweeps' wafer (chains of 5 and more tiles cross a die
#: boundary), head dimensions D ways down the columns.
HEADS = ((256, 64, (8, 1), 1), (384, 32, (12, 4), 4), (192, 128, (6, 4), 2),
         (512, 16, (4, 2), 8))
#: The ones ``make test`` runs.
QUICK_HEADS = ((64, 32, (4, 2), 2),)


class NumericsError(AssertionError):
    """A distributed head's output differs from its reference's bits."""


def run_head(head, costs, seed=0):
    """``{"case", "measured", "predicted", "error"}``: a distributed group of heads'
    cycles, on inputs seeded by ``seed``; raises :class:`NumericsError` if an output is
    not the reference's."""
    context, head_dim, grid, heads = head
    rng = np.random.default_rng(seed)
    q, keys, values = (narrow(rng.standard_normal(shape), "fp16")
                       for shape in ((heads, head_dim), (context, head_dim),
                                     (context, head_dim)))
    measured, out = kernel.distributed_head(q, keys, values, grid)
    expected = [distributed_attention.reference(query, keys, values, grid,
                                                F32(1 / np.sqrt(head_dim))) for query in q]
    if not np.array_equal(out, expected):
        raise NumericsError(f"seed {seed}, {head}: an output differs from the reference by "
                            f"up to {np.abs(out - expected).max():g}")
    predicted = group_cycles(costs, SWEEP_WAFER, context // grid[0], head_dim // grid[1],
                             grid, heads)
    return {"case": f"{heads} x {head_dim}-dim, {context} keys, {grid[0]}x{grid[1]} tiles",
            "measured": measured, "predicted": predicted, "error": predicted / measured - 1}


def run_case(case, costs, clock_hz=runtime.NOMINAL_CLOCK_HZ):
    """``{"case", "measured", "predicted", "error"}``: cycles a token of user 0."""
    work = workload.load(case.model, dtype="fp16", layers=case.layers)
    if case.users > 1:
        prompts = pipeline.user_prompts(case.users, work.encode)
    else:
        prompts = [[workload.BOS] if work.kind == "llama2c" else work.encode(work.default_prompt)]
    work = work.sized(max(map(len, prompts)) + case.tokens - 1)
    reference = work.reference()
    shape = WaferShape((case.dies[0], case.dies[1]), (4, 4), preset("float"))
    wafer_link = (wafer_link_timing(shape.params.width, clock_hz,
                                    latency_s=case.wafer_link_us * 1e-6)
                  if case.wafer_link_us else None)
    result = runtime.generate(reference, prompts, [case.tokens] * case.users, shape,
                              wafer_link=wafer_link, **case.layout)
    contexts = pipeline_timing.decode_contexts(len(prompts[0]), case.tokens)
    predicted = pipeline_timing.token_cycles(costs, result.plan, work.config, contexts,
                                             wafer_link, users=case.users)
    measured = result.cycles_per_token(0)
    return {"case": case.name, "measured": measured, "predicted": predicted,
            "error": predicted / measured - 1}


def run(cases=CASES, blocks=BLOCKS, heads=HEADS, costs=None, progress=print):
    costs = costs or Costs.load(COSTS_FILE)
    results = []
    for runner, case in [(run_case, case) for case in cases] + \
            [(run_block, block) for block in blocks] + [(run_head, head) for head in heads]:
        results.append(runner(case, costs))
        if progress:
            r = results[-1]
            progress(f"{r['case']:36s} measured {r['measured']:9,.0f}  predicted "
                     f"{r['predicted']:9,.0f}  {r['error']:+.1%}")
    return results

