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
    Reason("bank-row-wrap", "A vector's first element in a high bank with later elements "
           "past the last row: the banks' row index wraps to row 0 only for a vector that "
           "ends in the last row's high banks, which no program of the regression places "
           "there (the random programs keep vectors below data_bytes - 512).",
           source=r"rtl/core/banks\.py:45"),
    Reason("counter-carry", "The counters add in a low part and carry into the high part "
           "(rtl/core/__init__.py, so the adder is short); the zero-skip, fault and loaded "
           "counters never pass their low part's range (16 or 8) within one program.",
           source=r"rtl/core/__init__\.py:267"),
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
