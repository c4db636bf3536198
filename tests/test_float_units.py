"""The vector lanes' floating-point units in the Amaranth simulator, block level.

Each operation of :class:`FloatMultiplier`, :class:`FloatAdder` and
:class:`FloatConverter` runs one long simulation that presents a new operation
every cycle: directed operands (signed zeros, the smallest and largest
subnormals, the smallest normal, the largest finite, infinities, NaNs of several
payloads and both signs, ties, overflow, underflow, cancellation, long alignment
shifts), then :data:`RANDOM_COUNT` seeded random ones biased towards those
classes (exponents at the edges and near each other, fractions with runs of ones
and zeros).  Every result, read at the unit's latency, must equal

- :mod:`sim.fp`, the specification, bit for bit (a NaN result is its canonical
  NaN), and
- an independent reference: numpy's float32 and float16 and ml_dtypes' bfloat16,
  NaNs compared as a class (where numpy's semantics differ from the
  specification, a reference built from numpy's primitives, said where), and for
  add, mul and three conversions also Berkeley SoftFloat (:mod:`tb.softfloat_peer`,
  whose default NaN is 0xFFC00000: NaNs as a class again).

:func:`rtl.core.float_widen.widen` is checked on every fp16 and bf16 pattern, every
int8 and fp32 NaNs.  A failure quotes the seed (``TESSERA_SEED`` reproduces it)
and the first failing operands.
"""

import itertools
import os

import ml_dtypes
import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rtl.core.float_add import AdderOp, FloatAdder
from rtl.core.float_convert import ConvertOp, FloatConverter
from rtl.core.float_mul import FloatMultiplier, MultiplierOp
from rtl.core.float_widen import WidenFrom, widen
from sim import fp
from tb import softfloat_peer
from tb.float_values import ieee_maximum, ieee_minimum

#: 30,000 in `make test`; `make soak` runs 1,000,000 (``TESSERA_FLOAT_OPERANDS``).
RANDOM_COUNT = int(os.environ.get("TESSERA_FLOAT_OPERANDS", 30_000))
#: How many of each random stream go to SoftFloat too.
SOFTFLOAT_COUNT = 20_000
#: The pipelined units' latency: an operation presented in cycle t has its result in t + 2.
LATENCY = 2
NAN32 = fp.CANONICAL_NAN[fp.FP32]

# fp32 corner values: signed zeros, subnormals (smallest, largest, others), the smallest
# normal, ones and their neighbours, powers of two that conversions care about, the
# largest finite, infinities and NaNs (quiet and signalling payloads, both signs).
CORNERS = [
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x00000003, 0x00400000, 0x007FFFFF,
    0x807FFFFF, 0x00800000, 0x80800000, 0x00800001, 0x00FFFFFF, 0x33800000, 0x33000000,
    0x34000000, 0x38800000, 0x3F000000, 0x3F400000, 0x3F7FFFFF, 0x3F800000, 0xBF800000,
    0x3F800001, 0x3FC00000, 0x40000000, 0x40400000, 0x4B000000, 0x4B800000, 0x4EFFFFFF,
    0x4F000000, 0xCF000000, 0x477FE000, 0x7F000000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000,
    0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00000, 0x7FFFFFFF,
    0xFFFFFFFF,
]

