"""The tiny LLM end to end on the simulated wafer: tokens generated with the token loop
closed on the wafer, every one equal to the integer reference (host/model.py)."""

import json
import random
import subprocess
import sys

import pytest

from host import model, runtime
from host.wafer import HARNESSES, WaferShape
from rtl.params import preset

PARAMS = preset("default")
PROMPT = "Hi"
TOKENS = 16


def _reference(prompt=PROMPT, tokens=TOKENS):
    config = model.ModelConfig()
    quant = model.QuantModel(config, model.random_weights(config, seed=0))
    return quant, quant.generate(model.encode(prompt), tokens)[0]


def test_tessera_run_generates_the_reference_tokens(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.cli", "run", "--model", "seeded",
                             "--wafer", "1x1",
                             "--prompt", PROMPT, "--tokens", str(TOKENS),
                             "--json", str(tmp_path / "run.json")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    _, reference = _reference()
    assert report["tokens"] == reference and len(reference) == TOKENS
    assert report["match_reference"] is True
    assert "every token equals the quantised reference: yes (16/16)" in result.stdout
    # Single-user decode is latency-bound: far more cycles than the weights need.
    assert report["cycles_per_token"] > 5 * report["weight_bandwidth_bound_cycles"]
    assert 0 < report["sram_bandwidth_utilization"] < 0.2
    assert report["time_to_first_token_cycles"] > 0
    stages = report["stage_cycles"]
    assert [s["stage"] for s in stages][0] == "embedding + layer 0 attention" and len(stages) == 5
    # The steps' compute and hops account for the cycles between tokens.
    path = report["critical_path_cycles"]
    assert path == sum(s["compute_cycles"] + s["hop_cycles_in"] for s in stages)
    assert abs(path - report["cycles_per_token"]) < 0.02 * report["cycles_per_token"]


def test_dead_tiles_change_neither_tokens_nor_cycles(seed):
    rng = random.Random(seed)
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    columns = 4 + PARAMS.spare_cols
    dead = {(rng.randrange(columns), row) for row in range(4) if rng.random() < 0.7}
    quant, reference = _reference()
    prompt = model.encode(PROMPT)
    clean = runtime.generate(quant, [prompt], [TOKENS], shape)
    broken = runtime.generate(quant, [prompt], [TOKENS], shape, defects=dead)
    assert broken.tokens == [reference] == clean.tokens, \
        f"TESSERA_SEED={seed}, dead {sorted(dead)}"
    # A bypassed tile costs no cycle: the same tokens leave in the same cycles.
    assert broken.arrivals == clean.arrivals, f"TESSERA_SEED={seed}, dead {sorted(dead)}"


def test_regions_of_several_tiles_give_the_same_tokens():
    """Attention over two tiles in a row, feed-forward slices side by side."""
    quant, reference = _reference(tokens=8)
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    split = runtime.generate(quant, [model.encode(PROMPT)], [8], shape, split_attention=True,
                             ffn_tiles=2)
    assert split.tokens == [reference]
    cycles = split.stage_cycles()
    assert [s["stage"] for s in cycles][:4] == [
        "embedding + layer 0 qkv", "layer 0 attention", "layer 0 feed-forward 1/2",
        "layer 0 feed-forward 2/2"]
    assert abs(split.critical_path_cycles() - split.cycles_per_token()) \
        < 0.02 * split.cycles_per_token()
    # The slices work side by side: the region takes less than the sum of its tiles.
    ffn = [s for s in cycles if "feed-forward" in s["stage"]][:2]
    assert ffn[1]["compute_cycles"] < ffn[0]["compute_cycles"] + ffn[1]["compute_cycles"] - 300


def test_users_in_flight_each_get_their_own_tokens():
    """U = 1, 2, 4 users with different prompts (of different lengths, so users start and
    finish at different positions), all in flight at once: each user's tokens equal that
    user alone, which equal the reference."""
    config = model.ModelConfig()
    quant = model.QuantModel(config, model.random_weights(config, seed=0))
    texts = ["Hi!", "Wafer", "abc", "Ok."]
    prompts = [model.encode(text) for text in texts]
    references = [quant.generate(prompt, 6)[0] for prompt in prompts]
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    alone = runtime.generate(quant, prompts[:1], [6], shape)
    for users in (1, 2, 4):
        together = runtime.generate(quant, prompts[:users], [6] * users, shape)
        assert together.tokens == references[:users]
        assert together.tokens[0] == alone.tokens[0]
    # Four users share the pipeline: more tokens a cycle than one user, each user not much
    # slower than alone.
    assert together.aggregate_tokens_per_cycle() > 2 / alone.cycles_per_token()
    assert together.cycles_per_token(0) < 1.25 * alone.cycles_per_token()


def test_aggregate_throughput_counts_the_time_every_user_generates():
    """The aggregate is the users' rates summed while all generate (the start and end,
    with fewer users in flight, left out); the whole run's figure keeps them, and stands
    in when the users' generations do not overlap."""
    def generation(arrivals):
        return runtime.Generation([[1]] * len(arrivals), [[0] * len(a) for a in arrivals],
                                  arrivals, None, {}, {}, max(map(max, arrivals)), PARAMS)

    staggered = generation([[100, 200, 300, 400], [150, 250, 350, 450], [130, 330]])
    assert staggered.aggregate_tokens_per_cycle() == 1 / 100 + 1 / 100 + 1 / 200
    assert staggered.run_tokens_per_cycle() == 7 / 350
    apart = generation([[100, 200], [300, 400]])
    assert apart.aggregate_tokens_per_cycle() == apart.run_tokens_per_cycle() == 2 / 300


def test_parallel_prompt_processing_equals_one_prompt_token_at_a_time():
    """Prompt tokens back to back give the tokens of prompt tokens that each wait for the
    token loop, and the first token sooner."""
    quant, reference = _reference("Wafer-scale", 3)
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    prompt = [model.encode("Wafer-scale")]
    parallel = runtime.generate(quant, prompt, [3], shape)
    serial = runtime.generate(quant, prompt, [3], shape, serial_prefill=True)
    assert parallel.tokens == serial.tokens == [reference]
    # Serially, each of the 11 prompt tokens takes a trip through the whole pipeline.
    assert serial.time_to_first_token_cycles() > 10 * serial.cycles_per_token()
    assert parallel.time_to_first_token_cycles() < 0.6 * serial.time_to_first_token_cycles()


def test_two_wafers_give_the_tokens_of_one():
    """Layer 0 on one wafer, layer 1 on the next, joined by slow links: the tokens of one
    wafer; each token pays the link twice (the stream out, the token back)."""
    quant, reference = _reference(tokens=4)
    prompt = [model.encode(PROMPT)]
    one = runtime.generate(quant, prompt, [4], WaferShape((1, 1), (4, 4), PARAMS))
    two = WaferShape((1, 2), (4, 4), PARAMS)
    latency = 300
    joined = runtime.generate(quant, prompt, [4], two, wafers=2, wafer_link=(latency, 1))
    large = runtime.generate(quant, prompt, [4], two, wafers=2)
    assert joined.tokens == large.tokens == one.tokens == [reference]
    extra = joined.cycles_per_token() - large.cycles_per_token()
    assert 2 * (latency - 1) <= extra <= 2 * latency + 20


def test_a_long_prompt_fills_the_stages_a_decoding_user_leaves_idle():
    """One user decodes while another has a long prompt: the prompt's tokens take the
    places the first user's token loop leaves free, so neither waits much for the
    other (taking turns, a position each, the prompt would advance one token a round)."""
    config = model.ModelConfig()
    quant = model.QuantModel(config, model.random_weights(config, seed=0))
    short, long = model.encode("Hi"), model.encode("Wafer-scale engines keep the weights")
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    layout = {"split_attention": True, "ffn_tiles": 2}
    decoding = runtime.generate(quant, [short], [6], shape, **layout)
    prefilling = runtime.generate(quant, [long], [2], shape, **layout)
    both = runtime.generate(quant, [short, long], [6, 2], shape, **layout)
    assert both.tokens == [quant.generate(short, 6)[0], quant.generate(long, 2)[0]]
    assert both.tokens == decoding.tokens + prefilling.tokens
    print(f"first token of the long prompt {both.time_to_first_token_cycles(1)} cycles "
          f"(alone {prefilling.time_to_first_token_cycles()}); the other user "
          f"{both.cycles_per_token(0):.0f} cycles a token (alone {decoding.cycles_per_token():.0f})")
    assert both.time_to_first_token_cycles(1) < 1.3 * prefilling.time_to_first_token_cycles()
    assert both.cycles_per_token(0) < 1.5 * decoding.cycles_per_token()


@pytest.mark.parametrize("users", [1, 4])
def test_the_tile_harness_gives_the_die_harness_tokens_cycles_and_counters(users):
    """The same LLM run simulated die by die (the reference) and tile by tile: the same
    tokens in the same cycles, the same stage logs and counters."""
    config = model.ModelConfig()
    quant = model.QuantModel(config, model.random_weights(config, seed=0))
    prompts = [model.encode(text) for text in ["Hi!", "Wafer", "abc", "Ok."][:users]]
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    runs = [runtime.generate(quant, prompts, [4] * users, shape, harness=harness,
                             split_attention=users > 1) for harness in HARNESSES]
    for field in ("tokens", "arrivals", "counters", "cycles"):
        assert getattr(runs[0], field) == getattr(runs[1], field), field
    assert runs[0].logs.keys() == runs[1].logs.keys()
    assert all((runs[0].logs[stage] == runs[1].logs[stage]).all() for stage in runs[0].logs)
