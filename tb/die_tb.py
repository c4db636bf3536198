"""cocotb testbench of a die (Verilog module ``tessera_die``): redundancy.

One scenario -- a stream along a row, a stream down a column into a tile's
core, a program on that core that sums the stream and sends the sum east, and
XY-addressed traffic across the die -- runs on the die without dead tiles and
then with dead tiles (a fixed map and seeded random maps within the spare
budget).  Every edge link must carry the same wavelets in the same cycles, and
the program must leave the same state: the logical mesh is the same.

Environment: ``TESSERA_PARAMS`` (a die of at least 2 x 2 with a spare column),
``TESSERA_SEED``.
"""

import random

import cocotb
from cocotb.clock import Clock

from host.asm import assemble
from rtl.mesh import pack_mesh_config
from rtl.wavelet import Dir
from sim.core_session import Case, CocotbPort
from sim.die_session import DieScenario, run_die
from sim.fabric import RouteTable, WaveletCodec

from . import TBError, params_from_env, seed_from_env, seeded

STREAM = list(range(1, 9))


def scenario(params, seed):
    codec = WaveletCodec(params)
    xy = params.first_xy_color
    routes = {(x, y): RouteTable(params) for x in range(2) for y in range(2)}
    routes[0, 0].program(0, [(Dir.W, {Dir.E})])           # color 0 along row 0
    routes[1, 0].program(0, [(Dir.W, {Dir.E})])
    routes[1, 0].program(1, [(Dir.N, {Dir.S})])           # color 1 down column 1 ...
    routes[1, 1].program(1, [(Dir.N, {Dir.RAMP})])        # ... into the core of (1, 1)
    routes[1, 1].program(2, [(Dir.RAMP, {Dir.E})])        # its sum goes east
    words = [pack_mesh_config(params, x, y, write)
             for (x, y), table in routes.items() for write in table.writes()]
    program = assemble(f"""
        li r2, {len(STREAM)}
        dfin d0, r2, 1
        vsum r3, d0
        send r3, 2
        st r3, 0x100(r0)
        halt
        """, params)
    rng = random.Random(seed)
    pattern = [rng.random() < 0.8 for _ in range(997)]
    return DieScenario(
        config_words=words,
        programs={(1, 1): Case(program.words())},
        traffic={
            ("west", 0): [(k, 100 + k, 0) for k in range(20)],
            ("north", 1): [(2 * k, v, 1) for k, v in enumerate(STREAM)],
            ("north", 0): [(k, codec.addressed(0, params.height, k), xy) for k in range(10)],
            ("west", 1): [(k, codec.addressed(params.width, 1, k), xy) for k in range(10)],
        },
        cycles=250,
        ready=lambda cycle: pattern[cycle % len(pattern)])


def check_scenario(params, outcome):
    """What the scenario must do, whatever the defects."""
    row = [data for _, data, color, _ in outcome.received["east", 0] if color == 0]
    if row != [100 + k for k in range(20)]:
        raise TBError(f"the row stream arrived as {row}")
    east = outcome.received["east", 1]
    sums = [data for _, data, color, _ in east if color == 2]
    if sums != [sum(STREAM)]:
        raise TBError(f"tile (1, 1) sent {sums}, not the sum {sum(STREAM)}")
    if len([w for w in east if w[2] == params.first_xy_color]) != 10:
        raise TBError("XY wavelets to the east edge were lost")
    if len(outcome.received["south", 0]) != 10:
        raise TBError("XY wavelets to the south edge were lost")
    mem, _, regs, _, halted, fault = outcome.tiles[1, 1]
    if not halted or fault or regs[3] != sum(STREAM):
        raise TBError(f"tile (1, 1): halted {halted}, fault {fault}, r3 {regs[3]}")


def random_defects(params, rng):
    """Up to ``spare_cols`` dead tiles in each row, at random; at least one in all."""
    columns = params.width + params.spare_cols
    while True:
        dead = {(column, row) for row in range(params.height)
                for column in rng.sample(range(columns), rng.randint(0, params.spare_cols))}
        if dead:
            return dead


@cocotb.test()
@seeded
async def defect_tolerance(dut):
    params, seed = params_from_env(), seed_from_env()
    Clock(dut.clk, 2, unit="step", impl="gpi").start()
    port = CocotbPort(dut)
    await port.tick()
    test = scenario(params, seed)
    reference = await run_die(port, params, test)
    check_scenario(params, reference)
    rng = random.Random(f"{seed}/defects")
    # The first map moves the programmed tile (1, 1) one place to the right.
    maps = [{(0, 0), (0, 1)}, {(1, 0), (params.width, 1)}] + [
        random_defects(params, rng) for _ in range(3)]
    for dead in maps:
        outcome = await run_die(port, params, test, dead)
        check_scenario(params, outcome)
        for link, wavelets in reference.received.items():
            if outcome.received[link] != wavelets:
                raise TBError(f"dead tiles {sorted(dead)}: edge {link} differs: "
                              f"{outcome.received[link][:4]} ... against {wavelets[:4]} ...")
        if outcome.tiles != reference.tiles:
            raise TBError(f"dead tiles {sorted(dead)}: the program's state differs")
        dut._log.info(f"dead tiles {sorted(dead)}: identical to the defect-free die")
