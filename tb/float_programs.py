"""Directed programs for the float lanes: every floating-point instruction on the corner classes.

Each entry of :func:`float_cases` is ``(name, Case, check)``, as in
:mod:`tb.directed_programs`; the expected values come from numpy and
ml_dtypes (:mod:`tb.float_values`), not from :mod:`sim.fp`, so the checks hold
the ISS and the RTL to an independent account.  NaNs match as a class, and
must be the canonical NaN of their format.
"""

import random

import ml_dtypes
import numpy as np

from host.asm import assemble
from host.kernels import float_math as kernels
from host.kernels.program import TileProgram
from rtl.isa import Counter, Fault, Op, VFlag, encode
from sim import float_math, fp
from sim.core_session import Case

from .float_values import bits32, floats32, ieee_maximum, ieee_minimum, pair, specials

__all__ = ["float_cases"]

X, Y, Z = 0x000, 0x200, 0x400    # 16-bit operand arrays in data SRAM (256 elements each)
OUT = 0x600                      # where programs store registers
N = 240                          # elements of the 16-bit cases
ACC_N = 16                       # elements of the accumulator cases: x, y, z in 3 * 16 words
FORMATS = {"fp16": (fp.FP16, np.float16), "bf16": (fp.BF16, ml_dtypes.bfloat16)}
REFERENCE = {"vadd": np.add, "vsub": np.subtract, "vmul": np.multiply, "vmax": ieee_maximum,
             "vmin": ieee_minimum}


