"""A run as a trace for ui.perfetto.dev and chrome://tracing (the JSON trace-event format).

Built from what the runtime measured (:class:`host.runtime.Generation`), nothing
added to the wafer's programs: each stage's log, which the tile stamps with its own cycle
counter for every entry of the schedule (:mod:`host.kernels.stages`: ready,
received, sent, and its SRAM bytes read); the vector operations the tile harness saw
its microthread slots run (:meth:`host.wafer.Wafer.record_activity`); and the counters
read from every tile at the end.

A tile is a process of the trace, in pipeline order, with three threads:

- the stage: per entry a ``wait`` span (ready to the input in: waiting for it and taking
  it in) and a compute span named for the entry (input in to the output on its way);
- ``slot 0`` and ``slot 1`` (:data:`rtl.isa.SLOTS`): each vector operation a span named for its opcode, from its
  launch to its slot's being free, split into ``stalled`` (launched, no beat yet: its
  operands or the other slot's beats hold it), ``issuing`` (its first beat to its last,
  with its beats and the cycles between them that issued none in its arguments) and
  ``draining`` (its last beats on their way through the pipeline);

and counters: SRAM bytes read, at each entry's output and each operation's end, and
wavelets in and out, at each operation's end, at the start (none) and at the end.

Time is in cycles from the start: 1 us in the trace is one cycle.
"""

import json

from rtl.isa import SLOTS, Counter

__all__ = ["events", "write"]


def _event(phase, pid, tid, name, **fields):
    return {"ph": phase, "pid": pid, "tid": tid, "name": name, **fields}


def _threads(pid, names):
    """The metadata that names a tile's threads ``names`` (tid 0, 1, ...)."""
    for tid, name in enumerate(names):
        yield _event("M", pid, tid, "thread_name", args={"name": name})


def _operation(pid, operation):
    """An operation's span and its parts, and the counters at its end."""
    tid, o = 1 + operation.slot, operation
    issued = o.last_beat + 1 - o.first_beat if o.beats else 0
    parts = [("stalled", o.start, o.first_beat if o.beats else o.end, {}),
             ("issuing", o.first_beat, o.first_beat + issued,
              {"beats": o.beats, "cycles without a beat": issued - o.beats}),
             ("draining", o.first_beat + issued, o.end, {})]
    events = [_event("X", pid, tid, o.op.name.lower(), cat="vector", ts=o.start,
                     dur=o.end - o.start, args={"beats": o.beats, "slot": o.slot})]
    events += [_event("X", pid, tid, name, cat="vector", ts=begin, dur=end - begin, args=args)
               for name, begin, end, args in parts if end > begin]
    return events + [
        _event("C", pid, 0, "SRAM bytes read", ts=o.end, args={"bytes": o.sram_reads}),
        _event("C", pid, 0, "wavelets", ts=o.end,
               args={"in": o.wavelets_in, "out": o.wavelets_out})]


def events(result):
    """The trace events of ``result``, one at a time (a long run has millions)."""
    plan, entries = result.plan, result.plan.schedule.entries
    labels = plan.labels()
    operations = {}
    for operation in result.vector_operations or []:
        operations.setdefault(operation.tile, []).append(operation)
    for index, stage in enumerate(plan.stages):
        pid, log = index + 1, result.logs[stage.name]
        yield _event("M", pid, 0, "process_name",
                     args={"name": f"tile {tuple(stage.tile)} {labels[stage.tile]}"})
        yield _event("M", pid, 0, "process_sort_index", args={"sort_index": pid})
        yield from _threads(pid, [stage.name, *(f"slot {n}" for n in range(SLOTS))])
        for (user, position), (ready, received, sent, reads) in zip(entries, log.tolist()):
            where = {"user": user, "position": position}
            yield _event("X", pid, 0, "wait", cat="wait", ts=ready, dur=received - ready,
                         args=where)
            yield _event("X", pid, 0, f"user {user} position {position}", cat="compute",
                         ts=received, dur=sent - received, args=where)
            yield _event("C", pid, 0, "SRAM bytes read", ts=sent, args={"bytes": reads})
        for operation in operations.get(tuple(stage.tile), []):
            yield from _operation(pid, operation)
        counters = result.tile_counters[stage.tile]
        for ts, scale in ((0, 0), (counters[Counter.CYCLES], 1)):
            yield _event("C", pid, 0, "wavelets", ts=ts,
                         args={"in": scale * counters[Counter.WAVELETS_IN],
                               "out": scale * counters[Counter.WAVELETS_OUT]})


def write(result, path):
    """Write the trace of ``result`` to ``path``: ``{"traceEvents": [...], ...}``, an event
    a line, written as they come."""
    with open(path, "w") as out:
        out.write('{"displayTimeUnit": "ns", "otherData": ')
        json.dump({"time unit": "1 us is one cycle of the wafer", "cycles": result.cycles}, out)
        out.write(', "traceEvents": [\n')
        for number, event in enumerate(events(result)):
            out.write((",\n" if number else "") + json.dumps(event, separators=(",", ":")))
        out.write("\n]}\n")