# Directed pairs beyond every pair of corners, with what each exercises.
ADD_PAIRS = [
    (0x3F800000, 0x33800000),   # 1 + 2**-24: a tie, 1 is even: 1
    (0x3F800001, 0x33800000),   # a tie, odd: up to 1 + 2**-22
    (0x3F800000, 0x33800001),   # just over a tie: up
    (0x3F800000, 0xB3000000),   # 1 - 2**-25: a tie below 1 (after a borrow): 1
    (0x3F800000, 0xB3000001),   # just under it: 1 - 2**-24
    (0x7F7FFFFF, 0x73000000),   # the largest finite + half an ulp, a tie, odd: infinity
    (0x7F7FFFFF, 0x72FFFFFF),   # less than half an ulp: the largest finite
    (0x7F7FFFFF, 0x7F7FFFFF),   # overflow
    (0x00800000, 0x80000001),   # the smallest normal less the smallest subnormal
    (0x00400000, 0x00400000),   # two subnormals make the smallest normal
    (0x00000001, 0x80000001),   # an exact zero of different signs: +0
    (0x80000000, 0x80000000),   # -0 + -0 = -0
    (0x3F800001, 0xBF800000),   # cancellation: 2**-23
    (0x3F800000, 0xBF7FFFFF),   # cancellation across a binade: 2**-24
    (0x4B800001, 0xCB800000),   # cancellation of 23 bits
    (0x7F800000, 0xFF800000),   # inf - inf: NaN
    (0x7F800000, 0x7F7FFFFF),   # inf + finite
] + [(0x3F800000, (127 - shift) << 23 | fraction)        # 1 + 2**-shift: long alignments
     for shift in range(20, 34) for fraction in (0, 1, 0x400000, 0x7FFFFF)]

MUL_PAIRS = [
    (0x3F800001, 0x3F800001),   # (1 + u)**2: 1 + 2u, the 2**-46 term rounds away
    (0x3F800001, 0x3FC00000),   # 1.5 + 1.5u: a tie, odd: up to 1.5 + 2u
    (0x3F800003, 0x3FC00000),   # 1.5 + 4.5u: a tie, even: 1.5 + 4u
    (0x7F7FFFFF, 0x40000000),   # overflow
    (0x7F000000, 0x3FFFFFFF),   # exactly the largest finite
    (0x5F800000, 0x5F800000),   # 2**128: overflow
    (0x7F7FFFFF, 0x3F800001),   # rounds past the largest finite: infinity
    (0x00800000, 0x3F000000),   # underflow to a subnormal, exact
    (0x00800001, 0x3F000000),   # ... with a tie, even: down
    (0x00800003, 0x3F000000),   # ... with a tie, odd: up
    (0x00000001, 0x3F000000),   # 2**-150: a tie with 0, which is even
    (0x00000001, 0x3F000001),   # just over it: the smallest subnormal
    (0x80000001, 0x3E800000),   # 2**-151: -0
    (0x00000001, 0x4B000000),   # the smallest subnormal times 2**23: the smallest normal
    (0x00000001, 0x7F000000),   # a subnormal operand normalised: 2**-22
    (0x007FFFFF, 0x3F800001),   # the largest subnormal rounds up to the smallest normal
    (0x00000003, 0x00400000),   # subnormal * subnormal: 0
    (0x00000000, 0x7F800000),   # 0 * inf: NaN
    (0x80000000, 0x40A00000),   # -0 * 5 = -0
    (0xBF800000, 0x7F800000),   # -1 * inf = -inf
]

CONVERT_CORNERS = {
    ConvertOp.TO_FP16: [
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,  # 65504 .. overflow
        0x38800000, 0x387FC000, 0x387FBFFF,   # the smallest normal; a subnormal rounds up to it
        0x33800000, 0x33000000, 0x33000001, 0x33C00000, 0x32FFFFFF,  # the smallest subnormal, ties
        0x3F801000, 0x3F803000, 0x3F801001,   # ties of normals
    ],
    ConvertOp.TO_BF16: [
        0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,   # ties and their neighbours
        0x7F7F8000, 0x7F7F7FFF, 0x7F7FFFFF,               # the largest finite, overflow
        0x00008000, 0x00018000, 0x007F8000, 0x807F8000,   # subnormals, up to the smallest normal
        0x7F800001, 0xFF800001, 0x7F80FFFF,               # NaNs whose payload rounds away
    ],
    ConvertOp.TO_INT32: [
        0x3F000000, 0x3FC00000, 0x40200000, 0xBF000000, 0xBFC00000, 0xC0200000,  # +-0.5 1.5 2.5
        0x3EFFFFFF, 0x3F000001, 0x4AFFFFFF, 0x4AFFFFFD, 0x4B000001,
        0x4F000000, 0xCF000000, 0x4EFFFFFF, 0xCEFFFFFF, 0xCF000001,   # saturation
    ],
    ConvertOp.FROM_INT32: [
        0x80000000, 0x7FFFFFFF, 0x01000001, 0x01000003, 0x01000002, 0xFEFFFFFF,
        0x7FFFFFC0, 0x7FFFFF40, 0x7FFFFF80, 0x80000040, 0x800000C0, 0x00FFFFFF, 0xFF000001,
    ] + [value & 0xFFFFFFFF for shift in range(32) for base in (1 << shift, -(1 << shift))
         for value in (base - 1, base, base + 1)],
}


