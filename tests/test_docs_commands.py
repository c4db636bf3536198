"""Every `tessera` command that the README and `docs/` quote still parses, and every `make`
target they name exists: the documents cannot drift from the command line unnoticed.

A command is quoted in a code block (a line that starts with it, after an optional
``$ `` prompt, ``.venv/bin/`` or ``mpiexec -n N``) or inline in backticks.  The
documents' placeholders are read as a user would fill them in: ``...`` stands for
options left out, ``N`` for a number, and ``a|b`` (``a\\|b`` in a table) for a choice,
of which the first is taken.
"""

import re
import shlex
from pathlib import Path

import pytest

from host.cli import UsageError, _parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: What may come before ``tessera`` on a line of a code block.
LEADER = r"^\s*(?:\$\s+)?(?:mpiexec\s+-n\s+\S+\s+)?(?:\S*/)?"
#: A code block's line is a command up to a gap of two spaces (a table's description).
BLOCK_COMMAND = re.compile(LEADER + r"(tessera\s.*?)(?:\s{2,}|$)")
INLINE_COMMAND = re.compile(r"`(tessera\s[^`]*)`")
BLOCK_MAKE = re.compile(r"^\s*(?:\$\s+)?(?:\S+=\S+\s+)*make\s+([\w-]+)")
INLINE_MAKE = re.compile(r"`(?:\S+=\S+\s+)*make\s+([\w-]+)[^`]*`")
#: The placeholders that stand for a number.
NUMBERS = {"N", "U", "L"}
MAKE_TARGET = re.compile(r"^([\w-]+):", re.MULTILINE)


def quoted(document):
    """``([(line, command)], [(line, make target)])`` of ``document``."""
    commands, targets, in_block, continued = [], [], False, ""
    for number, line in enumerate(document.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            if line.endswith("\\"):            # a shell line continued on the next
                continued += line[:-1].strip() + " "
                continue
            line, continued = continued + line.strip(), ""
            commands += [(number, m.group(1)) for m in [BLOCK_COMMAND.match(line)] if m]
            targets += [(number, m.group(1)) for m in [BLOCK_MAKE.match(line)] if m]
        else:
            commands += [(number, text) for text in INLINE_COMMAND.findall(line)]
            targets += [(number, target) for target in INLINE_MAKE.findall(line)]
    return commands, targets


def arguments(command):
    """The argv a user would type for ``command``, its placeholders filled in."""
    argv = []
    for word in shlex.split(re.sub(r"[][]", "", command.replace("\\|", "|")))[1:]:
        if word == "...":
            continue
        word = re.sub(r"\{([^,}]*)[^}]*\}", r"\1", word)      # {a,b}: a
        argv.append("2" if word in NUMBERS else word.split("|")[0])
    return argv


def test_the_documents_quote_commands():
    found = [quoted(document) for document in DOCUMENTS]
    assert sum(len(commands) for commands, _ in found) >= 20
    assert sum(len(targets) for _, targets in found) >= 5


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_quoted_command_parses(document):
    commands, targets = quoted(document)
    wrong = []
    for number, command in commands:
        try:
            _parser().parse_args(arguments(command))
        except UsageError as error:
            wrong.append(f"{document.name}:{number}: {command}: {error}")
    known = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))
    wrong += [f"{document.name}:{number}: make {target}: no such target"
              for number, target in targets if target not in known]
    assert not wrong, "\n".join(wrong)


def test_a_command_that_no_longer_parses_is_caught():
    assert arguments("tessera run --cosim mpi ... --workers N --harness tiles\\|dies") == [
        "run", "--cosim", "mpi", "--workers", "2", "--harness", "tiles"]
    with pytest.raises(UsageError, match="--warp"):
        _parser().parse_args(arguments("tessera run --warp 9"))
