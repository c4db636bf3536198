"""Why ``make coverage`` leaves lines of the generated Verilog uncovered.

Every line the regression leaves with a block never run or a branch arm never taken is
either covered by a test or explained here (issue 19).  A :class:`Reason` matches such a
line by regular expressions, each searched and each matching anything when empty: on
the Verilog file's path (the router's presets share a module name), the module, the
line's Amaranth source (as :func:`sim.coverage.sources` finds it) and its Verilog text.
The first reason that matches explains the line.  ``build/coverage/uncovered.txt``
names each line's reason; a line that none explains is marked ``UNEXPLAINED`` and
counted in the summary.
"""

import re
from dataclasses import dataclass

__all__ = ["Reason", "REASONS", "reason_for"]


@dataclass(frozen=True)
class Reason:
    name: str
    why: str
    path: str = ""
    module: str = ""
    source: str = ""
    verilog: str = ""

    def explains(self, path, module, source, verilog):
        return all(re.search(pattern, text) for pattern, text in (
            (self.path, path), (self.module, module), (self.source, source),
            (self.verilog, verilog)))


REASONS = [
    Reason("front-door", "The core's testbench loads its programs through the back door.  "
           "The front door, the loader that writes code and data from the fabric while "
           "the core is disabled, is tested on whole dies: "
           "tests/test_wafer.py::test_the_front_door_loads_what_the_back_door_loads, on "
           "both harnesses, the dies harness running the Verilated die, which has no "
           "coverage build.",
           module=r"\.front_door$"),
    Reason("front-door-writes", "The core's code, SRAM and ramp paths that only the front "
           "door drives (see front-door).",
           module=r"^tessera_core$",
           source=r"rtl/core/(ramp\.py:3[23]|fetch\.py:3[678]|banks\.py:8[123]|loader\.py:64)"),
    Reason("last-bank-row", "Unreachable: the wrap to row 0 of the last bank, whose row is "
           "the window's first row itself (rtl/core/banks.py, _rows); only the banks below "
           "the first one's take the next row, which may be past the end.  The first row is "
           "in range whenever the window is used (the launch checks a vector's range, the "
           "back door's rows are the memory's), so the comparison is never true then.  One "
           "expression makes every bank's row, the last's too; the data and the "
           "accumulator banks' read and write windows each have one.",
           module=r"^tessera_core$", source=r"rtl/core/banks\.py:45",
           verilog=r"\? \(\*[^*]*\*\) \d+'h0+ : \S+ ?\[\d+:\d+\];$"),
    Reason("counter-carry", "The counters add in a low part and carry into the high part "
           "(rtl/core/__init__.py: a short adder).  The fault counter counts at most one "
           "fault a program (a fault halts the core) and the loaded counter counts the "
           "front door's bytes (see front-door), so neither reaches its low part's 8 in "
           "the core's testbench.  The same carry, made by the same line, is taken by the "
           "other counters (the zero skips' by the directed vmacs_fabric's 20).",
           module=r"^tessera_core$", source=r"rtl/core/__init__\.py:267",
           verilog=r"counter_(faults|loaded)_low"),
    Reason("router-idle-pairs", "The router testbench's cases take each static color from "
           "one input, drawn at random (seed 1), step only some colors' switches, and send "
           "XY wavelets from the edges their sources are on, so some (input, color) pairs "
           "never hold a wavelet.  Their arms of the same Amaranth lines stay untaken: the "
           "queue pointers' wraps (router.py:82-86), the offer and its lock (301-322), the "
           "switch step (335), the queue write (342) and, at wse3's 24 colors, the switch "
           "positions of colors that never step (236).  The pairs that carry traffic take "
           "them.",
           module=r"^tessera_router$", source=r"rtl/router\.py:(8[2-6]|236|3[0-4]\d)$"),
    Reason("router-unwritten-entries", "Route-table writes at switch positions no case "
           "configures (wse3, positions past the first of colors that never step); Yosys "
           "gives these case arms no source.",
           module=r"^tessera_router$", source=r"^$",
           verilog=r"^(1'h1:|\\\$\d+\s+= config__payload\[)"),
]


def reason_for(path, module, source, verilog, reasons=REASONS):
    """The first of ``reasons`` that explains an uncovered line, or None."""
    return next((reason for reason in reasons
                 if reason.explains(path, module, source, verilog)), None)
