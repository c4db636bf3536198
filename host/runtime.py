"""The generation loop on the simulated wafer, and what it measured.

:func:`generate` maps the model (:mod:`host.mapper`), loads the plan into a
:class:`host.wafer.Wafer` (each user's prompt goes into the first tile's SRAM
with its program) and lets the wafer run.  The token loop closes on the wafer: the
classifier's arg-maximum goes back to the first tile, which looks it up in the
embedding table and starts the next token.  The host only steps the simulation and reads the
generated tokens as they leave the wafer; when every stage has halted it reads
the stages' cycle logs (:mod:`host.kernels.stages`) and counters.
"""

import time
from dataclasses import dataclass

import numpy as np

from host import mapper
from host.cosim import ParallelWafer, link_ends
from host.kernels.stages import halt_program, read_log, untag
from host.wafer import Wafer

__all__ = ["NOMINAL_CLOCK_HZ", "Generation", "generate", "WaferError", "cycles_per_token",
           "all_generating", "aggregate_tokens_per_cycle", "run_tokens_per_cycle"]

NOMINAL_CLOCK_HZ = 1.1e9
#: Cycles per call into the simulator between checks.
STEP = 20_000
#: A position that takes longer than this a pipeline step has hung (a step takes one or
#: two thousand); the wafer-to-wafer links' latency comes on top.
CYCLES_PER_STEP_LIMIT = 10_000


class WaferError(RuntimeError):
    """The wafer faulted or stopped making progress; the message names the tile."""


def cycles_per_token(arrivals):
    """Mean cycles between consecutive tokens of one user, from the cycles they left the
    wafer; with one token, its cycle."""
    if len(arrivals) < 2:
        return float(arrivals[0])
    return float((arrivals[-1] - arrivals[0]) / (len(arrivals) - 1))


def all_generating(arrivals):
    """Whether every user (``arrivals``: per user, the cycles its tokens left the wafer)
    has two tokens or more, and there is a time when all of them are generating."""
    return (all(len(a) >= 2 for a in arrivals)
            and min(a[-1] for a in arrivals) > max(a[0] for a in arrivals))


def aggregate_tokens_per_cycle(arrivals):
    """Tokens per cycle, all users (``arrivals``: per user, the cycles its tokens left the
    wafer), while every user is generating: the sum of the users' rates (one over
    :func:`cycles_per_token`).  The start and end, when fewer users are in flight, are
    left out (:func:`run_tokens_per_cycle` keeps them); without :func:`all_generating`,
    the whole run's figure."""
    if not all_generating(arrivals):
        return run_tokens_per_cycle(arrivals)
    return sum(1 / cycles_per_token(a) for a in arrivals)


def run_tokens_per_cycle(arrivals):
    """Every user's tokens after its first, over the cycles from the earliest first token
    to the last token."""
    later = sum(len(a) - 1 for a in arrivals)
    span = max(a[-1] for a in arrivals) - min(a[0] for a in arrivals)
    return later / span if span > 0 else 0.0


