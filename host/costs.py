"""Kernel cost models: each kernel's cycles as a linear function of terms of its shape.

``tessera bench kernels`` (:mod:`host.bench.kernel`) measures every kernel of
:data:`KERNELS` on the simulated wafer over a sweep of shapes, and fits each one's
coefficients by least squares; :mod:`host.projection` adds the fitted costs up, stage
by stage, to time models it cannot simulate.  A kernel's terms are written here once,
so the fit and its use cannot disagree.  ``beats(n)`` is ``ceil(n / lanes)``, the
vector beats of ``n`` 16-bit float elements on the tile's float lanes.

The kernels (their shapes' names in parentheses):

- ``gemv`` (rows, cols): :func:`host.kernels.half.gemv`, x streamed around the
  loop color, one ``VMACS`` of ``cols`` columns of ``rows``.  Measured, a column takes
  a cycle more than its beats, and a column of one or two beats a cycle more again
  (``narrow columns``), and a product of one beat a column has a longer fixed part;
- ``gemv_int8`` (rows, cols): :func:`host.kernels.half.gemv_int8`, group-int8 weights
  (groups of :data:`host.int8_model.GROUP` down a column) dequantised a block of
  columns at a time into :data:`host.kernels.half.DEQUANTISED` fp16 elements, then
  multiplied as ``gemv``;
- ``rmsnorm`` (length), ``swiglu`` (length), ``residual`` (length): the float
  kernels of the same names;
- ``rope`` (heads, head_dim): one position's rotation of ``heads`` heads;
- ``attention`` (context, head_dim): one head over ``context`` positions
  (:func:`host.kernels.half.attention_head`: scores, softmax, weighted sum);
- ``kv_append`` (heads, head_dim): one position's keys and values into the cache;
- ``argmax`` (length): a running maximum over fp32 logits;
- ``copy`` (length): a vector move of fp32 accumulators (the stages' output staging);
- ``widen`` (length), ``narrow`` (length): 16-bit floats in data SRAM into fp32
  accumulators (the embedding's row, q, k and v staged for sending), and back;
- ``transfer`` (length, hops, crossings): ``length`` words sent by one tile's core
  and received by another's, ``hops`` links away, ``crossings`` of them between
  dies: the hop and the die crossing;
- ``wafer_link`` (length, latency, interval): the same over one die link given a
  latency and an interval between wavelets (:meth:`host.wafer.Wafer.link_timing`),
  as a link between wafers is;
- ``chain`` (length, tiles, crossings): a pipelined chain reduction
  (:func:`host.kernels.vector.reduce_chain`) of ``length`` partial sums over
  ``tiles`` tiles in a row, to the last one's result;
- ``broadcast`` (length, tiles, crossings): ``length`` words multicast from one tile
  to the ``tiles`` after it in a row, to the farthest one's having them all;
- ``combine`` (length, tiles, heads, crossings): the chain that combines a
  distributed attention head's partials over ``tiles`` tiles in a row, ``length``
  dimensions each (:func:`host.kernels.distributed_attention.combine`), for
  ``heads`` heads one after another: each link rescales the running sums by the
  running maximum, so a link costs an exp's latency once (the maximum goes ahead, so
  the links' exps overlap) and a cycle or two a word.  The heads follow each other
  down the chain, so its length is paid once, and each later head adds a link's work:
  a tile's exps and its sums taken in, and with more than two tiles, passed on.
"""

import json
from dataclasses import dataclass

import numpy as np

from host.int8_model import GROUP
from host.kernels.half import DEQUANTISED, EXP_CHUNK
from rtl.params import preset

__all__ = ["PARAMS", "KERNELS", "CostModel", "Costs", "beats"]

#: The tile whose kernels are measured and projected: the float preset.
PARAMS = preset("float")


