"""cocotb side of ``tessera bench sim-speed`` (host/bench/speed.py): the streaming
kernel on the die, timed over its cycles.

Environment: ``TESSERA_PARAMS``, ``TESSERA_SPEED_CYCLES``, ``TESSERA_SPEED_OUT``
(where to write ``{"seconds", "received"}``).
"""

import json
import os

import cocotb
from cocotb.clock import Clock

from host.bench.speed import streaming_scenario
from sim.core_session import CocotbPort
from sim.die_session import run_die

from . import int_from_env, params_from_env


@cocotb.test()
async def streaming(dut):
    params = params_from_env()
    Clock(dut.clk, 2, unit="step", impl="gpi").start()
    port = CocotbPort(dut)
    await port.tick()
    outcome = await run_die(port, params, streaming_scenario(
        params, int_from_env("TESSERA_SPEED_CYCLES", 100)), fresh=True)
    with open(os.environ["TESSERA_SPEED_OUT"], "w") as out:
        json.dump({"seconds": outcome.run_seconds,
                   "received": {f"{prefix}:{i}": wavelets
                                for (prefix, i), wavelets in outcome.received.items()}}, out)