def _operands(seed, fmt, count):
    """``count`` pairs of ``fmt`` bit patterns: every pair of its specials first."""
    rng = random.Random(seed)
    firsts = specials(fmt)
    pairs = [(a, b) for a in firsts for b in firsts][::max(1, len(firsts) ** 2 // (count // 2))]
    pairs = pairs[:count // 2]
    pairs += [pair(rng, fmt) for _ in range(count - len(pairs))]
    return np.array(pairs, dtype=np.int64).T


def _compare(what, fmt, actual, expected):
    actual, expected = np.asarray(actual, dtype=np.int64), np.asarray(expected, dtype=np.int64)
    magnitude = (1 << (fmt.bits - 1)) - 1
    nan_a, nan_e = (actual & magnitude) > fmt.infinity, (expected & magnitude) > fmt.infinity
    bad = np.flatnonzero((actual != expected) & ~(nan_a & nan_e)
                         | nan_a & (actual != fp.CANONICAL_NAN[fmt]))
    assert not len(bad), (f"{what}: {len(bad)} of {len(actual)} wrong; element {bad[0]}: "
                          f"{int(actual[bad[0]]):#x}, expected {int(expected[bad[0]]):#x}")


def _halfwords(outcome, address, count):
    return np.frombuffer(outcome.mem[address:address + 2 * count], dtype=np.uint16)


def _acc(outcome, start, count):
    return np.array(outcome.acc[start:start + count], dtype=np.int64) & 0xFFFFFFFF


def _math_inputs(rng):
    """``ACC_N`` fp32 inputs for each non-linear function: its domain's edges, then random."""
    def spread(low, high, signed=False):
        magnitudes = np.exp(rng.uniform(low, high, ACC_N))
        return magnitudes * rng.choice([-1, 1], ACC_N) if signed else magnitudes

    def inputs(edges, random):
        return np.concatenate([edges, random])[:ACC_N].astype(np.float32)
    tiny, huge = 2.0 ** -126, float(np.finfo(np.float32).max)
    return {
        "reciprocal": inputs([1, -1, tiny, -tiny, 2.0 ** 125, 3, 0.1, -7.5], spread(-85, 85, True)),
        "rsqrt": inputs([tiny, huge, 1, 4, 0.25, 1e-5, 3, 7], spread(-85, 85)),
        "exp": inputs([0, -0.0, -86, 88, -90, 100, -np.inf, np.inf, np.nan, 1, -1, 0.5],
                      rng.uniform(-100, 100, ACC_N)),
        "silu": inputs([0, -0.0, 80, -80, -100, 100, 1, -1], rng.uniform(-20, 20, ACC_N)),
        "rms_scale": inputs([], rng.standard_normal(ACC_N)),
    }


def _no_fault(outcome):
    assert (outcome.halted, outcome.fault) == (True, Fault.NONE), outcome.summary()


def _image(*segments):
    data = bytearray(OUT + 64)
    for address, content in segments:
        data[address:address + len(content)] = bytes(content)
    return bytes(data)


def float_cases(params):
    """The float lanes' directed cases for ``params`` (``float_lanes``, 2 KiB of data SRAM
    and at least 48 accumulators)."""
    cases = []

    def case(name, source, check, **kwargs):
        cases.append((name, Case(assemble(source, params).words(), **kwargs), check))

    def setup(dtype, count=N):
        kind = f", {dtype}" if dtype else ""
        stride = 2 if dtype else 1
        return f"""
            li r1, {count}
            li r2, {X}
            dmem d1, r2, r1, {stride}{kind}
            li r2, {Y}
            dmem d2, r2, r1, {stride}{kind}
            li r2, {Z}
        """

    # --- the elementwise operations, in each 16-bit format and on fp32 accumulators
    for seed, (op, reference) in enumerate(REFERENCE.items()):
        for name, (fmt, dtype) in FORMATS.items():
            x, y = _operands(seed, fmt, N)

            def check(outcome, x=x, y=y, fmt=fmt, dtype=dtype, reference=reference, what=op):
                _no_fault(outcome)
                with np.errstate(all="ignore"):
                    wide = [v.astype(np.uint16).view(dtype).astype(np.float32) for v in (x, y)]
                    expected = reference(*wide).astype(dtype).view(np.uint16)
                _compare(f"{what} {fmt.name}", fmt, _halfwords(outcome, Z, N), expected)
            case(f"{op} {name}", setup(name) + f"""
                dmem d0, r2, r1, 2, {name}
                {op} d0, d1, d2, float
                halt""", check, data=_image((X, x.astype("<u2").tobytes()),
                                             (Y, y.astype("<u2").tobytes())))

        x, y = _operands(seed + 100, fp.FP32, ACC_N)

        def check_acc(outcome, x=x, y=y, reference=reference, what=op):
            _no_fault(outcome)
            with np.errstate(all="ignore"):
                expected = reference(floats32(x), floats32(y)).astype(np.float32)
            _compare(f"{what} fp32", fp.FP32, _acc(outcome, 2 * ACC_N, ACC_N),
                     expected.view(np.uint32))
        case(f"{op} fp32 accumulators", f"""
            li r1, {ACC_N}
            dacc d1, r0, r1
            li r2, {ACC_N}
            dacc d2, r2, r1
            li r2, {2 * ACC_N}
            dacc d0, r2, r1
            {op} d0, d1, d2, float
            halt""", check_acc, acc=[int(v) for v in np.concatenate([x, y])])

    # --- a scalar register as the second operand, and the conversions by VMOV
    x, _ = _operands(7, fp.FP16, N)
    scale = 0x3FC00001                       # 1.5 and a little: products round

    def check_scalar(outcome, x=x):
        _no_fault(outcome)
        with np.errstate(all="ignore"):
            expected = (x.astype(np.uint16).view(np.float16).astype(np.float32)
                        * floats32([scale])[0]).astype(np.float16).view(np.uint16)
        _compare("vmul fp16 by a register", fp.FP16, _halfwords(outcome, Z, N), expected)
    case("vmul fp16 by a register", setup("fp16") + f"""
        dmem d0, r2, r1, 2, fp16
        li r5, {scale:#x}
        vmul d0, d1, r5, float
        halt""", check_scalar, data=_image((X, x.astype("<u2").tobytes())))

    wide, _ = _operands(8, fp.FP32, 48)

    def check_conversions(outcome):
        _no_fault(outcome)
        values = floats32(wide)
        with np.errstate(all="ignore"):
            _compare("fp32 to bf16", fp.BF16, _halfwords(outcome, Z, 48),
                     values.astype(ml_dtypes.bfloat16).view(np.uint16))
            _compare("fp32 to fp16", fp.FP16, _halfwords(outcome, Y, 48),
                     values.astype(np.float16).view(np.uint16))
            _compare("fp16 to fp32", fp.FP32, _acc(outcome, 0, 48), _halfwords(outcome, Y, 48)
                     .view(np.float16).astype(np.float32).view(np.uint32))
    case("vmov conversions", f"""
        li r1, 48
        dacc d0, r0, r1
        li r2, {Z}
        dmem d1, r2, r1, 2, bf16
        vmov d1, d0, float
        li r2, {Y}
        dmem d2, r2, r1, 2, fp16
        vmov d2, d0, float
        vmov d0, d2, float
        halt""", check_conversions, acc=[int(v) for v in wide])

    # --- multiply-accumulate: VMAC from memory, VMACS by fabric scalars (zeros skipped)
    for name, (fmt, dtype) in FORMATS.items():
        x, y = _operands(9, fmt, 32)
        start = np.array([fp.widen(fmt, int(v)) for v in _operands(10, fmt, 32)[0]], dtype=np.int64)

        def check_mac(outcome, x=x, y=y, start=start, fmt=fmt, dtype=dtype):
            _no_fault(outcome)
            with np.errstate(all="ignore"):
                product = (x.astype(np.uint16).view(dtype).astype(np.float32)
                           * y.astype(np.uint16).view(dtype).astype(np.float32))
                expected = (floats32(start) + product).astype(np.float32)
            _compare(f"vmac {fmt.name}", fp.FP32, _acc(outcome, 0, 32), expected.view(np.uint32))
        case(f"vmac {name}", f"""
            li r1, 32
            dacc d0, r0, r1
            li r2, {X}
            dmem d1, r2, r1, 2, {name}
            li r2, {Y}
            dmem d2, r2, r1, 2, {name}
            vmac d0, d1, d2, float
            halt""", check_mac, acc=[int(v) for v in start],
             data=_image((X, x.astype("<u2").tobytes()), (Y, y.astype("<u2").tobytes())))

    rows, columns = 12, 10
    rng = np.random.default_rng(11)
    weights = rng.standard_normal((columns, rows)).astype(np.float16)
    xs = rng.standard_normal(columns).astype(np.float16)
    xs[[2, 7]] = [0.0, -0.0]

    def check_vmacs(outcome):
        _no_fault(outcome)
        total = np.zeros(rows, dtype=np.float32)
        for j in range(columns):
            if xs[j] != 0:                   # a zero scalar is skipped, ±0 alike
                total = (total + weights[j].astype(np.float32) * np.float32(xs[j])).astype(
                    np.float32)
        _compare("vmacs fp16", fp.FP32, _acc(outcome, 0, rows), total.view(np.uint32))
        assert outcome.counters[Counter.ZERO_SKIPS] == 2, "the two zero scalars are skipped"
    case("vmacs fp16 by fabric scalars", f"""
        li r1, {rows}
        dacc d0, r0, r1
        li r1, {rows * columns}
        li r2, {X}
        dmem d1, r2, r1, 2, fp16
        li r1, {columns}
        dfin d2, r1, 1, fp16
        vmacs d0, d1, d2, float
        halt""", check_vmacs, data=_image((X, weights.tobytes())),
         wavelets=[(2 * j, int(v), 1) for j, v in enumerate(xs.view(np.uint16))])

    # --- integer conversions and dequantisation
    integers = [0, 1, -1, 7, -8, 2**24 + 1, -(2**24 + 3), 2**31 - 1, -2**31, 123456789, 5, -6,
                2**30 + 64, 3, -3, 100]
    floats = np.array([fp.widen(fp.FP32, int(v)) for v in _operands(12, fp.FP32, ACC_N)[0]],
                      dtype=np.int64)

    def check_integers(outcome):
        _no_fault(outcome)
        _compare("vitof", fp.FP32, _acc(outcome, 2 * ACC_N, ACC_N),
                 np.array(integers, dtype=np.int64).astype(np.float32).view(np.uint32))
        with np.errstate(all="ignore"):
            values = floats32(floats).astype(np.float64)
            expected = np.where(np.isnan(values), 0, np.clip(np.rint(values), -2**31, 2**31 - 1))
        actual = _acc(outcome, ACC_N, ACC_N)
        actual = np.where(actual >= 2**31, actual - 2**32, actual)
        assert list(actual) == list(expected.astype(np.int64)), f"vftoi: {list(actual)}"
    case("vitof and vftoi", f"""
        li r1, {ACC_N}
        dacc d0, r0, r1
        li r2, {ACC_N}
        dacc d1, r2, r1
        li r2, {2 * ACC_N}
        dacc d2, r2, r1
        vitof d2, d0
        vftoi d1, d1
        halt""", check_integers, acc=integers + [int(v) for v in floats])

    int8s = np.arange(-128, 128, 256 // N + 1, dtype=np.int8)[:N]
    count = len(int8s)
    step = 0x3C23D70A                        # 0.01: every product rounds

    def check_dequantise(outcome):
        _no_fault(outcome)
        expected = (int8s.astype(np.float32) * floats32([step])[0]).astype(np.float16)
        _compare("vdeq", fp.FP16, _halfwords(outcome, Z, count), expected.view(np.uint16))
    case("vdeq int8 to fp16", setup(None, count) + f"""
        dmem d0, r2, r1, 2, fp16
        li r5, {step:#x}
        vdeq d0, d1, r5
        halt""", check_dequantise, data=_image((X, int8s.tobytes())))

    # --- reductions: the sum in element order, the maximum and its first index
    for seed, (values, what) in enumerate([
            (_operands(13, fp.FP32, 40)[0], "corner classes"),
            (np.array([0x80000000, 0, 0x3F800000, 0x3F800000, 0xBF800000, 0x7F800000,
                       0x7F7FFFFF] * 2, dtype=np.int64), "ties for the maximum"),
            (np.array([0x80000000, 0x80000000, 0x80000000], dtype=np.int64), "-0 sums to -0"),
            (np.array([0x80000000, 0xC0000000, 0xFF800000, 0x7F800000], dtype=np.int64),
             "infinities"),
            (np.array([0x3F800000, 0x7FC01234, 0x40000000, 0xFFC00000], dtype=np.int64),
             "NaNs")]):
        length = len(values)

        def check_reduction(outcome, values=values, what=what):
            _no_fault(outcome)
            total = np.float32(-0.0)
            with np.errstate(all="ignore"):
                for v in floats32(values):
                    total = np.float32(total + v)
            registers = [int(w) & 0xFFFFFFFF for w in np.frombuffer(
                outcome.mem[OUT:OUT + 12], dtype="<i4")]
            _compare(f"vsum ({what})", fp.FP32, registers[:1], [int(total.view(np.uint32))])
            # NaN above all, then by value, +0 above -0; the first of the largest.
            ranks = [(bool(np.isnan(v)), 0.0 if np.isnan(v) else float(v), not np.signbit(v))
                     for v in floats32(values)]
            best = ranks.index(max(ranks))
            _compare(f"vrmax ({what})", fp.FP32, registers[1:2], [int(values[best])])
            assert registers[2] == best, f"vargmax ({what}): {registers[2]}, expected {best}"
        case(f"float reductions: {what}", f"""
            li r1, {length}
            dacc d0, r0, r1
            vsum r3, d0, float
            vrmax r4, d0, float
            vargmax r5, d0, float
            st r3, {OUT}(r0)
            st r4, {OUT + 4}(r0)
            st r5, {OUT + 8}(r0)
            halt""", check_reduction, acc=[int(v) for v in values])

    # --- the fabric: fp32 words in, fp16 in the low half of words out
    words = np.array([fp.widen(fp.FP32, int(v)) for v in _operands(14, fp.FP32, 12)[0]],
                     dtype=np.int64)

    def check_fabric(outcome):
        _no_fault(outcome)
        sent = [data for _, data, color, _ in outcome.sent if color == 2]
        assert all(word >> 16 == 0 for word in sent), "an fp16 wavelet's high half is 0"
        with np.errstate(all="ignore"):
            _compare("fin fp32 to fout fp16", fp.FP16, sent,
                     floats32(words).astype(np.float16).view(np.uint16))
    case("fabric fp32 in, fp16 out", """
        li r1, 12
        dfin d1, r1, 1, fp32
        dfout d0, r1, 2, fp16
        vmov d0, d1, float
        halt""", check_fabric, wavelets=[(k, int(w), 1) for k, w in enumerate(words)],
         ready_seed=3)

    # --- the non-linear functions: host.kernels.float_math's code against sim.float_math
    for name, values in _math_inputs(np.random.default_rng(15)).items():
        if name == "rms_scale":
            emit = lambda t: kernels.rms_scale(t, 0, ACC_N, 1e-5, ACC_N, 2 * ACC_N)
            expected, start = [float_math.rms_scale(values, 1e-5)], ACC_N
        else:
            emit = lambda t, name=name: getattr(kernels, name)(t, 0, ACC_N, ACC_N)
            expected, start = getattr(float_math, name)(values), 0
        program = TileProgram(params, name)
        emit(program)
        program.b.halt()

        def check_math(outcome, name=name, expected=expected, start=start):
            _no_fault(outcome)
            _compare(f"{name} kernel", fp.FP32, _acc(outcome, start, len(expected)),
                     bits32(expected))
        cases.append((f"{name} kernel", Case(program.finish()[0], acc=[int(v) for v in
                                                                      bits32(values)]),
                      check_math))

    # --- faults: a mistyped operand (the assembler would refuse it: a raw word)
    def faults(cause, pc):
        def check(outcome):
            assert (outcome.halted, outcome.fault, outcome.fault_pc) == (True, cause, pc), \
                outcome.summary()
        return check
    mistyped = encode(Op.VADD, 0, 1, 1, VFlag.FLOAT)
    case("float op on an int8 operand faults", f"""
        li r1, 8
        dacc d0, r0, r1
        dmem d1, r0, r1, 1
        .inst {mistyped:#x}
        halt""", faults(Fault.TYPE, 3))
    fp32_mem = encode(Op.DMEM, 1, 0, 1, 2 | 3 << 12)
    case("an fp32 MEM operand faults", f"""
        li r1, 8
        dacc d0, r0, r1
        .inst {fp32_mem:#x}
        vmov d0, d1, float
        halt""", faults(Fault.TYPE, 3))
    case("an int op on an fp16 operand faults", """
        li r1, 8
        dacc d0, r0, r1
        dmem d1, r0, r1, 2, fp16
        nop
        .inst %#x
        halt""" % encode(Op.VMOV, 0, 1), faults(Fault.TYPE, 4))
    return cases