def beats(n, lanes):
    return -(-n // lanes)


#: A kernel that works a beat at a time along a vector.
_PER_BEAT = (("length",), ("fixed", "beats"), lambda lanes, length: (1, beats(length, lanes)))

#: Each kernel's shape parameters and terms: ``terms(lanes, **shape)`` -> values.
KERNELS = {
    "gemv": (("rows", "cols"), ("fixed", "row beats", "columns", "column beats",
                                "narrow columns", "one beat"),
             lambda lanes, rows, cols: (1, beats(rows, lanes), cols, cols * beats(rows, lanes),
                                        cols if rows <= 2 * lanes else 0, int(rows <= lanes))),
    "rmsnorm": _PER_BEAT,
    "swiglu": _PER_BEAT,
    "residual": _PER_BEAT,
    "argmax": _PER_BEAT,
    "copy": _PER_BEAT,
    "gemv_int8": (("rows", "cols"), ("fixed", "columns", "column beats", "pieces", "blocks",
                                     "narrow columns"),
                  lambda lanes, rows, cols: (
                      1, cols, cols * beats(rows, lanes), cols * -(-rows // GROUP),
                      -(-cols // max(1, DEQUANTISED // rows)),
                      cols if rows <= 2 * lanes else 0)),
    "widen": _PER_BEAT,
    "narrow": _PER_BEAT,
    "rope": (("heads", "head_dim"), ("fixed", "heads", "half beats"),
             lambda lanes, heads, head_dim: (1, heads, heads * beats(head_dim // 2, lanes))),
    "attention": (("context", "head_dim"),
                  ("fixed", "dimensions", "score beats", "exp chunks", "positions",
                   "value beats"),
                  lambda lanes, context, head_dim: (
                      1, head_dim, head_dim * beats(context, lanes), beats(context, EXP_CHUNK),
                      context, context * beats(head_dim, lanes))),
    "kv_append": (("heads", "head_dim"), ("fixed", "heads", "elements"),
                  lambda lanes, heads, head_dim: (1, heads, heads * head_dim)),
    "transfer": (("length", "hops", "crossings"), ("fixed", "words", "hops", "crossings"),
                 lambda lanes, length, hops, crossings: (1, length, hops, crossings)),
    "wafer_link": (("length", "latency", "interval"),
                   ("fixed", "latency", "words", "later words x interval"),
                   lambda lanes, length, latency, interval: (1, latency, length,
                                                             (length - 1) * interval)),
    "chain": (("length", "tiles", "crossings"), ("fixed", "words", "tiles", "crossings"),
              lambda lanes, length, tiles, crossings: (1, length, tiles, crossings)),
    "broadcast": (("length", "tiles", "crossings"), ("fixed", "words", "tiles", "crossings"),
                  lambda lanes, length, tiles, crossings: (1, length, tiles, crossings)),
    "combine": (("length", "tiles", "heads", "crossings"),
                ("fixed", "words", "tiles", "tile words", "crossings", "later heads",
                 "later head words", "later heads passed on"),
                lambda lanes, length, tiles, heads, crossings: (
                    1, length, tiles, tiles * length, crossings, heads - 1,
                    (heads - 1) * length, (heads - 1) * (length + 1) * (tiles > 2))),
}


@dataclass
class CostModel:
    """One kernel's fitted cost: ``cycles = coefficients . terms(shape)``, with the points
    (shape and measured cycles) it was fitted to."""
    kernel: str
    lanes: int
    coefficients: tuple
    points: list                 # [{"shape": {...}, "cycles": int}]

    def terms(self, **shape):
        names, _, terms = KERNELS[self.kernel]
        return np.array(terms(self.lanes, **{name: shape[name] for name in names}), float)

    def __call__(self, **shape):
        return float(self.terms(**shape) @ np.array(self.coefficients))

    @classmethod
    def fit(cls, kernel, lanes, points):
        """Least squares over ``points``."""
        model = cls(kernel, lanes, (), points)
        matrix = np.array([model.terms(**point["shape"]) for point in points])
        cycles = np.array([point["cycles"] for point in points], float)
        model.coefficients = tuple(float(c) for c in np.linalg.lstsq(matrix, cycles,
                                                                     rcond=None)[0])
        return model

    @property
    def worst_error(self):
        """The largest relative error of the model on its own points."""
        return max(abs(self(**p["shape"]) - p["cycles"]) / p["cycles"] for p in self.points)

    def to_dict(self):
        return {"kernel": self.kernel, "terms": list(KERNELS[self.kernel][1]),
                "coefficients": list(self.coefficients), "worst_error": self.worst_error,
                "points": self.points}


class Costs:
    """Every kernel's :class:`CostModel`, as ``tessera bench kernels`` wrote them."""

    def __init__(self, models, params):
        self.models, self.params = models, params

    def __getattr__(self, kernel):
        try:
            return self.models[kernel]
        except KeyError:
            raise AttributeError(kernel) from None

    def to_dict(self):
        return {"params": self.params, "kernels": {name: model.to_dict()
                                                   for name, model in self.models.items()}}

    @classmethod
    def from_dict(cls, document):
        lanes = document["params"]["lanes"] // 2
        models = {}
        for name, entry in document["kernels"].items():
            if name not in KERNELS or entry["terms"] != list(KERNELS[name][1]):
                raise ValueError(f"kernel costs: {name!r} is not a kernel with these terms")
            models[name] = CostModel(name, lanes, tuple(entry["coefficients"]),
                                     entry["points"])
        missing = set(KERNELS) - set(models)
        if missing:
            raise ValueError(f"kernel costs: no model for {', '.join(sorted(missing))}")
        return cls(models, document["params"])

    @classmethod
    def load(cls, path):
        return cls.from_dict(json.loads(path.read_text()))
