"""``accelgen bench noc``: latency against offered load, accepted throughput and saturation of the mesh NoC.

Synthetic traffic (:data:`sim.golden.noc.PATTERNS`: uniform random without self-sends, transpose, bit
complement, hotspot) of packets of ``max_packet_flits`` flits: every sending node starts a packet with
probability ``load / max_packet_flits`` per cycle (a Bernoulli process, into an unbounded source queue).
For each offered load the bench (the ``load_sweep`` test of :mod:`sim.tb.noc`) runs a warm-up, then a
measurement window, then drains the network; it reports

- accepted throughput: flits taken on the ejection streams per sending node per cycle during the
  window (after the warm-up; not the offered load);
- average latency: cycles from a packet's creation (source queueing included) to its last flit's
  delivery, over the packets created in the window;
- per curve: the peak accepted throughput, as a fraction of the pattern's channel-load bound under
  dimension-order routing (:func:`sim.golden.noc.ideal_throughput`; for uniform traffic the bisection
  bound, 0.9375 flits/node/cycle on 4 x 4 and 0.492 on 8 x 8); the saturation point, the first offered
  load whose accepted throughput falls below 95% of it while the latency exceeds 3 times that of the
  lowest load; and the lowest accepted throughput at the
  offered loads above the peak's, as a fraction of the peak (no collapse: at least 95%).

Offered loads are fractions of the pattern's bound, so each curve reaches beyond saturation. Every
delivery is also checked against the golden model (in order per source and destination, payload intact).

Sizes. ``--quick``: the 4 x 4 mesh of the tests (2 VCs of 4 flits), uniform and transpose traffic, three
loads each. Full: 4 x 4
and 8 x 8 meshes, 1, 2 and 4 VCs of 8 flits, all four patterns (8 x 8 with fewer loads: 64 routers
simulate slowly). The environment can narrow the full run: ``ACCELGEN_NOC_BENCH_MESHES`` (e.g. ``4,8``),
``ACCELGEN_NOC_BENCH_VCS`` (``1,2,4``), ``ACCELGEN_NOC_BENCH_PATTERNS`` (``uniform,hotspot``),
``ACCELGEN_NOC_BENCH_FRACTIONS`` (offered loads as fractions of each pattern's bound, ``0.5,1.1``).

Outputs (in ``out_dir``: ``bench_out/``, or the folder of ``--json``): ``noc_latency.csv`` (one row per
point), ``noc_table.txt`` (the table printed) and ``noc_latency.png`` (latency-load curves, one panel per
mesh and pattern, one curve per VC count).
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from gen.config import parse_config
from sim import runner
from sim.golden import noc as golden

__all__ = ["run", "format_table", "bench_config", "plan", "BISECTION_BOUND_4X4", "summarize"]

BISECTION_BOUND_4X4 = 0.9375
FLIT_WIDTH, VC_DEPTH, PACKET_FLITS = 8, 8, 4

# Offered loads as fractions of the pattern's channel-load bound.
FRACTIONS = {"quick": (0.2, 0.7, 1.1), 4: (0.2, 0.5, 0.7, 0.85, 1.0, 1.15), 8: (0.3, 0.7, 1.1)}
WINDOWS = {"quick": "100,300", 4: "200,600", 8: "150,450"}
# The quick size is the 4 x 4 mesh of the NoC tests (tests/test_noc.py, MESH_4X4), so that a test run
# builds it once: 2 VCs of 4 flits.
QUICK_CONFIG = {"noc": {"top": "noc_4x4", "kx": 4, "ky": 4, "flit_width": 8, "vcs": 2, "vc_depth": 4,
                        "max_packet_flits": 4}}


def bench_config(k, vcs):
    return {"noc": {"top": f"bench_noc_{k}x{k}_{vcs}vc", "kx": k, "ky": k, "flit_width": FLIT_WIDTH,
                    "vcs": vcs, "vc_depth": VC_DEPTH, "max_packet_flits": PACKET_FLITS}}


def _env_list(name, default, cast=str):
    text = os.environ.get(name)
    return tuple(cast(v) for v in text.split(",")) if text else default


def plan(quick):
    """``[(configuration sections, patterns, load fractions, window)]`` of a run."""
    if quick:
        return [(QUICK_CONFIG, ("uniform", "transpose"), FRACTIONS["quick"], WINDOWS["quick"])]
    meshes = _env_list("ACCELGEN_NOC_BENCH_MESHES", (4, 8), int)
    vcs_list = _env_list("ACCELGEN_NOC_BENCH_VCS", (1, 2, 4), int)
    patterns = _env_list("ACCELGEN_NOC_BENCH_PATTERNS", golden.PATTERNS)
    return [(bench_config(k, v), patterns,
             _env_list("ACCELGEN_NOC_BENCH_FRACTIONS", FRACTIONS[k], float), WINDOWS[k])
            for k in meshes for v in vcs_list]


def summarize(points, bound):
    """Peak accepted throughput, its fraction of ``bound``, the saturation point (accepted below 95%
    of offered and latency above 3 times the lowest load's: window noise alone does not count), and
    the lowest accepted throughput at offered loads above the peak's, as a fraction of the peak (1
    when the peak is at the highest load)."""
    top = max(points, key=lambda pt: pt["accepted"])
    peak = top["accepted"]
    base = min(points, key=lambda pt: pt["offered"])["latency"] or 0
    saturation = next((pt["offered"] for pt in points if pt["accepted"] < 0.95 * pt["offered"]
                       and (pt["latency"] or 0) > 3 * base), None)
    beyond = [pt["accepted"] for pt in points if pt["offered"] > top["offered"]]
    return {"peak_accepted": peak, "bound": bound, "peak_fraction_of_bound": peak / bound,
            "saturation_offered": saturation,
            "beyond_saturation_fraction_of_peak": min(beyond, default=peak) / peak}


def run(quick=False, sim=None, out_dir="bench_out"):
    if sim is None and not os.environ.get("SIM") and shutil.which("iverilog"):
        sim = "icarus"  # builds in seconds; a 4 x 4 mesh takes minutes of C++ for Verilator
    curves = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for sections, patterns, fractions, window in plan(quick):
            config = parse_config(sections)
            k, vcs = config.noc.kx, config.noc.vcs
            t0 = time.perf_counter()
            sim_build = runner.emit_and_build(config, sim=sim)["noc"]
            build_s = time.perf_counter() - t0
            bounds = {p: golden.ideal_throughput(p, k, k) for p in patterns}
            points = [[p, round(f * bounds[p], 4)] for p in patterns for f in fractions]
            results_path = Path(tmp) / "results.json"
            t0 = time.perf_counter()
            runner.run(sim_build, "sim.tb.noc", testcase="load_sweep", seed=1,
                       extra_env={"ACCELGEN_NOC_POINTS": json.dumps(points),
                                  "ACCELGEN_NOC_WINDOW": window,
                                  "ACCELGEN_RESULTS": str(results_path)})
            measured = json.loads(results_path.read_text())
            run_s = time.perf_counter() - t0
            for p in patterns:
                pts = [pt for pt in measured if pt["pattern"] == p]
                curves.append({
                    "mesh": f"{k}x{k}", "vcs": vcs, "vc_depth": config.noc.vc_depth,
                    "packet_flits": config.noc.max_packet_flits,
                    "pattern": p, "window_cycles": window, "points": pts,
                    **summarize(pts, bounds[p]),
                    "build_s": round(build_s, 1), "run_s": round(run_s / len(patterns), 1),
                })
    result = {"block": "noc", "quick": quick, "simulator": sim_build.sim, "curves": curves,
              "wall_s": round(time.perf_counter() - started, 1)}
    _write_outputs(result, Path(out_dir))
    return result


def format_table(result):
    lines = [f"NoC on {result['simulator']} ({result['wall_s']} s): offered and accepted in flits per "
             "sending node per cycle, latency in cycles from a packet's creation to its last flit's "
             "delivery"]
    for c in result["curves"]:
        lines.append(f"{c['mesh']} {c['pattern']}, {c['vcs']} VC x {c['vc_depth']} flits, packets of "
                     f"{c['packet_flits']} flits (warm-up,window {c['window_cycles']}; "
                     f"build {c['build_s']} s, run {c['run_s']} s)")
        lines.append(f"  {'offered':>8} {'accepted':>9} {'latency':>9} {'packets':>8}")
        for pt in c["points"]:
            lat = "-" if pt["latency"] is None else f"{pt['latency']:.1f}"
            lines.append(f"  {pt['offered']:>8.3f} {pt['accepted']:>9.3f} {lat:>9} {pt['packets']:>8}")
        sat = "not reached" if c["saturation_offered"] is None else f"{c['saturation_offered']:.3f}"
        lines.append(f"  peak accepted {c['peak_accepted']:.3f} = {100 * c['peak_fraction_of_bound']:.0f}% "
                     f"of the bound {c['bound']:.4f}; saturation at offered {sat}; beyond the peak at least "
                     f"{100 * c['beyond_saturation_fraction_of_peak']:.0f}% of the peak")
    lines.append("")
    lines.append("mesh  pattern    VCs  bound   peak   of bound  saturation  beyond peak: min/peak")
    for c in result["curves"]:
        sat = "-" if c["saturation_offered"] is None else f"{c['saturation_offered']:.3f}"
        lines.append(f"{c['mesh']:<5} {c['pattern']:<10} {c['vcs']:>3}  {c['bound']:.3f}  "
                     f"{c['peak_accepted']:.3f}  {100 * c['peak_fraction_of_bound']:>7.0f}%  {sat:>10}  "
                     f"{100 * c['beyond_saturation_fraction_of_peak']:>21.0f}%")
    return "\n".join(lines)


def _csv(result):
    rows = ["mesh,pattern,vcs,offered,accepted,latency,packets"]
    for c in result["curves"]:
        for pt in c["points"]:
            lat = "" if pt["latency"] is None else f"{pt['latency']:.2f}"
            rows.append(f"{c['mesh']},{c['pattern']},{c['vcs']},{pt['offered']},"
                        f"{pt['accepted']:.4f},{lat},{pt['packets']}")
    return "\n".join(rows) + "\n"


def _write_outputs(result, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "noc_latency.csv").write_text(_csv(result))
    (out_dir / "noc_table.txt").write_text(format_table(result) + "\n")
    result["csv"] = str(out_dir / "noc_latency.csv")
    result["plot"] = _plot(result, out_dir / "noc_latency.png")


def _plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meshes = sorted({c["mesh"] for c in result["curves"]}, key=lambda m: int(m.split("x")[0]))
    patterns = [p for p in golden.PATTERNS if any(c["pattern"] == p for c in result["curves"])]
    fig, axes = plt.subplots(len(meshes), len(patterns), squeeze=False,
                             figsize=(3.6 * len(patterns), 3.2 * len(meshes)))
    for r, mesh in enumerate(meshes):
        for col, pattern in enumerate(patterns):
            ax = axes[r][col]
            for c in result["curves"]:
                if c["mesh"] != mesh or c["pattern"] != pattern:
                    continue
                pts = [pt for pt in c["points"] if pt["latency"] is not None]
                ax.plot([pt["offered"] for pt in pts], [pt["latency"] for pt in pts], "o-",
                        label=f"{c['vcs']} VC")
                ax.axvline(c["bound"], color="grey", linestyle=":", linewidth=1)
            if not ax.lines:
                ax.set_visible(False)
                continue
            ax.set_yscale("log")
            ax.set_title(f"{mesh} {pattern}", fontsize=9)
            ax.set_xlabel("offered (flits/node/cycle)", fontsize=8)
            ax.set_ylabel("latency (cycles)", fontsize=8)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
