"""``tessera bench gemv``: y = W x on one tile, with x streamed in over the fabric.

W (``size`` x ``size``, int8, fp16 or bf16) sits in the core's SRAM column by
column; x enters the tile on its west link, one wavelet per element, and the
router takes it to the core on the ramp.  One ``VMACS`` does the whole
product: for each x_j as it arrives, ``acc[0:size] += W[:, j] * x_j``, ``lanes``
int8 (or ``lanes // 2`` 16-bit float) multiply-accumulates a cycle into int32
(fp32) accumulators, and an x_j of zero (+0 or -0) is skipped without a
datapath cycle.  The float result is checked against numpy in the kernel's
order: column by column, each product rounded to fp32 and then the sum.

The tile RTL runs in the Amaranth simulator (nothing to build); the ISS runs the
same program on the same wavelets, and the two must agree on every cycle
count.  The MAC phase is measured by the program itself, with ``CSRR`` of the
cycle and SRAM-read counters around the ``VMACS``.  Its SRAM read utilisation
is the bytes read over the peak of the MAC datapath, ``lanes`` bytes (one int8
weight per lane, or one 16-bit weight per float lane) a cycle.  A float GEMV
runs on the preset's tile with its float lanes on.
"""

import ml_dtypes
import numpy as np

from host.asm import Builder
from rtl.isa import Counter, Dtype
from rtl.wavelet import Dir, pack_route_write, pack_wavelet
from sim.iss import Core as IssCore
from sim.iss import RampSender, run

__all__ = ["run_bench", "gemv_program", "X_COLOR", "DTYPES"]

#: The weight and x types a GEMV takes, with their numpy types.
DTYPES = {"int8": (Dtype.INT, np.int8), "fp16": (Dtype.FP16, np.float16),
          "bf16": (Dtype.BF16, ml_dtypes.bfloat16)}

X_COLOR = 0
RESULTS = 0x40            # where the program stores its counter readings, after W
WEST = 3                  # index of the west link in Tile.inputs (rtl.tile.MESH_PORTS)


def gemv_program(params, size, dtype=Dtype.INT):
    """The program: W at address 0 (column-major), y in acc[0:size], counters stored after W."""
    b = Builder(params)
    element = 1 if dtype == Dtype.INT else 2
    results = element * size * size + RESULTS
    b.li(1, size * size)
    b.dmem(1, 0, 1, element, dtype=dtype)   # W, all of it: one chunk of `size` per x_j
    b.li(2, size)
    b.dacc(0, 0, 2)                    # y
    b.dfin(2, 2, X_COLOR, dtype=dtype)      # x, `size` wavelets
    b.csrr(3, Counter.CYCLES)
    b.csrr(4, Counter.SRAM_READS)
    b.vmacs(0, 1, 2, float_=dtype != Dtype.INT)
    b.csrr(5, Counter.CYCLES)
    b.csrr(6, Counter.SRAM_READS)
    b.li(7, results)
    for offset, register in enumerate((3, 4, 5, 6)):
        b.st(register, 7, 4 * offset)
    b.halt()
    return b.build(), results


def _measure(params, size, dtype, weights, x, simulate_rtl):
    program, results = gemv_program(params, size, DTYPES[dtype][0])
    image = np.ascontiguousarray(weights.T).tobytes()
    raw = x.view(np.uint16) if dtype != "int8" else x
    wavelets = [(0, int(v) & 0xFFFFFFFF, X_COLOR) for v in raw]

    iss = IssCore(params)
    iss.load(program.words(), image)
    iss_cycles = run(iss, RampSender(params, wavelets))
    rtl_cycles, acc, mem = simulate_rtl(program.words(), image, wavelets, results)

    start, reads_before, end, reads_after = (
        int.from_bytes(mem[results + 4 * k:results + 4 * k + 4], "little") for k in range(4))
    mac_cycles = end - start
    return {
        "cycles": rtl_cycles,
        "iss_cycles": iss_cycles,
        "mac_cycles": mac_cycles,
        "sram_read_bytes": reads_after - reads_before,
        "y": acc[:size],
        "iss_y": iss.acc[:size],
    }


