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
(first input handshake to first output beat) against the manifest's formula, then sequences of rows of
mixed lengths (:func:`sequences`: attention rows of 64, rows of one beat, the longest row followed by
many short ones, ...) are sent back to back, the output always ready, to count the input's stall
cycles (valid high, ready low), the elements taken per input cycle, and the output's span against
that of an ideal two-pass unit (:func:`ideal_output_cycles`).
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


def _measure(sim_build, rows, tmp, name, alone=True):
    rows_path = Path(tmp) / f"{name}.json"
    results = Path(tmp) / f"{name}-results.json"
    rows_path.write_text(json.dumps([{"x": [int(v) for v in x]} for x in rows]))
    runner.run(sim_build, "sim.tb.softmax", testcase="measure", seed=1,
               extra_env={"ACCELGEN_SOFTMAX_ROWS": str(rows_path),
                          "ACCELGEN_RESULTS": str(results),
                          "ACCELGEN_MEASURE_ALONE": "1" if alone else "0"})
    return json.loads(results.read_text())


def sequences(max_len, lanes, recip_bits, rng):
    """Named row sequences (lengths in elements) for the throughput runs: attention rows of 64,
    rows of one beat, the longest rows back to back, the longest row then rows of the old
    divider's ``M + 3`` beats (76 elements by default) or of one beat, and a random mix."""
    divider = min((recip_bits + 3) * lanes, max_len)
    return {
        "L=64 x 16": [min(64, max_len)] * 16,
        f"L={lanes} (one beat) x 64": [lanes] * 64,
        f"{max_len} x 3": [max_len] * 3,
        f"{max_len}, then {divider} x 6": [max_len] + [divider] * 6,
        f"{max_len}, then {lanes} x {max_len // lanes + 8}": [max_len] + [lanes] * (max_len // lanes
                                                                                    + 8),
        f"{max_len}, {divider} x 6, 64 x 8, {lanes} x 32, {max_len}": (
            [max_len] + [divider] * 6 + [min(64, max_len)] * 8 + [lanes] * 32 + [max_len]),
        "random 1..L_max x 24": [int(n) for n in rng.integers(1, max_len + 1, 24)],
    }


def ideal_output_cycles(beats, constant):
    """First to last output of rows sent back to back without waits when each row's output starts
    as soon as its latency and the previous row's output allow (a two-pass unit cannot start a
    row's output before its last input)."""
    start = end = None
    first_in = 0
    for b in beats:
        s = first_in + b + constant if end is None else max(end + 1, first_in + b + constant)
        start = s if start is None else start
        end = s + b - 1
        first_in += b
    return end - start + 1


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
    lat_lengths = sorted({1, P, 16, 64, 76, max_len})
    out = {"simulator": sim_build.sim, "build_s": round(build_s, 1), "parameters": par,
           "performance": perf, "latency": [], "throughput": []}
    with tempfile.TemporaryDirectory() as tmp:
        got = _measure(sim_build, [golden.random_row(rng, L, p) for L in lat_lengths], tmp, "lat")
        for L, alone in zip(lat_lengths, got["alone"], strict=True):
            out["latency"].append({"L": L, "measured": alone["latency"],
                                   "formula": -(-L // P) + perf["latency_constant"],
                                   "last_output": alone["span"]})
        for n, (name, lengths) in enumerate(sequences(max_len, P, par["recip_bits"], rng).items()):
            rows = [golden.random_row(rng, L, p) for L in lengths]
            s = _measure(sim_build, rows, tmp, f"tp{n}", alone=False)["stream"]
            beats = [-(-L // P) for L in lengths]
            out["throughput"].append({
                "rows": name, "count": len(lengths), "beats": s["beats"],
                "input_cycles": s["input_cycles"], "input_wait_cycles": s["input_wait_cycles"],
                "longest_input_wait": s["longest_input_wait"],
                "elements_per_cycle": round(s["beats"] * P / s["input_cycles"], 3),
                "output_cycles": s["output_cycles"],
                "ideal_output_cycles": ideal_output_cycles(beats, perf["latency_constant"])})
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
                 f"{perf['latency_cycles']} cycles ({perf['latency_parts']}); rows of any length "
                 f"back to back at one beat per cycle")
    lines.append(f"{'L':>6} {'latency':>8} {'formula':>8} {'last out':>9}")
    for r in sp["latency"]:
        lines.append(f"{r['L']:>6} {r['measured']:>8} {r['formula']:>8} {r['last_output']:>9}")
    lines.append(f"{'rows (elements), back to back':44} {'beats':>6} {'in cycles':>9} "
                 f"{'in waits':>8} {'longest':>7} {'elem/cycle':>10} {'out cycles':>10} "
                 f"{'ideal':>6}")
    for r in sp["throughput"]:
        lines.append(f"{r['rows']:44} {r['beats']:>6} {r['input_cycles']:>9} "
                     f"{r['input_wait_cycles']:>8} {r['longest_input_wait']:>7} "
                     f"{r['elements_per_cycle']:>10} {r['output_cycles']:>10} "
                     f"{r['ideal_output_cycles']:>6}")
    lines.append("(elem/cycle: elements taken per input cycle; in waits: cycles with the input valid "
                 "and not ready, the output always ready; ideal: the output span of a two-pass unit "
                 "whose rows start as soon as their own last input allows)")
    return "\n".join(lines)
