"""Distributed attention (host/kernels/distributed_attention.py) on the simulated wafer:
a KV head's cache spread over tiles by positions and by head dimensions, and for each of
its query heads in turn the partial scores chained and multicast back, the softmax's
partials combined along an online-softmax chain.  Each fp16 output must be its numpy
reference's bits, and within a stated tolerance of the exact attention in float64; the
reference on one tile must be the 16-bit model's attention (host/half_model.py)."""

from types import SimpleNamespace

import numpy as np
import pytest

from host.bench.kernel import distributed_head
from host.half_model import F32, HalfModel, narrow
from host.kernels import distributed_attention


def _inputs(seed, context, head_dim, heads=None):
    """Seeded fp16 queries (``heads`` x head_dim, or one), keys and values."""
    rng = np.random.default_rng(seed)
    return tuple(narrow(rng.standard_normal(shape), "fp16")
                 for shape in ((head_dim,) if heads is None else (heads, head_dim),
                               (context, head_dim), (context, head_dim)))


def _exact(q, keys, values):
    z = keys.astype(np.float64) @ q / np.sqrt(len(q))
    weights = np.exp(z - z.max())
    return weights / weights.sum() @ values


def _tolerance(values):
    """fp16's unit roundoff twice (the probabilities are fp16, and so is the output), of
    the largest value: the output is a weighted mean of the values."""
    return 2.0 ** -10 * np.abs(values).max()


@pytest.mark.parametrize("seed, heads, context, head_dim, grid",
                         [(1, 1, 32, 16, (2, 1)), (2, 2, 48, 16, (3, 2)), (3, 1, 40, 24, (5, 3))])
def test_the_distributed_heads_are_their_reference(seed, heads, context, head_dim, grid):
    queries, keys, values = _inputs(seed, context, head_dim, heads)
    _, outs = distributed_head(queries, keys, values, grid)
    for q, out in zip(queries, outs, strict=True):
        expected = distributed_attention.reference(q, keys, values, grid,
                                                   F32(1 / np.sqrt(head_dim)))
        assert np.array_equal(out, expected), (f"seed {seed}: differs by up to "
                                               f"{np.abs(out - expected).max():g}")
        error = np.abs(out - _exact(q, keys, values)).max()
        assert error <= _tolerance(values), f"seed {seed}: {error:g} from the exact attention"


@pytest.mark.parametrize("seed", range(4))
def test_the_reference_on_one_tile_is_the_models_attention(seed):
    q, keys, values = _inputs(seed, 40, 16)
    model = SimpleNamespace(score_scale=F32(1 / 4), dtype="fp16")
    _, o, scale = HalfModel.attention_parts(model, q, keys, values)
    one_tile = distributed_attention.reference(q, keys, values, (1, 1), model.score_scale)
    assert np.array_equal(one_tile, narrow(o * scale, "fp16")), f"seed {seed}"


@pytest.mark.parametrize("seed", range(4))
def test_the_reference_combines_a_larger_later_maximum(seed):
    """The scores rise along the positions, so each link of the chain meets a larger
    maximum than the one it was sent and must rescale the running sums."""
    q, keys, values = _inputs(seed, 64, 16)
    keys = narrow(keys + np.linspace(0, 3, 64)[:, None] * np.sign(q), "fp16")
    out = distributed_attention.reference(q, keys, values, (8, 2), F32(1 / 4))
    error = np.abs(out - _exact(q, keys, values)).max()
    assert error <= _tolerance(values), f"seed {seed}: {error:g}"