def _simulate_tile(params, code, image, wavelets, results):
    """Run the program on the tile RTL; returns (cycles, accumulators, data memory)."""
    from rtl.tile import Tile
    from sim.core_session import Case, load_core, memories_of, read_core, simulate_amaranth

    async def session(port):
        port.set("inputs.3.valid", 0)
        # Route x: accepted from the west, delivered to the ramp.
        port.set("config.payload", pack_route_write(params, X_COLOR, 0, Dir.W, [Dir.RAMP], True))
        port.set("config.valid", 1)
        await port.tick()
        port.set("config.valid", 0)
        await load_core(port, params, Case(code, image), memories_of(params, None))
        sender = RampSender(params, wavelets)
        cycles = 0
        while not port.get("idle"):
            arriving = sender.drive(cycles)
            port.set("inputs.3.valid", int(arriving is not None))
            if arriving is not None:
                port.set("inputs.3.wavelet", pack_wavelet(params, arriving[0], arriving[1]))
            credit = port.get("inputs.3.credit_color") if port.get("inputs.3.credit") else None
            await port.tick()
            sender.sample(credit)
            cycles += 1
            if cycles > 100_000:
                raise RuntimeError("the GEMV did not finish in 100,000 cycles")
        port.set("inputs.3.valid", 0)
        mem, acc, _, _ = await read_core(port, params)
        return cycles, acc, mem

    return simulate_amaranth(Tile(params), session)


def _expected(dtype, weights, x):
    """y as the tile computes it: int32 sums, or fp32 column by column (zeros skipped), as
    32-bit patterns."""
    if dtype == "int8":
        return [int(v) for v in (weights.astype(np.int64) @ x.astype(np.int64)).astype(np.int32)]
    total = np.zeros(len(weights), dtype=np.float32)
    for j, x_j in enumerate(x):
        if x_j != 0:
            total = (total + weights[:, j].astype(np.float32) * np.float32(x_j)).astype(
                np.float32)
    return [int(v) for v in total.view(np.int32)]


def run_bench(params, size=64, seed=1, dtype="int8", progress=print):
    """Dense x, then x with half of its elements zero; returns the JSON document."""
    element = 1 if dtype == "int8" else 2
    needed = element * size * size + RESULTS + 16
    if needed > params.data_bytes or size > params.acc_words:
        raise ValueError(f"a {size}x{size} {dtype} GEMV needs {needed} bytes of data SRAM and "
                         f"{size} accumulators; this core has {params.data_bytes} and "
                         f"{params.acc_words}")
    if dtype != "int8":
        params = params.replace(float_lanes=1)
    rng = np.random.default_rng(seed)
    numpy_type = DTYPES[dtype][1]
    if dtype == "int8":
        weights = rng.integers(-128, 128, (size, size)).astype(np.int8)
        dense = (rng.integers(1, 128, size) * rng.choice([-1, 1], size)).astype(np.int8)
    else:
        weights = rng.standard_normal((size, size)).astype(numpy_type)
        dense = (rng.uniform(0.25, 2, size) * rng.choice([-1, 1], size)).astype(numpy_type)
    sparse = dense.copy()
    zeros = rng.permutation(size)[:size // 2]
    sparse[zeros] = 0
    if dtype != "int8":                       # -0 is skipped as +0 is
        sparse[zeros[::2]] = -sparse[zeros[::2]]

    def simulate(code, image, wavelets, results):
        return _simulate_tile(params, code, image, wavelets, results)

    runs = {}
    for name, x in (("dense", dense), ("half_zero", sparse)):
        progress(f"  {name} x: simulating the tile RTL ...")
        result = _measure(params, size, dtype, weights, x, simulate)
        expected = _expected(dtype, weights, x)
        result["bit_exact"] = result["y"] == expected and result["iss_y"] == expected
        result["cycles_match_iss"] = result["cycles"] == result["iss_cycles"]
        runs[name] = result
    dense_run, sparse_run = runs["dense"], runs["half_zero"]
    return {
        "size": size,
        "dtype": dtype,
        "lanes": params.lanes if dtype == "int8" else params.float_width,
        "bit_exact": dense_run["bit_exact"] and sparse_run["bit_exact"],
        "cycles": dense_run["cycles"],
        "mac_cycles": dense_run["mac_cycles"],
        "sram_read_utilization": dense_run["sram_read_bytes"] / (params.lanes
                                                                 * dense_run["mac_cycles"]),
        "zero_skip_speedup_at_50pct": dense_run["mac_cycles"] / sparse_run["mac_cycles"],
        "cycles_half_zero": sparse_run["cycles"],
        "mac_cycles_half_zero": sparse_run["mac_cycles"],
        "rtl_cycles_equal_iss": dense_run["cycles_match_iss"] and sparse_run["cycles_match_iss"],
        "seed": seed,
        "params": params.to_dict(),
    }
