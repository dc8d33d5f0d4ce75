"""``accelgen bench scale``: how emission, Verilog size, simulator build and simulation grow with the
design.

GEMM engines of 8 x 8, 16 x 16, 32 x 32 and 64 x 64 PEs with all five modes, and meshes of 4 x 4 and
8 x 8 routers with 2 VCs (``--quick``: GEMM 8 x 8 and 16 x 16, mesh 4 x 4). Per design: emission time
(elaboration, conversion and Yosys, in this process), Verilog lines and ``module`` definitions of the
top's file, the simulator build time from an empty build folder, and simulated cycles per second on a
short run of :mod:`sim.tb.scale` (random inputs every cycle). A table, JSON and ``scale.png`` (time
against PEs or routers).
"""

import json
import os
import tempfile
import time
from pathlib import Path

from gen.config import parse_config
from gen.emit import render
from sim import runner

ALL_MODES = ["int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2"]
FULL = [("gemm", 8), ("gemm", 16), ("gemm", 32), ("gemm", 64), ("noc", 4), ("noc", 8)]
QUICK = [("gemm", 8), ("gemm", 16), ("noc", 4)]


def config_of(kind, n):
    """The configuration of one design of the bench."""
    if kind == "gemm":
        return parse_config({"gemm": {"top": f"scale_gemm_{n}x{n}", "rows": n, "cols": n,
                                      "modes": ALL_MODES, "max_m": 64, "max_n": 4 * n,
                                      "max_k": 4 * n}})
    return parse_config({"noc": {"top": f"scale_noc_{n}x{n}", "kx": n, "ky": n, "vcs": 2,
                                 "vc_depth": 4, "max_packet_flits": 4}})


def measure(kind, n, *, sim=None, build=True, cycles=500):
    """The figures of one design (see the module docstring)."""
    cfg = config_of(kind, n)
    top = cfg.blocks[kind].top
    print(f"scale: emitting {kind} {n} x {n} ...", flush=True)
    t0 = time.perf_counter()
    files = render(cfg)
    emit_s = time.perf_counter() - t0
    text = files[f"{top}.v"]
    manifest = json.loads(files[f"{top}.json"])
    row = {"design": f"{kind} {n}x{n}", "kind": kind, "size": n,
           "instances": n * n, "emit_s": round(emit_s, 2), "lines": text.count("\n"),
           "modules": sum(1 for line in text.splitlines() if line.startswith("module ")),
           "distinct": len(manifest["hierarchy"])}
    if not build:
        return row
    with tempfile.TemporaryDirectory(prefix="accelgen-scale-") as tmp:
        src = Path(tmp) / "rtl"
        src.mkdir()
        for name, body in files.items():
            (src / name).write_text(body, encoding="utf-8")
        old = os.environ.get("ACCELGEN_SIM_BUILD")
        os.environ["ACCELGEN_SIM_BUILD"] = str(Path(tmp) / "build")
        try:
            print(f"scale: building {kind} {n} x {n} ...", flush=True)
            t0 = time.perf_counter()
            sim_build = runner.build(src, top, sim=sim)
            row["build_s"] = round(time.perf_counter() - t0, 1)
            row["simulator"] = sim_build.sim
            results = Path(tmp) / "speed.json"
            runner.run(sim_build, "sim.tb.scale", seed=1,
                       extra_env={"ACCELGEN_SCALE_CYCLES": str(cycles),
                                  "ACCELGEN_RESULTS": str(results)})
            got = json.loads(results.read_text())
            row["cycles_per_s"] = round(got["cycles"] / got["seconds"], 1)
        finally:
            if old is None:
                os.environ.pop("ACCELGEN_SIM_BUILD", None)
            else:
                os.environ["ACCELGEN_SIM_BUILD"] = old
    return row


def _plot(rows, path):
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed: no plot"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, label in (("gemm", "GEMM (PEs)"), ("noc", "mesh (routers)")):
        pts = [r for r in rows if r["kind"] == kind]
        if not pts:
            continue
        xs = [r["instances"] for r in pts]
        ax.loglog(xs, [r["emit_s"] for r in pts], "o-", label=f"{label}: emission")
        if all("build_s" in r for r in pts):
            ax.loglog(xs, [r["build_s"] for r in pts], "s--", label=f"{label}: simulator build")
    ax.set_xlabel("instances")
    ax.set_ylabel("seconds")
    ax.set_title("accelgen: emission and build time against size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def run(quick=False, sim=None, out_dir="bench_out"):
    rows = [measure(kind, n, sim=sim) for kind, n in (QUICK if quick else FULL)]
    plot = _plot(rows, Path(out_dir) / "scale.png")
    return {"block": "scale", "quick": quick, "designs": rows, "plot": plot}


def format_table(result):
    lines = [f"{'design':12} {'emit s':>7} {'lines':>8} {'modules':>7} {'build s':>8} "
             f"{'cycles/s':>9}"]
    for r in result["designs"]:
        lines.append(f"{r['design']:12} {r['emit_s']:>7} {r['lines']:>8} {r['modules']:>7} "
                     f"{r.get('build_s', '-'):>8} {r.get('cycles_per_s', '-'):>9}")
    lines.append(f"(GEMM: all five modes; mesh: 2 VCs; build from an empty folder on "
                 f"{result['designs'][0].get('simulator', '-')}; plot: {result['plot']})")
    return "\n".join(lines)
