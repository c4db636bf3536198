"""Directed tests of the router in the Amaranth simulator (block level, no Verilog).

Each test drives the router cycle by cycle and states the expected cycle of
every event, so a change of latency or credit timing fails here first.
"""

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from rtl.params import PRESETS
from rtl.router import Router
from rtl.wavelet import Dir, pack_addressed, pack_route_write, unpack_wavelet

PARAMS = PRESETS["test"]          # 4 colors: 0..2 static, 3 addressed
XY = PARAMS.first_xy_color


def run(params, body, x=2, y=2):
    """Run ``body(ctx, dut)`` as an async testbench against a fresh router at (x, y).

    ``dut.reset`` is the reset of its clock domain.
    """
    dut = Router(params)
    top = Module()
    top.domains.sync = domain = ClockDomain()
    top.submodules.router = dut
    dut.reset = domain.rst

    async def bench(ctx):
        ctx.set(dut.x, x)
        ctx.set(dut.y, y)
        await body(ctx, dut)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


async def configure(ctx, dut, params, color, accept, outputs, position=0, last=True):
    ctx.set(dut.config.valid, 1)
    ctx.set(dut.config.payload.as_value(), pack_route_write(params, color, position, accept, outputs, last))
    await ctx.tick()
    ctx.set(dut.config.valid, 0)


def drive(ctx, dut, port, data, color, ctrl=0, valid=1):
    link = dut.inputs[port.value]
    ctx.set(link.valid, valid)
    ctx.set(link.wavelet.data, data)
    ctx.set(link.wavelet.color, color)
    ctx.set(link.wavelet.ctrl, ctrl)


def seen(ctx, dut, port):
    """(data, color, ctrl) on output ``port`` this cycle, or None."""
    link = dut.outputs[port.value]
    if not ctx.get(link.valid):
        return None
    return unpack_wavelet(PARAMS, ctx.get(link.wavelet.as_value()))


def test_one_hop_is_one_cycle_and_the_credit_comes_back_with_it():
    async def body(ctx, dut):
        await configure(ctx, dut, PARAMS, 0, Dir.W, [Dir.E])
        drive(ctx, dut, Dir.W, 0x1234, 0)
        await ctx.tick()                      # written into the W queue of color 0
        drive(ctx, dut, Dir.W, 0, 0, valid=0)
        assert seen(ctx, dut, Dir.E) == (0x1234, 0, 0)
        assert ctx.get(dut.inputs[Dir.W.value].credit) == 1
        assert ctx.get(dut.inputs[Dir.W.value].credit_color) == 0
        await ctx.tick()
        assert seen(ctx, dut, Dir.E) is None
        assert ctx.get(dut.inputs[Dir.W.value].credit) == 0
    run(PARAMS, body)


def test_a_stream_moves_one_wavelet_per_cycle_with_credits_returned():
    async def body(ctx, dut):
        await configure(ctx, dut, PARAMS, 1, Dir.N, [Dir.S])
        out = dut.outputs[Dir.S.value]
        received = []
        for cycle in range(20):
            drive(ctx, dut, Dir.N, cycle, 1)
            await ctx.tick()
            if seen(ctx, dut, Dir.S):
                received.append(seen(ctx, dut, Dir.S)[0])
            # The receiver hands every credit back at once.
            ctx.set(out.credit, ctx.get(out.valid))
            ctx.set(out.credit_color, 1)
        assert received == list(range(len(received)))
        assert len(received) == 20   # one per cycle, first in the cycle after it was driven
    run(PARAMS, body)


def test_credits_stop_a_color_after_queue_depth_and_release_it_one_for_one():
    depth = PARAMS.queue_depth
    async def body(ctx, dut):
        await configure(ctx, dut, PARAMS, 0, Dir.RAMP, [Dir.E])
        out = dut.outputs[Dir.E.value]
        sent = 0
        for cycle in range(depth + 6):
            drive(ctx, dut, Dir.RAMP, cycle, 0, valid=cycle < depth + 2)
            await ctx.tick()
            sent += bool(seen(ctx, dut, Dir.E))
        assert sent == depth        # no credit came back
        ctx.set(out.credit, 1)       # counted at this edge, spent in the next cycle
        ctx.set(out.credit_color, 0)
        await ctx.tick()
        ctx.set(out.credit, 0)
        assert seen(ctx, dut, Dir.E)[0] == depth
        await ctx.tick()
        assert seen(ctx, dut, Dir.E) is None
    run(PARAMS, body)


