"""Run a scenario on a die: routes, programs on logical tiles, traffic on the edges.

A :class:`DieScenario` is what a die is asked to do; :func:`run_die` does it on
the die RTL behind a :class:`sim.core_session.Port`, with a defect map, and
returns a :class:`DieOutcome`: every wavelet that left each edge link, with its
cycle, and the state of every programmed tile.  The same scenario with and
without dead tiles must give the same outcome, cycle for cycle.
"""

import time
from dataclasses import dataclass, field

from rtl.die import dead_mask
from rtl.isa import Op, encode
from rtl.mesh import EDGES
from rtl.wavelet import Dir, pack_wavelet, unpack_wavelet
from sim.iss import RampReceiver, RampSender

from .core_session import Case, memories_of, read_core, write_images

__all__ = ["DieScenario", "DieOutcome", "run_die", "edge_links"]


def edge_links(params):
    """Every edge link of a die: ``(prefix, index)``."""
    return [(prefix, i) for prefix, facing in EDGES
            for i in range(params.width if facing in (Dir.N, Dir.S) else params.height)]


@dataclass
class DieScenario:
    config_words: list                                # die ``config`` words (routes)
    programs: dict                                    # (x, y) -> Case
    traffic: dict = field(default_factory=dict)       # (prefix, i) -> [(earliest, data, color)]
    cycles: int = 400                                 # how long to run
    ready: object = None                              # back-pressure of edge outputs: f(cycle)


@dataclass
class DieOutcome:
    received: dict           # (prefix, i) -> [(cycle, data, color, ctrl)]
    tiles: dict              # (x, y) -> (mem, acc, regs, counters, halted, fault)
    run_seconds: float = 0.0 # wall time of the cycles run (not of loading or reading back)


HALT = Case([encode(Op.HALT)])


async def run_die(port, params, scenario, dead=frozenset(), fresh=False):
    """Load ``scenario`` into the die behind ``port`` with the dead tiles ``dead``, run it
    and read it back.  ``fresh``: the die's memories are all zero (a new simulation)."""
    port.set("reset", 1)
    port.set("enable", 0)
    port.set("dead", dead_mask(params, set(dead)))
    port.set("origin_x", 0)
    port.set("origin_y", 0)
    links = edge_links(params)
    for prefix, i in links:
        port.set(f"{prefix}_in.{i}.valid", 0)
        port.set(f"{prefix}_out.{i}.credit", 0)
    for word in scenario.config_words:
        port.set("config.payload", word)
        port.set("config.valid", 1)
        await port.tick()
    port.set("config.valid", 0)
    for y in range(params.height):
        for x in range(params.width):
            port.set("select_x", x)
            port.set("select_y", y)
            # Unless fresh, every row of every memory: a tile may hold another's leftovers.
            await write_images(port, params, scenario.programs.get((x, y), HALT),
                               memories_of(params, None) if fresh else None)
    port.set("enable", 1)
    await port.tick()
    port.set("reset", 0)

    senders = {link: RampSender(params, scenario.traffic.get(link, [])) for link in links}
    receivers = {link: RampReceiver(params, scenario.ready or (lambda cycle: True))
                 for link in links}
    started = time.perf_counter()
    for cycle in range(scenario.cycles):
        sampled = []
        for (prefix, i) in links:
            arriving = senders[prefix, i].drive(cycle)
            port.set(f"{prefix}_in.{i}.valid", int(arriving is not None))
            if arriving is not None:
                port.set(f"{prefix}_in.{i}.wavelet", pack_wavelet(params, *arriving[:2]))
            credit = receivers[prefix, i].drive(cycle)
            port.set(f"{prefix}_out.{i}.credit", int(credit is not None))
            if credit is not None:
                port.set(f"{prefix}_out.{i}.credit_color", credit)
            sent = (unpack_wavelet(params, port.get(f"{prefix}_out.{i}.wavelet"))
                    if port.get(f"{prefix}_out.{i}.valid") else None)
            returned = (port.get(f"{prefix}_in.{i}.credit_color")
                        if port.get(f"{prefix}_in.{i}.credit") else None)
            sampled.append((prefix, i, sent, returned))
        await port.tick()
        for prefix, i, sent, returned in sampled:
            senders[prefix, i].sample(returned)
            receivers[prefix, i].sample(cycle, sent)
    run_seconds = time.perf_counter() - started
    for prefix, i in links:
        port.set(f"{prefix}_in.{i}.valid", 0)

    tiles = {}
    for (x, y) in scenario.programs:
        port.set("select_x", x)
        port.set("select_y", y)
        mem, acc, regs, counters = await read_core(port, params)
        tiles[x, y] = (mem, acc, regs, counters, port.get("halted"), port.get("fault"))
    return DieOutcome({link: receivers[link].received for link in links}, tiles, run_seconds)
