"""The non-linear functions: sim.float_math's accuracy against float64, and its kernels on the ISS.

``sim.float_math`` defines each function to the bit; here it is measured
against float64 over its domain (in units in the last place of the fp32
result), and :mod:`host.kernels.float_math`'s code is run on the ISS on seeded
random batches and must give the same bits.  (The RTL runs one batch of each in
``tests/test_core_cocotb.py``'s float directed programs.)
"""

import numpy as np
import pytest

from host.kernels import float_math as kernels
from host.kernels.program import TileProgram
from rtl.params import PRESETS
from sim import float_math
from sim.iss import Core, run
from tb.float_values import bits32, floats32

PARAMS = PRESETS["default"].replace(float_lanes=1)
LENGTH = 64                  # elements a batch: x and three scratch vectors fill 256 accumulators
SAMPLES = 200_000


def _ulps(actual, exact):
    """|actual - exact| in units of the fp32 spacing at the exact value."""
    spacing = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    return np.abs(actual.astype(np.float64) - exact) / spacing


def _signed_log_uniform(rng, low, high):
    return (np.exp(rng.uniform(low, high, SAMPLES)) * rng.choice([-1, 1], SAMPLES)).astype(
        np.float32)


# (function, inputs over its domain, float64 reference, the ulps it must stay within)
ACCURACY = {
    "reciprocal": (lambda rng: _signed_log_uniform(rng, -87, 87), lambda x: 1 / x, 2),
    "rsqrt": (lambda rng: np.abs(_signed_log_uniform(rng, -87, 88)), lambda x: x ** -0.5, 2.5),
    "exp": (lambda rng: rng.uniform(-86, 88, SAMPLES).astype(np.float32), np.exp, 1),
    "silu": (lambda rng: rng.uniform(-30, 30, SAMPLES).astype(np.float32),
             lambda x: x / (1 + np.exp(-x)), 4),
}


@pytest.mark.parametrize("name", ACCURACY)
def test_accuracy_against_float64(name, seed):
    draw, exact, bound = ACCURACY[name]
    x = draw(np.random.default_rng(seed))
    errors = _ulps(getattr(float_math, name)(x), exact(x.astype(np.float64)))
    worst = int(np.argmax(errors))
    assert errors[worst] < bound, (f"{name}({x[worst]!r}) is {errors[worst]:.2f} ulps off "
                                   f"(TESSERA_SEED={seed})")


def test_rms_scale_against_float64(seed):
    rng = np.random.default_rng(seed)
    for length in (16, 64, 288):
        x = (rng.standard_normal(length) * rng.uniform(0.01, 100)).astype(np.float32)
        exact = 1 / np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-5)
        scale = float_math.rms_scale(x, 1e-5)
        assert abs(scale / exact - 1) < 2 ** -20, (length, scale, exact, f"TESSERA_SEED={seed}")


def test_exp_clamps_and_propagates_nan():
    values = float_math.exp(np.array([-np.inf, -1000, np.inf, 1000, np.nan], np.float32))
    assert values[0] == values[1] == float_math.exp(np.float32([-86]))[0] > 0
    assert values[2] == values[3] == float_math.exp(np.float32([88]))[0] < np.inf
    assert np.isnan(values[4])


def _run_kernel(emit, inputs):
    program = TileProgram(PARAMS, "float_math")
    emit(program)
    program.b.halt()
    core = Core(PARAMS)
    core.load(program.finish()[0], None, [int(v) for v in bits32(inputs)])
    run(core)
    assert core.halted and not core.fault, (core.fault, core.fault_pc)
    return np.array(core.acc, dtype=np.int64) & 0xFFFFFFFF


def _batch(rng, name):
    draw = ACCURACY[name][0]
    return rng.choice(draw(rng), LENGTH)


@pytest.mark.parametrize("name", ACCURACY)
def test_kernel_is_the_specification_on_the_iss(name, seed):
    rng = np.random.default_rng(seed)
    for batch in range(8):
        x = _batch(rng, name)
        actual = _run_kernel(lambda t: getattr(kernels, name)(t, 0, LENGTH, LENGTH), x)[:LENGTH]
        expected = bits32(getattr(float_math, name)(x))
        bad = np.flatnonzero(actual != expected)
        assert not len(bad), (f"{name} batch {batch}: {len(bad)} of {LENGTH} differ; "
                              f"x = {x[bad[0]]!r}: {floats32([actual[bad[0]]])[0]!r}, expected "
                              f"{floats32([expected[bad[0]]])[0]!r} (TESSERA_SEED={seed})")


def test_rms_scale_kernel_is_the_specification_on_the_iss(seed):
    rng = np.random.default_rng(seed)
    for length in (1, 7, LENGTH):
        x = (rng.standard_normal(length) * 3).astype(np.float32)
        actual = _run_kernel(lambda t: kernels.rms_scale(t, 0, length, 1e-5, length,
                                                         length + 1), x)[length]
        expected = bits32([float_math.rms_scale(x, 1e-5)])[0]
        assert actual == expected, (length, hex(actual), hex(expected), f"TESSERA_SEED={seed}")