def test_multicast_reaches_every_output_of_the_route_in_the_same_cycle():
    async def body(ctx, dut):
        await configure(ctx, dut, PARAMS, 2, Dir.W, [Dir.E, Dir.S, Dir.RAMP])
        drive(ctx, dut, Dir.W, 77, 2)
        await ctx.tick()
        drive(ctx, dut, Dir.W, 0, 0, valid=0)
        for port in Dir:
            expected = (77, 2, 0) if port in (Dir.E, Dir.S, Dir.RAMP) else None
            assert seen(ctx, dut, port) == expected, port
    run(PARAMS, body)


def test_a_control_wavelet_steps_the_switch_after_it_passes():
    async def body(ctx, dut):
        await configure(ctx, dut, PARAMS, 0, Dir.W, [Dir.E], position=0, last=False)
        await configure(ctx, dut, PARAMS, 0, Dir.W, [Dir.N], position=1, last=True)
        expected = [(Dir.E, 0), (Dir.E, 1), (Dir.N, 0), (Dir.N, 1), (Dir.E, 0)]
        for index, (port, ctrl) in enumerate(expected):
            drive(ctx, dut, Dir.W, index, 0, ctrl=ctrl)
            await ctx.tick()
            drive(ctx, dut, Dir.W, 0, 0, valid=0)
            assert seen(ctx, dut, port) == (index, 0, ctrl)
            for credit_port in (Dir.E, Dir.N):   # give the credit back
                ctx.set(dut.outputs[credit_port.value].credit, seen(ctx, dut, credit_port) is not None)
            await ctx.tick()
            for credit_port in (Dir.E, Dir.N):
                ctx.set(dut.outputs[credit_port.value].credit, 0)
    run(PARAMS, body)


@pytest.mark.parametrize("destination, port", [
    ((5, 2), Dir.E), ((0, 2), Dir.W), ((2, 3), Dir.S), ((2, 0), Dir.N),
    ((4, 0), Dir.E), ((2, 2), Dir.RAMP),
])
def test_addressed_wavelets_go_x_first_then_y_then_to_the_ramp(destination, port):
    async def body(ctx, dut):
        drive(ctx, dut, Dir.RAMP if port != Dir.RAMP else Dir.W, pack_addressed(*destination, 9), XY)
        await ctx.tick()
        for other in Dir:
            assert (seen(ctx, dut, other) is not None) == (other == port), other
    run(PARAMS, body, x=2, y=2)


def test_a_wavelet_for_a_full_queue_raises_overflow_on_its_port():
    depth = PARAMS.queue_depth
    async def body(ctx, dut):
        await configure(ctx, dut, PARAMS, 0, Dir.S, [Dir.N])
        # depth wavelets leave on credits, depth more fill the queue, one more overflows.
        for cycle in range(2 * depth + 1):
            assert ctx.get(dut.overflow) == 0
            drive(ctx, dut, Dir.S, cycle, 0)
            await ctx.tick()
        assert ctx.get(dut.overflow) == 1 << Dir.S.value
    run(PARAMS, body)


def test_routes_written_during_reset_survive_it_and_switches_return_to_position_0():
    async def body(ctx, dut):
        ctx.set(dut.reset, 1)
        await configure(ctx, dut, PARAMS, 1, Dir.E, [Dir.W], position=0, last=False)
        await configure(ctx, dut, PARAMS, 1, Dir.E, [Dir.S], position=1, last=True)
        ctx.set(dut.reset, 0)
        drive(ctx, dut, Dir.E, 5, 1, ctrl=1)     # steps color 1 to position 1
        await ctx.tick()
        drive(ctx, dut, Dir.E, 0, 0, valid=0)
        assert seen(ctx, dut, Dir.W) == (5, 1, 1)
        ctx.set(dut.reset, 1)
        await ctx.tick()
        ctx.set(dut.reset, 0)
        drive(ctx, dut, Dir.E, 6, 1)
        await ctx.tick()
        assert seen(ctx, dut, Dir.W) == (6, 1, 0)  # position 0 again, route kept
    run(PARAMS, body)
