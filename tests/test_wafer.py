"""The wafer: dies stitched in C++ (sim/native/wafer.cpp), driven from Python.

Every test runs on both harnesses (host.wafer.HARNESSES): the die RTL Verilated
whole, and its tiles Verilated once and wired in C++; the expected cycles are the
same, and one test requires the two to agree on everything.  One build of a 2 x 2-tile
die (with a spare column) serves every wafer here; shape, latency and defects are
chosen at run time.
"""

import random

import pytest

from host.asm import assemble
from host.wafer import HARNESSES, Wafer
from rtl.params import PRESETS, ParamError
from rtl.wavelet import Dir, pack_route_write

PARAMS = PRESETS["test"].replace(spare_cols=1)
DIE = (2, 2)


@pytest.fixture(params=HARNESSES)
def harness(request):
    return request.param


def _route(wafer, x, y, color, accept, outputs):
    wafer.route(x, y, pack_route_write(wafer.params, color, 0, accept, outputs, True))


@pytest.mark.parametrize("latency, threads", [(1, 1), (3, 2)])
def test_a_stream_crosses_a_die_boundary_at_one_wavelet_per_cycle(latency, threads, harness):
    wafer = Wafer((2, 1), DIE, PARAMS, latency=latency, harness=harness, threads=threads)
    for x in range(4):                                # row 0: west edge -> east edge
        _route(wafer, x, 0, 0, Dir.W, {Dir.E})
    for y in range(2):                                # column 0, inside die 0: north -> south
        _route(wafer, 0, y, 1, Dir.N, {Dir.S})
    wafer.start()
    for k in range(40):
        wafer.inject("west", 0, 1000 + k, 0)
        wafer.inject("north", 0, 2000 + k, 1)
    wafer.step(200)
    across = wafer.collect("east", 0)
    inside = wafer.collect("south", 0)
    assert [data for _, data, _, _ in across] == [1000 + k for k in range(40)]
    assert [data for _, data, _, _ in inside] == [2000 + k for k in range(40)]
    for stream in (across, inside):                   # one wavelet every cycle
        assert [b[0] - a[0] for a, b in zip(stream, stream[1:])] == [1] * 39
    # A hop costs a cycle inside a die; the boundary adds exactly the link latency.
    assert inside[0][0] == 2
    assert across[0][0] == 4 + latency


BROADCAST = """
    recv r1, 1
    st r1, 0x100(r0)
    halt
"""


def _broadcast(wafer):
    """Color 1 from the west edge of row 0 to every tile: along row 0, down every column."""
    for x in range(wafer.width):
        for y in range(wafer.height):
            accept = Dir.W if y == 0 else Dir.N
            outputs = {Dir.RAMP} | ({Dir.S} if y < wafer.height - 1 else set())
            if y == 0 and x < wafer.width - 1:
                outputs.add(Dir.E)
            _route(wafer, x, y, 1, accept, outputs)
            wafer.load(x, y, assemble(BROADCAST, wafer.params).words())
    wafer.start()
    wafer.inject("west", 0, 0xC0FFEE, 1)
    cycles = wafer.step(500, until_idle=True)
    return cycles, {(x, y): (wafer.memory(x, y)[0x100:0x104], wafer.status(x, y))
                    for x in range(wafer.width) for y in range(wafer.height)}


def test_a_broadcast_covers_a_two_by_two_die_wafer(harness):
    cycles, tiles = _broadcast(Wafer((2, 2), DIE, PARAMS, harness=harness))
    assert cycles < 500
    for (x, y), (stored, status) in tiles.items():
        assert stored == (0xC0FFEE).to_bytes(4, "little"), (x, y)
        assert status["halted"] and not status["fault"], (x, y)


def test_random_defect_maps_change_nothing(harness):
    reference = _broadcast(Wafer((2, 2), DIE, PARAMS, harness=harness))
    rng = random.Random(11)
    columns = DIE[0] + PARAMS.spare_cols
    for _ in range(3):
        dead = set()
        for die_x in range(2):
            for row in range(4):
                if rng.random() < 0.6:
                    dead.add((die_x * columns + rng.randrange(columns), row))
        assert dead
        # The same cycles and the same state: a bypass costs no cycle.
        assert _broadcast(Wafer((2, 2), DIE, PARAMS, defects=dead, harness=harness)) \
            == reference, dead


@pytest.mark.parametrize("defects, problem", [
    ({(0, 0), (1, 0)}, "row 0 has 2 dead tiles"),
    ({(6, 0)}, "not on the wafer"),
])
def test_bad_defect_maps_are_refused(defects, problem, harness):
    with pytest.raises(ParamError, match=problem):
        Wafer((2, 1), DIE, PARAMS, defects=defects, harness=harness)


