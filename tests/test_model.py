"""The tiny LLM's references, weight files and integer primitives (no simulator)."""

import struct

import numpy as np
import pytest

from host import model
from host.model import ModelConfig, ModelError, Q
from rtl.isa import Kind
from rtl.params import preset
from sim import iss
from tb.checkpoints import write_llama2c

CONFIG = ModelConfig()


@pytest.fixture(scope="module")
def weights():
    return model.random_weights(CONFIG, seed=0)


def test_tokenizer_round_trips_any_text():
    text = "héllo, wafer ✓"
    assert model.decode(model.encode(text)) == text
    assert max(model.encode(text)) < 256


def test_quantised_reference_follows_the_float_reference(weights):
    prompt = model.encode("The wafer")
    float_model, quant_model = model.FloatModel(CONFIG, weights), model.QuantModel(CONFIG, weights)
    float_tokens, _ = float_model.generate(prompt, 16)
    quant_tokens, _ = quant_model.generate(prompt, 16)
    assert quant_tokens[:4] == float_tokens[:4]
    # On the same tokens, the logits correlate closely and most top tokens agree.
    agreement = model.agreement(float_model, quant_model, prompt + quant_tokens)
    assert agreement["logit_correlation"] > 0.95
    assert agreement["top1_agreement"] > 0.8


def test_references_are_deterministic(weights):
    prompt = model.encode("abc")
    first = model.QuantModel(CONFIG, weights).generate(prompt, 8)[0]
    again = model.QuantModel(CONFIG, model.random_weights(CONFIG, seed=0)).generate(prompt, 8)[0]
    assert first == again
    other = model.QuantModel(CONFIG, model.random_weights(CONFIG, seed=1)).generate(prompt, 8)[0]
    assert other != first


def test_default_weights_print_text(weights):
    tokens, _ = model.QuantModel(CONFIG, weights).generate(model.encode("Hi"), 20)
    assert all(32 <= t < 127 for t in tokens)


@pytest.mark.parametrize("prompt, count, message", [
    ([], 4, "the prompt is empty"),
    ([65] * 60, 8, "exceed the context of 64"),
])
def test_bad_generation_requests(weights, prompt, count, message):
    with pytest.raises(ModelError, match=message):
        model.QuantModel(CONFIG, weights).generate(prompt, count)


def test_weight_file_round_trip(tmp_path, weights):
    path = tmp_path / "tiny.bin"
    model.save_weights(path, CONFIG, weights)
    config, loaded = model.load_weights(path)
    assert config == CONFIG
    for name in model.FloatWeights.shapes(CONFIG):
        assert np.array_equal(getattr(loaded, name), getattr(weights, name)), name


@pytest.mark.parametrize("damage, message", [
    (lambda blob: b"NOTTSRA\0" + blob[8:], "bad magic"),
    (lambda blob: blob[:8] + struct.pack("<I", 9) + blob[12:], "version 9"),
    (lambda blob: blob[:-10], "ends inside wcls"),
    (lambda blob: blob + b"\0" * 8, "8 bytes beyond"),
    (lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]), "checksum"),
    (lambda blob: blob[:4], "bad magic"),
])
def test_weight_file_checks(tmp_path, weights, damage, message):
    path = tmp_path / "tiny.bin"
    model.save_weights(path, CONFIG, weights)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ModelError, match=message):
        model.load_weights(path)


def test_unreadable_weight_file(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        model.load_weights(tmp_path / "missing.bin")


@pytest.mark.parametrize("shared", [True, False])
def test_llama2c_checkpoint(tmp_path, shared):
    config = ModelConfig(dim=16, hidden_dim=48, n_layers=1, n_heads=4, n_kv_heads=2,
                         vocab_size=256, seq_len=32)
    weights = model.random_weights(config, seed=3)
    if shared:
        weights.wcls = weights.embedding.copy()
    path = tmp_path / "stories.bin"
    write_llama2c(path, config, weights, shared)
    loaded_config, loaded = model.load_llama2c(path)
    assert loaded_config == config
    for name in model.FloatWeights.shapes(config):
        assert np.array_equal(getattr(loaded, name), getattr(weights, name)), name
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ModelError, match="ends inside|beyond"):
        model.load_llama2c(path)


def test_grouped_query_attention_runs_in_both_references():
    config = ModelConfig(dim=32, hidden_dim=64, n_layers=1, n_heads=4, n_kv_heads=2)
    weights = model.random_weights(config, seed=2)
    prompt = model.encode("kv")
    float_tokens, _ = model.FloatModel(config, weights).generate(prompt, 4)
    quant_tokens, _ = model.QuantModel(config, weights).generate(prompt, 4)
    assert quant_tokens[0] == float_tokens[0]


# --- the integer primitives against the ISS's own implementation of the same operations ---


def test_vqnt_and_vtbl_match_the_iss(seed):
    rng = np.random.default_rng(seed)
    core = iss.Core(preset("test"))
    table = rng.integers(-30000, 30000, Q.TABLE)
    core.mem[0:2 * Q.TABLE] = np.asarray(table, "<i2").tobytes()
    descriptor = iss.Descriptor(Kind.MEM, 0, Q.TABLE, 1)
    for x in rng.integers(-2000, 2000, 500):
        for shift in (0, 3, 4):
            entries = core._table_entries(descriptor, int(x), shift)
            assert iss.interpolate(entries, int(x), shift, Q.TABLE) == \
                int(model.vtbl([x], table, shift)[0]), f"TESSERA_SEED={seed}: x={x} shift={shift}"
    for x in rng.integers(-(1 << 31), 1 << 31, 500):
        for shift, wide in ((0, False), (7, False), (9, True), (23, False)):
            rounding = (1 << (shift - 1)) if shift else 0
            expected = iss.saturate((int(x) + rounding) >> shift, 16 if wide else 8)
            assert int(model.vqnt([x], shift, wide)[0]) == expected, f"TESSERA_SEED={seed}"


def test_vmul_wraps_to_32_bits():
    assert int(model.vmul([1 << 19], [1 << 12])[0]) == -(1 << 31)
    assert int(model.vmul([1 << 20], [1 << 12])[0]) == 0
    assert int(model.vmul([-3], [5])[0]) == -15


def test_requantiser_never_overflows():
    for factor in (1e-4, 0.01, 0.3, 2.5, 100.0):
        for bound in (127, 127 * 127 * 32, 127 * 127 * 256):
            m, shift = model.requantiser(factor, bound)
            assert bound * m < 1 << 31
            assert abs(m / 2 ** shift - factor) <= factor * 0.01 + 2 ** -shift
