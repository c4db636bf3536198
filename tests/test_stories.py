"""stories260K, a real trained model, on the simulated wafer at fp16: every token equal
to the 16-bit float reference (host/half_model.py), with the token loop closed on the
wafer; and with group-wise int8 weights, equal to theirs (host/int8_model.py)."""

import dataclasses
import random

import pytest

from host import runtime
from host.half_model import HalfModel
from host.int8_model import Int8Model
from host.model import load_llama2c
from host.tokenizer import Tokenizer
from host.wafer import WaferShape
from rtl.params import preset

MODELS = "host/models/"
PARAMS = preset("float")
#: Positions the runs need: the KV caches are sized by it.
CONTEXT = 72
#: The documented greedy sample's opening (host/models/README.md).
SAMPLE = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
          "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
          "too high.")


@pytest.fixture(scope="module")
def stories():
    config, weights = load_llama2c(MODELS + "stories260K.bin")
    config = dataclasses.replace(config, seq_len=CONTEXT)
    return HalfModel(config, weights), Tokenizer.load(MODELS + "tok512.bin", config.vocab_size)


def _shape(dies_x=2):
    return WaferShape((dies_x, 1), (4, 4), PARAMS)


def test_the_story_from_bos_is_the_reference_and_the_documented_sample(stories):
    """As ``make demo`` runs it: each attention block's KV heads on four tiles."""
    model, tokenizer = stories
    count = 64
    run = runtime.generate(model, [[1]], [count], _shape(3), head_tiles=4)
    reference = model.generate([1], count)[0]
    assert run.tokens == [reference] and len(reference) == count
    text = tokenizer.decode([1] + run.tokens[0])
    assert text.startswith(SAMPLE), text
    # The embedding and the classifier take two tiles each at fp16 (64 KiB tables).
    names = [stage.name for stage in run.plan.stages]
    assert names[:4] == ["embedding 1/2", "embedding 2/2", "layer 0 qkv",
                         "layer 0 attention 1/4"] and names[-2:] == [
        "classifier 1/2", "classifier 2/2"]


def test_a_prompt_on_a_wafer_with_dead_tiles(stories, seed):
    model, tokenizer = stories
    rng = random.Random(seed)
    shape = _shape()
    columns = PARAMS.width + PARAMS.spare_cols
    dead = {(die * columns + rng.randrange(columns), row)
            for die in range(2) for row in range(4) if rng.random() < 0.5}
    prompt = tokenizer.encode("Tom had a red")
    run = runtime.generate(model, [prompt], [12], shape, defects=dead)
    assert run.tokens == [model.generate(prompt, 12)[0]], f"TESSERA_SEED={seed}, dead {dead}"


def test_two_users_get_the_tokens_they_get_alone(stories):
    model, tokenizer = stories
    prompts = [tokenizer.encode(text) for text in ("The cat", "One day, a big dog")]
    together = runtime.generate(model, prompts, [8, 8], _shape())
    assert together.tokens == [model.generate(prompt, 8)[0] for prompt in prompts]


def test_group_int8_weights_tell_their_references_story_on_half_the_table_tiles():
    """``--dtype int8``: the weights dequantised on the float lanes as they are used.  At
    half the bytes, the embedding, each feed-forward block and the classifier fit one
    tile each."""
    config, weights = load_llama2c(MODELS + "stories260K.bin")
    model = Int8Model(dataclasses.replace(config, seq_len=CONTEXT), weights)
    count = 24
    run = runtime.generate(model, [[1]], [count], _shape(3), head_tiles=4)
    assert run.tokens == [model.generate([1], count)[0]]
    names = [stage.name for stage in run.plan.stages]
    assert names[:2] == ["embedding", "layer 0 qkv"] and names[-1] == "classifier"
    assert names.count("layer 0 feed-forward") == 1