def test_the_back_door_is_refused_once_the_wafer_runs(harness):
    # A back-door write clocks only its own die, so after start() it would put that die
    # a cycle ahead of the others.
    wafer = Wafer((2, 1), DIE, PARAMS, harness=harness)
    wafer.load(3, 0, assemble(BROADCAST, wafer.params).words())
    wafer.start()
    with pytest.raises(ParamError, match="under reset"):
        wafer.load(3, 0, assemble(BROADCAST, wafer.params).words())
    with pytest.raises(ParamError, match="under reset"):
        _route(wafer, 3, 0, 1, Dir.W, {Dir.RAMP})
    wafer.close()


def _drive(wafer, cycles):
    """Streams across both die boundaries and a broadcast to every tile, for ``cycles``."""
    for x in range(wafer.width):
        _route(wafer, x, 1, 0, Dir.W, {Dir.E})                  # row 1: west -> east
        for y in range(wafer.height):
            if y == 0:
                outputs = {Dir.RAMP, Dir.S} | ({Dir.E} if x < wafer.width - 1 else set())
                _route(wafer, x, y, 1, Dir.W, outputs)
            else:
                _route(wafer, x, y, 1, Dir.N, {Dir.RAMP} | ({Dir.S} if y < 3 else set()))
            wafer.load(x, y, assemble(BROADCAST, wafer.params).words())
    wafer.start()
    wafer.inject("west", 0, 0xBEEF, 1)
    for k in range(30):
        wafer.inject("west", 1, k, 0)
    wafer.step(cycles)
    return ({(side, i): wafer.collect(side, i) for side, i in
             [("east", 0), ("east", 1), ("south", 0), ("south", 3)]},
            {(x, y): (wafer.memory(x, y), wafer.status(x, y))
             for x in range(wafer.width) for y in range(wafer.height)})


@pytest.mark.parametrize("latency", [1, 4])
def test_parallel_cosimulation_matches_one_process_exactly(latency, harness):
    from host.cosim import Forked, ParallelWafer
    single = _drive(Wafer((2, 2), DIE, PARAMS, latency=latency, harness=harness), 120)
    parallel_wafer = ParallelWafer((2, 2), DIE, PARAMS, latency=latency,
                                   transport=Forked(workers=2), harness=harness)
    try:
        parallel = _drive(parallel_wafer, 120)
    finally:
        parallel_wafer.close()
    assert len(single[0]["east", 1]) == 30                      # the stream arrived
    assert parallel == single


def test_a_parallel_worker_that_dies_ends_the_run_naming_it(monkeypatch):
    import os
    import signal

    from host import cosim
    # Forked after this, every worker dies in its first window.
    monkeypatch.setattr(cosim, "_start_window", lambda *_: os.kill(os.getpid(), signal.SIGKILL))
    wafer = cosim.ParallelWafer((2, 1), DIE, PARAMS, transport=cosim.Forked(workers=2))
    try:
        with pytest.raises(cosim.CosimError, match=r"^worker 0 died \(exit status -9\)$"):
            wafer.step(10)
    finally:
        wafer.close()


@pytest.mark.parametrize("latency", [1, 4])
def test_the_tile_harness_matches_the_die_harness_exactly(latency):
    # Streams over both die boundaries and a broadcast, with a dead tile in three rows:
    # the same wavelets out in the same cycles, the same memories, registers and counters.
    dead = {(0, 1), (5, 2), (1, 3)}
    runs = [_drive(Wafer((2, 2), DIE, PARAMS, latency=latency, defects=dead, harness=harness),
                   120) for harness in HARNESSES]
    assert len(runs[0][0]["east", 1]) == 30
    assert runs[0] == runs[1]


SUM_DATA = """
    li r1, 0
    li r2, 64
    dmem d0, r1, r2, 1
    vsum r3, d0
    st r3, 0x200(r0)
    halt
"""


