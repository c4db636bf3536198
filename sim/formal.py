"""Formal proofs with SymbiYosys: each design, elaborated for the ``formal`` platform with
its properties, is proven by k-induction (sby's ``prove`` mode) and its covers are
reached (``cover`` mode), with yosys-smtbmc and Yices.

``python -m sim.formal [NAME...]`` (``make formal``) runs the proofs and prints each
task's result and time.  A run's files (the sby script, logs, counterexample traces)
are left in ``build/formal/<name>/``.
"""

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth.back import rtlil

from rtl.core.ramp import RampInput, RampOutput
from rtl.params import PRESETS
from rtl.router import Router

from .build import BUILD, ToolError, locked, sby

__all__ = ["FORMAL_PARAMS", "PROOFS", "Proof", "BMC_DEPTH", "run", "failed_properties", "main"]

#: Small enough to prove in seconds: two colors (a static and an XY one), queues of two.
FORMAL_PARAMS = PRESETS["test"].replace(colors=2, xy_colors=1, queue_depth=2)


@dataclass(frozen=True)
class Proof:
    """A design with properties, the depth of its induction and of its cover search."""
    design: Callable
    depth: int
    cover_depth: int


PROOFS = {
    "router": Proof(Router, depth=2, cover_depth=10),
    "ramp_in": Proof(RampInput, depth=2, cover_depth=6),
    "ramp_out": Proof(RampOutput, depth=2, cover_depth=6),
}

#: A mutant must fail within ``BMC_DEPTH`` cycles of reset (``bmc``): a counterexample, where
#: a failed induction step alone might be an unreachable state.
BMC_DEPTH = 8
#: ``memory_map``: the router reads a queue at an address that another read of the same
#: memory computes; as one memory cell that is a loop to the SMT back end, as registers
#: it is not (the formal queues hold four words each).
_SCRIPT = """\
[tasks]
prove
cover
bmc

[options]
prove: mode prove
prove: depth {depth}
cover: mode cover
cover: depth {cover_depth}
bmc: mode bmc
bmc: depth {bmc_depth}

[engines]
smtbmc yices

[script]
read_rtlil design.il
prep -top top
memory_map
opt -fast

[files]
design.il
"""


def run(name, design=None, tasks=("prove", "cover"), directory=None):
    """Run the proof ``name`` on ``design`` (by default the proof's own) in ``directory``
    (by default ``build/formal/<name>``) and return ``{task: status}``, a status being
    sby's ``PASS``, ``FAIL``, ``UNKNOWN`` or ``ERROR``."""
    proof = PROOFS[name]
    design = design or proof.design(FORMAL_PARAMS)
    directory = directory or BUILD / "formal" / name
    with locked(directory):    # the last run's files stay for reading, one run at a time
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / "design.il").write_text(rtlil.convert(design, name="top", platform="formal"))
        (directory / "proof.sby").write_text(_SCRIPT.format(depth=proof.depth,
                                                            cover_depth=proof.cover_depth,
                                                            bmc_depth=BMC_DEPTH))
        subprocess.run([*sby(), "-f", "proof.sby", *tasks], cwd=directory, capture_output=True)
        statuses = {}
        for task in tasks:
            status = directory / f"proof_{task}" / "status"
            statuses[task] = status.read_text().split()[0] if status.exists() else "ERROR"
        return statuses


_FAILED = re.compile(r"Assert failed in \S+: (\S+?):(\d+)")


def failed_properties(directory, task):
    """The source lines of the assertions that ``task``'s run in ``directory`` found false."""
    log = (Path(directory) / f"proof_{task}" / "logfile.txt").read_text()
    return sorted({Path(path).read_text().splitlines()[int(line) - 1].strip()
                   for path, line in _FAILED.findall(log)})


def main(argv=None):
    names = (sys.argv[1:] if argv is None else argv) or list(PROOFS)
    unknown = [name for name in names if name not in PROOFS]
    if unknown:
        print(f"error: unknown proof {unknown[0]!r} (known: {', '.join(PROOFS)})", file=sys.stderr)
        return 2
    failed = False
    for name in names:
        started = time.monotonic()
        try:
            statuses = run(name)
        except ToolError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        seconds = time.monotonic() - started
        results = ", ".join(f"{task} {status}" for task, status in statuses.items())
        print(f"{name}: {results} ({seconds:.0f} s; logs in {BUILD / 'formal' / name})")
        failed |= any(status != "PASS" for status in statuses.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
