"""The generation loop on the simulated wafer, and what it measured.

:func:`generate` maps the model (:mod:`host.mapper`), loads the plan into a
:class:`host.wafer.Wafer`, injects the prompt's tokens at the wafer's west
edge and lets the wafer run.  The token loop closes on the wafer: the
classifier's arg-maximum goes back to the embedding tile, which looks it up and
starts the next token.  The host only steps the simulation and reads the
generated tokens as they leave the wafer; when every stage has halted it reads
the stages' cycle logs (:mod:`host.kernels.stages`) and counters.
"""

from dataclasses import dataclass

import numpy as np

from host import mapper
from host.kernels.stages import LOG_WORDS, halt_program
from host.wafer import Wafer
from rtl.wavelet import pack_addressed

__all__ = ["NOMINAL_CLOCK_HZ", "Generation", "generate", "WaferError"]

NOMINAL_CLOCK_HZ = 1.1e9
#: Cycles per call into the simulator between checks.
STEP = 20_000
#: A position that takes longer than this has hung (a token takes a few thousand).
CYCLES_PER_POSITION_LIMIT = 50_000


class WaferError(RuntimeError):
    """The wafer faulted or stopped making progress; the message names the tile."""


@dataclass
class Generation:
    prompt: list
    tokens: list                 # generated, as they left the wafer
    arrivals: list               # the cycle each left the wafer (from start)
    plan: object
    logs: dict                   # stage name -> array (positions, LOG_WORDS)
    counters: dict               # stage name -> counters at the end
    cycles: int                  # from start to the last stage halting
    params: object

    @property
    def time_to_first_token_cycles(self):
        return int(self.arrivals[0])

    @property
    def cycles_per_token(self):
        """Mean cycles between consecutive generated tokens leaving the wafer."""
        if len(self.arrivals) < 2:
            return float(self.arrivals[0])
        return float((self.arrivals[-1] - self.arrivals[0]) / (len(self.arrivals) - 1))

    def _decode_positions(self):
        """The positions whose token was generated: from the last prompt token on."""
        return range(len(self.prompt) - 1, self.plan.positions)

    def stage_cycles(self):
        """Per stage, the mean over decode positions of its compute cycles (input in to
        output sent) and of the hop into it (from the previous step's last tile sending to
        this tile's input being in; for the embedding tile, from the classifier: the token
        loop).  The slices of a step work side by side; its last tile ends it.  The
        positions are those whose token was generated (so the prompt's pipelining does
        not show), or with a single token the last prompt position."""
        stages = self.plan.stages
        rows = list(range(len(self.prompt), self.plan.positions)) or \
            list(self._decode_positions())
        last_of = {stage.boundary: stage for stage in stages}
        result = []
        for stage in stages:
            log = self.logs[stage.name]
            compute = [log[p, 2] - log[p, 1] for p in rows]
            if stage.boundary:
                before = self.logs[last_of[stage.boundary - 1].name]
                hops = [log[p, 1] - before[p, 2] for p in rows]
            else:
                before = self.logs[stages[-1].name]
                hops = [log[p, 1] - before[p - 1, 2] for p in rows if p > rows[0]]
            result.append({"stage": stage.name, "tile": list(stage.tile),
                           "step": stage.boundary,
                           "ends_step": last_of[stage.boundary] is stage,
                           "compute_cycles": float(np.mean(compute)),
                           "hop_cycles_in": float(np.mean(hops)) if hops else None})
        return result

    def critical_path_cycles(self):
        """The sum over steps of the hop into the step's last tile and its compute: a
        decode token's cycles, accounted for."""
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
        output of the last prompt token to its last output), over their peak."""
        rows = self._decode_positions()
        first, last = rows[0], rows[-1]
        clock = self.logs[self.plan.stages[-1].name]
        window = clock[last, 2] - clock[first, 2]
        if window <= 0:
            return 0.0
        read = sum(int(self.logs[s.name][last, 3]) - int(self.logs[s.name][first, 3])
                   for s in self.plan.stages)
        return read / (window * len(self.plan.stages) * self.params.lanes)

    def tokens_per_second(self, clock_hz=NOMINAL_CLOCK_HZ):
        return clock_hz / self.cycles_per_token


def generate(qmodel, prompt, count, shape, defects=(), progress=None, **layout):
    """Generate ``count`` tokens after ``prompt`` on a wafer of ``shape``
    (:class:`host.wafer.WaferShape`) with ``defects`` (dead physical tiles); ``layout``:
    the options of :func:`host.mapper.plan` (``split_attention``, ``ffn_tiles``).  Raises
    :class:`host.mapper.MapError` if the model does not fit, :class:`WaferError` if the
    wafer faults or hangs."""
    positions = len(prompt) + count - 1
    plan = mapper.plan(qmodel, shape, len(prompt), positions, **layout)
    params = shape.params
    wafer = Wafer((shape.dies_x, shape.dies_y), (params.width, params.height), params,
                  defects=defects)
    try:
        for x, y, word in plan.route_words(params):
            wafer.route(x, y, word)
        for stage in plan.stages:
            wafer.load(*stage.tile, code=stage.code, data=stage.data)
        halt = halt_program(params).finish()[0]
        for tile in plan.unused:
            wafer.load(*tile, code=halt)
        wafer.start()
        start = wafer.cycle
        ex, ey = plan.embed_tile
        for token in prompt:
            wafer.inject("west", ey, pack_addressed(ex, ey, token), plan.token_color)
        tokens, arrivals = [], []
        limit = CYCLES_PER_POSITION_LIMIT * (positions + 1)
        while not wafer.idle:
            if wafer.cycle - start > limit:
                raise WaferError(_stuck(wafer, plan, "did not finish in "
                                        f"{limit} cycles"))
            wafer.step(STEP, until_idle=True)
            for cycle, data, color, _ in wafer.collect("west", ey):
                if color == plan.host_color:
                    tokens.append(data & 0xFF)
                    arrivals.append(cycle - start)
            _check_faults(wafer, plan)
            if progress:
                progress(len(tokens), count, wafer.cycle - start)
        cycles = wafer.cycle - start
        logs, counters = {}, {}
        for stage in plan.stages:
            memory = np.frombuffer(wafer.memory(*stage.tile), np.uint32, offset=stage.log,
                                   count=LOG_WORDS * positions)
            logs[stage.name] = memory.reshape(positions, LOG_WORDS).astype(np.int64)
            counters[stage.name] = wafer.status(*stage.tile)["counters"]
    finally:
        wafer.close()
    return Generation(list(prompt), tokens, arrivals, plan, logs, counters, cycles, params)


def _check_faults(wafer, plan):
    for stage in plan.stages:
        status = wafer.status(*stage.tile)
        if status["fault"]:
            raise WaferError(f"{stage.name} at tile {stage.tile} faulted (cause "
                             f"{status['fault']}) at pc {status['fault_pc']}")


def _stuck(wafer, plan, what):
    waiting = [f"{s.name} at tile {s.tile} (pc {wafer.status(*s.tile)['pc']})"
               for s in plan.stages if not wafer.status(*s.tile)["halted"]]
    return f"the wafer {what}; still running: " + ", ".join(waiting)
