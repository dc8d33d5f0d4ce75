"""What a sweep measures at one point: emission, synthesis, RTL cycles, golden-model accuracy.

Each metric is a function of the point's configuration that returns a flat dict of figures (JSON
numbers and strings, so that every figure is one column of the results):

``emit``
    ``lines`` of Verilog, ``modules`` (module definitions), ``emit_s`` (seconds to render and
    write).
``synth``
    Yosys (:func:`gen.synth.synthesize`) per target of ``sweep.synth_targets``, summed over the
    tops: ``cells``, ``flip_flops``, ``memory_bits`` (generic), ``luts`` (ice40), ``synth_s``;
    ``asic`` (:func:`gen.synth_asic.synthesize`, OSU 0.18 um cells and OpenSTA): ``area_um2``
    (logic and the SRAM macros' modelled area), ``logic_area_um2``, ``sram_area_um2`` and
    ``min_period_ns`` (the longest of the tops').
``sim``
    The GEMMs of a workload (:data:`WORKLOADS`) in every mode the engine has, one at a time on the
    RTL (the ``measure`` test of ``sim/tb/gemm.py``, which also checks every result against the
    golden model): ``cycles_<mode>``, ``utilization_<mode>`` (ideal over measured cycles) and
    ``macs_per_cycle_<mode>``; ``throughput`` is the primary mode's MACs per cycle (see
    :func:`primary_mode`). A VSQ engine runs VSQ GEMMs (its first vector size) in integer modes.
``accuracy``
    Golden models only, in the primary mode: ``sqnr_db`` of quantizing a Gaussian 64 x 4096 tensor
    (seed 0) to the mode's weight bits, per vector two-level (VS-Quant, V = the first vector size,
    M = ``gemm.vsq_scale_bits``) when the engine has VSQ, else per channel; ``digits_accuracy``
    (percent of the 450 test images) of the 64-128-10 digits MLP (training seed 0, max
    calibration; :mod:`sim.bench.vsq`) quantized the same way.

The primary mode of a mode set is the one with the most MACs per PE per cycle, then the fewest
operand bits (integer before FP8): the mode a user builds the set for. ``throughput`` and the
accuracy figures are that mode's, so a set with more modes shows the cost of its flexibility.
"""

import json
import re
import tempfile
import time
from pathlib import Path

from gen.config import ConfigError
from gen.lib.formats import mode_by_name

__all__ = ["METRICS", "WORKLOADS", "check_workload", "workload_shapes", "primary_mode",
           "mode_bits", "emission", "synthesis", "simulation", "accuracy"]

METRICS = {
    "emit": "Verilog lines, modules and emission time",
    "synth": "Yosys cells, flip-flops, memory bits (generic) and LUTs (ice40)",
    "sim": "RTL cycles, utilization and MACs per cycle of the workload's GEMMs per mode",
    "accuracy": "golden-model VS-Quant SQNR and digits MLP accuracy in the primary mode",
}

WORKLOADS = {
    "gemm_small": [[16, 32, 64]],
    # The first layer of the digits MLP for a batch of 16 images: K = 64 pixels, N = 128 hidden.
    "digits_mlp_layer": [[16, 128, 64]],
    # One attention head, sequence 64, head dimension 16: BMM1 (Q K^T) and BMM2 (P V).
    "attention_head": [[64, 64, 16], [64, 16, 64]],
}
"""Named GEMM workloads: lists of ``[m, n, k]`` (A is m x k, W is k x n)."""


def check_workload(where, workload):
    """``workload`` is a name of :data:`WORKLOADS` or a list of ``[m, n, k]``; else ConfigError."""
    if isinstance(workload, str):
        if workload not in WORKLOADS:
            raise ConfigError(where, workload, "must be one of " + ", ".join(WORKLOADS)
                              + " or a list of [m, n, k]")
        return
    ok = (isinstance(workload, list) and workload and all(
        isinstance(s, list) and len(s) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in s)
        for s in workload))
    if not ok:
        raise ConfigError(where, workload, "must be one of " + ", ".join(WORKLOADS)
                          + " or a non-empty list of [m, n, k] with positive integers")


def workload_shapes(workload):
    return WORKLOADS[workload] if isinstance(workload, str) else [list(s) for s in workload]


def mode_bits(name):
    """``(activation bits, weight bits)`` of a mode."""
    return {"int8": (8, 8), "int4": (4, 4), "w4a8": (8, 4)}.get(name, (8, 8))


