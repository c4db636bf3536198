"""Users joining and leaving a running wafer (host/running_wafer.py): requests enter from
the wafer's west edge while others decode, each takes a free slot, and a finished
user's slot takes the next request, with no reload.  Each user's tokens are its
reference's alone, whatever else is in flight, on the seeded byte model and on
stories260K (whose embedding, attention and classifier take several tiles each)."""

import dataclasses
import random

import pytest

from host import workload
from host.half_model import HalfModel
from host.kernels.stages import cancel_payloads
from host.mapper import MapError
from host.model import load_llama2c
from host.running_wafer import RunningWafer
from host.wafer import WaferShape
from rtl.params import preset

PARAMS = preset("default")
STEP = 2_000


@pytest.fixture(scope="module")
def seeded():
    return workload.load("seeded").sized(16, 32).reference()


def _shape(params=PARAMS, dies=(1, 1), die=None):
    return WaferShape(dies, die or (params.width, params.height), params)


def _run_until(wafer, done):
    """Step ``wafer`` until ``done()``; every token that left it, in order."""
    arrivals = []
    while not done():
        arrivals += wafer.run(STEP)
    return arrivals


def _tokens(arrivals, admission):
    return [a.token for a in arrivals if a.slot == admission.slot
            and a.cycle >= admission.admitted][:admission.max_tokens]


def test_users_join_while_others_decode_and_a_freed_slot_takes_the_next(seeded, seed):
    rng = random.Random(seed)
    prompts = [[rng.randrange(32, 127) for _ in range(rng.randint(1, 5))] for _ in range(3)]
    wafer = RunningWafer(seeded, _shape(), 2)
    try:
        first = wafer.admit(prompts[0], 6)
        arrivals = _run_until(wafer, lambda: len(first.tokens) >= 2)
        second = wafer.admit(prompts[1], 8)            # joins while the first decodes
        assert second.slot == 1 and wafer.free_slots == []
        arrivals += _run_until(wafer, lambda: first.finished)
        assert wafer.free_slots == [first.slot]
        third = wafer.admit(prompts[2], 5)             # the first's slot, the second decoding
        assert third.slot == first.slot
        arrivals += _run_until(wafer, lambda: not wafer.in_flight)
    finally:
        wafer.close()
    for admission, prompt in zip((first, second, third), prompts):
        reference = seeded.generate(prompt, admission.max_tokens)[0]
        assert admission.tokens == reference == _tokens(arrivals, admission), \
            f"slot {admission.slot}, prompt {prompt} (TESSERA_SEED={seed})"
        assert admission.arrivals == sorted(admission.arrivals)
        assert admission.arrivals[0] > admission.admitted
    # They were in flight together: the second's tokens came between the first's, and the
    # third's between the second's.
    assert second.arrivals[0] < first.arrivals[-1] and third.arrivals[0] < second.arrivals[-1]
    assert third.admitted >= first.arrivals[-1]


def test_a_user_alone_and_beside_others_takes_the_same_tokens_at_a_cost(seeded):
    """The same request alone, then joining two others: the same tokens; its cycles
    between tokens grow by no more than the others' entries take."""
    prompt, count = [72, 105], 6
    alone = RunningWafer(seeded, _shape(), 3)
    try:
        solo = alone.admit(prompt, count)
        _run_until(alone, lambda: solo.finished)
    finally:
        alone.close()
    shared = RunningWafer(seeded, _shape(), 3)
    try:
        others = [shared.admit([66, 67, 68], 12), shared.admit([70], 12)]
        _run_until(shared, lambda: all(len(o.tokens) >= 2 for o in others))
        joined = shared.admit(prompt, count)
        _run_until(shared, lambda: joined.finished)
    finally:
        shared.close()
    assert joined.tokens == solo.tokens
    gaps = [b - a for a, b in zip(joined.arrivals, joined.arrivals[1:])]
    solo_gaps = [b - a for a, b in zip(solo.arrivals, solo.arrivals[1:])]
    # Three users share the pipeline: a token takes longer, but less than three times.
    assert max(solo_gaps) < min(gaps) and max(gaps) < 3 * max(solo_gaps), (gaps, solo_gaps)


