"""``tessera bench sim-speed``: simulated tile-cycles per second on every back end.

The workload is one die running a streaming kernel: a stream enters every row
at the west edge, and every tile's core takes it from its west neighbour, adds
one to each element and passes it east (``VADD`` from a ``FIN`` to a ``FOUT``
descriptor, one element a cycle), so every core and router of the die is busy.
The back ends:

- ``amaranth``: the Amaranth simulator, the die elaborated flat;
- ``cocotb_icarus`` and ``cocotb_verilator``: the die's Verilog under cocotb,
  the testbench driving every edge link every cycle (``tb/speed_tb.py``);
- ``native``: the die Verilated into the C++ wafer harness, one process;
- ``native_tiles``: the same harness with the die's tiles Verilated once and wired
  in C++ (``sim/native/tile_model.h``), one process, one thread;
- ``native_tiles_threads``: the same, its tiles clocked by as many threads as the
  machine has cores (``sim/native/crew.h``);
- ``native_parallel``: the die harness with parallel co-simulation, a 2 x 1 wafer of
  the same die, one die per process (so it simulates twice the tiles), the dies
  joined by a link of :data:`PARALLEL_LATENCY` cycles, as between two wafers: the
  processes meet once per that many cycles.  (Split at a 1-cycle die link, they
  would meet every cycle, and the messages would cost more than they save.)
- ``native_mpi``: the same split on two MPI ranks (:mod:`host.cosim_mpi`), rank 0
  simulating one die and coordinating; the bench starts them with the venv's
  ``mpiexec -n 2``.

Every back end runs the same scenario (``sim.die_session``) and is timed over
its cycles only, not over building, loading or reading back, for a few seconds
(:data:`DEFAULT_CYCLES`).  The slow back ends build or elaborate a smaller die
(:data:`SMALL_DIES`; the Amaranth simulator takes some 12 minutes to elaborate a
4x4 die of the default preset), so their rates are per tile of that die; the JSON
gives each run's die.  Wall-clock rates vary with the machine and its load; the
ratio between back ends measured in one run is the figure to quote.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host.asm import Builder
from rtl.mesh import pack_mesh_config
from rtl.wavelet import Dir
from sim import build
from sim.fabric import RouteTable

__all__ = ["BACKENDS", "DEFAULT_CYCLES", "streaming_scenario", "run"]

BACKENDS = ("amaranth", "cocotb_icarus", "cocotb_verilator", "native", "native_tiles",
            "native_tiles_threads", "native_parallel", "native_mpi")
#: Cycles each back end runs by default: a few seconds of each on a 4x4 die.
DEFAULT_CYCLES = {"amaranth": 200, "cocotb_icarus": 600, "cocotb_verilator": 1_500,
                  "native": 30_000, "native_tiles": 50_000, "native_tiles_threads": 50_000,
                  "native_parallel": 30_000, "native_mpi": 30_000}
#: The back ends that simulate a 2 x 1 wafer of the die, split between two processes.
SPLIT = ("native_parallel", "native_mpi")
#: The largest die each slow back end runs, whatever the bench's die.
SMALL_DIES = {"amaranth": (1, 1), "cocotb_icarus": (2, 2), "cocotb_verilator": (2, 2)}
#: The ratios of rates the JSON gives, when both back ends ran: ``parallel_speedup`` and
#: ``mpi_speedup`` are two processes' tile-cycles per second against one's, on 2 cores.
RATIOS = {"native_vs_cocotb_verilator": ("native", "cocotb_verilator"),
          "tiles_vs_native": ("native_tiles", "native"),
          "threads_speedup": ("native_tiles_threads", "native_tiles"),
          "parallel_speedup": ("native_parallel", "native"),
          "mpi_speedup": ("native_mpi", "native"),
          "mpi_vs_multiprocessing": ("native_mpi", "native_parallel")}
#: Elements each core streams (a descriptor's length is 16 bits): the most cycles a run takes.
LENGTH = 60_000
#: Link latency between the two dies of ``native_parallel``: about a microsecond at
#: 1.1 GHz, a wafer-to-wafer link (the seed quotes under 5 us).
PARALLEL_LATENCY = 1024


def streaming_scenario(params, cycles):
    """A :class:`sim.die_session.DieScenario` of the streaming kernel on one die, for up
    to :data:`LENGTH` cycles."""
    if cycles > LENGTH:
        raise ValueError(f"the streaming kernel runs at most {LENGTH:,} cycles, not {cycles:,}")
    from sim.core_session import Case
    from sim.die_session import DieScenario

    words, programs = [], {}
    for y in range(params.height):
        for x in range(params.width):
            color_in, color_out = x % 2, (x + 1) % 2
            table = RouteTable(params)
            table.program(color_in, [(Dir.W, {Dir.RAMP})])
            table.program(color_out, [(Dir.RAMP, {Dir.E})])
            words += [pack_mesh_config(params, x, y, write) for write in table.writes()]
            b = Builder(params)
            b.li(1, LENGTH)
            b.dfin(0, 1, color_in)
            b.dfout(1, 1, color_out)
            b.li(2, 1)
            b.vadd(1, 0, 2, scalar=True)
            b.halt()
            programs[x, y] = Case(b.build().words())
    traffic = {("west", y): [(0, k, 0) for k in range(cycles)] for y in range(params.height)}
    return DieScenario(words, programs, traffic, cycles)


def _amaranth(params, scenario):
    from rtl.die import Die
    from sim.core_session import simulate_amaranth
    from sim.die_session import run_die

    outcome = simulate_amaranth(Die(params, hierarchical=False),
                                lambda port: run_die(port, params, scenario, fresh=True))
    return outcome.run_seconds, outcome.received


def _cocotb(params, scenario, sim):
    """Run ``tb/speed_tb.py`` under cocotb on ``sim``; it writes its timing to a file."""
    from cocotb_tools.check_results import get_results

    verilog_build = build.verilog("die", params)
    runner, test_dir = build.cocotb_build(sim, verilog_build, f"speed-{sim}")
    out = test_dir / "speed.json"
    out.unlink(missing_ok=True)
    env = {"TESSERA_PARAMS": params.to_json(), "TESSERA_SPEED_CYCLES": str(scenario.cycles),
           "TESSERA_SPEED_OUT": str(out)}
    try:
        results = runner.test(hdl_toplevel=verilog_build.top, hdl_toplevel_lang="verilog",
                              test_module="tb.speed_tb", test_dir=test_dir,
                              build_dir=runner.build_dir, extra_env=env,
                              log_file=test_dir / "sim.log")
    except SystemExit:
        results = None
    if results is None or get_results(results)[1] or not out.exists():
        raise build.ToolError(f"the cocotb speed run on {sim} failed; see {test_dir}/sim.log")
    measured = json.loads(out.read_text())
    received = {(prefix, int(i)): [tuple(w) for w in wavelets]
                for key, wavelets in measured["received"].items()
                for prefix, i in [key.split(":")]}
    return measured["seconds"], received


def _native(params, scenario, dies, harness="dies", threads=1, transport=None):
    """The scenario on ``dies`` copies of the die in a row, in one process, or split
    between the workers of ``transport`` (:class:`host.cosim.Forked` by default)."""
    from host.cosim import Forked, ParallelWafer
    from host.wafer import Wafer

    shape = (params.width, params.height)
    wafer = (Wafer((1, 1), shape, params, harness=harness, threads=threads) if dies == 1
             else ParallelWafer((dies, 1), shape, params, latency=PARALLEL_LATENCY,
                                transport=transport or Forked(workers=dies), harness=harness))
    try:
        for word in scenario.config_words:
            for die in range(dies):
                # Every die gets the same routes; config words address die-local tiles.
                wafer_x = die * params.width
                _route_word(wafer, params, word, wafer_x)
        for die in range(dies):
            for (x, y), case in scenario.programs.items():
                wafer.load(die * params.width + x, y, case.code)
        wafer.start()
        for y in range(params.height):
            for _, data, color in scenario.traffic.get(("west", y), []):
                wafer.inject("west", y, data, color)
        started = time.perf_counter()
        wafer.step(scenario.cycles)
        seconds = time.perf_counter() - started
        received = {("east", y): wafer.collect("east", y) for y in range(params.height)}
    finally:
        wafer.close()
    return seconds, received


def _native_mpi(params, cycles):
    """``native_parallel``'s run on two MPI ranks: ``mpiexec -n 2`` runs this module,
    whose rank 0 times the run and writes what it measured to a file."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "measured.json"
        command = [str(Path(sys.executable).parent / "mpiexec"), "-n", "2", sys.executable,
                   "-m", "host.bench.speed", params.to_json(), str(cycles), str(out)]
        result = subprocess.run(command, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL)
        if result.returncode or not out.exists():
            raise build.ToolError(f"the MPI speed run failed: {' '.join(command)}: "
                                  f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
        measured = json.loads(out.read_text())
    return measured["seconds"], {("east", int(y)): [tuple(w) for w in wavelets]
                                 for y, wavelets in measured["east"].items()}


def _mpi_rank(params_json, cycles, out):
    """One rank of :func:`_native_mpi`."""
    from host import cosim_mpi
    from rtl.params import Params

    if cosim_mpi.rank():
        cosim_mpi.serve_ranks()
        return
    params = Params.from_dict(json.loads(params_json))
    try:
        seconds, received = _native(params, streaming_scenario(params, int(cycles)), 2,
                                    transport=cosim_mpi.Ranks())
    finally:
        cosim_mpi.release_ranks()
    Path(out).write_text(json.dumps({"seconds": seconds, "east": {
        y: wavelets for (_, y), wavelets in received.items()}}))


def _threads(backend):
    return (os.cpu_count() or 1) if backend == "native_tiles_threads" else 1


def _route_word(wafer, params, word, offset_x):
    """Re-address a die ``config`` word (logical x, y of the die) to the wafer."""
    from rtl.mesh import mesh_config_layout
    from rtl.wavelet import pack, route_write_layout, unpack
    fields = unpack(mesh_config_layout(params), word)
    wafer.route(offset_x + fields["x"], fields["y"],
                pack(route_write_layout(params), fields["write"]))


def run(params, backends=BACKENDS, cycles=None, dies=SMALL_DIES, progress=print):
    """Measure ``backends``; returns ``(the JSON document, outputs)``, where ``outputs``
    maps each back end to the wavelets that left the die's east edge, with their cycles.
    ``cycles`` overrides :data:`DEFAULT_CYCLES` per back end; ``dies`` caps the die of
    some (:data:`SMALL_DIES`; empty: every back end runs the die of ``params``)."""
    cycles = {**DEFAULT_CYCLES, **(cycles or {})}
    rates, runs, outputs = {}, {}, {}
    for backend in backends:
        width, height = dies.get(backend, (params.width, params.height))
        here = params.replace(width=min(width, params.width), height=min(height, params.height))
        scenario = streaming_scenario(here, cycles[backend])
        progress(f"  {backend}: {cycles[backend]} cycles of a {here.width}x{here.height} die ...")
        if backend == "amaranth":
            seconds, received = _amaranth(here, scenario)
        elif backend.startswith("cocotb_"):
            seconds, received = _cocotb(here, scenario, backend.split("_", 1)[1])
        elif backend == "native_parallel":
            seconds, received = _native(here, scenario, 2)
        elif backend == "native_mpi":
            seconds, received = _native_mpi(here, cycles[backend])
        else:
            seconds, received = _native(here, scenario, 1, "dies" if backend == "native"
                                        else "tiles", threads=_threads(backend))
        simulated = here.width * here.height * (2 if backend in SPLIT else 1)
        rates[backend] = simulated * cycles[backend] / seconds
        runs[backend] = {"cycles": cycles[backend], "die": f"{here.width}x{here.height}",
                         "tiles": simulated, "threads": _threads(backend), "seconds": seconds}
        outputs[backend] = {link: wavelets for link, wavelets in received.items()
                            if link[0] == "east"}
        progress(f"  {backend}: {rates[backend]:,.0f} tile-cycles/s")
    result = {
        "die": f"{params.width}x{params.height}",
        "tile_cycles_per_second": rates,
        "runs": runs,
        "params": params.to_dict(),
    }
    for name, (faster, slower) in RATIOS.items():
        if faster in rates and slower in rates:
            result[name] = rates[faster] / rates[slower]
    if any(backend in rates for backend in SPLIT):
        result["parallel_latency_cycles"] = PARALLEL_LATENCY
    return result, outputs


if __name__ == "__main__":
    _mpi_rank(*sys.argv[1:])