# --- the simulation ---------------------------------------------------------------------

def simulate(dut, inputs, words, latency):
    """Run ``dut``, presenting ``words[t]`` (the ``inputs`` concatenated) in cycle t, and
    return ``dut.result`` for each word, read ``latency`` cycles later (at once when the
    unit is combinational: ``latency`` 0)."""
    top = Module()
    top.submodules.dut = dut
    # One signal to set a cycle: every ctx.set settles the design.
    stimulus = Signal(sum(len(port) for port in inputs))
    top.d.comb += Cat(*inputs).eq(stimulus)
    results = []

    async def bench(ctx):
        for word in itertools.chain(words, [0] * latency):
            ctx.set(stimulus, word)
            if latency:
                await ctx.tick()
            results.append(ctx.get(dut.result))

    sim = Simulator(top)
    if latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # results[t] is read after the tick that ends cycle t, in cycle t + 1: word t's result,
    # due in cycle t + latency, is results[t + latency - 1].
    first = max(latency - 1, 0)
    return np.array(results[first:first + len(words)], dtype=np.uint32)


def run_binary(dut, ops, a, b):
    """The pipelined ``dut``'s results for ``ops`` (one op, or one per operand pair)."""
    ops = np.broadcast_to(ops, a.shape)
    words = [x | y << 32 | int(op) << 64 for x, y, op in zip(a.tolist(), b.tolist(), ops)]
    return simulate(dut, [dut.a, dut.b, dut.op], words, LATENCY)


def run_converter(op, a):
    dut = FloatConverter()
    return simulate(dut, [dut.a, dut.op], [x | op << 32 for x in a.tolist()], 0)


# --- checking ---------------------------------------------------------------------------

def nan_of(fmt, bits):
    """Which of the ``fmt`` patterns ``bits`` are NaNs, of any sign and payload."""
    return np.asarray(bits) & (fmt.sign_bit - 1) > fmt.infinity


def check(what, seed, operands, got, spec, reference=None, fmt=fp.FP32):
    """Fails unless ``got`` equals ``spec`` (from :mod:`sim.fp`) everywhere and, when a
    ``reference`` is given, equals it too; a NaN of format ``fmt`` (None: the results are
    integers) in the reference is a class, and ``got`` must be that format's canonical
    NaN.  The message quotes the seed and the first failing operands."""
    spec = np.asarray(spec, dtype=np.uint32)
    bad = got != spec
    if reference is not None:
        reference = np.asarray(reference, dtype=np.uint32)
        if fmt is None:
            bad |= got != reference
        else:
            bad |= np.where(nan_of(fmt, reference), got != fp.CANONICAL_NAN[fmt],
                            got != reference)
    failures = np.flatnonzero(bad)
    if failures.size:
        lines = [f"{what}: {failures.size} of {got.size} results wrong (seed {seed}; "
                 f"TESSERA_SEED={seed} reproduces)"]
        for i in failures[:8]:
            shown = " ".join(f"{int(operand[i]):#010x}" for operand in operands)
            line = f"  {shown}: rtl {int(got[i]):#010x}, sim.fp {int(spec[i]):#010x}"
            if reference is not None:
                line += f", reference {int(reference[i]):#010x}"
            lines.append(line)
        pytest.fail("\n".join(lines), pytrace=False)


