"""`accelgen bench vsq`: the SQNR table, the digits MLP through the integer model, the plot."""

import json

import numpy as np
import pytest

from gen import cli
from sim.bench import vsq as B
from sim.golden import quant as Q

pytest.importorskip("sklearn", reason="accelgen bench vsq needs scikit-learn (extra: bench)")

# An independent model of the same set-up gives these (dB); reproduce within 0.3 dB.
REFERENCE_SQNR = {"per-channel": (16.0, 11.9), "per-vector V=16": (21.4, 19.9),
              "two-level V=16 M=4": (21.2, 19.6)}


def _fake_quant_layer(h, w, a_bits, w_bits, scheme, m, calibration, clip):
    """One quantized GEMM in float (fake quantization), for checking the integer path."""
    if scheme == "channel":
        s = clip / Q.qmax(a_bits)
        ha = Q.dequantize(Q.quantize(h, s, a_bits), s)
        wq = Q.fake_quantize(w, w_bits, "channel", channel_axis=1, calibration=calibration)
    else:
        ha = Q.fake_quantize(h, a_bits, "two_level", vector_axis=1, channel_axis=0,
                             vector_size=16, scale_bits=m, calibration=calibration)
        wq = Q.fake_quantize(w, w_bits, "two_level", vector_axis=0, channel_axis=1,
                             vector_size=16, scale_bits=m, calibration=calibration)
    return ha @ wq


def _fake_quant_forward(model, x, a_bits, w_bits, scheme, m, calibration):
    """The same quantized MLP in float."""
    clips = B.static_activation_clips(model, a_bits, calibration)
    h = x
    last = len(model["weights"]) - 1
    for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        h = _fake_quant_layer(h, w, a_bits, w_bits, scheme, m, calibration, clips[i]) + b
        if i < last:
            h = np.maximum(h, 0)
    return h


@pytest.fixture(scope="module")
def small_model():
    """A briefly trained model: enough to check the arithmetic, not the accuracy."""
    model = B.train_digits_mlp(max_iter=15)
    model["x_test"] = model["x_test"][:60]
    model["y_test"] = model["y_test"][:60]
    return model


@pytest.mark.parametrize("name, wb, ab, scheme, m", B.mlp_configs())
@pytest.mark.parametrize("calibration", ["max", "octav"])
def test_integer_path_matches_fake_quantization(small_model, name, wb, ab, scheme, m,
                                                calibration):
    x = small_model["x_test"]
    clips = B.static_activation_clips(small_model, ab, calibration)
    h = x
    for i, (w, b) in enumerate(zip(small_model["weights"], small_model["biases"], strict=True)):
        # one layer, same input: only the 16-bit fixed-point multiplier and FP32 output differ
        got = B._quantized_layer(h, w, ab, wb, scheme, m, calibration, clips[i])
        want = _fake_quant_layer(h, w, ab, wb, scheme, m, calibration, clips[i])
        assert Q.sqnr_db(want, got) > 85, (name, i)
        h = np.maximum(h @ w + b, 0)
    # the whole model: a code may flip where a hidden value sits on a rounding boundary
    got = B.mlp_forward_quantized(small_model, x, ab, wb, scheme, m, calibration)
    want = _fake_quant_forward(small_model, x, ab, wb, scheme, m, calibration)
    assert Q.sqnr_db(want, got) > 35, name


def test_sqnr_table_small():
    rows = B.sqnr_table(seeds=(0,), channels=4, length=256)
    assert [r["scheme"] for r in rows][:3] == ["per-tensor", "per-channel", "per-vector V=16"]
    by = {r["scheme"]: r for r in rows}
    for d in B.DISTRIBUTIONS:
        assert by["per-tensor"][d] <= by["per-channel"][d] < by["per-vector V=16"][d]
        assert by["two-level V=16 M=4"][d] <= by["two-level V=16 M=8"][d] + 0.05


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = B.sqnr_table(seeds=(0,), channels=2, length=64)
    path = tmp_path / "p.png"
    assert B.plot_sqnr(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_vsq_quick(tmp_path, monkeypatch, capsys):
    """The whole quick bench through the CLI (about 10 s of CPU: the MLP's training)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "vsq.json"
    assert cli.main(["bench", "vsq", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    table = capsys.readouterr().out
    by = {r["scheme"]: r for r in result["sqnr"]}
    for scheme, (gauss, laplace) in REFERENCE_SQNR.items():
        assert by[scheme]["gaussian"] == pytest.approx(gauss, abs=0.3)
        assert by[scheme]["laplace"] == pytest.approx(laplace, abs=0.3)
        assert scheme in table
    if result["plot"]:
        assert (tmp_path / result["plot"]).read_bytes()[:4] == b"\x89PNG"
    mlp = {(r["config"], r["calibration"]): r for r in result["mlp"]["results"]}
    assert result["mlp"]["test_images"] == 450
    float_acc = mlp["float", None]["accuracy"]
    assert float_acc > 95
    # the goal, as measured: W4A4 VSQ within 1 point of float
    for m in (4, 6):
        assert mlp[f"W4A4 VSQ V=16 M={m}", "max"]["accuracy"] >= float_acc - 1
    # VSQ's smaller error shows in the logits even where accuracy saturates
    assert (mlp["W4A4 VSQ V=16 M=4", "max"]["logit_sqnr_db"]
            > mlp["W4A4 per-channel", "max"]["logit_sqnr_db"] + 2)
