"""cocotb testbench of one core (Verilog module ``tessera_core``) against the ISS.

Every program runs on the RTL and on the ISS (:mod:`sim.iss`) with the same
wavelets in and the same back-pressure out; memory, accumulators, registers,
counters, status, the wavelets sent and the cycle count must be identical
(:func:`sim.core_session.differences`).  The directed programs also meet the
expectations computed in :mod:`tb.directed_programs`.

Environment: ``TESSERA_PARAMS``, ``TESSERA_SEED`` (the random programs are
seeds ``1000 * TESSERA_SEED + i``) and ``TESSERA_PROGRAMS`` (how many).
"""

import collections

import cocotb
from cocotb.clock import Clock

from rtl.isa import Counter
from sim.core_session import CocotbPort, differences, judge_all, memories_of, run_iss, run_rtl

from . import TBError, int_from_env, params_from_env, seed_from_env
from .directed_programs import directed_cases
from .float_programs import float_cases
from .random_programs import random_case


async def _start(dut):
    Clock(dut.clk, 2, unit="step", impl="gpi").start()
    port = CocotbPort(dut)
    await port.tick()      # from here on, every tick has a rising edge before it
    return port


async def _judge_all(dut, cases):
    """Run ``cases(params)`` (directed ``(name, Case, check)``) on the RTL; fail listing
    every one whose outcome is wrong or differs from the ISS."""
    params = params_from_env()
    port = await _start(dut)
    failures = await judge_all(port, params, cases(params))
    if failures:
        raise TBError("\n".join(failures))


@cocotb.test()
async def directed(dut):
    """Every instruction, every fault, two concurrent streams: against their expected
    values and against the ISS."""
    await _judge_all(dut, directed_cases)


@cocotb.test()
async def float_directed(dut):
    """Every floating-point instruction on the corner classes (tb.float_programs): against
    numpy and against the ISS."""
    await _judge_all(dut, float_cases)


@cocotb.test()
async def random_programs(dut):
    """Seeded random programs, RTL against ISS; fails naming the first seed that differs."""
    params = params_from_env()
    port = await _start(dut)
    count = int_from_env("TESSERA_PROGRAMS", 250)
    first = 1000 * seed_from_env()
    faults = collections.Counter()
    totals = collections.Counter()
    held = memories_of(params, None)
    for seed in range(first, first + count):
        case = random_case(params, seed)
        expected = run_iss(params, case)
        actual = await run_rtl(port, params, case, held)
        held = memories_of(params, case, actual)
        problems = differences(expected, actual)
        if problems:
            raise TBError(f"random program {seed} ({expected.summary()}) differs:\n"
                          + "\n".join(problems))
        faults[expected.fault] += 1
        for counter in Counter:
            totals[counter.name] += expected.counters[counter]
    dut._log.info(f"{count} programs identical; faults by cause {dict(faults)}; "
                  f"counter totals {dict(totals)}")
    # The programs must have exercised the machine, or agreeing proves little.
    for counter in (Counter.SRAM_READS, Counter.SRAM_WRITES, Counter.WAVELETS_IN,
                    Counter.WAVELETS_OUT, Counter.ZERO_SKIPS):
        if count >= 50 and totals[counter.name] == 0:
            raise TBError(f"no random program moved the {counter.name} counter")
