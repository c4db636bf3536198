"""The tiny LLM end to end on the simulated wafer: tokens generated with the token loop
closed on the wafer, every one equal to the integer reference (host/model.py)."""

import json
import random
import subprocess
import sys

from host import model, runtime
from host.wafer import WaferShape
from rtl.params import preset

PARAMS = preset("default")
PROMPT = "Hi"
TOKENS = 16


def _reference(prompt=PROMPT, tokens=TOKENS):
    config = model.ModelConfig()
    quant = model.QuantModel(config, model.random_weights(config, seed=0))
    return quant, quant.generate(model.encode(prompt), tokens)[0]


def test_tessera_run_generates_the_reference_tokens(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.cli", "run", "--wafer", "1x1",
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
    assert [s["stage"] for s in stages][0] == "embedding" and len(stages) == 6
    # The stages' compute and hops account for the cycles between tokens.
    path = sum(s["compute_cycles"] + s["hop_cycles_in"] for s in stages)
    assert abs(path - report["cycles_per_token"]) < 0.02 * report["cycles_per_token"]


def test_dead_tiles_change_neither_tokens_nor_cycles(seed):
    rng = random.Random(seed)
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    columns = 4 + PARAMS.spare_cols
    dead = {(rng.randrange(columns), row) for row in range(4) if rng.random() < 0.7}
    quant, reference = _reference()
    prompt = model.encode(PROMPT)
    clean = runtime.generate(quant, prompt, TOKENS, shape)
    broken = runtime.generate(quant, prompt, TOKENS, shape, defects=dead)
    assert broken.tokens == reference == clean.tokens, f"TESSERA_SEED={seed}, dead {sorted(dead)}"
    # A bypassed tile costs no cycle: the same tokens leave in the same cycles.
    assert broken.arrivals == clean.arrivals, f"TESSERA_SEED={seed}, dead {sorted(dead)}"


def test_two_tile_attention_blocks_give_the_same_tokens():
    quant, reference = _reference(tokens=8)
    shape = WaferShape((1, 1), (4, 4), PARAMS)
    split = runtime.generate(quant, model.encode(PROMPT), 8, shape, split_attention=True)
    assert split.tokens == reference
    assert [s["stage"] for s in split.stage_cycles()][1:3] == ["layer 0 qkv",
                                                               "layer 0 attention"]
