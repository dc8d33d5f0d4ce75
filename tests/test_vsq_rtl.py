"""The digits MLP's VSQ GEMMs through the RTL GEMM engine (``sim/tb/gemm_mlp.py``,
``accelgen bench vsq-rtl``): every accumulator equals :func:`sim.golden.vsq.vsq_gemm`, and the
logits computed from the engine's accumulators equal the golden model's."""

import json

import numpy as np
import pytest

from gen import cli
from gen.config import ConfigError, parse_config
from sim.bench import vsq as B
from sim.bench import vsq_rtl as R
from sim.golden import vsq as golden_vsq
from tests.conftest import build_block

pytest.importorskip("sklearn", reason="the digits MLP needs scikit-learn (extra: bench)")

SECTIONS = R.engine_sections()


@pytest.fixture(scope="module")
def model():
    return B.train_digits_mlp(seed=0)


def test_engine_has_the_narrowest_accumulator():
    g = SECTIONS["gemm"]
    assert g["max_k"] >= 128 and g["max_n"] >= 128
    bound = max(golden_vsq.acc_bound(mode, 16, g["vsq_scale_bits"], g["max_k"])
                for mode in g["modes"])
    assert bound < 2 ** (g["acc_width"] - 1)
    with pytest.raises(ConfigError):
        parse_config({"gemm": dict(g, acc_width=g["acc_width"] - 1)})


def test_layer_pieces_are_the_golden_layer(model):
    """vsq_layer_operands + vsq_gemm + layer_output is _quantized_layer (what the bench sends to the
    engine is what the golden model computes)."""
    x = model["x_test"][:20]
    w = model["weights"][0]
    for s in R.SETTINGS:
        ops = B.vsq_layer_operands(x, w, s["a_bits"], s["w_bits"], s["m"], s["calibration"])
        acc = golden_vsq.vsq_gemm(ops["a"], ops["w"], ops["s_qa"], ops["s_qw"], mode=ops["mode"],
                                  vector_size=16, scale_bits=s["m"])
        want = B._quantized_layer(x, w, s["a_bits"], s["w_bits"], "vsq", s["m"],
                                  s["calibration"], None)
        assert np.array_equal(B.layer_output(acc, ops["gamma"]), want)


def _check(model, images, seed, gap=0.0, stall=0.0):
    sim_build = build_block(SECTIONS, "gemm")
    results = R.run_mlp(sim_build, model, images, seed=seed, gap=gap, stall=stall)
    g = SECTIONS["gemm"]
    rows = R.compare(model, images, results, g["rows"], g["cols"])
    for r in rows:
        assert r["mismatches"] == 0, r
        assert r["accumulators"] == images * (128 + 10)
        assert r["logits_equal"] and r["predictions_equal"], r
        assert r["rtl_accuracy"] == r["golden_accuracy"]
        assert all(gm["cycles"] >= gm["ideal_cycles"] for gm in r["gemms"])
    return rows


@pytest.mark.sim
def test_mlp_through_rtl_ten_images_with_gaps_and_stalls(model, seed):
    _check(model, 10, seed, 0.3, 0.4)


@pytest.mark.sim
def test_bench_vsq_rtl_quick(tmp_path, capsys):
    """`accelgen bench vsq-rtl --quick`: 10 images, no gaps; 0 mismatches, the golden logits."""
    out = tmp_path / "vsq_rtl.json"
    assert cli.main(["bench", "vsq-rtl", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 10
    assert [r["config"] for r in result["results"]] == [s["name"] for s in R.SETTINGS]
    for r in result["results"]:
        assert r["mismatches"] == 0 and r["accumulators"] == 10 * (128 + 10)
        assert r["logits_equal"] and r["predictions_equal"]
        assert r["rtl_accuracy"] == r["golden_accuracy"]
        assert r["cycles"] > r["ideal_cycles"] > 0
    table = capsys.readouterr().out
    assert "mismatches" in table and "W4A8 VSQ V=16 M=4" in table


@pytest.mark.sim
@pytest.mark.slow
def test_mlp_through_rtl_150_images(model, seed):
    """150 images: two batches of max_m = 128 rows and a partial one."""
    rows = _check(model, 150, seed)
    assert [gm["m"] for gm in rows[0]["gemms"]] == [128, 128, 22, 22]
