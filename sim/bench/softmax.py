"""``accelgen bench softmax``: accuracy against internal widths, cost, and speed in RTL simulation.

Accuracy (the bit-exact model, :mod:`sim.golden.softmax`, against the float64 reference): INT8 scores
with 4 fraction bits, a 9-bit output (8 fraction bits), P = 4 lanes, L_max = 1024 (256 with
``--quick``). Rows of lengths 1 to L_max (every length to 8, then powers of two and some odd lengths), of
every kind (uniform, Gaussian-like, heavy-tailed, narrow) plus the edge cases. For each choice of the
internal widths S (fraction bits of the exp2 terms and the sum) and M (reciprocal precision), from the
derived ones down to a narrow 16-bit baseline (16-bit table entries, S = 15, and a 16-bit reciprocal,
M = 14) and below: the worst and mean absolute error in output LSB, the worst row-sum error against
the ``L * 0.5`` LSB allowance, and how often the argmax agrees with the reference where the
reference's top two differ by more than 1 LSB. A PNG plot is written to ``bench_out/softmax_error.png``
when matplotlib is importable.

Cost: Yosys generic cells (``synth -flatten``) of each width choice (the same S and M) built with
L_max = 64, so that the row buffer, mapped to flip-flops by Yosys, stays small; only when ``yosys`` is on
PATH, and skipped with ``--quick``.

Speed: the derived configuration is built and simulated; every row is sent alone to measure its latency
(first input handshake to first output beat) against the manifest's formula, then rows are sent back to
back, without gaps or stalls, to measure throughput (elements per cycle on the output) and idle cycles.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from gen.config import parse_config
from sim import runner
from sim.golden import softmax as golden

__all__ = ["run", "format_table", "accuracy", "WIDTHS"]

FORMAT = {"in_width": 8, "in_frac": 4, "out_frac": 8, "lanes": 4}

# (label, sum_frac, recip_bits); 0 = derived.
WIDTHS = [
    ("derived", 0, 0),
    ("S20 M14", 20, 14),
    ("S16 M12", 16, 12),
    ("16-bit (S15 M14)", 15, 14),
    ("S12 M10", 12, 10),
    ("S10 M10", 10, 10),
]


def _lengths(max_len):
    out = set(range(1, 9)) | {1 << k for k in range(max_len.bit_length()) if 1 << k <= max_len}
    out |= {n for n in (13, 31, 100, 333, 777) if n <= max_len} | {max_len}
    return sorted(out)


def accuracy(max_len, reps, seed=7, widths=WIDTHS):
    """Error figures of every width choice on the same rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    base = golden.SoftmaxParams(max_len=max_len, **FORMAT)
    rows = []
    for L in _lengths(max_len):
        for _ in range(reps):
            for kind in golden.ROW_KINDS:
                rows.append((golden.random_row(rng, L, base, kind), None))
        rows.append((golden.random_row(rng, L, base, "gaussian"), rng.random(L) < 0.3))
        rows += list(golden.edge_rows(base, L).values())
    one = 1 << base.out_frac
    refs = [golden.reference(x, m, in_frac=base.in_frac) * one for x, m in rows]
    out = []
    for label, s, m in widths:
        p = golden.SoftmaxParams(max_len=max_len, sum_frac=s, recip_bits=m, **FORMAT)
        table = golden.exp2_table(p)
        worst = total = count = 0.0
        sum_worst = sum_ratio = 0.0
        agree = eligible = 0
        for (x, mask), ref in zip(rows, refs, strict=True):
            y, empty = golden.softmax(x, mask, p=p, table=table)
            err = np.abs(y - ref)
            live = np.ones(x.size, bool) if mask is None else ~mask
            worst = max(worst, float(err.max()))
            total += float(err[live].sum())
            count += int(live.sum())
            if empty:
                continue
            sum_err = abs(int(y.sum()) - one)
            sum_worst = max(sum_worst, sum_err)
            sum_ratio = max(sum_ratio, sum_err / (0.5 * int(live.sum())))
            top2 = np.sort(ref)[-2:] if ref.size > 1 else np.array([0.0, ref[0]])
            if top2[1] - top2[0] > 1:
                eligible += 1
                agree += int(np.argmax(y) == np.argmax(ref))
        out.append({"widths": label, "sum_frac": p.sum_frac, "recip_bits": p.recip_bits,
                    "table_entry_bits": p.sum_frac + 1, "sum_width": p.sum_width,
                    "worst_lsb": round(worst, 4), "mean_lsb": round(total / count, 4),
                    "meets_0p51": worst <= 0.51,
                    "row_sum_worst_lsb": sum_worst,
                    "row_sum_worst_over_allowance": round(sum_ratio, 3),
                    "argmax_agree": agree, "argmax_rows": eligible})
    return {"rows": len(rows), "max_len": max_len, "format": dict(FORMAT), "results": out}


