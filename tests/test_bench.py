"""`accelgen bench gemm --quick` runs end to end and reports what it measured."""

import json

import pytest

from gen import cli


@pytest.mark.sim
@pytest.mark.slow
def test_bench_gemm_quick(tmp_path, capsys):
    out = tmp_path / "gemm.json"
    assert cli.main(["bench", "gemm", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["mode"] for r in result["results"]] == ["int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2"]
    for r in result["results"]:
        assert r["cycles"] > r["ideal_cycles"] > 0
        assert r["utilization"] == pytest.approx(r["ideal_cycles"] / r["cycles"])
    assert "utilization" not in capsys.readouterr().err
