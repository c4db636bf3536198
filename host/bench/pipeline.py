"""``tessera bench pipeline``: the latency-throughput picture of the tiny LLM.

For each number of users U in flight, U users (prompts of one length, so that
they start together) generate the same number of tokens on one plan, and the
bench reports the aggregate tokens per cycle (while every user generates, and over
the whole run), the mean per-user tokens per
cycle, the time to first token and each stage's load (what sets the pace:
:meth:`host.runtime.Generation.stage_load`); every user's tokens are checked
against the model's reference (the seeded model's quantised one, or a 16-bit float
one).  With ``prefill_lengths`` it also runs one user with a
prompt of each length and reports the time to first token and the prompt
tokens per cycle (prompt length over time to first token, the pipeline's fill
included), against single-user decode.  Everything is in simulated cycles.
"""

import os
from concurrent.futures import ProcessPoolExecutor

from host import mapper, model, runtime

__all__ = ["run", "plot", "throughput_chart", "user_prompts", "user_texts"]


def user_texts(users):
    """``users`` different prompt texts."""
    return [f"User {chr(ord('A') + user)}:" for user in range(users)]


def user_prompts(users, encode=model.encode):
    """``users`` prompts of one length (``encode``: text to tokens), different where the
    tokens allow."""
    prompts = [encode(text) for text in user_texts(users)]
    return [prompt[:min(map(len, prompts))] for prompt in prompts]


def prompt_of_length(length, encode=model.encode):
    text = "Wafer-scale engines keep the weights and the KV cache next to the cores. "
    tokens = []
    while len(tokens) < length:
        text += text
        tokens = encode(text)
    return tokens[:length]


def _users_point(quant, encode, shape, users, tokens, layout):
    prompts = user_prompts(users, encode)
    result = runtime.generate(quant, prompts, [tokens] * users, shape, **layout)
    references = [quant.generate(prompt, tokens)[0] for prompt in prompts]
    per_user = [1 / result.cycles_per_token(user) for user in range(users)]
    ttft = [result.time_to_first_token_cycles(user) for user in range(users)]
    return {
        "users": users,
        "aggregate_tokens_per_cycle": result.aggregate_tokens_per_cycle(),
        "run_tokens_per_cycle": result.run_tokens_per_cycle(),
        "per_user_tokens_per_cycle": sum(per_user) / users,
        "slowest_user_tokens_per_cycle": min(per_user),
        "time_to_first_token_cycles": sum(ttft) / users,
        "sram_bandwidth_utilization": result.sram_bandwidth_utilization,
        "match_reference": result.tokens == references,
        "stage_load": result.stage_load(),
    }


def _prefill_point(quant, encode, shape, length, layout):
    prompt = prompt_of_length(length, encode)
    result = runtime.generate(quant, [prompt], [1], shape, **layout)
    ttft = result.time_to_first_token_cycles()
    return {"prompt_tokens": length, "time_to_first_token_cycles": ttft,
            "prompt_tokens_per_cycle": length / ttft,
            "match_reference": result.tokens == [quant.generate(prompt, 1)[0]]}