def primary_mode(modes):
    """The mode of ``modes`` with the most MACs per PE per cycle, then the fewest operand bits,
    integer before FP8."""
    def rank(name):
        mode = mode_by_name(name)
        return (-mode.macs_per_pe, sum(mode_bits(name)), mode.fp8 is not None)
    return min(modes, key=rank)


# -- emission --------------------------------------------------------------------------------------

def emission(config, rtl_dir):
    """Emit ``config`` into ``rtl_dir`` (replaced whole); the ``emit`` figures."""
    from gen.emit import emit
    start = time.perf_counter()
    emit(config, rtl_dir)
    seconds = time.perf_counter() - start
    lines = modules = 0
    for path in sorted(Path(rtl_dir).glob("*.v")):
        text = path.read_text(encoding="utf-8")
        lines += text.count("\n")
        modules += len(re.findall(r"^module\s", text, re.M))
    return {"lines": lines, "modules": modules, "emit_s": round(seconds, 2)}


def _tops(config):
    return [(block, section.top) for block, section in config.blocks.items()]


# -- synthesis -------------------------------------------------------------------------------------

def synthesis(config, rtl_dir, targets):
    """Synthesize every top of ``config`` emitted in ``rtl_dir`` for each target; the ``synth``
    figures, summed over the tops."""
    from gen import synth
    out = {}
    start = time.perf_counter()
    for target in targets:
        if target == "asic":
            out.update(_asic(config, rtl_dir))
            continue
        reports = [synth.synthesize(Path(rtl_dir) / f"{top}.v", top, target)
                   for _, top in _tops(config)]
        for report in reports:
            if not report["check_passed"]:
                raise RuntimeError(f"yosys check -assert failed on {report['top']}:\n"
                                   + report["log_tail"][-1500:])
        if target == "generic":
            out["cells"] = sum(r["cells"] for r in reports)
            out["flip_flops"] = sum(r["flip_flops"] for r in reports)
            out["memory_bits"] = sum(r["memory_bits"] for r in reports)
        else:
            out["luts"] = sum(r["luts"] for r in reports)
            out["ice40_flip_flops"] = sum(r["flip_flops"] for r in reports)
    out["synth_s"] = round(time.perf_counter() - start, 1)
    return out


def _asic(config, rtl_dir):
    """Standard cells (:func:`gen.synth_asic.synthesize`, the default Liberty library) and
    OpenSTA timing of every top against its emitted SDC: areas summed, the longest minimum
    period."""
    from gen import synth_asic
    reports = []
    for _, top in _tops(config):
        sdc = (Path(rtl_dir) / f"{top}.sdc").read_text(encoding="utf-8")
        reports.append(synth_asic.synthesize(Path(rtl_dir) / f"{top}.v", top, sdc=sdc))
    periods = [r["timing"]["min_period_ns"] for r in reports]
    return {"area_um2": round(sum(r["total_area_um2"] for r in reports), 1),
            "logic_area_um2": round(sum(r["area_um2"] for r in reports), 1),
            "sram_area_um2": round(sum(r["sram"]["area_um2"] for r in reports), 1),
            "min_period_ns": None if None in periods else round(max(periods), 3)}


# -- simulation ------------------------------------------------------------------------------------

def _cases(gemm, workload):
    """The ``measure`` cases of ``workload`` in every mode of the engine ``gemm``."""
    shapes = workload_shapes(workload)
    name = workload if isinstance(workload, str) else "workload"
    for m, n, k in shapes:
        for value, limit in ((m, "max_m"), (n, "max_n"), (k, "max_k")):
            if value > getattr(gemm, limit):
                raise ValueError(f"{name} [m, n, k] = [{m}, {n}, {k}] does not fit gemm.{limit} = "
                                 f"{getattr(gemm, limit)}")
    cases = []
    for mode in gemm.modes:
        vsq = gemm.vsq_vector_sizes[0] if gemm.vsq_vector_sizes and not mode_by_name(mode).fp8 \
            else None
        for m, n, k in shapes:
            case = {"mode": mode, "m": m, "n": n, "k": k, "kind": "uniform"}
            if vsq:
                case.update(vsq=vsq, scales="uniform")
            cases.append(case)
    return cases


