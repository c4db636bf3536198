"""Formal proofs with SymbiYosys: each design, elaborated for the ``formal`` platform with
its properties, is proven by k-induction (sby's ``prove`` mode) and its covers are
reached (``cover`` mode), with yosys-smtbmc and Yices.

``python -m sim.formal [NAME...]`` (``make formal``) runs the proofs and prints each
task's result and time.  A run's files (the sby script, logs, counterexample traces)
are left in ``build/formal/<name>/``.
"""

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

from amaranth.back import rtlil

from rtl.core.ramp import RampInput, RampOutput
from rtl.params import PRESETS
from rtl.router import Router

from .build import BUILD, ToolError, _locked, sby

__all__ = ["FORMAL_PARAMS", "PROOFS", "Proof", "run", "main"]

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

#: ``memory_map``: the router reads a queue at an address that another read of the same
#: memory computes; as one memory cell that is a loop to the SMT back end, as registers
#: it is not (the formal queues hold four words each).
_SCRIPT = """\
[tasks]
prove
cover

[options]
prove: mode prove
prove: depth {depth}
cover: mode cover
cover: depth {cover_depth}

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


def run(name, design=None, tasks=("prove", "cover")):
    """Run the proof ``name`` (of ``design``, by default the proof's own) and return
    ``{task: status}``, a status being sby's ``PASS``, ``FAIL``, ``UNKNOWN`` or ``ERROR``."""
    proof = PROOFS[name.split("-")[0]]
    design = design or proof.design(FORMAL_PARAMS)
    directory = BUILD / "formal" / name
    with _locked(directory):    # the last run's files stay for reading, one run at a time
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / "design.il").write_text(rtlil.convert(design, name="top", platform="formal"))
        (directory / "proof.sby").write_text(_SCRIPT.format(depth=proof.depth,
                                                            cover_depth=proof.cover_depth))
        subprocess.run([*sby(), "-f", "proof.sby", *tasks], cwd=directory, capture_output=True)
        statuses = {}
        for task in tasks:
            status = directory / f"proof_{task}" / "status"
            statuses[task] = status.read_text().split()[0] if status.exists() else "ERROR"
        return statuses


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
