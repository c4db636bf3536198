"""Group-wise int8 weights on the float datapath, and their reference, to the bit.

The seed's quantisation, as llama2.c's ``runq.c`` does it: int8 weights in groups,
each with an fp32 scale.  Here the weights alone are quantised (the activations
stay fp16), and the wafer dequantises them with ``VDEQ`` as it goes, so the
products are :class:`host.half_model.HalfModel`'s on the dequantised weights.

- **Groups** are ``group`` consecutive elements along the dimension the wafer
  stores contiguously: down a column of a product's matrix (the kernels keep
  matrices column-major), along a row of the embedding table (looked up by row).
  The last group of a column (or row) is shorter when its length is not a
  multiple of ``group``.  stories260K shares its embedding with the classifier:
  the two copies on the wafer are quantised each along its own dimension.
- **Quantisation**: for a group ``w`` (float32), ``s = fp32(max|w| / 127)`` and
  ``q = clip(rint(fp32(w / s)), -127, 127)`` (ties to even); a group of zeros has
  ``s = 0`` and ``q = 0``.
- **Dequantisation** is ``VDEQ``: ``fp32(q * s)``, rounded once.  A matrix's
  weights are then rounded to fp16, ``W16 = N(fp32(q * s))``, and the products,
  norms, attention and everything else are :class:`HalfModel`'s at fp16.  The
  embedding is looked up in fp32: ``h = fp32(q * s)``, with no fp16 rounding.

Why groups down the columns rather than along the rows, as ``runq.c`` has them:
a column's group shares one scale, so ``VDEQ`` takes it as a scalar register and
a whole column dequantises at full width.  It also keeps more of the float32
story: emulated in numpy on stories260K with groups of 64, 114 greedy tokens from
BOS equal float32's, against 61 with the groups along the rows (``runq.c``'s level).
"""

from dataclasses import dataclass

import numpy as np

from host.half_model import HalfModel, narrow

__all__ = ["Int8Model", "Quantised", "quantise", "GROUP"]

F32 = np.float32
#: Elements in a group: llama2.c's default.
GROUP = 64


@dataclass(frozen=True)
class Quantised:
    """A weight in group-wise int8: ``q`` (int8) and ``scale`` (float32, each element's
    group's scale), both of the weight's shape; groups run along ``axis``."""
    q: np.ndarray
    scale: np.ndarray
    group: int
    axis: int

    def values(self):
        """``fp32(q * s)``, as ``VDEQ`` computes it."""
        return self.q.astype(F32) * self.scale

    def pieces(self, span):
        """The groups' parts within ``span`` (a range along the axis), as ``(start,
        stop)`` pairs in order."""
        edges = [span.start, *(edge for edge in range(0, span.stop, self.group)
                               if edge > span.start), span.stop]
        return list(zip(edges, edges[1:]))


def quantise(weight, group=GROUP, axis=0):
    """``weight`` (float32) in groups of ``group`` consecutive elements along ``axis``."""
    along = np.moveaxis(np.asarray(weight, F32), axis, 0)
    q, scale = np.zeros(along.shape, np.int8), np.zeros(along.shape, F32)
    for start in range(0, along.shape[0], group):
        part = along[start:start + group]
        s = (np.abs(part).max(axis=0) / F32(127)).astype(F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            levels = np.where(s > 0, np.rint(part / np.where(s > 0, s, F32(1))), 0)
        q[start:start + group] = np.clip(levels, -127, 127)
        scale[start:start + group] = s
    return Quantised(np.moveaxis(q, 0, axis), np.moveaxis(scale, 0, axis), group, axis)


class Int8Model(HalfModel):
    """The reference of the module docstring: :class:`HalfModel` at fp16 on weights in
    groups of ``group``.  ``quantised`` holds each weight's :class:`Quantised`, by
    ``(layer, name)``: a layer's matrices, ``(None, "wcls")`` and ``(None,
    "embedding")``, their rows in the kernels' order."""

    def __init__(self, config, weights, group=GROUP):
        self.group, self.quantised = group, {}
        super().__init__(config, weights, "fp16")

    def _matrix(self, layer, name, weight):
        self.quantised[layer, name] = quantised = quantise(weight, self.group, axis=0)
        return narrow(quantised.values(), self.dtype)

    def _table(self, embedding):
        self.quantised[None, "embedding"] = quantised = quantise(embedding, self.group, axis=1)
        return quantised.values()
