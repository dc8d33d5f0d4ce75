"""``accelgen demo``: real models on a system of tiles (:class:`gen.system.System`) through the RTL.

Three demonstrations, each checked bit for bit against :mod:`sim.golden.system`:

- ``mlp``: the digits MLP (64-128-10, :func:`sim.bench.vsq.train_digits_mlp`, seed 0), VS-Quant
  W4A4 and W4A8 (V = 16, M = 4, max calibration), on a 2 x 2 system. Each layer's output columns
  are split over the tiles (weight-stationary), a batch's activations are multicast to them, the
  partial outputs are gathered at the host, which does the float steps between layers.
- ``attention``: one attention head with sequence length 64: BMM1 = Q K^T with the post unit's INT8
  output, softmax, BMM2 = P V, with the rows of Q split over the tiles of a 2 x 2 system.
- ``scaling``: the MLP's first layer for one batch on 1 x 1, 2 x 2 and 4 x 4 systems.

The host programs come from :mod:`sim.host`; ``sim/tb/system.py`` replays them through the
system's host port and records what comes back.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gen.config import parse_config
from sim import runner
from sim.bench.vsq import VECTOR_SIZE
from sim.bench.vsq_rtl import SCALE_BITS
from sim.golden import vsq as golden_vsq

__all__ = ["run", "format_table", "system_sections", "build_system", "run_plan", "DEMO_TILE",
           "demo_mlp", "demo_attention", "demo_scaling", "tile_config"]

TILE_MODES = ["int8", "int4", "w4a8"]


def tile_config(rows, max_m, max_n, max_k):
    """A ``[system.gemm]`` table: an R x R engine with the integer modes, VS-Quant (V = 16, M = 4),
    the post unit (16-bit multipliers) and the narrowest accumulator the VSQ rule allows."""
    acc = max(golden_vsq.acc_width(mode, VECTOR_SIZE, SCALE_BITS, max_k) for mode in TILE_MODES)
    return {"rows": rows, "cols": rows, "modes": list(TILE_MODES), "max_m": max_m,
            "max_n": max_n, "max_k": max_k, "acc_width": max(acc, 32), "out_fifo_depth": 8,
            "vsq_vector_sizes": [VECTOR_SIZE], "vsq_scale_bits": SCALE_BITS,
            "vsq_post_mult_bits": 16}


# The demos' tile: a 4 x 4 engine, integer modes, VS-Quant (V = 16, M = 4) and the post unit.
DEMO_TILE = tile_config(4, 64, 128, 128)
DEMO_SOFTMAX = {"lanes": 4, "in_width": 8, "in_frac": 4, "out_frac": 7, "max_len": 64}


def system_sections(kx, ky, *, tile=None, softmax=None, spad_words=4096, top=None):
    """The configuration of a ``kx`` x ``ky`` system of demo tiles (``softmax=False``: no softmax
    unit)."""
    sys_ = {"top": top or f"demo_system_{kx}x{ky}", "kx": kx, "ky": ky, "spad_words": spad_words,
            "cmd_depth": 16, "vcs": 2, "vc_depth": 8, "max_packet_flits": 8, "routing": "xy",
            "router_cycles": 1, "gemm": dict(tile or DEMO_TILE)}
    if softmax is not False:
        sys_["softmax"] = dict(softmax or DEMO_SOFTMAX)
    return {"system": sys_}


def build_system(sections, sim=None):
    """Emit and build (cached) the system of ``sections``; its :class:`sim.runner.SimBuild`.

    Verilator compiles a system at ``-O0`` (``sim.bench.gemm.FULL_MAKE_VARS``): its build
    dominates (the 2 x 2 demo system is about 108k lines of Verilog, the 4 x 4 one 475k), the
    simulations are short."""
    from sim.bench.gemm import FULL_MAKE_VARS
    return runner.emit_and_build(parse_config(sections), sim=sim,
                                 make_vars=FULL_MAKE_VARS)["system"]


def manifest(sim_build):
    return json.loads(Path(sim_build.manifest_path).read_text())


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 1)


def run_plan(sim_build, kind, arrays, *, seed=1, gap=0.0, stall=0.0, timeout_cycles=100_000,
             **spec):
    """Run a :mod:`sim.host` plan (``kind`` mlp, layer or attention; ``spec`` its arguments) on the
    system with ``sim/tb/system.py``; the bench's results dict."""
    with tempfile.TemporaryDirectory() as tmp:
        plan_path = Path(tmp) / "plan.json"
        plan_path.write_text(json.dumps({"kind": kind, "timeout_cycles": timeout_cycles, **spec}))
        data_path = Path(tmp) / "data.npz"
        np.savez(data_path, **arrays)
        results_path = Path(tmp) / "results.json"
        runner.run(sim_build, "sim.tb.system", testcase="plan", seed=seed,
                   extra_env={"ACCELGEN_PLAN": str(plan_path), "ACCELGEN_DATA": str(data_path),
                              "ACCELGEN_RESULTS": str(results_path),
                              "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)})
        return json.loads(results_path.read_text())


def model_arrays(model, x):
    arrays = {"x": np.asarray(x, np.float64)}
    for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    return arrays


def _accuracy(logits, y):
    return round(100 * float(np.mean(np.asarray(logits).argmax(1) == y)), 2)


def _phase_cycles(res, skip_weights=True):
    """Cycles from the first compute phase's start to the last phase's end (the weights phase,
    paid once per model, left out)."""
    phases = [p for p in res["phases"] if not (skip_weights and p["name"] == "weights")]
    return phases[-1]["end"] - phases[0]["start"] + 1 if phases else 0


def _weights_cycles(res):
    """Cycles of the one-time weight load: from its first packet to the last tile's one-word
    acknowledgement (each tile answers once its WAIT for the weights is over)."""
    for p in res["phases"]:
        if p["name"] == "weights":
            return p["end"] - p["start"] + 1
    return 0


def _gemm_busy(res):
    """GEMM-busy cycles per tile in the compute phases (the counters' growth)."""
    first = next(p for p in res["phases"] if p["name"] != "weights")
    i = res["phases"].index(first)
    before = res["phases"][i - 1]["busy"] if i else [0] * len(res["busy"])
    return [after - b for after, b in zip(res["busy"], before, strict=True)]


def demo_mlp(quick=False, sim=None, images=None, kx=2, ky=2, gap=0.0, stall=0.0, seed=1,
             settings=None, tile=None, softmax=None, spad_words=4096, model=None):
    """The digits MLP through a ``kx`` x ``ky`` system (demonstration 1); ``tile``,
    ``softmax``, ``spad_words``: another tile than the demo's (tests use a smaller one);
    ``model``: another model than :func:`sim.bench.vsq.train_digits_mlp` of seed 0 (the 2:4
    pruned one of ``accelgen bench sparsity``).

    Per setting: the logits and every layer's accumulators against :mod:`sim.golden.system`,
    accuracy, ``cycles`` from the first batch's first activation packet to the last logit word
    (``cycles_per_image`` = that over the images; the host's float steps between layers take no
    simulated time; the one-time weight load is ``weight_load_cycles``), and per tile the GEMM
    cycles (``gemm_busy``) and ideal GEMM cycles over ``cycles`` (``gemm_utilization``)."""
    from sim.bench import vsq as B
    from sim.bench import vsq_rtl
    from sim.golden import system as GS
    model = model or B.train_digits_mlp(seed=0)
    images = images or (16 if quick else 128)
    x, y = model["x_test"][:images], model["y_test"][:images]
    sections = system_sections(kx, ky, tile=tile, softmax=softmax, spad_words=spad_words)
    sim_build, build_s = _timed(build_system, sections, sim)
    rows = []
    sim_s = 0.0
    for setting in settings or vsq_rtl.SETTINGS:
        res, t = _timed(run_plan, sim_build, "mlp", model_arrays(model, x), setting=setting,
                        seed=seed, gap=gap, stall=stall)
        sim_s += t
        rtl = np.asarray(res["result"]["output"])
        gold, gold_accs = GS.mlp_logits(model, x, setting, return_accumulators=True)
        accs = [np.asarray(a) for a in res["result"]["accumulators"]]
        acc_mismatches = sum(int(np.sum(a != g)) for a, g in zip(accs, gold_accs, strict=True))
        cycles = _phase_cycles(res)
        busy = _gemm_busy(res)
        ideal = res["ideal_cycles"]
        rows.append({
            "config": setting["name"], "logits": int(rtl.size),
            "accumulators": int(sum(a.size for a in accs)), "acc_mismatches": acc_mismatches,
            "mismatches": int(np.sum(rtl != gold)), "logits_equal": bool(np.array_equal(rtl, gold)),
            "rtl_accuracy": _accuracy(rtl, y), "golden_accuracy": _accuracy(gold, y),
            "cycles": cycles, "cycles_per_image": round(cycles / images, 1),
            "weight_load_cycles": _weights_cycles(res),
            "gemm_busy": busy, "ideal_cycles": ideal,
            "gemm_utilization": [round(i / cycles, 3) if cycles else 0.0 for i in ideal],
            "phases": [{k: p[k] for k in ("name", "start", "end", "injected", "received")}
                       for p in res["phases"]]})
    per_channel = B.mlp_forward_quantized(model, x, 4, 4, "channel", None, "max")
    per_channel8 = B.mlp_forward_quantized(model, x, 8, 4, "channel", None, "max")
    return {"demo": "mlp", "quick": quick, "simulator": sim_build.sim, "system": f"{kx}x{ky}",
            "tile": _tile_summary(sections), "images": images, "seed": seed,
            "model": "64-128-10 MLP, digits (scikit-learn bundled), training seed 0",
            "float_accuracy": _accuracy(B.mlp_forward_float(model, x), y),
            "per_channel_accuracy": {"W4A4": _accuracy(per_channel, y),
                                     "W4A8": _accuracy(per_channel8, y)},
            "results": rows,
            "passed": all(r["logits_equal"] and r["acc_mismatches"] == 0 for r in rows),
            "build_s": build_s, "sim_s": round(sim_s, 1)}


def attention_inputs(seq=64, d=16, seed=0):
    """Q, K, V (``seq`` x ``d``, standard normal) from ``seed``."""
    q, k, v = np.random.default_rng(seed).standard_normal((3, seq, d))
    return q, k, v


def demo_attention(quick=False, sim=None, seq=None, d=16, kx=2, ky=2, gap=0.0, stall=0.0, seed=1,
                   tile=None, softmax=None, spad_words=4096):
    """One attention head through a ``kx`` x ``ky`` system (demonstration 2); ``seq``: L, 64 (16
    with ``quick``, on the same build)."""
    from sim import host as H
    from sim.golden import system as GS
    seq = seq or (16 if quick else 64)
    sections = system_sections(kx, ky, tile=tile, softmax=softmax, spad_words=spad_words)
    sim_build, build_s = _timed(build_system, sections, sim)
    q, k, v = attention_inputs(seq, d)
    res, sim_s = _timed(run_plan, sim_build, "attention", {"q": q, "k": k, "v": v}, seed=seed,
                        gap=gap, stall=stall)
    r = res["result"]
    sm = sections["system"]["softmax"]
    # The golden side quantizes Q, K, V itself rather than trusting what the run reports.
    qn = H.quantize_attention(q, k, v, in_frac=sm["in_frac"],
                              mult_bits=sections["system"]["gemm"]["vsq_post_mult_bits"])
    gold = GS.attention(qn["q"], qn["k"], qn["v"], qn["mult"], qn["shift"],
                        GS.softmax_params(sm))
    acc = np.asarray(r["acc"])
    cycles = _phase_cycles(res, skip_weights=False)
    busy = res["busy"]
    ideal = res["ideal_cycles"]
    out = np.asarray(r["output"])
    return {"demo": "attention", "quick": quick, "simulator": sim_build.sim,
            "system": f"{kx}x{ky}", "tile": _tile_summary(sections), "seq": seq, "d": d,
            "seed": seed, "quant": res["info"]["quant"],
            "mismatches": int(np.sum(acc != gold["acc"])),
            "bit_exact": bool(np.array_equal(acc, gold["acc"])),
            "error_vs_float64": GS.attention_error(out, GS.attention_float(q, k, v)),
            "cycles": cycles, "gemm_busy": busy, "ideal_cycles": ideal,
            "utilization_of_busy": [round(i / b, 3) if b else 0.0
                                    for i, b in zip(ideal, busy, strict=True)],
            "utilization_of_total": [round(i / cycles, 3) for i in ideal],
            "passed": bool(np.array_equal(acc, gold["acc"])),
            "build_s": build_s, "sim_s": sim_s}


SCALING_SYSTEMS = ((1, 1), (2, 2), (4, 4))


def demo_scaling(quick=False, sim=None, systems=None, images=None, seed=1, tile=None,
                 softmax=False, spad_words=4096):
    """The MLP's first layer (W4A8 VS-Quant, one batch) on 1 x 1, 2 x 2 and 4 x 4 systems.

    ``cycles``: from the batch's first activation packet at the host port to the last result word
    back (the one-time weight load apart). ``communication_fraction``: ``1 - g / cycles`` with
    ``g`` the busiest tile's GEMM cycles (its ``busy`` counter): the cycles in which that tile's
    engine runs no GEMM. A tile here only waits for its activations, computes and sends, so those
    are the cycles of the multicast, the waits and the gather through node 0. The tiles have no
    softmax unit unless ``softmax`` (a ``[system.softmax]`` table) is given."""
    from sim.bench import vsq as B
    from sim.bench import vsq_rtl
    from sim.golden import system as GS
    model = B.train_digits_mlp(seed=0)
    images = images or (16 if quick else 64)
    x = model["x_test"][:images]
    setting = next(s for s in vsq_rtl.SETTINGS if s["name"].startswith("W4A8"))
    _, accs = GS.mlp_logits(model, x, setting, return_accumulators=True)
    rows = []
    for kx, ky in systems or (SCALING_SYSTEMS[:2] if quick else SCALING_SYSTEMS):
        sections = system_sections(kx, ky, tile=tile, softmax=softmax, spad_words=spad_words)
        sim_build, build_s = _timed(build_system, sections, sim)
        res, sim_s = _timed(run_plan, sim_build, "layer", model_arrays(model, x), setting=setting,
                            layer=0, seed=seed)
        acc = np.asarray(res["result"]["accumulators"][0])
        cycles = _phase_cycles(res)
        busy = _gemm_busy(res)
        rows.append({"system": f"{kx}x{ky}", "tiles": kx * ky, "cycles": cycles,
                     "max_gemm_busy": max(busy), "ideal_per_tile": max(res["ideal_cycles"]),
                     "communication_fraction": round(1 - max(busy) / cycles, 3),
                     "bit_exact": bool(np.array_equal(acc, accs[0])),
                     "build_s": build_s, "sim_s": sim_s})
    base = rows[0]["cycles"]
    for r in rows:
        r["speedup"] = round(base / r["cycles"], 2)
        r["efficiency"] = round(base / r["cycles"] / r["tiles"], 3)
    return {"demo": "scaling", "quick": quick, "layer": "64 -> 128, W4A8 VS-Quant V=16 M=4",
            "images": images, "rows": rows, "passed": all(r["bit_exact"] for r in rows)}


DEMOS = {"mlp": demo_mlp, "attention": demo_attention, "scaling": demo_scaling}


def run(name, quick=False, sim=None):
    return DEMOS[name](quick=quick, sim=sim)


def _tile_summary(sections):
    s = sections["system"]
    g = s["gemm"]
    out = {k: g[k] for k in ("rows", "cols", "modes", "max_m", "max_n", "max_k", "acc_width",
                             "vsq_vector_sizes", "vsq_scale_bits", "vsq_post_mult_bits")}
    out["spad_words"] = s["spad_words"]
    out["softmax_lanes"] = s["softmax"]["lanes"] if "softmax" in s else 0
    return out


def format_table(name, r):
    if name == "mlp":
        t = r["tile"]
        lines = [f"{r['model']}: first {r['images']} test images on a {r['system']} system "
                 f"({t['rows']}x{t['cols']} engines, {r['simulator']})",
                 f"float {r['float_accuracy']:.2f} %, per-channel W4A4 "
                 f"{r['per_channel_accuracy']['W4A4']:.2f} %, W4A8 "
                 f"{r['per_channel_accuracy']['W4A8']:.2f} %",
                 f"{'config':18} {'logits':>6} {'mismatch':>8} {'acc mism.':>9} {'RTL %':>6} "
                 f"{'golden %':>8} {'cycles/img':>10} {'weights':>8} {'GEMM util.':>10}"]
        for x in r["results"]:
            lines.append(f"{x['config']:18} {x['logits']:>6} {x['mismatches']:>8} "
                         f"{x['acc_mismatches']:>9} {x['rtl_accuracy']:>6.2f} "
                         f"{x['golden_accuracy']:>8.2f} {x['cycles_per_image']:>10} "
                         f"{x['weight_load_cycles']:>8} {max(x['gemm_utilization']):>10.3f}")
        lines.append("cycles/img: first activation packet to last logit word, over the images "
                     "(weight load apart); GEMM util.: the busiest tile's ideal GEMM cycles over "
                     "all cycles")
        return "\n".join(lines)
    if name == "attention":
        e = r["error_vs_float64"]
        return "\n".join([
            f"attention head L = {r['seq']}, d = {r['d']} on a {r['system']} system "
            f"({r['simulator']}): {'bit-exact' if r['bit_exact'] else 'MISMATCH'} "
            f"({r['mismatches']} of {r['seq'] * r['d']} outputs differ)",
            f"error vs float64: max |e| {e['max_abs']:.4f}, rms {e['rms']:.4f}, "
            f"relative rms {100 * e['rel_rms']:.2f} %",
            f"cycles {r['cycles']}; GEMM busy per tile {r['gemm_busy']}; ideal {r['ideal_cycles']}",
            f"GEMM utilization per tile: of its busy cycles {r['utilization_of_busy']}, of all "
            f"cycles {r['utilization_of_total']}"])
    lines = [f"strong scaling: MLP layer {r['layer']}, one batch of {r['images']} images",
             f"{'system':>6} {'cycles':>7} {'speedup':>7} {'effic.':>6} {'GEMM busy':>9} "
             f"{'comm %':>6} {'exact':>5}"]
    for x in r["rows"]:
        lines.append(f"{x['system']:>6} {x['cycles']:>7} {x['speedup']:>7} {x['efficiency']:>6} "
                     f"{x['max_gemm_busy']:>9} {100 * x['communication_fraction']:>6.1f} "
                     f"{'yes' if x['bit_exact'] else 'NO':>5}")
    return "\n".join(lines)