def check_softfloat(what, seed, peer, operands, got, spec, fmt=fp.FP32):
    """:func:`check` of the first SOFTFLOAT_COUNT results against SoftFloat's ``peer``
    (a name of :data:`tb.softfloat_peer.PEERS`)."""
    count = min(SOFTFLOAT_COUNT, got.size)
    operands = [operand[:count] for operand in operands]
    reference = [softfloat_peer.run(peer, *values)
                 for values in zip(*(operand.tolist() for operand in operands))]
    check(f"{what} vs SoftFloat", seed, operands, got[:count], spec[:count], reference, fmt)


def as_f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


# --- operands ---------------------------------------------------------------------------

EDGE_EXPONENTS = np.array([0, 1, 2, 3, 24, 25, 126, 127, 128, 230, 252, 253, 254, 255])


def fractions(rng, n):
    """23-bit fractions: a quarter uniform, a quarter a run of ones (or of zeros) at a
    random place, a quarter uniform with its low bits all zeros or all ones, a quarter a
    tie at a random place (one bit set, every bit below it clear)."""
    uniform = rng.integers(0, 1 << 23, n)
    length, start = rng.integers(0, 24, n), rng.integers(0, 23, n)
    run = (((1 << length) - 1) << start) & 0x7FFFFF
    run = np.where(rng.integers(0, 2, n) == 1, run ^ 0x7FFFFF, run)
    low = (1 << rng.integers(0, 23, n)) - 1
    edged = np.where(rng.integers(0, 2, n) == 1, uniform & ~low, uniform | low)
    tie = (uniform & ~(2 * low + 1)) | (low + 1)
    return np.choose(rng.integers(0, 4, n), [uniform, run, edged, tie]) & 0x7FFFFF


def floats(rng, n, centre=127, spread=40):
    """fp32 patterns: exponents uniform, at the edges, or within ``spread`` of ``centre``."""
    exponent = np.choose(rng.integers(0, 3, n), [
        rng.integers(0, 256, n), rng.choice(EDGE_EXPONENTS, n),
        np.clip(centre + rng.integers(-spread, spread + 1, n), 0, 255)])
    sign = rng.integers(0, 2, n)
    return (sign << 31 | exponent << 23 | fractions(rng, n)).astype(np.uint32)


def with_exponent(bits, exponent):
    return (bits & 0x807FFFFF) | (np.clip(exponent, 0, 255).astype(np.uint32) << 23)


def with_trailing_zeros(bits, zeros):
    """``bits`` with a significand of exactly ``zeros`` trailing zeros (0 to 23)."""
    lowest = 1 << zeros
    fraction = np.where(zeros < 23, (bits & 0x7FFFFF & ~(2 * lowest - 1)) | lowest, 0)
    return ((bits & 0xFF800000) | fraction).astype(np.uint32)


