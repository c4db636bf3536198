"""`tessera bench gemv`: the issue's targets, measured on the tile RTL."""

import json

import pytest

from host.cli import main


@pytest.mark.parametrize("dtype, lanes", [("int8", 16), ("fp16", 8)])
def test_gemv_bench_meets_its_targets(tmp_path, dtype, lanes):
    out = tmp_path / "gemv.json"
    assert main(["bench", "gemv", "--dtype", dtype, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["size"] == 64 and result["lanes"] == lanes and result["dtype"] == dtype
    assert result["bit_exact"] is True
    assert result["rtl_cycles_equal_iss"] is True
    assert result["sram_read_utilization"] >= 0.9
    assert result["zero_skip_speedup_at_50pct"] >= 1.8
    # 64 columns of 64 weights, a beat per `lanes` of them: at least that many beats of MAC.
    assert 64 * 64 // lanes <= result["mac_cycles"] < result["cycles"]


def test_gemv_bench_refuses_a_size_that_does_not_fit(tmp_path, capsys):
    out = tmp_path / "gemv.json"
    assert main(["bench", "gemv", "--preset", "test", "--size", "100", "--json", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "GEMV needs" in error[0]
    assert not out.exists()
