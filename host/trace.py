"""A run as a trace for ui.perfetto.dev and chrome://tracing (the JSON trace-event format).

Built from what the runtime measured (:class:`host.runtime.Generation`), nothing
added to the wafer: each stage's log, which the tile stamps with its own cycle
counter for every entry of the schedule (:mod:`host.kernels.stages`: ready,
received, sent, and its SRAM bytes read), and the counters read from every tile at
the end.  A tile is a process of the trace (its track), in pipeline order: per entry a
``wait`` span (ready to the input in: waiting for it and taking it in) and a compute
span named for the entry (input in to the output on its way), and a counter of the
SRAM bytes read at each output.  Wavelets in and out are counted by the tile alone, so
they are known only at the start (none) and at the end: a counter with both points.

Time is in cycles from the start: 1 us in the trace is one cycle.
"""

from rtl.isa import Counter

__all__ = ["trace"]


def trace(result):
    """The trace of ``result`` as a JSON-ready ``{"traceEvents": [...], ...}``."""
    plan, entries = result.plan, result.plan.schedule.entries
    labels = plan.labels()
    events = []
    for index, stage in enumerate(plan.stages):
        pid, log = index + 1, result.logs[stage.name]
        events += [
            {"ph": "M", "pid": pid, "tid": 0, "name": "process_name",
             "args": {"name": f"tile {tuple(stage.tile)} {labels[stage.tile]}"}},
            {"ph": "M", "pid": pid, "tid": 0, "name": "process_sort_index",
             "args": {"sort_index": pid}},
            {"ph": "M", "pid": pid, "tid": 0, "name": "thread_name",
             "args": {"name": stage.name}}]
        for (user, position), (ready, received, sent, reads) in zip(entries, log.tolist()):
            where = {"user": user, "position": position}
            events += [
                {"ph": "X", "pid": pid, "tid": 0, "cat": "wait", "name": "wait",
                 "ts": ready, "dur": received - ready, "args": where},
                {"ph": "X", "pid": pid, "tid": 0, "cat": "compute",
                 "name": f"user {user} position {position}", "ts": received,
                 "dur": sent - received, "args": where},
                {"ph": "C", "pid": pid, "tid": 0, "name": "SRAM bytes read", "ts": sent,
                 "args": {"bytes": reads}}]
        counters = result.tile_counters[stage.tile]
        for ts, scale in ((0, 0), (counters[Counter.CYCLES], 1)):
            events.append({"ph": "C", "pid": pid, "tid": 0, "name": "wavelets", "ts": ts,
                           "args": {"in": scale * counters[Counter.WAVELETS_IN],
                                    "out": scale * counters[Counter.WAVELETS_OUT]}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"time unit": "1 us is one cycle of the wafer",
                          "cycles": result.cycles}}
