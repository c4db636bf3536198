"""sim.coverage on small synthetic Verilator coverage files: parsing, merging, the
per-module summary, the uncovered listing with its Amaranth sources, lcov, and the
one-line errors of its command line (``make coverage`` runs it on real ones)."""

from pathlib import Path

import pytest

from sim import coverage
from sim.coverage_reasons import Reason

VERILOG = """\
module top(clk, a, y);
  (* src = "rtl/top.py:10" *)
  input clk;
  (* src = "rtl/top.py:11" *)
  output y;
  (* src = "rtl/top.py:20|rtl/top.py:21" *)
  always @(posedge clk)
    if (a) y <= 1'h1;
    else y <= 1'h0;
  (* src = "/x/.venv/lib/python3.11/site-packages/amaranth/lib/wiring.py:7" *)
  (* src = "/elsewhere/rtl/top.py:30" *)
  reg z;
  always @* begin
    if (\\$auto$verilog_backend.cc:2505:dump_module$1 ) begin end
    z = a;
  end
  wire \\$5 ;
  assign \\$5  = a & (* src = "rtl/top.py:40" *) clk;
  always @(posedge clk)
    if (\\$5 ) begin
    end
endmodule
"""


def point(kind, module, line, count, path, span="", comment="", hier="top"):
    fields = [("t", kind), ("page", f"v_{kind}/{module}"), ("f", str(path)), ("l", str(line))]
    if span:
        fields.append(("S", span))
    fields += [("o", comment), ("h", hier)]
    return "C '" + "".join(f"\x01{key}\x02{value}" for key, value in fields) + f"' {count}"


def dat(*points):
    return "\n".join([coverage.HEADER, *points]) + "\n"


@pytest.fixture
def design(tmp_path):
    path = tmp_path / "top.v"
    path.write_text(VERILOG)
    return path


def run_a(path):
    """One run: the if-arm ran, the else-arm never; a toggled, y rose only.  Yosys's
    time-zero ``if`` (line 14) is never taken."""
    return dat(point("line", "top", 7, 5, path, span="7"),
               point("line", "top", 8, 5, path, span="8"),
               point("line", "top", 9, 0, path, span="9"),
               point("branch", "top", 8, 5, path, span="8", comment="if"),
               point("branch", "top", 8, 0, path, span="9", comment="else"),
               point("branch", "top", 14, 0, path, span="14", comment="if"),
               point("toggle", "top", 1, 3, path, comment="a"),
               point("toggle", "top", 2, 0, path, comment="y"))


def run_b(path):
    """Another run of the same model: the else-arm ran twice."""
    return dat(point("line", "top", 9, 2, path, span="9"),
               point("branch", "top", 8, 2, path, span="9", comment="else"),
               point("line", "sub", 3, 0, path, span="3-4"))


def test_parse_reads_fields_and_counts(design):
    points = coverage.parse(run_a(design))
    assert len(points) == 8
    first = points[0]
    assert (first.kind, first.module, first.get("f"), first.lines, first.count) == \
        ("line", "top", str(design), [7], 5)
    assert coverage.parse(dat(point("line", "m", 1, 0, design, span="3-5,9")))[0].lines \
        == [3, 4, 5, 9]


def test_merge_sums_same_points_and_keeps_others(design):
    merged = coverage.merge([coverage.parse(run_a(design)), coverage.parse(run_b(design))])
    counts = {(p.module, p.kind, p.get("l"), p.get("o")): p.count for p in merged}
    assert counts[("top", "line", "9", "")] == 2          # 0 + 2
    assert counts[("top", "branch", "8", "else")] == 2
    assert counts[("sub", "line", "3", "")] == 0
    assert len(merged) == 9                         # the else arm: one point


def test_summary_per_module(design):
    one = coverage.summarize(coverage.parse(run_a(design)))
    assert one[(str(design), "top")] == {"line": (2, 3), "branch": (1, 3), "toggle": (1, 2)}
    both = coverage.summarize(coverage.merge(
        [coverage.parse(run_a(design)), coverage.parse(run_b(design))]))
    assert both[(str(design), "top")]["line"] == (3, 3)
    assert both[(str(design), "sub")] == {"line": (0, 2), "branch": (0, 0), "toggle": (0, 0)}


def test_one_design_converted_twice_is_merged_as_one(design, tmp_path):
    again = tmp_path / "again.v"          # the same Verilog, converted in another checkout
    again.write_text(VERILOG.replace('"rtl/top.py:', '"/elsewhere/rtl/top.py:'))
    other = tmp_path / "other.v"
    other.write_text(VERILOG.replace("z = a;", "z = ~a;"))
    points = coverage.parse(run_a(design)) + coverage.parse(run_b(again)) \
        + coverage.parse(run_b(other))
    merged = coverage.one_file_per_design(points,
                                          lambda path: Path(path).read_text().splitlines())
    # again.v sorts before top.v, so it names the two; other.v differs in a statement.
    assert {point.get("f") for point in merged} == {str(again), str(other)}
    summary = coverage.summarize(merged)
    assert summary[(str(again), "top")]["line"] == (3, 3)    # run_a's 7, 8 and run_b's 9
    assert summary[(str(other), "top")]["line"] == (1, 1)    # run_b's 9 alone


