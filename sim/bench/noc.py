"""``accelgen bench noc``: latency against offered load, and accepted throughput, of the mesh NoC.

Uniform random unicast traffic without self-sends: every node starts a packet of ``max_packet_flits``
flits with probability ``load / max_packet_flits`` per cycle (a Bernoulli process, into an unbounded
source queue), to a destination drawn uniformly among the other nodes. For each offered load the
bench (the ``load_sweep`` test of :mod:`sim.tb.noc`) runs a warm-up, then a measurement window, then
drains the network; it reports

- accepted throughput: flits taken on the ejection streams per node per cycle during the window;
- average latency: cycles from a packet's creation (source queueing included) to its last flit's
  delivery, over the packets created in the window.

Every delivery is also checked against the golden model (in order per source and destination, payload
intact). The reference figure is the bisection bound the issue quotes for uniform random traffic
without self-sends on a 4 x 4 mesh, 0.9375 flits/node/cycle.

The quick size is one 4 x 4 mesh with 2 virtual channels at six loads; the full size sweeps 1, 2 and 4
virtual channels of 8 flits. Not measured here (see the report): transpose, bit-complement and hotspot
patterns, the 8 x 8 mesh, a PNG plot, and the 10^6-cycle stress.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from gen.config import parse_config
from sim import runner

__all__ = ["run", "format_table", "bench_configs", "BISECTION_BOUND_4X4"]

BISECTION_BOUND_4X4 = 0.9375


def bench_configs(quick):
    if quick:
        return [{"noc": {"top": "noc_4x4", "kx": 4, "ky": 4, "flit_width": 8, "vcs": 2,
                         "vc_depth": 4, "max_packet_flits": 4}}]
    return [{"noc": {"top": f"bench_noc_4x4_{v}vc", "kx": 4, "ky": 4, "flit_width": 8, "vcs": v,
                     "vc_depth": 8, "max_packet_flits": 4}} for v in (1, 2, 4)]


def run(quick=False, sim=None):
    if sim is None and not os.environ.get("SIM") and shutil.which("iverilog"):
        sim = "icarus"  # builds in seconds; a 4 x 4 mesh takes minutes of C++ for Verilator
    loads = [0.1, 0.2, 0.3, 0.4, 0.5, 0.7] if quick else [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    window = "200,600" if quick else "300,1000"
    curves = []
    with tempfile.TemporaryDirectory() as tmp:
        for sections in bench_configs(quick):
            config = parse_config(sections)
            t0 = time.perf_counter()
            sim_build = runner.emit_and_build(config, sim=sim)["noc"]
            build_s = time.perf_counter() - t0
            results_path = Path(tmp) / "results.json"
            t0 = time.perf_counter()
            runner.run(sim_build, "sim.tb.noc", testcase="load_sweep", seed=1,
                       extra_env={"ACCELGEN_NOC_LOADS": json.dumps(loads),
                                  "ACCELGEN_NOC_WINDOW": window,
                                  "ACCELGEN_RESULTS": str(results_path)})
            points = json.loads(results_path.read_text())
            peak = max(pt["accepted"] for pt in points)
            curves.append({
                "mesh": f"{config.noc.kx}x{config.noc.ky}", "vcs": config.noc.vcs,
                "vc_depth": config.noc.vc_depth, "packet_flits": config.noc.max_packet_flits,
                "points": points, "peak_accepted": peak,
                "peak_fraction_of_bisection": peak / BISECTION_BOUND_4X4,
                "build_s": round(build_s, 1), "run_s": round(time.perf_counter() - t0, 1),
            })
    return {"block": "noc", "quick": quick, "traffic": "uniform random, no self-sends",
            "window_cycles": window, "curves": curves, "simulator": sim_build.sim}


def format_table(result):
    lines = [f"NoC on {result['simulator']}: {result['traffic']}; warm-up,window cycles "
             f"{result['window_cycles']}"]
    for c in result["curves"]:
        lines.append(f"{c['mesh']} mesh, {c['vcs']} VC x {c['vc_depth']} flits, packets of "
                     f"{c['packet_flits']} flits (build {c['build_s']} s, run {c['run_s']} s)")
        lines.append(f"  {'offered':>8} {'accepted':>9} {'latency':>9} {'packets':>8}")
        for pt in c["points"]:
            lat = "-" if pt["latency"] is None else f"{pt['latency']:.1f}"
            lines.append(f"  {pt['offered']:>8.2f} {pt['accepted']:>9.3f} {lat:>9} "
                         f"{pt['packets']:>8}")
        lines.append(f"  peak accepted {c['peak_accepted']:.3f} flits/node/cycle = "
                     f"{100 * c['peak_fraction_of_bisection']:.0f}% of the bisection bound "
                     f"{BISECTION_BOUND_4X4}")
    lines.append("CSV: mesh,vcs,offered,accepted,latency")
    for c in result["curves"]:
        for pt in c["points"]:
            lines.append(f"{c['mesh']},{c['vcs']},{pt['offered']},{pt['accepted']:.4f},"
                         f"{'' if pt['latency'] is None else round(pt['latency'], 2)}")
    return "\n".join(lines)
