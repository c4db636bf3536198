"""The wafer as a picture: every physical tile coloured by the fraction of the run its
core was busy, labelled with its stage, the dead tiles crossed out, the dies outlined.

:func:`wafer_map` gathers what the picture shows from a run (:class:`host.runtime.Generation`):
the busy and enabled cycles each tile counted (``rtl.isa.Counter``), read from the tile
at the end, over the run's cycles.  :func:`draw` draws that document and nothing else,
so the run's ``--json`` report (which holds it) says exactly what the picture shows.
"""

from rtl.die import remap
from rtl.isa import Counter

__all__ = ["wafer_map", "draw"]


def wafer_map(result, shape, dead):
    """The picture's data for a run ``result`` on a wafer of ``shape``
    (:class:`host.wafer.WaferShape`) with the dead physical tiles ``dead``: a tile entry
    a physical tile, die by die, row by row.  Each says what it is (``"dead"``,
    ``"spare"``: a live tile no logical one uses, or ``"tile"``) and for a tile its
    logical coordinates, stage, counters and ``busy_fraction``: the cycles its core was
    busy (an instruction completed or a vector beat ran) over the run's cycles."""
    p = shape.params
    columns = p.width + p.spare_cols
    plan = result.plan
    labels, names = plan.labels(), {stage.tile: stage.name for stage in plan.stages}
    dead_by_die = shape.dead_by_die(dead)
    tiles = []
    for die_y in range(shape.dies_y):
        for die_x in range(shape.dies_x):
            die_dead = dead_by_die.get(die_y * shape.dies_x + die_x, set())
            logical_of = {(column, y): x for (x, y), column in remap(p, die_dead).items()}
            for row in range(p.height):
                for column in range(columns):
                    entry = {"physical": [die_x * columns + column, die_y * p.height + row],
                             "die": [die_x, die_y]}
                    if (column, row) in die_dead:
                        entry["kind"] = "dead"
                    elif (column, row) not in logical_of:
                        entry["kind"] = "spare"
                    else:
                        tile = (die_x * p.width + logical_of[column, row],
                                die_y * p.height + row)
                        counters = result.tile_counters[tile]
                        entry.update(kind="tile", logical=list(tile), stage=names.get(tile),
                                     label=labels.get(tile, ""),
                                     busy_cycles=counters[Counter.BUSY],
                                     enabled_cycles=counters[Counter.CYCLES],
                                     busy_fraction=counters[Counter.BUSY] / result.cycles)
                    tiles.append(entry)
    return {"run_cycles": result.cycles, "dies": [shape.dies_x, shape.dies_y],
            "die_columns": columns, "die_rows": p.height,
            "wafer_rows": shape.height // plan.wafers, "tiles": tiles}


def draw(document, path):
    """Draw a :func:`wafer_map` document as a PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import colormaps, pyplot
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    columns = document["dies"][0] * document["die_columns"]
    rows = document["dies"][1] * document["die_rows"]
    busiest = max(tile["busy_fraction"] for tile in document["tiles"] if tile["kind"] == "tile")
    scale, colours = Normalize(0, max(busiest, 1e-9)), colormaps["viridis"]
    figure, axes = pyplot.subplots(figsize=(1.0 + 0.75 * columns, 0.9 + 0.75 * rows), dpi=120)
    for tile in document["tiles"]:
        x, y = tile["physical"]
        if tile["kind"] == "tile":
            fraction = tile["busy_fraction"]
            axes.add_patch(Rectangle((x, y), 1, 1, facecolor=colours(scale(fraction)),
                                     edgecolor="white"))
            ink = "black" if scale(fraction) > 0.6 else "white"
            axes.text(x + 0.5, y + 0.38, tile["label"] or ".", ha="center", va="center",
                      color=ink, fontsize=10, fontweight="bold")
            axes.text(x + 0.5, y + 0.72, f"{fraction:.0%}", ha="center", va="center",
                      color=ink, fontsize=8)
        else:
            axes.add_patch(Rectangle((x, y), 1, 1, facecolor="lightgrey", edgecolor="white",
                                     hatch="xx" if tile["kind"] == "dead" else None))
            axes.text(x + 0.5, y + 0.5, tile["kind"], ha="center", va="center",
                      fontsize=8, color="darkred" if tile["kind"] == "dead" else "dimgrey")
    for x in range(0, columns + 1, document["die_columns"]):
        axes.axvline(x, color="black", linewidth=2)
    for y in range(0, rows + 1, document["die_rows"]):
        axes.axhline(y, color="black", linewidth=4 if y % document["wafer_rows"] == 0 else 2)
    axes.set_xlim(0, columns)
    axes.set_ylim(rows, 0)
    axes.set_aspect("equal")
    axes.set_xticks([x + 0.5 for x in range(columns)], range(columns), fontsize=7)
    axes.set_yticks([y + 0.5 for y in range(rows)], range(rows), fontsize=7)
    axes.set_xlabel("physical column (thick lines: die boundaries)", fontsize=8)
    axes.set_title(f"busy fraction of the run's {document['run_cycles']:,} cycles, per tile",
                   fontsize=10)
    figure.colorbar(pyplot.cm.ScalarMappable(scale, colours), ax=axes, fraction=0.03,
                    label="busy fraction")
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)
