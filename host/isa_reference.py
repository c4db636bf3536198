"""The ISA reference, ``docs/isa.md``, generated from :mod:`rtl.isa` so that it cannot drift.

Every table comes from the definitions themselves: the fields from
:data:`rtl.isa.INSTRUCTION`, each opcode's format from :data:`rtl.isa.OPS`, and each
name's meaning from the comment beside it in ``rtl/isa.py`` (read with
:mod:`tokenize`, the source's own words).  ``python -m host.isa_reference`` rewrites
the file; ``tests/test_isa_reference.py`` fails when it is stale.
"""

import enum
import inspect
import io
import re
import sys
import tokenize
from pathlib import Path

from rtl import isa

__all__ = ["DOCUMENT", "comments", "reference", "main"]

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "isa.md"


def comments(cls):
    """``{member: (section, meaning)}`` of the enum ``cls``: the comment after each member
    (with the comment lines that continue it), and the comment line above its group."""
    found, section, last, column = {}, "", None, 0
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline)
    line_start = True
    for token in tokens:
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            line_start = True
            continue
        if token.type in (tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if not line_start:                      # beside a member
                found[last] = (section, text)
            elif last and token.start[1] > column:  # a member's comment, continued
                found[last] = (found[last][0], f"{found[last][1]} {text}")
            else:                                   # a group's heading
                section, last = text, None
        elif line_start and token.type == tokenize.NAME and token.string in cls.__members__:
            last, column = token.string, token.start[1]
            found.setdefault(last, (section, ""))
        line_start = False
    return found


def _fields():
    offsets = isa.INSTRUCTION
    rows = []
    for name, field in sorted(offsets, key=lambda item: -item[1].offset):
        top = field.offset + field.width - 1
        rows.append(f"| `{name}` | {top}..{field.offset} | {field.width} |")
    return rows


def _cell(text):
    """``text`` in a table's cell, where ``|`` would end it."""
    return text.replace("|", "\\|")


def _members(cls, value):
    meanings = comments(cls)
    return [f"| `{member.name}` | {value(member)} | {_cell(meanings.get(member.name, ('', ''))[1])} |"
            for member in cls]


def _flag_value(member):
    return f"`{int(member):#x}`"


def reference():
    """The text of ``docs/isa.md``."""
    formats = comments(isa.Format)
    ops = comments(isa.Op)
    lines = [
        "# The ISA reference",
        "",
        "Generated from `rtl/isa.py` by `make docs`; do not edit it by hand:",
        "`tests/test_isa_reference.py` fails when it differs from what the source gives.  The",
        "descriptors and the semantics: `rtl/isa.py`'s docstring and [core.md](core.md); the",
        "timing: `sim/iss.py`, the specification.",
        "",
        f"Machine state: {isa.REGISTERS} scalar registers of 32 bits (`r0` reads as 0), "
        f"{isa.DESCRIPTORS} descriptor registers, {isa.TASKS} tasks, {isa.SLOTS} vector "
        "microthread slots.",
        "",
        "## The instruction word",
        "",
        "| field | bits | width |",
        "|---|---|---:|",
        *_fields(),
        "",
        "## Formats",
        "",
        "How the assembler writes the operands, and the fields they fill (the immediate "
        "signed where marked).",
        "",
        "| format | written as | fields |",
        "|---|---|---|",
    ]
    for member in isa.Format:
        written, fields = re.split(r"\s{2,}", formats[member.name][1], maxsplit=1)
        lines.append(f"| `{member.value}` | `{_cell(written)}` | {_cell(fields)} |")
    lines += ["", "## Instructions", "",
              "| opcode | mnemonic | format | signed imm | meaning |", "|---:|---|---|---|---|"]
    section = None
    for op in isa.Op:
        group, meaning = ops[op.name]
        if group != section:
            section = group
            lines.append(f"| | **{group}** | | | |")
        info = isa.OPS[op]
        lines.append(f"| {int(op)} | `{op.name}` | `{info.format.value}` | "
                     f"{'yes' if info.signed_imm else ''} | {_cell(meaning)} |")
    for title, cls, value in [("Vector flags (the `imm` of a vector instruction)", isa.VFlag,
                               _flag_value),
                              ("Descriptor kinds", isa.Kind, int),
                              ("Element types", isa.Dtype, int),
                              ("Counters (`CSRR`)", isa.Counter, int),
                              ("Faults", isa.Fault, int)]:
        lines += ["", f"## {title}", "", "| name | value | meaning |", "|---|---:|---|",
                  *_members(cls, value)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print(f"error: python -m host.isa_reference takes no arguments, not {argv[0]!r}",
              file=sys.stderr)
        return 2
    DOCUMENT.write_text(reference())
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