def yosys_cells(widths=WIDTHS, max_len=64, timeout=600):
    """Generic cells after ``synth -flatten`` per width choice; None when yosys is missing."""
    yosys = shutil.which("yosys")
    if yosys is None:
        return None
    from gen.emit import render
    cells = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, s, m in widths:
            sections = {"softmax": {"top": "sm_cost", "max_len": max_len, "sum_frac": s,
                                    "recip_bits": m, **FORMAT}}
            (Path(tmp) / "sm_cost.v").write_text(render(parse_config(sections))["sm_cost.v"])
            stat = Path(tmp) / "stat.txt"
            subprocess.run([yosys, "-q", "-p", f"read_verilog sm_cost.v; synth -top sm_cost "
                            f"-flatten; tee -q -o {stat.name} stat"], cwd=tmp, check=True,
                           timeout=timeout, capture_output=True)
            text = stat.read_text()
            number = [line for line in text.splitlines() if "Number of cells" in line]
            cells[label] = int(number[-1].split()[-1]) if number else None
    return cells


def _plot(acc, path):
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed: no plot"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = acc["results"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(res))
    ax.semilogy(xs, [r["worst_lsb"] for r in res], "o-", label="worst |error|")
    ax.semilogy(xs, [r["mean_lsb"] for r in res], "s-", label="mean |error|")
    ax.axhline(0.51, color="grey", linestyle="--", label="0.51 LSB target")
    ax.set_xticks(list(xs), [f"{r['widths']}\nS={r['sum_frac']} M={r['recip_bits']}" for r in res],
                  fontsize=7)
    ax.set_ylabel("error, output LSB")
    ax.set_title(f"softmax INT8 (4 frac) -> 8 frac bits, L_max {acc['max_len']}, {acc['rows']} rows")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _measure(sim_build, rows, tmp, name):
    rows_path = Path(tmp) / f"{name}.json"
    results = Path(tmp) / f"{name}-results.json"
    rows_path.write_text(json.dumps([{"x": [int(v) for v in x]} for x in rows]))
    runner.run(sim_build, "sim.tb.softmax", testcase="measure", seed=1,
               extra_env={"ACCELGEN_SOFTMAX_ROWS": str(rows_path),
                          "ACCELGEN_RESULTS": str(results)})
    return json.loads(results.read_text())


