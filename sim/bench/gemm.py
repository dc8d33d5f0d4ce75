"""``accelgen bench gemm``: cycles and utilization of the GEMM engine in RTL simulation.

For every mode (the integer and the FP8 modes, all built into one engine), one GEMM of size M = N = K runs alone (no idle cycles on
the inputs, no backpressure) and the bench counts the cycles from the first accepted input (the command's
handshake) to the last result beat. The ideal is ``M * N * K / (R * C * MACs per PE per cycle)``; what is
left over is the fixed cost of starting and ending: loading the first weight tile (R cycles), the pipeline
(``pipeline_depth`` in the manifest) and handshake cycles, reported as ``overhead``.

The full size is M = N = K = 256 on a 16 x 16 array; ``--quick`` uses M = N = K = 64 on a 4 x 4 array.
Every result is also checked against the golden model.

The full-size engine with all five modes is about 59 MB of Verilated C++: at gcc's ``-Os`` (Verilator's
default) it did not compile in 25 minutes, so the full bench compiles it with ``-O0`` (``FULL_MAKE_VARS``;
about 10 minutes on a loaded 2-core machine). The simulation is dominated by the cocotb drivers either way.
"""

import json
import tempfile
import time
from pathlib import Path

from gen.config import parse_config
from sim import runner
from sim.golden import gemm as golden

__all__ = ["run", "format_table", "bench_config"]


def bench_config(quick):
    rows = cols = 4 if quick else 16
    size = 64 if quick else 256
    return size, {"gemm": {"top": f"bench_gemm_{rows}x{cols}", "rows": rows, "cols": cols,
                           "max_m": size, "max_n": size, "max_k": size, "acc_width": 32,
                           "out_fifo_depth": 64}}


FULL_MAKE_VARS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")


def run(quick=False, sim=None):
    size, sections = bench_config(quick)
    config = parse_config(sections)
    g = config.gemm
    t0 = time.perf_counter()
    sim_build = runner.emit_and_build(config, sim=sim,
                                      make_vars=() if quick else FULL_MAKE_VARS)["gemm"]
    build_s = time.perf_counter() - t0
    cases = [{"mode": mode, "m": size, "n": size, "k": size, "kind": "uniform"} for mode in g.modes]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            cases_path = Path(tmp) / "cases.json"
            results_path = Path(tmp) / "results.json"
            cases_path.write_text(json.dumps([case]))
            t0 = time.perf_counter()
            runner.run(sim_build, "sim.tb.gemm", testcase="measure", seed=1,
                       extra_env={"ACCELGEN_GEMM_CASES": str(cases_path),
                                  "ACCELGEN_RESULTS": str(results_path)})
            wall = time.perf_counter() - t0
            (result,) = json.loads(results_path.read_text())
            ideal = golden.ideal_cycles(size, size, size, case["mode"], g.rows, g.cols)
            rows.append({
                "mode": case["mode"], "m": size, "n": size, "k": size,
                "cycles": result["cycles"], "ideal_cycles": ideal,
                "utilization": ideal / result["cycles"],
                "overhead_cycles": result["cycles"] - ideal,
                "wall_s": round(wall, 2),
            })
    manifest = json.loads(Path(sim_build.manifest_path).read_text())
    return {
        "block": "gemm", "quick": quick, "simulator": sim_build.sim,
        "array": f"{g.rows}x{g.cols}", "pipeline_depth": manifest["performance"]["pipeline_depth"],
        "first_weight_tile_cycles": g.rows, "build_s": round(build_s, 1), "results": rows,
    }


def format_table(result):
    lines = [
        f"GEMM engine {result['array']} on {result['simulator']} "
        f"(pipeline depth {result['pipeline_depth']} cycles, first weight tile "
        f"{result['first_weight_tile_cycles']} cycles; build {result['build_s']} s)",
        f"{'mode':8} {'M=N=K':>6} {'cycles':>9} {'ideal':>9} {'util':>8} {'overhead':>9} {'wall s':>7}",
    ]
    for r in result["results"]:
        lines.append(f"{r['mode']:8} {r['m']:>6} {r['cycles']:>9} {r['ideal_cycles']:>9.0f} "
                     f"{100 * r['utilization']:>7.2f}% {r['overhead_cycles']:>9.0f} {r['wall_s']:>7}")
    return "\n".join(lines)