def test_a_request_ends_at_the_stop_token_and_its_slot_takes_the_next(seeded):
    """The first tile ends a request at the stop token (a llama2.c model's BOS; here a
    token the seeded model makes), before its max_tokens: the slot is free at once."""
    prompt, other = [72, 105], [66, 67]
    alone = seeded.generate(prompt, 8)[0]
    ends = next(k for k in range(1, 8) if alone[k] not in alone[:k])
    stop = alone[ends]
    wafer = RunningWafer(seeded, _shape(), 1, stop_token=stop)
    try:
        first = wafer.admit(prompt, 8)
        arrivals = _run_until(wafer, lambda: first.finished)
        assert wafer.free_slots == [0]
        second = wafer.admit(other, 6)
        _run_until(wafer, lambda: second.finished)
        assert wafer.run(10 * STEP) == [] and not wafer.in_flight   # nothing more leaves
    finally:
        wafer.close()
    assert first.tokens == alone[:ends + 1] and arrivals[-1].last, (first.tokens, alone)
    expected = seeded.generate(other, 6)[0]
    if stop in expected:
        expected = expected[:expected.index(stop) + 1]
    assert second.tokens == expected


def test_a_cancelled_request_ends_at_its_next_token_and_the_others_run_on(seeded):
    """A client gone: the first tile ends its request at the next generated token (in its
    prompt, at the first), the slot takes the next request, and the user beside it is
    unaffected.  A cancel that reaches a slot already free (the request ended on the way)
    is ignored."""
    prompts = {"gone": [72, 105], "beside": [66, 67, 68], "early": [1, 2, 3, 4, 5],
               "next": [70, 71]}
    wafer = RunningWafer(seeded, _shape(), 2)
    try:
        gone, beside = wafer.admit(prompts["gone"], 20), wafer.admit(prompts["beside"], 14)
        _run_until(wafer, lambda: len(gone.tokens) >= 2)
        seen = len(gone.tokens)
        wafer.cancel(gone.slot)
        _run_until(wafer, lambda: gone.finished)
        early = wafer.admit(prompts["early"], 20)         # gone's slot, its prompt going in
        wafer.cancel(early.slot)
        _run_until(wafer, lambda: early.finished)
        wafer._send(cancel_payloads(early.slot))          # too late: the slot is free
        following = wafer.admit(prompts["next"], 6)
        _run_until(wafer, lambda: not wafer.in_flight)
    finally:
        wafer.close()
    reference = {name: seeded.generate(prompt, 20)[0] for name, prompt in prompts.items()}
    assert seen <= len(gone.tokens) <= seen + 1 and gone.tokens == reference["gone"][
        :len(gone.tokens)], (seen, gone.tokens)
    assert early.tokens == reference["early"][:1]
    assert beside.tokens == reference["beside"][:14]
    assert following.tokens == reference["next"][:6]


def test_bad_requests_are_refused_before_they_reach_the_wafer(seeded):
    wafer = RunningWafer(seeded, _shape(), 1)
    try:
        with pytest.raises(ValueError, match="takes 33 positions; a slot holds 32"):
            wafer.admit([65] * 30, 4)
        with pytest.raises(ValueError, match="needs a prompt"):
            wafer.admit([], 4)
        wafer.admit([65], 2)
        with pytest.raises(ValueError, match="all 1 slots are taken"):
            wafer.admit([66], 2)
    finally:
        wafer.close()


def test_a_running_wafer_needs_a_second_xy_color(seeded):
    params = PARAMS.replace(colors=7, xy_colors=1)
    with pytest.raises(MapError, match="needs 2 XY-addressed colors"):
        RunningWafer(seeded, _shape(params), 1)


def test_stories_users_join_across_the_multi_tile_stages():
    """stories260K as ``make demo`` lays it out (two embedding tiles, four attention tiles
    a layer, two classifier tiles): a second user joins while the first decodes."""
    config, weights = load_llama2c("host/models/stories260K.bin")
    model = HalfModel(dataclasses.replace(config, seq_len=16), weights)
    wafer = RunningWafer(model, _shape(preset("float"), (3, 1), (4, 4)), 2, head_tiles=4)
    try:
        assert [s.name for s in wafer.plan.stages][:2] == ["embedding 1/2", "embedding 2/2"]
        first = wafer.admit([1], 5)
        _run_until(wafer, lambda: len(first.tokens) >= 1)
        second = wafer.admit([1, 403, 407], 3)
        _run_until(wafer, lambda: not wafer.in_flight)
    finally:
        wafer.close()
    assert first.tokens == model.generate([1], 5)[0]
    assert second.tokens == model.generate([1, 403, 407], 3)[0]
    assert second.arrivals[0] < first.arrivals[-1]
