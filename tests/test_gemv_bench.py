"""`tessera bench gemv`: the issue's targets, measured on the tile RTL."""

import json

from host.cli import main


def test_gemv_bench_meets_its_targets(tmp_path):
    out = tmp_path / "gemv.json"
    assert main(["bench", "gemv", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["size"] == 64 and result["lanes"] == 16
    assert result["bit_exact"] is True
    assert result["rtl_cycles_equal_iss"] is True
    assert result["sram_read_utilization"] >= 0.9
    assert result["zero_skip_speedup_at_50pct"] >= 1.8
    # 64 columns of 64 weights, 16 lanes: at least 256 beats of MAC.
    assert 256 <= result["mac_cycles"] < result["cycles"]


def test_gemv_bench_refuses_a_size_that_does_not_fit(tmp_path, capsys):
    out = tmp_path / "gemv.json"
    assert main(["bench", "gemv", "--preset", "test", "--size", "100", "--json", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "GEMV needs" in error[0]
    assert not out.exists()