def simulation(config, rtl_dir, workload, sim=None, seed=1):
    """Run ``workload`` on the emitted GEMM engine in RTL simulation; the ``sim`` figures.

    The build goes under ``$ACCELGEN_SIM_BUILD`` (the point's own folder, set by the caller)."""
    from sim import runner
    from sim.golden import gemm as golden
    gemm = config.gemm
    if gemm is None:
        raise ValueError("the sim metric needs a [gemm] section")
    cases = _cases(gemm, workload)
    start = time.perf_counter()
    build = runner.build(rtl_dir, gemm.top, sim=sim)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="accelgen-sweep-sim-") as tmp:
        cases_path, results_path = Path(tmp) / "cases.json", Path(tmp) / "results.json"
        cases_path.write_text(json.dumps(cases))
        runner.run(build, "sim.tb.gemm", testcase="measure", seed=seed,
                   extra_env={"ACCELGEN_GEMM_CASES": str(cases_path),
                              "ACCELGEN_RESULTS": str(results_path)})
        results = json.loads(results_path.read_text())
    out = {"simulator": build.sim}
    for mode in gemm.modes:
        rows = [r for r in results if r["mode"] == mode]
        cycles = sum(r["cycles"] for r in rows)
        ideal = sum(golden.ideal_cycles(r["m"], r["n"], r["k"], mode, gemm.rows, gemm.cols)
                    for r in rows)
        macs = sum(r["m"] * r["n"] * r["k"] for r in rows)
        out[f"cycles_{mode}"] = cycles
        out[f"utilization_{mode}"] = round(ideal / cycles, 4)
        out[f"macs_per_cycle_{mode}"] = round(macs / cycles, 3)
    out["throughput"] = out[f"macs_per_cycle_{primary_mode(gemm.modes)}"]
    out["sim_s"] = round(time.perf_counter() - start, 1)
    out["sim_build_s"] = round(build_s, 1)
    return out


# -- accuracy --------------------------------------------------------------------------------------

def _digits_model(shared_dir):
    """The digits MLP of training seed 0, trained once and kept in ``shared_dir`` for all points."""
    import numpy as np

    from sim.bench import vsq as B
    path = Path(shared_dir) / "digits_mlp_seed0.npz" if shared_dir else None
    if path is not None and path.exists():
        with np.load(path) as f:
            n = int(f["layers"])
            return {"weights": [f[f"w{i}"] for i in range(n)],
                    "biases": [f[f"b{i}"] for i in range(n)],
                    **{k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}}
    model = B.train_digits_mlp(seed=0)
    if path is not None:
        import io

        from gen import outdir
        arrays = {f"w{i}": w for i, w in enumerate(model["weights"])}
        arrays.update({f"b{i}": b for i, b in enumerate(model["biases"])})
        arrays.update({k: model[k] for k in ("x_train", "y_train", "x_test", "y_test")})
        data = io.BytesIO()
        np.savez(data, layers=len(model["weights"]), **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        outdir.write_file(path, data.getvalue(), what="shared file of the sweep")
    return model


def accuracy(config, shared_dir=None):
    """The ``accuracy`` figures of the engine's primary mode, from the golden models."""
    import numpy as np

    from sim.bench import vsq as B
    from sim.golden import quant as Q
    gemm = config.gemm
    if gemm is None:
        raise ValueError("the accuracy metric needs a [gemm] section")
    mode = primary_mode(gemm.modes)
    if mode_by_name(mode).fp8:
        return {"accuracy_mode": mode, "sqnr_db": None, "digits_accuracy": None}
    a_bits, w_bits = mode_bits(mode)
    vsq = bool(gemm.vsq_vector_sizes)
    x = np.random.default_rng(0).standard_normal((64, 4096))
    if vsq:
        v, m = gemm.vsq_vector_sizes[0], gemm.vsq_scale_bits
        x_hat = Q.fake_quantize(x, w_bits, "two_level", vector_size=v, scale_bits=m,
                                channel_axis=0)
    else:
        x_hat = Q.fake_quantize(x, w_bits, "channel", channel_axis=0)
    model = _digits_model(shared_dir)
    logits = B.mlp_forward_quantized(
        model, model["x_test"], a_bits, w_bits, "vsq" if vsq else "channel",
        gemm.vsq_scale_bits if vsq else None, "max",
        vector_size=gemm.vsq_vector_sizes[0] if vsq else B.VECTOR_SIZE)
    return {"accuracy_mode": mode, "sqnr_db": round(float(Q.sqnr_db(x, x_hat)), 2),
            "digits_accuracy": round(100 * float(np.mean(logits.argmax(1) == model["y_test"])), 2)}
