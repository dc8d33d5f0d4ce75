"""``accelgen bench vsq-rtl``: the digits MLP's quantized GEMMs through the RTL GEMM engine with
per-vector scaling, on the hardware.

The model is :func:`sim.bench.vsq.train_digits_mlp` with training seed 0 (64-128-10, ReLU). The
settings are W4A4 and W4A8 VS-Quant with V = 16, M = 4 and max calibration, exactly as
:func:`sim.bench.vsq.mlp_forward_quantized` with scheme ``vsq``. The first N test images (all 450,
in batches of ``max_m`` = 128 rows; ``--quick``: 10) go through both layers on a 4 x 4 engine
built with INT4 and W4A8, V = 16, M = 4, ``max_k`` = ``max_n`` = 128 and the narrowest
accumulator the VSQ rule allows (``sim/tb/gemm_mlp.py``): the integer GEMMs on the engine, with
accumulator output; the float steps between layers (fixed-point per-channel rescale to FP32, bias,
ReLU, the next layer's quantization) in numpy, from the engine's accumulators.

Reported per setting: accumulator mismatches against :func:`sim.golden.vsq.vsq_gemm` (must be 0),
whether the RTL logits and predictions equal the golden model's, the accuracy of both next to the
float model's on the same images, and the engine's cycles per layer (command handshake to last
result beat, each GEMM alone) against the ideal ``M * N * K / (R * C * MACs per PE per cycle)``.

A separate bench name rather than ``accelgen bench vsq --rtl``: every bench keeps the common
``run(quick, sim)`` interface, and ``vsq`` stays a golden-model-only bench that needs no simulator.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gen.config import parse_config
from sim import runner
from sim.bench import vsq as B
from sim.golden import gemm as golden
from sim.golden import vsq as golden_vsq

__all__ = ["run", "format_table", "engine_sections", "SETTINGS", "run_mlp"]

SCALE_BITS = 4
SETTINGS = [
    {"name": "W4A4 VSQ V=16 M=4", "a_bits": 4, "w_bits": 4, "m": SCALE_BITS, "calibration": "max"},
    {"name": "W4A8 VSQ V=16 M=4", "a_bits": 8, "w_bits": 4, "m": SCALE_BITS, "calibration": "max"},
]
MODES = ["int4", "w4a8"]


def engine_sections(rows=4, cols=4, max_m=128, max_k=128, max_n=128):
    """The engine's configuration: VSQ with V = 16 only, M = 4, no post-processing unit, and the
    narrowest accumulator :func:`sim.golden.vsq.acc_width` allows."""
    acc = max(golden_vsq.acc_width(mode, B.VECTOR_SIZE, SCALE_BITS, max_k) for mode in MODES)
    return {"gemm": {"top": f"gemm_mlp_{rows}x{cols}", "rows": rows, "cols": cols,
                     "modes": list(MODES), "max_m": max_m, "max_n": max_n, "max_k": max_k,
                     "acc_width": acc, "out_fifo_depth": 8,
                     "vsq_vector_sizes": [B.VECTOR_SIZE], "vsq_scale_bits": SCALE_BITS}}


def run_mlp(sim_build, model, images, settings=SETTINGS, seed=1, gap=0.0, stall=0.0):
    """Run ``sim/tb/gemm_mlp.py`` on the first ``images`` test images; its results (a list per
    setting: ``name``, ``logits``, ``gemms``). ``gap``, ``stall``: random idle input cycles and
    output backpressure (for tests; the cycle counts are then not the engine's)."""
    x = model["x_test"][:images]
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {"x": x}
        for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        model_path = Path(tmp) / "model.npz"
        np.savez(model_path, **arrays)
        settings_path = Path(tmp) / "settings.json"
        settings_path.write_text(json.dumps(settings))
        results_path = Path(tmp) / "results.json"
        runner.run(sim_build, "sim.tb.gemm_mlp", testcase="mlp", seed=seed,
                   extra_env={"ACCELGEN_MLP_MODEL": str(model_path),
                              "ACCELGEN_MLP_SETTINGS": str(settings_path),
                              "ACCELGEN_RESULTS": str(results_path),
                              "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)})
        return json.loads(results_path.read_text())


def _accuracy(logits, y):
    return round(100 * float(np.mean(np.asarray(logits).argmax(1) == y)), 2)


def compare(model, images, results, rows, cols, settings=SETTINGS):
    """One row per setting: mismatches, equality with the golden model, accuracies, cycles."""
    x, y = model["x_test"][:images], model["y_test"][:images]
    out = []
    for setting, res in zip(settings, results, strict=True):
        assert res["name"] == setting["name"]
        gold = B.mlp_forward_quantized(model, x, setting["a_bits"], setting["w_bits"], "vsq",
                                       setting["m"], setting["calibration"])
        rtl = np.asarray(res["logits"])
        layers = []
        for g in res["gemms"]:
            ideal = golden.ideal_cycles(g["m"], g["n"], g["k"], g["mode"], rows, cols)
            layers.append({"layer": g["layer"], "first_image": g["first_image"], "mode": g["mode"],
                           "m": g["m"], "n": g["n"], "k": g["k"], "cycles": g["cycles"],
                           "ideal_cycles": ideal, "mismatches": g["mismatches"]})
        out.append({
            "config": setting["name"], "calibration": setting["calibration"],
            "accumulators": int(sum(g["m"] * g["n"] for g in res["gemms"])),
            "mismatches": int(sum(g["mismatches"] for g in res["gemms"])),
            "logits_equal": bool(np.array_equal(rtl, gold)),
            "predictions_equal": bool(np.array_equal(rtl.argmax(1), gold.argmax(1))),
            "rtl_accuracy": _accuracy(rtl, y), "golden_accuracy": _accuracy(gold, y),
            "cycles": int(sum(g["cycles"] for g in res["gemms"])),
            "ideal_cycles": float(sum(g["ideal_cycles"] for g in layers)),
            "gemms": layers,
        })
    return out


def run(quick=False, sim=None, images=None, rows=4, cols=4):
    """Train the model (seed 0), build the engine, run both settings on the first ``images`` test
    images (default: all 450; ``quick``: 10); a JSON-able dict."""
    t0 = time.perf_counter()
    model = B.train_digits_mlp(seed=0)
    train_s = time.perf_counter() - t0
    images = images or (10 if quick else len(model["y_test"]))
    sections = engine_sections(rows, cols)
    t0 = time.perf_counter()
    sim_build = runner.emit_and_build(parse_config(sections), sim=sim)["gemm"]
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = run_mlp(sim_build, model, images)
    sim_s = time.perf_counter() - t0
    x, y = model["x_test"][:images], model["y_test"][:images]
    g = sections["gemm"]
    return {"block": "vsq-rtl", "quick": quick, "simulator": sim_build.sim,
            "model": "64-128-10 MLP, digits, training seed 0", "images": images,
            "engine": {k: g[k] for k in ("rows", "cols", "modes", "max_m", "max_n", "max_k",
                                         "acc_width", "vsq_vector_sizes", "vsq_scale_bits")},
            "float_accuracy": _accuracy(B.mlp_forward_float(model, x), y),
            "results": compare(model, images, results, rows, cols),
            "train_s": round(train_s, 1), "build_s": round(build_s, 1), "sim_s": round(sim_s, 1)}


def format_table(result):
    e = result["engine"]
    lines = [f"{result['model']}: first {result['images']} test images through the GEMM engine "
             f"{e['rows']}x{e['cols']} on {result['simulator']} "
             f"(V = 16, M = {e['vsq_scale_bits']}, acc_width {e['acc_width']}); "
             f"float accuracy {result['float_accuracy']:.2f} %",
             f"train {result['train_s']} s, build {result['build_s']} s, simulation "
             f"{result['sim_s']} s",
             f"{'config':18} {'accumulators':>12} {'mismatches':>10} {'logits =':>8} "
             f"{'RTL acc %':>9} {'golden %':>8} {'cycles':>8} {'ideal':>8}"]
    for r in result["results"]:
        lines.append(f"{r['config']:18} {r['accumulators']:>12} {r['mismatches']:>10} "
                     f"{'yes' if r['logits_equal'] else 'NO':>8} {r['rtl_accuracy']:>9.2f} "
                     f"{r['golden_accuracy']:>8.2f} {r['cycles']:>8} {r['ideal_cycles']:>8.0f}")
    lines.append("per layer, summed over batches of max_m images (mode N x K: cycles / ideal):")
    for r in result["results"]:
        parts = []
        for layer in sorted({g["layer"] for g in r["gemms"]}):
            gs = [g for g in r["gemms"] if g["layer"] == layer]
            ideal = sum(g["ideal_cycles"] for g in gs)
            parts.append(f"L{layer} {gs[0]['mode']} {gs[0]['n']}x{gs[0]['k']}: "
                         f"{sum(g['cycles'] for g in gs)} / {ideal:.0f}")
        lines.append(f"  {r['config']}: " + ", ".join(parts))
    return "\n".join(lines)