def test_the_front_door_loads_what_the_back_door_loads(harness):
    rng = random.Random(5)
    images = {}
    program = assemble(SUM_DATA, PARAMS.replace(width=2, height=2)).words()
    for x in range(4):
        for y in range(2):
            images[x, y] = (program, bytes(rng.getrandbits(8) for _ in range(100)))
    dead = {(1, 0), (3, 1)}                   # one dead tile in each die
    results = []
    for door in ("back", "front"):
        wafer = Wafer((2, 1), DIE, PARAMS, defects=dead, harness=harness)
        if door == "back":
            for (x, y), (code, data) in images.items():
                wafer.load(x, y, code, data)
        else:
            cycles = wafer.front_door(images)
            # 8 tiles, each 24 code bytes, 100 data bytes and 4 address wavelets, over
            # the two west links of the wafer: at least that many cycles, one per byte.
            assert 4 * (24 + 100 + 4) <= cycles < 4 * (24 + 100 + 4) + 50
        loaded = {tile: wafer.memory(*tile) for tile in images}
        wafer.start()
        wafer.step(2000, until_idle=True)
        ran = {tile: (wafer.memory(*tile), wafer.status(*tile, register=3)) for tile in images}
        results.append((loaded, ran))
    (back_loaded, back_ran), (front_loaded, front_ran) = results
    assert front_loaded == back_loaded
    for (x, y), (code, data) in images.items():
        memory, status = front_ran[x, y]
        total = sum(int.from_bytes([b], "little", signed=True) for b in data[:64])
        assert status["halted"] and not status["fault"] and status["register"] == total
    assert [(m, {k: v for k, v in s.items() if k != "counters"}) for m, s in front_ran.values()] \
        == [(m, {k: v for k, v in s.items() if k != "counters"}) for m, s in back_ran.values()]


def test_a_wafer_to_wafer_link_is_slower_and_narrower(harness):
    from host.cosim import link_ends
    wafer = Wafer((2, 1), DIE, PARAMS, harness=harness)
    link = link_ends(2, 1, wafer.params).index((0, 1))     # die 0 -> die 1, row 0
    wafer.link_timing(link, latency=10, interval=2)
    for x in range(4):
        _route(wafer, x, 0, 0, Dir.W, {Dir.E})
    wafer.start()
    for k in range(20):
        wafer.inject("west", 0, k, 0)
    wafer.step(200)
    arrived = wafer.collect("east", 0)
    assert [data for _, data, _, _ in arrived] == list(range(20))
    assert arrived[0][0] == 4 + 10
    assert [b[0] - a[0] for a, b in zip(arrived, arrived[1:])] == [2] * 19


def test_wafer_to_wafer_timing_from_the_seeds_figures():
    from host.wafer import wafer_link_timing
    # 5 us at 1.1 GHz; 4 links of 32 bits at 1.1 GHz carry 141 Gb/s, under 1.2 Tb/s.
    assert wafer_link_timing(4, 1.1e9) == (5500, 1)
    # A WSE-wide boundary (750 links) carries 26.4 Tb/s raw: a wavelet every 22 cycles.
    assert wafer_link_timing(750, 1.1e9) == (5500, 22)
    assert wafer_link_timing(4, 1e9, latency_s=1e-7, bandwidth_bps=64e9) == (100, 2)
    with pytest.raises(ParamError, match="positive latency and bandwidth"):
        wafer_link_timing(4, 1e9, latency_s=0)


# Three ways to wait for the fabric, each handling the XY color's wavelets one at a time,
# adding them up at 0x100 and stamping the CYCLES counter at 0x108, until the count at
# 0x10c is reached; then it halts.
_ADD_UP = """
    ld r2, 0x100(r0)
    add r2, r2, r1
    st r2, 0x100(r0)
    csrr r3, cycles
    st r3, 0x108(r0)
"""
SLEEPERS = {
    "free, a task bound to the color": f"""
    ld r5, 0x10c(r0)
    beq r5, r0, done
    task 1, arrived
    tbind 1, {{xy}}
    texit
arrived:
    recv r1, {{xy}}
    {_ADD_UP}
    ld r5, 0x10c(r0)
    addi r5, r5, -1
    st r5, 0x10c(r0)
    beq r5, r0, done
    texit
done:
    halt
""",
    "RECV": f"""
    ld r5, 0x10c(r0)
    beq r5, r0, done
next:
    recv r1, {{xy}}
    {_ADD_UP}
    bdec r5, next
done:
    halt
""",
    "a FIN operand, its slot waited for": f"""
    ld r5, 0x10c(r0)
    beq r5, r0, done
    li r6, 0
    li r7, 1
    dacc d0, r6, r7
    dfin d1, r7, {{xy}}
next:
    vmov d0, d1
    vsum r1, d0
    {_ADD_UP}
    bdec r5, next
done:
    halt
""",
}


