"""``accelgen bench sparsity``: what 2:4 structured sparsity buys and costs.

Four measurements:

1. **Throughput in RTL simulation.** One engine built with ``sparsity = "2:4"`` and the modes
   ``int8``, ``int4``, ``fp8_e4m3``; per mode one dense and one 2:4 GEMM of M = N = K alone (no
   idle input cycles, no backpressure; the ``measure`` test of ``sim/tb/gemm.py``), cycles from
   the command's handshake to the last result beat, every result checked against the golden
   model. Effective MACs per cycle = ``M * N * K / cycles`` (pruned reduction elements counted:
   the dense work the GEMM stands for); utilization = ideal cycles / cycles, the ideal being
   ``M * N * K / (R * C * MACs per PE)`` dense and half of it 2:4
   (:func:`sim.golden.sparsity.ideal_cycles`). Full: 16 x 16, M = N = K = 256 (Verilated at
   ``-O0``, as ``accelgen bench gemm``); ``--quick``: 4 x 4, M = N = K = 32.

2. **Area per PE**, :class:`gen.pe.MixedPE` built dense-only and 2:4-capable with the same modes
   (partial sums of a 16-row array), in the standard-cell flow of :mod:`gen.synth_asic` (Yosys
   ``abc`` to the OSU 0.18 um cells, OpenSTA for the minimum period) as ``accelgen bench qor``
   uses it; where that library or OpenSTA is absent, Yosys's generic cells
   (:func:`gen.synth.synthesize`), and without Yosys the figure is skipped. The PE module holds
   its activation register, so the wider activation lane is counted.

3. **The digits MLP** (:func:`sim.bench.vsq.train_digits_mlp`, 64-128-10, ReLU) pruned 2:4 along
   K with magnitude pruning (:func:`sim.golden.sparsity.prune_mask`), then fine-tuned with the
   mask fixed (:func:`fine_tune`: Adam, cross-entropy with the same L2 penalty as the training,
   the pruned weights held at zero). Test accuracy (450 images) of the float model, the 2:4 float
   model (and before fine-tuning), and W8A8 per-channel and W4A4 VS-Quant (V = 16, M = 4, max
   calibration) of both, through the bit-exact integer models of :mod:`sim.bench.vsq`; the 2:4
   quantized GEMMs are checked to equal :func:`sim.golden.sparsity.sparse_gemm` /
   ``sparse_vsq_gemm`` of the compressed codes. Full: training seeds 0 to 4, means; quick: seed 0.

4. **The MLP on the RTL engine in a 2:4 mode**: the first 100 test images (quick: 10) of the 2:4
   W4A4 VS-Quant model (seed 0) through both layers of a 4 x 4 VSQ engine with 2:4 sparsity
   (``sim/tb/gemm_mlp.py`` with ``sparse``), accumulators compared with the golden model.

5. **The MLP demo on the 2 x 2 system** (:func:`sim.bench.demo.demo_mlp`, the demo's 4 x 4 tiles
   with ``sparsity = "2:4"``, no softmax unit) with the same 2:4 W4A4 VS-Quant model, once as
   dense commands and once as 2:4 commands (compressed weights): cycles per image (first
   activation packet to last logit word over the images, the one-time weight load apart), both
   bit-exact with :mod:`sim.golden.system`. 128 test images; quick: 16.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gen.config import parse_config
from sim import runner
from sim.bench import vsq as B
from sim.bench import vsq_rtl
from sim.golden import gemm as golden
from sim.golden import sparsity as S
from sim.golden import vsq as golden_vsq

__all__ = ["run", "format_table", "bench_config", "fine_tune", "prune_model", "evaluate",
           "system_demo",
           "pe_areas", "throughput", "rtl_mlp"]

MODES = ("int8", "int4", "fp8_e4m3")
FULL_MAKE_VARS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")
PE_MODE_SETS = (("int8",), ("int4",), ("int8", "int4", "fp8_e4m3"),
                ("int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2"))


def bench_config(quick):
    """``(size, sections)`` of the throughput engine."""
    rows = cols = 4 if quick else 16
    size = 32 if quick else 256
    return size, {"gemm": {"top": f"bench_sparse_{rows}x{cols}", "rows": rows, "cols": cols,
                           "modes": list(MODES), "max_m": size, "max_n": size, "max_k": size,
                           "acc_width": 32, "out_fifo_depth": 64, "sparsity": "2:4"}}


# -- 1. throughput ---------------------------------------------------------------------------------

def throughput(quick=False, sim=None):
    size, sections = bench_config(quick)
    g = parse_config(sections).gemm
    t0 = time.perf_counter()
    sim_build = runner.emit_and_build(parse_config(sections), sim=sim,
                                      make_vars=() if quick else FULL_MAKE_VARS)["gemm"]
    build_s = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            for sparse in (False, True):
                case = {"mode": mode, "m": size, "n": size, "k": size, "kind": "uniform"}
                if sparse:
                    case["sparse"] = "pruned"
                cases_path, results_path = Path(tmp) / "cases.json", Path(tmp) / "results.json"
                cases_path.write_text(json.dumps([case]))
                t0 = time.perf_counter()
                runner.run(sim_build, "sim.tb.gemm", testcase="measure", seed=1,
                           extra_env={"ACCELGEN_GEMM_CASES": str(cases_path),
                                      "ACCELGEN_RESULTS": str(results_path)})
                wall = time.perf_counter() - t0
                (result,) = json.loads(results_path.read_text())
                ideal = (S.ideal_cycles if sparse else golden.ideal_cycles)(
                    size, size, size, mode, g.rows, g.cols)
                rows.append({"mode": mode, "sparse": sparse, "m": size, "n": size, "k": size,
                             "cycles": result["cycles"], "ideal_cycles": ideal,
                             "macs_per_cycle": round(size ** 3 / result["cycles"], 2),
                             "utilization": round(ideal / result["cycles"], 4),
                             "wall_s": round(wall, 1)})
    for mode in MODES:
        dense, sparse = [r for r in rows if r["mode"] == mode]
        sparse["speedup_vs_dense"] = round(dense["cycles"] / sparse["cycles"], 3)
    return {"array": f"{g.rows}x{g.cols}", "simulator": sim_build.sim, "size": size,
            "build_s": round(build_s, 1), "results": rows}


# -- 2. area per PE --------------------------------------------------------------------------------

def _pe_verilog(modes, sparse, name):
    from gen.pe import MixedPE
    from gen.systolic import psum_width
    from sim.bench.qor import _verilog
    return _verilog(MixedPE(modes=modes, psum_width=psum_width(16, modes), sparse=sparse), name)


def pe_areas(mode_sets=PE_MODE_SETS):
    """Area of the dense and the 2:4 PE per mode set; ``(flow, rows)``."""
    import shutil

    from gen import synth_asic
    from gen.config import FlowConfig
    try:
        synth_asic.liberty_path()
        asic = bool(shutil.which("yosys")) and bool(shutil.which("sta"))
    except Exception:   # no Liberty file installed
        asic = False
    if not asic and not shutil.which("yosys"):
        return "skipped: no yosys", []
    rows = []
    with tempfile.TemporaryDirectory(prefix="accelgen-sparsity-") as tmp:
        for modes in mode_sets:
            row = {"modes": list(modes)}
            for sparse in (False, True):
                name = ("pe_sparse_" if sparse else "pe_dense_") + "_".join(modes)
                path = Path(tmp) / f"{name}.v"
                path.write_text(_pe_verilog(modes, sparse, name))
                key = "sparse" if sparse else "dense"
                if asic:
                    r = synth_asic.synthesize(path, name, flow=FlowConfig(), sram_min_bits=1 << 40)
                    row[key] = {"area_um2": r["area_um2"], "flip_flops": r["flip_flops"],
                                "cells": r["cells"], "min_period_ns": r["timing"]["min_period_ns"]}
                else:
                    from gen.synth import synthesize
                    r = synthesize(path, name)
                    row[key] = {"cells": r["cells"], "flip_flops": r.get("flip_flops")}
            metric = "area_um2" if asic else "cells"
            row["ratio"] = round(row["sparse"][metric] / row["dense"][metric], 3)
            rows.append(row)
    flow = ("standard cells (OSU 0.18 um, Yosys abc, OpenSTA)" if asic
            else "Yosys generic cells (cell count)")
    return flow, rows


# -- 3. the pruned MLP -----------------------------------------------------------------------------

def prune_model(model):
    """The model with every weight matrix 2:4 magnitude-pruned along K (its rows), and the masks."""
    masks = [S.prune_mask(w) for w in model["weights"]]
    return dict(model, weights=[w * mk for w, mk in zip(model["weights"], masks, strict=True)]), \
        masks


def fine_tune(model, masks, epochs=60, lr=1e-3, batch=200, alpha=1e-4, seed=0):
    """Fine-tune ``model`` on its training set with the pruning ``masks`` fixed: Adam on the mean
    cross-entropy plus ``alpha / 2 * sum w**2`` over the batch (as scikit-learn's
    ``MLPClassifier``), the gradients and weights of pruned entries held at zero."""
    rng = np.random.default_rng(seed)
    ws = [w.copy() for w in model["weights"]]
    bs = [b.copy() for b in model["biases"]]
    params = ws + bs
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    x, y = model["x_train"], model["y_train"]
    onehot = np.eye(ws[-1].shape[1])[y]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            acts = [x[idx]]
            for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
                z = acts[-1] @ w + b
                acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
            logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            delta = (prob - onehot[idx]) / len(idx)
            grads_w, grads_b = [None] * len(ws), [None] * len(ws)
            for i in range(len(ws) - 1, -1, -1):
                grads_w[i] = acts[i].T @ delta + alpha * ws[i] / len(idx)
                grads_b[i] = delta.sum(axis=0)
                if i:
                    delta = (delta @ ws[i].T) * (acts[i] > 0)
            grads = [g * mk for g, mk in zip(grads_w, masks, strict=True)] + grads_b
            step += 1
            for j, (p, g) in enumerate(zip(params, grads, strict=True)):
                m1[j] = 0.9 * m1[j] + 0.1 * g
                m2[j] = 0.999 * m2[j] + 0.001 * g * g
                p -= lr * (m1[j] / (1 - 0.9 ** step)) / (np.sqrt(m2[j] / (1 - 0.999 ** step))
                                                        + 1e-8)
            for w, mk in zip(ws, masks, strict=True):
                w *= mk
    return dict(model, weights=ws, biases=bs)


def _check_sparse_layers(model):
    """The 2:4 model's quantized first-layer GEMMs equal the sparse GEMMs of their compressed
    codes (W8A8 per-channel codes and W4A4 VS-Quant codes keep 2:4: zeros quantize to 0)."""
    from sim.golden import quant as Q
    x, w = model["x_test"], model["weights"][0]
    qw = Q.quantize_tensor(w, 8, "channel", channel_axis=1, calibration="max")
    a = Q.quantize(x, 1.0 / Q.qmax(8), 8)
    values, meta = S.compress(qw.codes)
    assert np.array_equal(S.sparse_gemm(a, values, meta, "int8"), a @ qw.codes)
    ops = B.vsq_layer_operands(x, w, 4, 4, 4, "max")
    values, meta = S.compress(ops["w"])
    got = S.sparse_vsq_gemm(ops["a"], values, meta, ops["s_qa"], ops["s_qw"], mode="int4",
                            vector_size=B.VECTOR_SIZE, scale_bits=4)
    assert np.array_equal(got, golden_vsq.vsq_gemm(ops["a"], ops["w"], ops["s_qa"], ops["s_qw"],
                                                   mode="int4", vector_size=B.VECTOR_SIZE,
                                                   scale_bits=4))


SETTINGS = (("float", None), ("W8A8 per-channel", (8, 8, "channel", None)),
            ("W4A4 VSQ V=16 M=4", (4, 4, "vsq", 4)))


def _accuracy(logits, y):
    return round(100 * float(np.mean(np.asarray(logits).argmax(1) == y)), 2)


def evaluate(model, sparse_model, pruned_only):
    """Test accuracy (%) of every :data:`SETTINGS` entry, dense and 2:4 (and the 2:4 float model
    before fine-tuning)."""
    x, y = model["x_test"], model["y_test"]
    out = {}
    for name, q in SETTINGS:
        row = {}
        for key, mdl in (("dense", model), ("sparse_2_4", sparse_model)):
            if q is None:
                logits = B.mlp_forward_float(mdl, x)
            else:
                wb, ab, scheme, m = q
                logits = B.mlp_forward_quantized(mdl, x, ab, wb, scheme, m, "max")
            row[key] = _accuracy(logits, y)
        out[name] = row
    out["float"]["sparse_2_4_before_fine_tuning"] = _accuracy(B.mlp_forward_float(pruned_only, x),
                                                               y)
    return out


def mlp_accuracy(seeds):
    per_seed = []
    for seed in seeds:
        model = B.train_digits_mlp(seed=seed)
        pruned, masks = prune_model(model)
        tuned = fine_tune(pruned, masks, seed=seed)
        _check_sparse_layers(tuned)
        per_seed.append(evaluate(model, tuned, pruned))
    mean = {}
    for name in per_seed[0]:
        mean[name] = {k: round(float(np.mean([r[name][k] for r in per_seed])), 2)
                      for k in per_seed[0][name]}
        mean[name]["per_seed"] = [r[name] for r in per_seed]
    f = mean["float"]["dense"]
    for name in mean:
        mean[name]["sparse_vs_float"] = round(mean[name]["sparse_2_4"] - f, 2)
    return {"model": "64-128-10 MLP, digits, 450 test images", "training_seeds": list(seeds),
            "results": mean}


# -- 4. the MLP on the RTL engine ------------------------------------------------------------------

RTL_SETTING = {"name": "2:4 W4A4 VSQ V=16 M=4", "a_bits": 4, "w_bits": 4, "m": 4,
               "calibration": "max", "sparse": True}


def rtl_sections():
    sections = vsq_rtl.engine_sections()
    g = dict(sections["gemm"], top="gemm_mlp_sparse_4x4", sparsity="2:4")
    return {"gemm": g}


def rtl_mlp(images, sim=None):
    model = B.train_digits_mlp(seed=0)
    pruned, masks = prune_model(model)
    tuned = fine_tune(pruned, masks, seed=0)
    sim_build = runner.emit_and_build(parse_config(rtl_sections()), sim=sim)["gemm"]
    t0 = time.perf_counter()
    (res,) = vsq_rtl.run_mlp(sim_build, tuned, images, settings=[RTL_SETTING])
    sim_s = time.perf_counter() - t0
    x, y = tuned["x_test"][:images], tuned["y_test"][:images]
    gold = B.mlp_forward_quantized(tuned, x, 4, 4, "vsq", 4, "max")
    rtl = np.asarray(res["logits"])
    return {"images": images, "setting": RTL_SETTING["name"],
            "accumulators": int(sum(g["m"] * g["n"] for g in res["gemms"])),
            "mismatches": int(sum(g["mismatches"] for g in res["gemms"])),
            "logits_equal": bool(np.array_equal(rtl, gold)),
            "rtl_accuracy": _accuracy(rtl, y), "golden_accuracy": _accuracy(gold, y),
            "cycles": int(sum(g["cycles"] for g in res["gemms"])),
            "gemms": [{k: g[k] for k in ("layer", "mode", "m", "n", "k", "cycles", "mismatches")}
                      for g in res["gemms"]],
            "sim_s": round(sim_s, 1)}


# -- 5. the system demo ----------------------------------------------------------------------------

def system_demo(quick=False, sim=None):
    from sim.bench import demo
    model = B.train_digits_mlp(seed=0)
    pruned, masks = prune_model(model)
    tuned = fine_tune(pruned, masks, seed=0)
    dense = dict(RTL_SETTING, name="2:4 W4A4 VSQ, dense commands", sparse=False)
    sparse = dict(RTL_SETTING, name="2:4 W4A4 VSQ, 2:4 commands")
    r = demo.demo_mlp(quick=quick, sim=sim, settings=[dense, sparse], softmax=False,
                      tile=dict(demo.DEMO_TILE, sparsity="2:4"), model=tuned)
    rows = [{k: row[k] for k in ("config", "cycles", "cycles_per_image", "weight_load_cycles",
                                 "acc_mismatches", "logits_equal", "rtl_accuracy")}
            for row in r["results"]]
    return {"system": r["system"], "images": r["images"], "simulator": r["simulator"],
            "results": rows, "passed": r["passed"],
            "speedup": round(rows[0]["cycles"] / rows[1]["cycles"], 3),
            "build_s": r["build_s"], "sim_s": r["sim_s"]}


# -- the bench -------------------------------------------------------------------------------------

def run(quick=False, sim=None):
    t0 = time.perf_counter()
    mlp = mlp_accuracy((0,) if quick else (0, 1, 2, 3, 4))
    mlp["seconds"] = round(time.perf_counter() - t0, 1)
    flow, areas = pe_areas(PE_MODE_SETS[:2] if quick else PE_MODE_SETS)
    rtl = rtl_mlp(10 if quick else 100, sim=sim)
    return {"block": "sparsity", "quick": quick, "throughput": throughput(quick, sim),
            "pe_area": {"flow": flow, "results": areas}, "mlp": mlp, "mlp_rtl": rtl,
            "system": system_demo(quick, sim)}


def format_table(result):
    t = result["throughput"]
    lines = [f"2:4 sparsity: GEMM engine {t['array']} on {t['simulator']}, M = N = K = "
             f"{t['size']} (build {t['build_s']} s)",
             f"{'mode':9} {'weights':7} {'cycles':>8} {'ideal':>8} {'MACs/cycle':>10} "
             f"{'util':>7} {'vs dense':>8}"]
    for r in t["results"]:
        sp = f"{r['speedup_vs_dense']:.3f}x" if r["sparse"] else ""
        lines.append(f"{r['mode']:9} {'2:4' if r['sparse'] else 'dense':7} {r['cycles']:>8} "
                     f"{r['ideal_cycles']:>8.0f} {r['macs_per_cycle']:>10.2f} "
                     f"{100 * r['utilization']:>6.2f}% {sp:>8}")
    a = result["pe_area"]
    lines += ["", f"area per PE (psum of 16 rows), {a['flow']}:"]
    for r in a["results"]:
        metric = "area_um2" if "area_um2" in r["dense"] else "cells"
        lines.append(f"  {'+'.join(r['modes']):36} dense {r['dense'][metric]:>10,.0f}  "
                     f"2:4 {r['sparse'][metric]:>10,.0f}  ratio {r['ratio']:.3f}")
    mlp = result["mlp"]
    seeds = mlp["training_seeds"]
    lines += ["", f"{mlp['model']}, training seed(s) {seeds}: test accuracy %",
              f"{'setting':20} {'dense':>7} {'2:4':>7} {'2:4 - float':>12}"]
    for name, r in mlp["results"].items():
        lines.append(f"{name:20} {r['dense']:>7.2f} {r['sparse_2_4']:>7.2f} "
                     f"{r['sparse_vs_float']:>+12.2f}")
    lines.append(f"(2:4 float before fine-tuning: "
                 f"{mlp['results']['float']['sparse_2_4_before_fine_tuning']:.2f} %)")
    r = result["mlp_rtl"]
    lines += ["", f"{r['setting']} on the RTL engine (2:4 commands): {r['images']} test images, "
                  f"{r['accumulators']} accumulators, {r['mismatches']} mismatches, logits "
                  f"{'equal' if r['logits_equal'] else 'DIFFERENT'}; accuracy RTL "
                  f"{r['rtl_accuracy']:.2f} %, golden {r['golden_accuracy']:.2f} %; "
                  f"{r['cycles']} cycles"]
    s = result.get("system")
    if s:
        lines += ["", f"MLP demo on the {s['system']} system, {s['images']} images "
                      f"({'passed' if s['passed'] else 'FAILED'} against the golden system):"]
        for row in s["results"]:
            lines.append(f"  {row['config']:32} {row['cycles_per_image']:>8.1f} cycles/image "
                         f"(weights once: {row['weight_load_cycles']} cycles), accuracy "
                         f"{row['rtl_accuracy']:.2f} %")
        lines.append(f"  dense / 2:4 cycles: {s['speedup']:.3f}x")
    return "\n".join(lines)
