"""``tessera bench wafers``: what splitting the model over several wafers costs a token,
against the model's depth.

A token crosses each wafer-to-wafer link on its way down the layers and once more
on the way back (the generated token, to the first tile), and each crossing costs
the link's latency (5,500 cycles for the seed's 5 us at 1.1 GHz), whatever the
model; the token's own time grows with the layers.  So the latency impact falls as
one over the depth.  For each number of layers the bench maps the seeded model on
``wafers`` wafers (as few dies a wafer as it fits on) and runs one user twice on
the same placement: with the wafer-to-wafer links, and with every link at die-link
speed (one large wafer with the same tiles).  It fits the one-wafer cycles per
token to a straight line in the layers and the links' extra cycles to a constant,
and projects the depth at which the impact falls under ``target``: a projection
from the measured points, reported as such.  Everything is in simulated cycles.
"""

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from host import mapper, model, runtime
from host.wafer import WaferShape, wafer_link_timing

__all__ = ["run", "plot"]

PROMPT = model.encode("Hi")


def _shape(quant, params, die, wafers, layout):
    """The smallest wafers (1 x n dies each) that the model maps on, and the plan's steps."""
    for dies in range(1, 65):
        shape = WaferShape((dies, wafers), die, params)
        try:
            steps = mapper.plan(quant, shape, [PROMPT], [2], wafers=wafers, **layout).steps
        except mapper.TooFewTiles:
            continue
        return shape, steps
    raise mapper.MapError(f"{quant.config.n_layers} layers do not fit on {wafers} wafers "
                          f"of up to 64 dies")


def _generate(quant, shape, tokens, timing, wafers, layout):
    """One run of the model (a pool worker's job): its tokens and cycles per token."""
    result = runtime.generate(quant, [PROMPT], [tokens], shape, wafer_link=timing,
                              wafers=wafers, **layout)
    return result.tokens, result.cycles_per_token()


def _submit(pool, layers, params, die, wafers, link, tokens, seed, layout):
    """Place ``layers`` layers and start both runs; returns the point's placement, the
    runs and the reference tokens, for :func:`_point`."""
    config = model.ModelConfig(n_layers=layers)
    quant = model.QuantModel(config, model.random_weights(config, seed))
    shape, steps = _shape(quant, params, die, wafers, layout)
    link = wafer_link_timing(shape.width, *link)
    placement = {"layers": layers, "pipeline_stages": steps, "wafer_dies": [shape.dies_x, 1],
                 "link_cycles": {"latency": link[0], "interval": link[1]}}
    runs = [pool.submit(_generate, quant, shape, tokens, timing, wafers, layout)
            for timing in (link, None)]                 # split, then one large wafer
    return placement, runs, [quant.generate(PROMPT, tokens)[0]]


def _point(placement, runs, reference):
    (split_tokens, split), (large_tokens, large) = (run.result() for run in runs)
    return {**placement,
            "cycles_per_token": split, "one_wafer_cycles_per_token": large,
            "extra_cycles_per_token": split - large,
            "wafer_latency_impact": split / large - 1,
            "tokens_equal": split_tokens == large_tokens,
            "match_reference": split_tokens == reference}


def run(params, die, layers_list, wafers, link, tokens=3, seed=0, layout=None,
        target=0.05, progress=print):
    """The bench's JSON document (module docstring); ``link``: ``(clock_hz, latency_s,
    bandwidth_bps)`` of the wafer-to-wafer connection (:func:`host.wafer.wafer_link_timing`
    shares it among a boundary's die links).  The runs go to one worker process a core;
    each is a whole simulation, so the results do not depend on how many."""
    points = []
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        pending = [_submit(pool, layers, params, die, wafers, link, tokens, seed, layout or {})
                   for layers in layers_list]
        for placed in pending:
            point = _point(*placed)
            points.append(point)
            dies = point["wafer_dies"][0]
            progress(f"  {point['layers']:3d} layers ({point['pipeline_stages']} steps, "
                     f"{dies} die{'s' if dies > 1 else ''} a wafer): "
                     f"{point['cycles_per_token']:,.0f} cycles per token on {wafers} wafers, "
                     f"{point['one_wafer_cycles_per_token']:,.0f} on one: "
                     f"{point['wafer_latency_impact']:+.1%}")
    document = {"wafers": wafers, "link_latency_cycles": points[0]["link_cycles"]["latency"],
                "tokens_per_run": tokens, "target": target,
                "points": points,
                "match_reference": all(p["match_reference"] and p["tokens_equal"]
                                       for p in points)}
    if len(points) > 1:
        per_layer, base = (float(v) for v in np.polyfit(
            [p["layers"] for p in points], [p["one_wafer_cycles_per_token"] for p in points], 1))
        extra = sum(p["extra_cycles_per_token"] for p in points) / len(points)
        document["projection"] = {
            "one_wafer_cycles_per_token": {"intercept": base, "per_layer": per_layer},
            "extra_cycles_per_token": extra,
            "layers_for_target": (extra / target - base) / per_layer}
    return document


def plot(document, path):
    """Latency impact against layers: the measured points, the projection and the target."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, chart = pyplot.subplots(figsize=(6, 4), dpi=120)
    points = document["points"]
    layers = [p["layers"] for p in points]
    chart.plot(layers, [100 * p["wafer_latency_impact"] for p in points], "o",
               label="measured")
    projection = document.get("projection")
    top = max(layers)
    if projection:
        line = projection["one_wafer_cycles_per_token"]
        top = max(top, projection["layers_for_target"] * 1.2)
        xs = [1 + (top - 1) * i / 200 for i in range(201)]
        chart.plot(xs, [100 * projection["extra_cycles_per_token"]
                        / (line["intercept"] + line["per_layer"] * x) for x in xs], ":",
                   color="gray", label="projection: extra cycles / one-wafer cycles")
        chart.axvline(projection["layers_for_target"], color="gray", lw=0.8)
    chart.axhline(100 * document["target"], color="red", lw=0.8,
                  label=f"target: {document['target']:.0%}")
    chart.set_xscale("log")
    chart.set_yscale("log")
    chart.set_xlabel("layers")
    chart.set_ylabel("per-token latency impact (%)")
    chart.set_title(f"{document['wafers']} wafers, links of {document['link_latency_cycles']:,} "
                    f"cycles")
    chart.grid(alpha=0.3, which="both")
    chart.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)