def pairs(rng, n):
    """Operand pairs: independent; b's exponent near a's (short alignments, cancellation);
    b within a few ulps of a or of -a; exponents 20 to 33 apart (the longest alignments);
    exponents that sum to a product near overflow or among the subnormals; significands
    whose trailing zeros add up to about the bits a product drops (ties), half of them
    with such exponents too."""
    a, b = floats(rng, n), floats(rng, n)
    exponent_a = (a >> 23 & 0xFF).astype(np.int64)
    sign = rng.integers(0, 2, n).astype(np.uint32) << 31
    ulps = (a.astype(np.int64) + rng.integers(-4, 5, n)).astype(np.uint32) ^ sign
    apart = exponent_a - rng.integers(20, 34, n) * rng.choice([-1, 1], n)
    product = (rng.choice([381, 382, 383, 100, 103, 110, 120, 126, 127, 128], n) - exponent_a
               + rng.integers(-2, 3, n))
    # A normal product drops 23 or 24 bits, a subnormal more.
    subnormal = rng.integers(0, 2, n) == 1
    zeros_a = rng.integers(0, 24, n)
    dropped = np.where(subnormal, rng.integers(22, 48, n), rng.integers(22, 24, n))
    tied_b = with_trailing_zeros(b, np.clip(dropped - zeros_a, 0, 23))
    tied_b = np.where(subnormal, with_exponent(tied_b, product), tied_b)
    kind = rng.integers(0, 6, n)
    a = np.where(kind == 5, with_trailing_zeros(a, zeros_a), a)
    b = np.choose(kind, [b, with_exponent(b, exponent_a + rng.integers(-3, 4, n)), ulps,
                         with_exponent(b, apart), with_exponent(b, product), tied_b])
    return a.astype(np.uint32), b.astype(np.uint32)


def integers(rng, n):
    """int32 patterns: the fractions' patterns (ties and runs) at the top of a random
    number of significant bits, either sign."""
    length = rng.integers(0, 32, n)
    body = (fractions(rng, n) << 9 | rng.integers(0, 1 << 9, n)) >> (31 - length)
    value = np.where(rng.integers(0, 2, n) == 1, -body, body)
    return (value & 0xFFFFFFFF).astype(np.uint32)


def directed_pairs(extra):
    corners = np.array(CORNERS, dtype=np.uint32)
    a, b = np.meshgrid(corners, corners)
    extra = np.array(extra, dtype=np.uint32)
    return np.concatenate([a.ravel(), extra[:, 0]]), np.concatenate([b.ravel(), extra[:, 1]])


def binary_operands(seed, offset, extra):
    """The directed pairs, then RANDOM_COUNT random ones; and where the random ones start."""
    directed_a, directed_b = directed_pairs(extra)
    random_a, random_b = pairs(np.random.default_rng([seed, offset]), RANDOM_COUNT)
    return (np.concatenate([directed_a, random_a]), np.concatenate([directed_b, random_b]),
            directed_a.size)


# --- the multiplier ---------------------------------------------------------------------

def check_binary_unit(unit, op, seed, offset, extra, spec_function, reference, softfloat=None):
    """Run ``unit``'s ``op`` on the directed pairs ``extra`` and random ones and check it
    against ``spec_function`` (sim.fp), numpy's ``reference`` and SoftFloat's
    ``softfloat``; a PASS (no ``spec_function``) must return its first operand.  ``offset``
    keeps each operation's random stream its own."""
    a, b, start = binary_operands(seed, offset + op, extra)
    got = run_binary(unit, op, a, b)
    if spec_function is None:
        check("PASS", seed, (a, b), got, a)
        return
    spec = np.array([spec_function(x, y) for x, y in zip(a.tolist(), b.tolist())],
                    dtype=np.uint32)
    with np.errstate(all="ignore"):
        check(f"{op.name} vs numpy", seed, (a, b), got, spec,
              f32_bits(reference(as_f32(a), as_f32(b))))
    if softfloat is not None:
        check_softfloat(op.name, seed, softfloat, (a[start:], b[start:]), got[start:],
                        spec[start:])


# --- the multiplier ---------------------------------------------------------------------

@pytest.mark.parametrize("op", list(MultiplierOp), ids=lambda op: op.name)
def test_multiplier_matches_sim_fp_numpy_and_softfloat(op, seed):
    multiply = op == MultiplierOp.MUL
    check_binary_unit(FloatMultiplier(), op, seed, 100, MUL_PAIRS, fp.mul if multiply else None,
                      np.multiply, "f32_mul")


# --- the adder --------------------------------------------------------------------------