def run(quant, shape, users_list, tokens, layout, prefill_lengths=(), progress=print,
        encode=model.encode):
    """The bench's JSON document (module docstring) for the reference model ``quant``
    (the wafer's arithmetic; ``encode``: its text to tokens); ``layout``: the options of
    :func:`host.mapper.plan`.  The runs go to one worker process a core; each is a
    whole simulation, so the results do not depend on how many."""
    steps = mapper.plan(quant, shape, user_prompts(1, encode), [tokens], **layout).steps
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        wanted = [*users_list, *([1] if prefill_lengths and 1 not in users_list else [])]
        runs = {users: pool.submit(_users_point, quant, encode, shape, users, tokens, layout)
                for users in wanted}
        prefill_runs = [pool.submit(_prefill_point, quant, encode, shape, length, layout)
                        for length in prefill_lengths]
        points = []
        for users in users_list:
            point = runs[users].result()
            points.append(point)
            progress(f"  {users:3d} user{'s' if users > 1 else ' '}: "
                     f"{point['aggregate_tokens_per_cycle']:.6f} tokens/cycle "
                     f"in all, {point['per_user_tokens_per_cycle']:.6f} a user, first token "
                     f"after {point['time_to_first_token_cycles']:,.0f} cycles")
        single = runs[1].result() if 1 in runs else None
        prefill = []
        for future in prefill_runs:
            entry = future.result()
            entry["vs_single_user_decode"] = (entry["prompt_tokens_per_cycle"]
                                              / single["per_user_tokens_per_cycle"])
            prefill.append(entry)
            progress(f"  prompt of {entry['prompt_tokens']} tokens: first token after "
                     f"{entry['time_to_first_token_cycles']:,} cycles, "
                     f"{entry['prompt_tokens_per_cycle']:.6f} prompt tokens/cycle "
                     f"({entry['vs_single_user_decode']:.1f}x single-user decode)")
    document = {"pipeline_stages": steps, "tokens_per_user": tokens, "points": points,
                "match_reference": all(p["match_reference"] for p in points)}
    full = next((p for p in points if p["users"] == steps), None)
    if single and full:
        base = single["per_user_tokens_per_cycle"]
        document["at_users_equal_stages"] = {
            "users": steps,
            "aggregate_vs_stages_times_single": full["aggregate_tokens_per_cycle"] / (steps * base),
            "per_user_vs_single": full["per_user_tokens_per_cycle"] / base,
            "sram_bandwidth_utilization": full["sram_bandwidth_utilization"],
            "single_user_sram_bandwidth_utilization": single["sram_bandwidth_utilization"]}
    if prefill_lengths:
        document["single_user_decode_tokens_per_cycle"] = single["per_user_tokens_per_cycle"]
        document["prefill"] = prefill
        document["match_reference"] &= all(p["match_reference"] for p in prefill)
    return document


def plot(document, path, clock_hz=runtime.NOMINAL_CLOCK_HZ):
    """The seed's chart (:func:`throughput_chart`), and, with prefill points, time to
    first token against prompt length beside it."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    prefill = document.get("prefill")
    figure, axes = pyplot.subplots(1, 2 if prefill else 1, figsize=(11 if prefill else 6, 4),
                                   dpi=120, squeeze=False)
    throughput_chart(axes[0][0], document, clock_hz)
    if prefill:
        side = axes[0][1]
        side.plot([p["prompt_tokens"] for p in prefill],
                  [p["time_to_first_token_cycles"] for p in prefill], "s-")
        side.set_xlabel("prompt tokens")
        side.set_ylabel("time to first token (cycles)")
        side.set_title("parallel prompt processing, one user")
        side.set_ylim(bottom=0)
        side.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)


def throughput_chart(chart, document, clock_hz, unit="user"):
    """The seed's chart on the axes ``chart``: aggregate tokens/s against one ``unit``'s
    tokens/s, a point per number in flight (the document's ``points``, each with
    ``users`` and its tokens per cycle), beside the ideal of every one at one's speed."""
    points = document["points"]
    per_second = clock_hz / 1e3                 # thousands of tokens a second
    speed = [p["per_user_tokens_per_cycle"] * per_second for p in points]
    total = [p["aggregate_tokens_per_cycle"] * per_second for p in points]
    single = next((p for p in points if p["users"] == 1), None)
    if single:                  # every user at one user's speed: what perfect pipelining gives
        base = single["per_user_tokens_per_cycle"] * per_second
        users = [p["users"] for p in points]
        chart.plot([base] * len(users), [u * base for u in users], "x:", color="gray",
                   label=f"ideal: N {unit}s at one {unit}'s speed")
    chart.plot(speed, total, "o-", label="measured")
    for point, x, y in zip(points, speed, total):
        chart.annotate(f"{point['users']} {unit}{'s' if point['users'] > 1 else ''}", (x, y),
                       textcoords="offset points", xytext=(6, 4), fontsize=8)
    chart.set_xlabel(f"thousand tokens/s per {unit} (at {clock_hz / 1e9:g} GHz)")
    chart.set_ylabel(f"thousand tokens/s, all {unit}s")
    chart.set_title(f"{document['pipeline_stages']}-stage pipeline: throughput vs {unit} speed")
    chart.set_xlim(left=0)
    chart.set_ylim(bottom=0)
    chart.grid(alpha=0.3)
    chart.legend(loc="upper left", fontsize=8)