def speed(max_len, sim=None):
    sections = {"softmax": {"top": f"bench_softmax_{max_len}", "max_len": max_len, **FORMAT}}
    t0 = time.perf_counter()
    sim_build = runner.emit_and_build(parse_config(sections), sim=sim)["softmax"]
    build_s = time.perf_counter() - t0
    man = json.loads(Path(sim_build.manifest_path).read_text())
    perf, par = man["performance"], man["parameters"]
    p = golden.SoftmaxParams(max_len=max_len, **FORMAT)
    rng = np.random.default_rng(11)
    P = FORMAT["lanes"]
    min_len = perf["min_row_beats_without_bubbles"] * P
    lat_lengths = sorted({1, P, 16, min_len, 64, max_len})
    out = {"simulator": sim_build.sim, "build_s": round(build_s, 1), "parameters": par,
           "performance": perf, "latency": [], "throughput": []}
    with tempfile.TemporaryDirectory() as tmp:
        got = _measure(sim_build, [golden.random_row(rng, L, p) for L in lat_lengths], tmp, "lat")
        for L, alone in zip(lat_lengths, got["alone"], strict=True):
            out["latency"].append({"L": L, "measured": alone["latency"],
                                   "formula": -(-L // P) + perf["latency_constant"],
                                   "last_output": alone["span"]})
        for L in sorted({min_len - P, min_len, 256, max_len}):
            rows = [golden.random_row(rng, L, p) for _ in range(4)]
            s = _measure(sim_build, rows, tmp, f"tp{L}")["stream"]
            out["throughput"].append({
                "L": L, "rows": 4, "beats": s["beats"], "output_cycles": s["output_cycles"],
                "input_wait_cycles": s["input_wait_cycles"],
                "elements_per_cycle": round(s["beats"] * P / s["output_cycles"], 3)})
    return out


def run(quick=False, sim=None):
    max_len = 256 if quick else 1024
    t0 = time.perf_counter()
    acc = accuracy(max_len, reps=2 if quick else 6)
    acc["seconds"] = round(time.perf_counter() - t0, 1)
    plot = _plot(acc, Path(os.environ.get("ACCELGEN_BENCH_OUT", "bench_out")) / "softmax_error.png")
    cells = None if quick else yosys_cells(
        [(r["widths"], r["sum_frac"], r["recip_bits"]) for r in acc["results"]])
    cost_note = ("skipped with --quick" if quick else "yosys not on PATH" if cells is None else
                 "yosys synth -flatten generic cells, same S and M, L_max 64 (a 40-beat buffer)")
    return {"block": "softmax", "quick": quick, "accuracy": acc, "plot": plot,
            "cells": cells, "cost_note": cost_note, "speed": speed(max_len, sim)}


def format_table(result):
    acc = result["accuracy"]
    f = acc["format"]
    lines = [
        f"softmax accuracy: INT{f['in_width']} ({f['in_frac']} frac) -> {f['out_frac']} frac bits, "
        f"P={f['lanes']}, L_max {acc['max_len']}, {acc['rows']} rows, model vs float64 reference",
        f"{'widths':18} {'S':>3} {'M':>3} {'worst':>8} {'mean':>8} {'<=0.51':>6} {'sum worst':>9} "
        f"{'sum/allow':>9} {'argmax':>11} {'cells':>7}",
    ]
    cells = result["cells"] or {}
    for r in acc["results"]:
        c = cells.get(r["widths"])
        lines.append(
            f"{r['widths']:18} {r['sum_frac']:>3} {r['recip_bits']:>3} {r['worst_lsb']:>8.4f} "
            f"{r['mean_lsb']:>8.4f} {'yes' if r['meets_0p51'] else 'NO':>6} "
            f"{r['row_sum_worst_lsb']:>9} {r['row_sum_worst_over_allowance']:>9.3f} "
            f"{r['argmax_agree']:>5}/{r['argmax_rows']:<5} {c if c is not None else '-':>7}")
    lines.append(f"(errors in output LSB; sum/allow = worst |row sum - 1.0| / (L * 0.5 LSB); cells: "
                 f"{result['cost_note']}; plot: {result['plot']})")
    sp = result["speed"]
    perf = sp["performance"]
    lines.append(f"speed on {sp['simulator']} (build {sp['build_s']} s): latency formula "
                 f"{perf['latency_cycles']} cycles, rows of >= {perf['min_row_beats_without_bubbles']}"
                 f" beats back to back without idle cycles")
    lines.append(f"{'L':>6} {'latency':>8} {'formula':>8} {'last out':>9}")
    for r in sp["latency"]:
        lines.append(f"{r['L']:>6} {r['measured']:>8} {r['formula']:>8} {r['last_output']:>9}")
    lines.append(f"{'L':>6} {'rows':>5} {'beats':>6} {'out cycles':>10} {'in waits':>9} "
                 f"{'elem/cycle':>10}")
    for r in sp["throughput"]:
        lines.append(f"{r['L']:>6} {r['rows']:>5} {r['beats']:>6} {r['output_cycles']:>10} "
                     f"{r['input_wait_cycles']:>9} {r['elements_per_cycle']:>10}")
    return "\n".join(lines)