ADDER_SPEC = {AdderOp.ADD: fp.add, AdderOp.MAX: fp.maximum, AdderOp.MIN: fp.minimum}
ADDER_REFERENCE = {AdderOp.ADD: np.add, AdderOp.MAX: ieee_maximum, AdderOp.MIN: ieee_minimum}


@pytest.mark.parametrize("op", list(AdderOp), ids=lambda op: op.name)
def test_adder_matches_sim_fp_numpy_and_softfloat(op, seed):
    check_binary_unit(FloatAdder(), op, seed, 200, ADD_PAIRS, ADDER_SPEC.get(op),
                      ADDER_REFERENCE.get(op), "f32_add" if op == AdderOp.ADD else None)


@pytest.mark.parametrize("unit, spec", [
    (FloatMultiplier, {MultiplierOp.PASS: lambda x, y: x, MultiplierOp.MUL: fp.mul}),
    (FloatAdder, ADDER_SPEC),
], ids=["multiplier", "adder"])
def test_each_operation_travels_with_its_operands(unit, spec, seed):
    """A different operation every cycle: the stages carry each one's op along."""
    rng = np.random.default_rng([seed, 300])
    a, b = pairs(rng, 20_000)
    ops = rng.choice(list(spec), a.size)
    got = run_binary(unit(), ops, a, b)
    check(f"{unit.__name__} with mixed operations", seed, (ops, a, b), got,
          [spec[op](x, y) for x, y, op in zip(a.tolist(), b.tolist(), ops)])


# --- the converter ----------------------------------------------------------------------

def converter_operands(op, seed):
    """The corners, then RANDOM_COUNT random operands; and where the random ones start."""
    rng = np.random.default_rng([seed, 400 + op])
    directed = np.array(CORNERS + CONVERT_CORNERS.get(op, []), dtype=np.uint32)
    if op == ConvertOp.FROM_INT32:
        random = integers(rng, RANDOM_COUNT)
    else:
        # Exponents about fp16's subnormals and overflow, or about int32's range.
        centre, spread = {ConvertOp.TO_FP16: (115, 35), ConvertOp.TO_INT32: (142, 20)}.get(
            op, (127, 60))
        random = floats(rng, RANDOM_COUNT, centre, spread)
    return np.concatenate([directed, random]), directed.size


def signed32(bits):
    return bits - (1 << 32) if bits >> 31 else bits


def to_int32_reference(x):
    """numpy's float-to-int cast truncates, and is undefined out of range: this rounds with
    numpy.rint (ties to even), saturates and takes NaN to 0, as sim.fp.to_int32 does."""
    x = x.astype(np.float64)
    rounded = np.clip(np.rint(np.where(np.isnan(x), 0.0, x)), -2.0 ** 31, 2.0 ** 31 - 1)
    return rounded.astype(np.int64) & 0xFFFFFFFF


CONVERTER_SPEC = {
    ConvertOp.PASS: lambda x: x,
    ConvertOp.TO_FP16: lambda x: fp.narrow(fp.FP16, x),
    ConvertOp.TO_BF16: lambda x: fp.narrow(fp.BF16, x),
    ConvertOp.TO_INT32: lambda x: fp.to_int32(x) & 0xFFFFFFFF,
    ConvertOp.FROM_INT32: lambda x: fp.from_int32(signed32(x)),
}
#: The references from numpy and ml_dtypes, of fp32 bits: results, and their float format.
CONVERTER_REFERENCE = {
    ConvertOp.TO_FP16: (lambda a: as_f32(a).astype(np.float16).view(np.uint16), fp.FP16),
    ConvertOp.TO_BF16: (lambda a: as_f32(a).astype(ml_dtypes.bfloat16).view(np.uint16), fp.BF16),
    ConvertOp.TO_INT32: (lambda a: to_int32_reference(as_f32(a)), None),
    # numpy's int32 to float32 cast rounds to nearest even, as sim.fp.from_int32 does.
    ConvertOp.FROM_INT32: (lambda a: f32_bits(a.view(np.int32).astype(np.float32)), fp.FP32),
}
#: SoftFloat's, for three of them.
CONVERTER_SOFTFLOAT = {
    ConvertOp.TO_FP16: ("f32_to_f16", fp.FP16),
    ConvertOp.TO_BF16: ("f32_to_bf16", fp.BF16),
    ConvertOp.FROM_INT32: ("i32_to_f32", fp.FP32),
}


