"""``tessera bench serve``: the service under arrivals, as its clients see it.

One ``tessera serve`` (:func:`host.serve.app` over a :class:`host.serve_engine.WaferEngine`
of as many slots as the most clients), in this process on 127.0.0.1, is loaded once
and kept running.  For each number of clients N, N clients with different prompts
(:func:`host.bench.pipeline.user_texts`) stream a completion each over HTTP, and
they arrive one after another: each client starts when the one before it has its
first token, so that it joins a wafer on which the others decode.  From the
``tessera`` figures of the answers (the cycle each token left the wafer) the bench
reports the aggregate tokens per cycle while every client generates
(:func:`host.runtime.aggregate_tokens_per_cycle`, as ``tessera bench pipeline``
measures it), each client's tokens per cycle and time to first token; and, in wall
clock, the requests a second and the share of it the worker spent simulating the
wafer.  Every client's tokens are checked against its prompt's reference alone.
"""

import json
import threading
import time
import urllib.request

from host import runtime, serve, serve_engine
from host.bench import pipeline

__all__ = ["run", "plot"]

#: Seconds any one client may take before the bench gives up.
PATIENCE = 600


def run(work, shape, clients_list, tokens, layout, progress=print):
    """The bench's JSON document (module docstring) for ``work``
    (:class:`host.workload.Workload`, sized to its context) on ``shape``; ``layout``:
    the options of :func:`host.mapper.plan`.  Raises :class:`host.mapper.MapError` if
    the most clients do not fit at the context."""
    reference = work.reference()
    engine = serve_engine.WaferEngine(reference, shape, max(clients_list),
                                      max(clients_list), layout, stop_token=work.stop_token)
    engine.start()
    points = []
    with serve.in_thread(engine, work, tokens) as base:
        for clients in clients_list:
            point = _point(engine, f"{base}/v1/completions", reference, work, clients, tokens)
            points.append(point)
            whole_run = "" if point["all_generating_at_once"] else \
                " (the whole run's: never all generating at once)"
            progress(f"  {clients:3d} client{'s' if clients > 1 else ' '}: "
                     f"{point['aggregate_tokens_per_cycle']:.6f} tokens/cycle in all{whole_run}, "
                     f"{point['per_user_tokens_per_cycle']:.6f} a client, at most "
                     f"{point['users_in_flight']} in flight; {point['requests_per_second']:.2f} "
                     f"requests/s of wall clock, {point['simulation_share']:.0%} of it "
                     f"simulating")
    document = {"pipeline_stages": engine.steps, "tokens_per_user": tokens,
                "slots": engine.users, "points": points,
                "match_reference": all(point["match_reference"] for point in points)}
    single = next((point for point in points if point["users"] == 1), None)
    full = next((point for point in points if point["users"] == engine.steps), None)
    if single and full:
        base = single["per_user_tokens_per_cycle"]
        document["at_users_equal_stages"] = {
            "users": engine.steps,
            "aggregate_vs_stages_times_single":
                full["aggregate_tokens_per_cycle"] / (engine.steps * base),
            "per_user_vs_single": full["slowest_user_tokens_per_cycle"] / base}
    return document


def _point(engine, url, reference, work, clients, tokens):
    texts = pipeline.user_texts(clients)
    answers = [None] * clients
    first_token = [threading.Event() for _ in range(clients)]
    simulating = engine.simulation_seconds
    started = time.monotonic()
    threads = []
    for client, text in enumerate(texts):
        if client:
            if not first_token[client - 1].wait(PATIENCE):
                raise RuntimeError(f"client {client - 1} had no token in {PATIENCE} s")
        thread = threading.Thread(target=_stream, args=(url, text, tokens, first_token[client],
                                                        answers, client))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(PATIENCE)
    wall = time.monotonic() - started
    failed = [answer for answer in answers if not isinstance(answer, dict)]
    if failed:
        raise RuntimeError(f"a client's request failed: {failed[0]}")
    arrivals = [answer["token_cycles"] for answer in answers]
    rates = [1 / runtime.cycles_per_token(cycles) for cycles in arrivals]
    simulation = engine.simulation_seconds - simulating
    return {
        "users": clients,
        "users_in_flight": max(answer["users_in_flight"] for answer in answers),
        # If not, the aggregate is the whole run's (host.runtime.aggregate_tokens_per_cycle).
        "all_generating_at_once": runtime.all_generating(arrivals),
        "aggregate_tokens_per_cycle": runtime.aggregate_tokens_per_cycle(arrivals),
        "run_tokens_per_cycle": runtime.run_tokens_per_cycle(arrivals),
        "per_user_tokens_per_cycle": sum(rates) / clients,
        "slowest_user_tokens_per_cycle": min(rates),
        "time_to_first_token_cycles":
            sum(answer["time_to_first_token_cycles"] for answer in answers) / clients,
        "match_reference": all(answer["tokens"] == work.until_stop(
                                   reference.generate(work.encode(text), tokens)[0])
                               for answer, text in zip(answers, texts)),
        "wall_seconds": wall,
        "requests_per_second": clients / wall,
        "simulation_seconds": simulation,
        "simulation_share": simulation / wall,
        "clients": [{"prompt": text, "tokens": answer["tokens"],
                     "admitted_cycle": answer["admitted_cycle"],
                     "token_cycles": answer["token_cycles"],
                     "users_in_flight": answer["users_in_flight"],
                     "queued_seconds": answer["queued_seconds"]}
                    for text, answer in zip(texts, answers)],
    }


def _stream(url, text, tokens, first_token, answers, client):
    """One client: a streamed completion of ``text``, whose ``tessera`` figures go into
    ``answers[client]`` (or the error's message); ``first_token`` is set at its first
    token."""
    body = json.dumps({"prompt": text, "max_tokens": tokens, "stream": True}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=PATIENCE) as response:
            for line in response:
                if not line.startswith(b"data: {"):
                    continue
                chunk = json.loads(line[len(b"data: "):])
                first_token.set()
                if "tessera" in chunk:
                    answers[client] = chunk["tessera"]
                elif "error" in chunk:
                    answers[client] = chunk["error"]["message"]
    except OSError as error:
        answers[client] = str(error)
    finally:
        first_token.set()            # the next client goes on, even after a failure


def plot(document, path, clock_hz=runtime.NOMINAL_CLOCK_HZ):
    """Beside ``tessera bench pipeline``'s throughput chart (a point per number of
    clients), the wall clock a request takes and the simulation's part of it."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (chart, wall) = pyplot.subplots(1, 2, figsize=(11, 4), dpi=120)
    pipeline.throughput_chart(chart, document, clock_hz, "client")
    points = document["points"]
    labels = [str(point["users"]) for point in points]
    per_request = [1 / point["requests_per_second"] for point in points]
    simulating = [point["simulation_seconds"] / point["users"] for point in points]
    wall.bar(labels, simulating, label="simulating the wafer")
    wall.bar(labels, [total - part for total, part in zip(per_request, simulating)],
             bottom=simulating, label="the rest: HTTP, waiting for arrivals")
    wall.set_xlabel("clients")
    wall.set_ylabel("wall-clock seconds a request")
    wall.set_title("where a request's wall clock goes")
    wall.legend(loc="upper left", fontsize=8)
    wall.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)