@dataclass
class Generation:
    prompts: list                # per user, the prompt's tokens
    tokens: list                 # per user, the generated tokens as they left the wafer
    arrivals: list               # per user, the cycle each left the wafer (from start)
    plan: object
    logs: dict                   # stage name -> array (schedule entries, LOG_WORDS)
    counters: dict               # stage name -> counters at the end
    cycles: int                  # from start to the last stage halting
    params: object
    # How it was simulated: the harness, the wafer's cycles from the first load (loading
    # included), its logical tiles, the tile-cycles the harness evaluated, and the wall
    # seconds from the first load to the last read (the model's build not included).
    simulated: dict = None
    # Every logical tile's counters at the end (rtl.isa.Counter), used or not: (x, y) -> list.
    tile_counters: dict = None
    # With ``vector_operations``: the stages' vector operations (host.wafer.VectorOperation),
    # in cycles from the start.
    vector_operations: list = None

    @property
    def users(self):
        return len(self.prompts)

    def time_to_first_token_cycles(self, user=0):
        return int(self.arrivals[user][0])

    def cycles_per_token(self, user=0):
        return cycles_per_token(self.arrivals[user])

    def aggregate_tokens_per_cycle(self):
        return aggregate_tokens_per_cycle(self.arrivals)

    def run_tokens_per_cycle(self):
        return run_tokens_per_cycle(self.arrivals)

    def _entries(self, generated_from):
        """Indices of the schedule's entries at or after ``prompt_len + generated_from``
        of their user (0: entries fed a generated token; -1: also the last prompt one)."""
        lens = self.plan.schedule.prompt_lens
        return [i for i, (user, pos) in enumerate(self.plan.schedule.entries)
                if pos >= lens[user] + generated_from]

    def _measured_entries(self):
        """The entries fed a generated token or, if there are none, the last prompt ones."""
        return self._entries(0) or self._entries(-1)

    def stage_cycles(self):
        """Per stage, the mean over the entries fed a generated token (or, if there are
        none, the last prompt entries) of its compute cycles (input in to output on its
        way) and of the hop into it (from the previous step's last tile starting its
        send to this tile's input being in: the transfer and the wait for this tile; for
        the first tile, from the classifier's previous entry of the same user: the token
        loop).  The slices of a step work side by side; its last
        tile ends it."""
        stages, entries = self.plan.stages, self.plan.schedule.entries
        rows = self._measured_entries()
        index = {entry: i for i, entry in enumerate(entries)}
        last_of = {stage.boundary: stage for stage in stages}
        result = []
        for stage in stages:
            log = self.logs[stage.name]
            compute = [log[i, 2] - log[i, 1] for i in rows]
            if stage.boundary:
                before = self.logs[last_of[stage.boundary - 1].name]
                hops = [log[i, 1] - before[i, 2] for i in rows]
            else:
                before = self.logs[stages[-1].name]
                hops = [log[i, 1] - before[index[user, pos - 1], 2]
                        for i, (user, pos) in ((i, entries[i]) for i in rows) if pos > 0]
            result.append({"stage": stage.name, "tile": list(stage.tile),
                           "step": stage.boundary,
                           "ends_step": last_of[stage.boundary] is stage,
                           "compute_cycles": float(np.mean(compute)),
                           "hop_cycles_in": float(np.mean(hops)) if hops else None})
        return result

    def stage_load(self):
        """Per stage, means over the same entries as :meth:`stage_cycles`: ``busy_cycles``
        (input in to output on its way: compute, and waiting for the previous output to
        have left), ``input_wait_cycles`` (ready to input in: waiting for the input and
        taking it in) and ``period_cycles`` (between consecutive outputs).  With many
        users the periods meet at the pipeline's pace, and the busiest stage sets it."""
        rows = self._measured_entries()
        result = []
        for stage in self.plan.stages:
            log = self.logs[stage.name]
            span = log[rows[-1], 2] - log[rows[0], 2]
            result.append({
                "stage": stage.name,
                "busy_cycles": float(np.mean([log[i, 2] - log[i, 1] for i in rows])),
                "input_wait_cycles": float(np.mean([log[i, 1] - log[i, 0] for i in rows])),
                "period_cycles": float(span / (len(rows) - 1)) if len(rows) > 1 else None})
        return result

    def critical_path_cycles(self):
        """The sum over steps of the hop into the step's last tile and its compute: a
        decode token's cycles, accounted for (one user alone)."""
        return sum(entry["compute_cycles"] + (entry["hop_cycles_in"] or 0)
                   for entry in self.stage_cycles() if entry["ends_step"])

    @property
    def weight_bytes(self):
        return sum(stage.weight_bytes for stage in self.plan.stages)

    @property
    def weight_bandwidth_bound_cycles(self):
        """Weight bytes over the peak SRAM read bandwidth of the tiles in use (``lanes``
        bytes a cycle each): a token can take no fewer cycles if every weight is read
        once."""
        return self.weight_bytes / (len(self.plan.stages) * self.params.lanes)

    @property
    def sram_bandwidth_utilization(self):
        """Data SRAM bytes read by the tiles in use during decode (from the classifier's
        output for the first entry that makes a token to its last output), over their
        peak."""
        rows = self._entries(-1)
        first, last = rows[0], rows[-1]
        clock = self.logs[self.plan.stages[-1].name]
        window = clock[last, 2] - clock[first, 2]
        if window <= 0:
            return 0.0
        read = sum(int(self.logs[s.name][last, 3]) - int(self.logs[s.name][first, 3])
                   for s in self.plan.stages)
        return read / (window * len(self.plan.stages) * self.params.lanes)

    def tokens_per_second(self, clock_hz=NOMINAL_CLOCK_HZ, user=0):
        return clock_hz / self.cycles_per_token(user)