def _random_traffic(wafer, seed, count=240):
    """``count`` XY-addressed wavelets to random tiles at random times (mostly apart, so
    that tiles sleep between them), each tile waiting in one of the SLEEPERS ways;
    returns the statuses, the memories, the cycles and the data sent to each tile."""
    from rtl.wavelet import pack_addressed
    rng = random.Random(seed)
    xy = wafer.params.first_xy_color
    tiles = [(x, y) for x in range(wafer.width) for y in range(wafer.height)]
    traffic = [(rng.choice(tiles), rng.randrange(wafer.height), rng.getrandbits(12),
                rng.choice([0, 0, 1, 3, 20, 60, 200])) for _ in range(count)]
    sent = {tile: [pack_addressed(*tile, payload) for (to, _, payload, _) in traffic
                   if to == tile] for tile in tiles}
    programs = list(SLEEPERS.values())
    for n, (x, y) in enumerate(tiles):
        data = bytearray(0x110)
        data[0x10c:0x110] = len(sent[x, y]).to_bytes(4, "little")
        code = assemble(programs[n % len(programs)].format(xy=xy), wafer.params).words()
        wafer.load(x, y, code, bytes(data))
    wafer.start()
    for (x, y), row, payload, gap in traffic:
        wafer.step(gap)
        wafer.inject("west", row, pack_addressed(x, y, payload), xy)
    wafer.step(20_000, until_idle=True)
    return ({tile: wafer.status(*tile) for tile in tiles},
            {tile: wafer.memory(*tile) for tile in tiles}, wafer.cycle, sent)


@pytest.mark.parametrize("seed, threads", [(1, 1), (2, 2)])
def test_skipped_tiles_miss_nothing_under_random_traffic(seed, threads):
    # Tiles sleep between the wavelets addressed to them; every one must be taken, in
    # the cycle the die harness (which skips nothing) takes it, with the same CYCLES,
    # whether one thread clocks the tiles or two share them.
    dead = {(0, 1), (5, 2)}
    runs = {}
    for harness in HARNESSES:
        wafer = Wafer((2, 2), DIE, PARAMS, defects=dead, harness=harness,
                      threads=threads if harness == "tiles" else 1)
        runs[harness] = (_random_traffic(wafer, seed), wafer.evaluated)
        wafer.close()
    (statuses, memories, cycles, sent), evaluated = runs["tiles"]
    assert runs["tiles"][0] == runs["dies"][0]
    for tile, words in sent.items():
        assert statuses[tile]["halted"] and not statuses[tile]["fault"], tile
        assert int.from_bytes(memories[tile][0x100:0x104], "little") == sum(words) % (1 << 32)
    tile_cycles = cycles * len(sent)
    assert runs["dies"][1] == tile_cycles
    assert evaluated < tile_cycles / 3, f"{evaluated} of {tile_cycles} tile-cycles evaluated"


_MEASURE = """
import ctypes, json, sys
from host.wafer import Wafer, library
from rtl.params import Params
class Mallinfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo
def allocated():
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd          # in the heap, and mapped on its own
params, harness = Params.from_dict(json.loads(sys.argv[1])), sys.argv[2]
ctypes.CDLL(str(library(params.replace(width=4, height=4), harness)))
before = allocated()
wafer = Wafer((8, 2), (4, 4), params, harness=harness)
print(allocated() - before)
"""


def test_the_memory_estimate_bounds_what_a_tile_takes(harness):
    # What malloc handed out, in a fresh process. Not the resident set: a page of
    # zeros is not resident until written, and the kernel's choice of that varies.
    import subprocess
    import sys
    from host.wafer import tile_bytes
    taken = int(subprocess.run([sys.executable, "-c", _MEASURE, PARAMS.to_json(), harness],
                               check=True, capture_output=True, text=True).stdout)
    columns = 4 + (PARAMS.spare_cols if harness == "dies" else 0)
    per_tile = taken / (8 * 2 * columns * 4)
    # An upper bound, and not a loose one.
    estimate = tile_bytes(PARAMS)
    assert per_tile <= estimate <= 2 * per_tile, (per_tile, estimate)


def test_a_wafer_too_large_for_memory_is_refused_before_building(monkeypatch, tmp_path, capsys):
    import host.wafer
    from host.cli import main
    from host.wafer import WaferShape
    monkeypatch.setattr(host.wafer, "library", lambda *args: pytest.fail("it built"))
    # 16 x 16 dies of 4 x 4 default tiles: 4,096 tiles of 79 KiB, 0.3 GiB.
    shape = WaferShape((16, 16), (4, 4), PRESETS["default"])
    monkeypatch.setattr(host.wafer, "available_memory", lambda: 2**29)
    shape.check_memory()
    monkeypatch.setattr(host.wafer, "available_memory", lambda: 2**28)
    with pytest.raises(ParamError, match="more than the 0.2 GiB"):
        shape.check_memory()
    with pytest.raises(ParamError, match="4,096 tiles"):
        Wafer((16, 16), (4, 4), PRESETS["default"])
    out = tmp_path / "run.json"
    assert main(["run", "--model", "seeded", "--wafer", "16x16", "--die", "4x4",
                 "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert "takes about 0.3 GiB (79 KiB a tile)" in captured.err, captured.err
    assert list(tmp_path.iterdir()) == []
