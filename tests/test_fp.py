"""sim/fp.py, the floating-point specification, against numpy, ml_dtypes and Berkeley SoftFloat.

numpy's float32 arithmetic and its float16/bfloat16 conversions round to
nearest even with IEEE subnormals, so they are an independent reference to
the bit; SoftFloat (:mod:`tb.softfloat_peer`, Berkeley SoftFloat 3) is a
second, written apart from both.  NaNs are compared as a class against them
(their NaNs keep payloads; sim.fp's are canonical, which is checked exactly).
"""

import os
import random

import ml_dtypes
import numpy as np
import pytest

from sim import fp
from tb import softfloat_peer
from tb.float_values import (bits32, floats32, ieee_maximum, ieee_minimum, pair, specials,
                             value)

SEED = int(os.environ.get("TESSERA_SEED", "1"))
COUNT = 100_000                  # operations per operation against numpy
PEER_COUNT = 10_000              # against SoftFloat


def pairs(seed, count, fmt=fp.FP32):
    rng = random.Random(seed)
    a, b = zip(*(pair(rng, fmt) for _ in range(count)))
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)


def compare(name, seed, fmt, inputs, mine, reference):
    """Every result equal, NaNs as a class, and sim.fp's NaNs canonical."""
    mine = np.asarray(mine, dtype=np.int64)
    reference = np.asarray(reference, dtype=np.int64)
    mask = (1 << fmt.bits) - 1
    nan = lambda v: (v & (mask >> 1)) > fmt.infinity        # noqa: E731
    mine_nan, reference_nan = nan(mine), nan(reference)
    bad = np.flatnonzero((mine != reference) & ~(mine_nan & reference_nan))
    bad_nan = np.flatnonzero(mine_nan & (mine != fp.CANONICAL_NAN[fmt]))
    for label, indices in (("mismatches", bad), ("non-canonical NaNs", bad_nan)):
        if len(indices):
            i = indices[0]
            operands = ", ".join(f"{int(x[i]):#x}" for x in inputs)
            pytest.fail(f"{name}: {len(indices)} {label} (seed {seed}); first: ({operands}) "
                        f"gives {int(mine[i]):#x}, the reference {int(reference[i]):#x}")


@pytest.mark.parametrize("name, mine, numpy_op", [
    ("add", fp.add, np.add), ("sub", fp.sub, np.subtract), ("mul", fp.mul, np.multiply)])
def test_fp32_arithmetic_matches_numpy(name, mine, numpy_op):
    a, b = pairs(SEED, COUNT)
    with np.errstate(all="ignore"):
        reference = bits32(numpy_op(floats32(a), floats32(b)))
    compare(name, SEED, fp.FP32, (a, b), [mine(int(x), int(y)) for x, y in zip(a, b)],
            reference)


@pytest.mark.parametrize("name, mine, reference", [
    ("maximum", fp.maximum, ieee_maximum), ("minimum", fp.minimum, ieee_minimum)])
def test_maximum_and_minimum_are_ieee_2019(name, mine, reference):
    a, b = pairs(SEED, COUNT)
    compare(name, SEED, fp.FP32, (a, b), [mine(int(x), int(y)) for x, y in zip(a, b)],
            bits32(reference(floats32(a), floats32(b))))


@pytest.mark.parametrize("fmt, dtype", [(fp.FP16, np.float16), (fp.BF16, ml_dtypes.bfloat16)])
def test_widening_every_16_bit_value_is_exact(fmt, dtype):
    patterns = np.arange(1 << 16, dtype=np.int64)
    reference = bits32(patterns.astype(np.uint16).view(dtype).astype(np.float32))
    compare(f"widen {fmt.name}", SEED, fp.FP32, (patterns,),
            [fp.widen(fmt, int(v)) for v in patterns], reference)