def generate(qmodel, prompts, counts, shape, defects=(), progress=None, wafer_link=None,
             harness="tiles", threads=1, cosim=None, waves=None, vector_operations=None,
             **layout):
    """Generate ``counts[u]`` tokens after ``prompts[u]`` for every user ``u``, all in
    flight at once, on a wafer of ``shape`` (:class:`host.wafer.WaferShape`) with
    ``defects`` (dead physical tiles); ``layout``: the options of
    :func:`host.mapper.plan` (``split_attention``, ``ffn_tiles``, ``serial_prefill``,
    ``wafers``).  ``wafer_link``: ``(latency, interval)`` of the die links between
    wafers (:func:`host.wafer.wafer_link_timing`); None: as fast as any die link, one
    large wafer.  ``harness``: how the wafer is simulated (:data:`host.wafer.HARNESSES`),
    on ``threads`` threads (in each process).  ``cosim``: a transport
    (:class:`host.cosim.Forked`, :class:`host.cosim_mpi.Ranks`) that splits the dies
    between processes by rows of dies, so that a run on several wafers splits at the
    wafer-to-wafer links; None: one process.  The cycles and tokens are the same.
    ``waves``: ``(path, tiles, first, last)``, an FST waveform of ``tiles`` over the run's
    cycles ``first`` to ``last - 1`` (:meth:`host.wafer.Wafer.waves`: one process, the
    tile harness).  ``vector_operations``: ``(first, last)``, record the vector operations
    of every stage that start in the run's cycles ``first`` to ``last - 1``
    (:meth:`host.wafer.Wafer.record_activity`, likewise), for the trace.  Raises :class:`host.mapper.MapError` if the model does not fit,
    :class:`WaferError` if the wafer faults or hangs."""
    shape.check_memory(harness)
    plan = mapper.plan(qmodel, shape, prompts, counts, **layout)
    params, entries = shape.params, len(plan.schedule.entries)
    dies, die = (shape.dies_x, shape.dies_y), (params.width, params.height)
    wafer = (Wafer(dies, die, params, defects=defects, harness=harness, threads=threads)
             if cosim is None else
             ParallelWafer(dies, die, params, defects=defects, transport=cosim, harness=harness,
                           threads=threads, across="rows"))
    started = time.monotonic()
    try:
        if wafer_link:
            _join_wafers(wafer, plan, wafer_link)
        for x, y, word in plan.route_words(params):
            wafer.route(x, y, word)
        for stage in plan.stages:
            wafer.load(*stage.tile, code=stage.code, data=stage.data)
        halt = halt_program(params).finish()[0]
        for tile in plan.unused:
            wafer.load(*tile, code=halt)
        wafer.start()
        start = wafer.cycle
        if waves:
            path, tiles, first, last = waves
            wafer.waves(path, tiles, start + first, start + last, origin=start)
        if vector_operations:
            first, last = vector_operations
            wafer.record_activity([stage.tile for stage in plan.stages], start + first,
                                  start + min(last, 2 ** 63))
        operations = []
        ey = plan.embed_tile[1]
        tokens, arrivals = [[] for _ in prompts], [[] for _ in prompts]
        # With serial prefill the loop also carries the prompt positions' outputs.
        dropped = [len(p) - 1 - first for p, first in zip(prompts, plan.schedule.first_sent)]
        crossings = 2 * (layout.get("wafers", 1) - 1)
        limit = (entries + 1) * (CYCLES_PER_STEP_LIMIT * plan.steps
                                 + crossings * (wafer_link[0] if wafer_link else 0))
        while not wafer.idle:
            if wafer.cycle - start > limit:
                raise WaferError(stuck(wafer, plan, f"did not finish in {limit} cycles"))
            wafer.step(STEP, until_idle=True)
            if vector_operations:
                operations += wafer.vector_operations(origin=start)
            for cycle, data, color, _ in wafer.collect("west", ey):
                if color == plan.host_color:
                    user, token = untag(data, plan.token_bits)
                    if dropped[user]:
                        dropped[user] -= 1
                        continue
                    tokens[user].append(token)
                    arrivals[user].append(cycle - start)
            check_faults(wafer, plan)
            if progress:
                progress(sum(map(len, tokens)), sum(counts), wafer.cycle - start)
        cycles = wafer.cycle - start
        logs, stage_counters = {}, {}
        for stage in plan.stages:
            logs[stage.name] = read_log(wafer.memory(*stage.tile), stage.log, entries)
            stage_counters[stage.name] = wafer.status(*stage.tile)["counters"]
        tile_counters = {(x, y): wafer.status(x, y)["counters"]
                         for y in range(wafer.height) for x in range(wafer.width)}
        simulated = {"harness": harness, "threads": threads,
                     "cosim": cosim.name if cosim else None,
                     "processes": cosim.workers if cosim else 1, "cycles": wafer.cycle,
                     "tiles": wafer.width * wafer.height,
                     "tile_cycles_evaluated": wafer.evaluated,
                     "seconds": time.monotonic() - started}
    finally:
        wafer.close()
    return Generation([list(p) for p in prompts], tokens, arrivals, plan, logs,
                      stage_counters, cycles, params, simulated, tile_counters,
                      operations if vector_operations else None)


def _join_wafers(wafer, plan, timing):
    """Give the die links between the plan's wafers the wafer-to-wafer ``timing``."""
    for link, (sender, receiver) in enumerate(link_ends(wafer.dies_x, wafer.dies_y,
                                                        wafer.params)):
        if plan.wafer_of_die_row(sender // wafer.dies_x) != \
                plan.wafer_of_die_row(receiver // wafer.dies_x):
            wafer.link_timing(link, *timing)


def check_faults(wafer, plan):
    for stage in plan.stages:
        status = wafer.status(*stage.tile)
        if status["fault"]:
            raise WaferError(f"{stage.name} at tile {stage.tile} faulted (cause "
                             f"{status['fault']}) at pc {status['fault_pc']}")


def stuck(wafer, plan, what):
    waiting = [f"{s.name} at tile {s.tile} (pc {wafer.status(*s.tile)['pc']})"
               for s in plan.stages if not wafer.status(*s.tile)["halted"]]
    return f"the wafer {what}; still running: " + ", ".join(waiting)