@pytest.mark.parametrize("op", list(ConvertOp), ids=lambda op: op.name)
def test_converter_matches_sim_fp_numpy_and_ml_dtypes(op, seed):
    a, start = converter_operands(op, seed)
    got = run_converter(op, a)
    spec = np.array([CONVERTER_SPEC[op](x) for x in a.tolist()], dtype=np.uint32)
    if op == ConvertOp.PASS:
        check("PASS", seed, (a,), got, a)
        return
    reference, fmt = CONVERTER_REFERENCE[op]
    with np.errstate(all="ignore"):
        check(f"{op.name} vs numpy", seed, (a,), got, spec, reference(a), fmt)
    if op in CONVERTER_SOFTFLOAT:
        function, fmt = CONVERTER_SOFTFLOAT[op]
        check_softfloat(op.name, seed, function, (a[start:],), got[start:], spec[start:], fmt)


# --- widening ---------------------------------------------------------------------------

class Widener(wiring.Component):
    """:func:`widen` as a component, for the simulator."""

    def __init__(self):
        super().__init__({"bits": In(32), "dtype": In(2), "result": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.result.eq(widen(m, self.bits, self.dtype))
        return m


def run_widen(dtype, bits):
    dut = Widener()
    return simulate(dut, [dut.bits, dut.dtype], [x | dtype << 32 for x in bits.tolist()], 0)


@pytest.mark.parametrize("dtype, numpy_type, fmt", [
    (WidenFrom.FP16, np.float16, fp.FP16),
    (WidenFrom.BF16, ml_dtypes.bfloat16, fp.BF16),
], ids=["fp16", "bf16"])
def test_widen_is_exact_on_every_16_bit_pattern(dtype, numpy_type, fmt, seed):
    patterns = np.arange(1 << 16, dtype=np.uint32)
    # The high half is not the operand's: fill it with noise.
    noise = np.random.default_rng([seed, 500 + dtype]).integers(0, 1 << 16, patterns.size)
    bits = patterns | noise.astype(np.uint32) << 16
    got = run_widen(dtype, bits)
    wide = patterns.astype(np.uint16).view(numpy_type).astype(np.float32)
    check(f"widen {fmt.name}", seed, (bits,), got, [fp.widen(fmt, x) for x in patterns.tolist()],
          f32_bits(wide))


def test_widen_int8_is_exact_and_fp32_nans_become_canonical(seed):
    rng = np.random.default_rng([seed, 600])
    # Every int8, with noise above it.
    bits = np.arange(256, dtype=np.uint32) | rng.integers(0, 1 << 24, 256).astype(np.uint32) << 8
    got = run_widen(WidenFrom.INT8, bits)
    integer = (bits & 0xFF).astype(np.uint8).view(np.int8)
    check("widen int8", seed, (bits,), got, [fp.from_int32(int(v)) for v in integer],
          f32_bits(integer.astype(np.float32)))

    nans = (rng.integers(0x7F800001, 0x80000000, 20_000)
            | rng.integers(0, 2, 20_000) << 31).astype(np.uint32)
    bits = np.concatenate([np.array(CORNERS, dtype=np.uint32), floats(rng, 20_000), nans])
    got = run_widen(WidenFrom.FP32, bits)
    check("widen fp32", seed, (bits,), got, [fp.widen(fp.FP32, x) for x in bits.tolist()], bits)