@pytest.mark.parametrize("fmt, dtype", [(fp.FP16, np.float16), (fp.BF16, ml_dtypes.bfloat16)])
def test_narrowing_rounds_to_nearest_even(fmt, dtype):
    rng = random.Random(SEED)
    # fp32 values around the 16-bit format's range, so that its subnormals and overflow come up.
    values = np.array([value(rng, fp.FP32) for _ in range(COUNT // 2)]
                      + [fp.widen(fmt, value(rng, fmt)) + rng.randint(-2**14, 2**14) & 0xFFFFFFFF
                         for _ in range(COUNT // 2)], dtype=np.int64)
    with np.errstate(all="ignore"):
        reference = floats32(values).astype(dtype).view(np.uint16).astype(np.int64)
    compare(f"narrow {fmt.name}", SEED, fmt, (values,), [fp.narrow(fmt, int(v)) for v in values],
            reference)


def test_fp16_arithmetic_is_numpy_float16():
    """A 16-bit operation widens, computes in fp32 and narrows (sim.fp): numpy's float16."""
    a, b = pairs(SEED, COUNT, fp.FP16)
    x, y = (v.astype(np.uint16).view(np.float16) for v in (a, b))
    for name, mine, numpy_op in (("add", fp.add, np.add), ("mul", fp.mul, np.multiply)):
        with np.errstate(all="ignore"):
            reference = numpy_op(x, y).view(np.uint16).astype(np.int64)
        compare(f"fp16 {name}", SEED, fp.FP16, (a, b),
                [fp.narrow(fp.FP16, mine(fp.widen(fp.FP16, int(p)), fp.widen(fp.FP16, int(q))))
                 for p, q in zip(a, b)], reference)


def test_integer_conversions():
    rng = random.Random(SEED)
    integers = [rng.choice([0, 1, -1, 2**31 - 1, -2**31, 2**24 + 1, -(2**24 + 3)])
                if rng.random() < 0.2 else rng.randint(-2**31, 2**31 - 1) >> rng.randrange(32)
                for _ in range(COUNT)]
    compare("from_int32", SEED, fp.FP32, (np.array(integers) & 0xFFFFFFFF,),
            [fp.from_int32(v) for v in integers],
            bits32(np.array(integers, dtype=np.int64).astype(np.float32)))
    values = np.array([value(rng, fp.FP32) for _ in range(COUNT)], dtype=np.int64)
    # numpy's rint is to nearest even; saturate, and NaN to 0, as sim.fp specifies.
    with np.errstate(all="ignore"):
        x = floats32(values).astype(np.float64)
        reference = np.where(np.isnan(x), 0, np.clip(np.rint(x), -2**31, 2**31 - 1))
    mine = [fp.to_int32(int(v)) for v in values]
    bad = np.flatnonzero(np.array(mine) != reference.astype(np.int64))
    assert not len(bad), (f"to_int32 (seed {SEED}): {int(values[bad[0]]):#x} gives "
                          f"{mine[bad[0]]}, numpy {int(reference[bad[0]])}")


def test_key_orders_every_class():
    order = [0xFF800000, 0xFF7FFFFF, 0xBF800000, 0x80000001, 0x80000000, 0, 1, 0x3F800000,
             0x7F7FFFFF, 0x7F800000, 0x7FC00000]
    keys = [fp.key(v) for v in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert fp.key(0xFFC01234) == fp.key(0x7FC00000)          # every NaN ranks as one
    assert all(fp.from_key(fp.key(v)) == v for v in order)


@pytest.mark.parametrize("name", ["f32_add", "f32_mul", "f32_mul_add", "f16_add", "f16_mul",
                                  "f16_to_f32", "f32_to_f16", "f32_to_bf16"])
def test_against_softfloat(name):
    """Berkeley SoftFloat as an independent peer: fp32 add, mul and multiply-add (the
    lanes' fp16 VMAC is f32_mul_add of widened fp16 operands: their product is exact),
    fp16 add and mul, and the conversions."""
    rng = random.Random(SEED)
    w16 = lambda v: fp.widen(fp.FP16, v)                        # noqa: E731
    cases = {
        "f32_add": (fp.FP32, lambda: pair(rng), fp.add, None),
        "f32_mul": (fp.FP32, lambda: pair(rng), fp.mul, None),
        "f32_mul_add": (fp.FP32, lambda: (*pair(rng, fp.FP16), value(rng, fp.FP32)),
                        lambda a, b, c: fp.add(c, fp.mul(w16(a), w16(b))),
                        lambda a, b, c: (w16(a), w16(b), c)),
        "f16_add": (fp.FP16, lambda: pair(rng, fp.FP16),
                    lambda a, b: fp.narrow(fp.FP16, fp.add(w16(a), w16(b))), None),
        "f16_mul": (fp.FP16, lambda: pair(rng, fp.FP16),
                    lambda a, b: fp.narrow(fp.FP16, fp.mul(w16(a), w16(b))), None),
        "f16_to_f32": (fp.FP32, lambda: (value(rng, fp.FP16),), w16, None),
        "f32_to_f16": (fp.FP16, lambda: (value(rng, fp.FP32),),
                       lambda a: fp.narrow(fp.FP16, a), None),
        "f32_to_bf16": (fp.BF16, lambda: (value(rng, fp.FP32),),
                        lambda a: fp.narrow(fp.BF16, a), None),
    }
    fmt, operands, mine, peer_operands = cases[name]
    inputs = [operands() for _ in range(PEER_COUNT)]
    peer = [softfloat_peer.run(name, *(peer_operands(*x) if peer_operands else x))
            for x in inputs]
    compare(name, SEED, fmt, list(zip(*inputs)), [mine(*x) for x in inputs], peer)


def test_the_specials_are_the_corner_classes():
    for fmt in (fp.FP16, fp.BF16, fp.FP32):
        classes = {fp.unpack(fmt, v)[0] for v in specials(fmt)}
        assert classes == {"nan", "inf", "finite"}
        assert fmt.sign_bit in specials(fmt) and 1 in specials(fmt)