def test_yosys_time_zero_branch_is_not_counted(design):
    points = coverage.without_yosys_tricks(coverage.parse(run_a(design)),
                                           lambda path: Path(path).read_text().splitlines())
    assert coverage.summarize(points)[(str(design), "top")]["branch"] == (1, 2)
    assert [p.get("l") for p in points if p.kind == "branch"] == ["8", "8"]


def test_a_line_is_hit_only_if_every_block_on_it_ran(design):
    points = coverage.parse(dat(point("line", "top", 8, 4, design, span="8"),
                                point("line", "top", 8, 0, design, span="8-9")))
    assert coverage.line_hits(points)[(str(design), "top")] == {8: 0, 9: 0}


def test_uncovered_listing_names_the_amaranth_source(design):
    listing, _ = coverage.uncovered_listing(coverage.parse(run_a(design)), reasons=[])
    assert "3 lines with a miss" in listing                  # 8 (else), 9 (block), 14 (if)
    [row] = [row for row in listing.splitlines() if row.strip().startswith("8")]
    assert row.split()[1] == "else" and "if (a) y <= 1'h1;" in row
    [row] = [row for row in listing.splitlines() if row.strip().startswith("9")]
    assert row.split()[1] == "block" and "else y <= 1'h0;" in row
    assert row.endswith("<- rtl/top.py:20 rtl/top.py:21")   # the always block's attribute
    lines = VERILOG.splitlines()
    assert coverage.sources(lines, 5) == "rtl/top.py:11"
    assert coverage.sources(lines, 1) == ""
    # No attribute on a combinational block: the source of the signal it assigns, with
    # the paths cut to the RTL's and the installed package's.
    assert coverage.sources(lines, 15) == "rtl/top.py:30 amaranth/lib/wiring.py:7"
    # An if with nothing to go by: the source of the signal it tests (Yosys's own wire,
    # made by an assign).
    assert coverage.sources(lines, 20) == "rtl/top.py:40"


def test_each_uncovered_line_gets_the_first_reason_that_matches_it(design):
    reasons = [Reason("else-arm", "why not", source=r"top\.py:2[01]", verilog=r"^else"),
               Reason("any-top", "why not either", path=r"top\.v$", module=r"^top$"),
               Reason("never", "matches nothing", module=r"^sub$")]
    listing, unexplained = coverage.uncovered_listing(coverage.parse(run_a(design)), reasons)
    rows = {row.split()[0]: row.split()[2] for row in listing.splitlines()
            if row[:6].strip().isdigit()}
    assert rows == {"8": "any-top", "9": "else-arm", "14": "any-top"}
    assert unexplained == 0
    assert listing.splitlines()[:4] == [
        "3 lines with a miss; 0 UNEXPLAINED", "       1 else-arm: why not",
        "       2 any-top: why not either", "       0 never: matches nothing"]
    listing, unexplained = coverage.uncovered_listing(coverage.parse(run_a(design)),
                                                      reasons[:1])
    assert unexplained == 2 and "3 lines with a miss; 2 UNEXPLAINED" in listing


def test_lcov_records_each_line(design):
    info = coverage.lcov(coverage.parse(run_a(design)))
    assert f"SF:{design}" in info
    assert "DA:9,0" in info and "DA:7,5" in info
    assert "LF:3" in info and "LH:2" in info and info.rstrip().endswith("end_of_record")


def test_command_writes_reports(design, tmp_path, capsys, monkeypatch):
    first, second = tmp_path / "a.dat", tmp_path / "b.dat"
    first.write_text(run_a(design))
    second.write_text(run_b(design))
    out = tmp_path / "report"
    # sub's block on 3-4 has no reason: the reports are written, and the status says so.
    assert coverage.main([str(out), str(first), str(second)]) == 1
    assert "100.0%" in (out / "summary.txt").read_text()     # top's lines, merged
    listing = (out / "uncovered.txt").read_text()
    assert "(sub): 2 lines with a miss" in listing
    assert "(top)" not in listing           # run_b took the else; line 14 is Yosys's
    assert (out / "coverage.info").exists()
    printed = capsys.readouterr().out
    assert "2 coverage files merged" in printed and "2 lines with a miss; 2 UNEXPLAINED" in printed
    monkeypatch.setattr(coverage, "REASONS", [Reason("sub", "explained", module="^sub$")])
    assert coverage.main([str(out), str(first), str(second)]) == 0


@pytest.mark.parametrize("text,problem", [
    ("C 'x' 1\n", "not a Verilator coverage file"),
    (coverage.HEADER + "\nC 'oops\n", "line 2: not a coverage point"),
    (coverage.HEADER + "\nC '\x01t' 3\n", "line 2: field 't' has no value"),
    (coverage.HEADER + "\nC '\x01o\x02x' 3\n", "line 2: point without a type or a file"),
])
def test_bad_file_is_a_one_line_error(tmp_path, capsys, text, problem):
    bad = tmp_path / "bad.dat"
    bad.write_text(text)
    out = tmp_path / "report"
    assert coverage.main([str(out), str(bad)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and problem in error and str(bad) in error
    assert not out.exists()                                   # nothing half-written


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert coverage.main([str(tmp_path / "out"), str(tmp_path / "none.dat")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "none.dat: cannot read" in error
