"""``accelgen bench noc-stress``: the mesh at saturation for a long time, with the synthesizable traffic
generators, checkers and watchdog of :mod:`gen.noc_stress`.

Every run mixes uniform random, transpose and hotspot traffic with 20% multicast, random packet lengths,
every node injecting at saturation and 30% random ejection backpressure; then injection stops and the
network must drain. A run passes when :func:`sim.tb.noc_stress.verdict` finds nothing: the watchdog
(1000 cycles without a beat taken while deliveries are owed) never fired, the network drained, no checker
error, no drop, and every node's counts equal the numpy model's.

Full size: 4 x 4 for 10**6 cycles and 8 x 8 for 10**5 cycles (the 8 x 8 mesh reduced to 1 virtual channel
3-flit buffers and 2-flit packets: its Verilog is about 370k lines, and emission plus Verilator build take
about 8 CPU-minutes). ``--quick``: 2 x 2 for 2 * 10**4 cycles. The 2 x 2 and 4 x 4 runs are also tests
(``tests/test_noc_stress.py``); the 8 x 8 run is only here, beyond the test suite's time budget.
"""

import json
import tempfile
import time
from pathlib import Path

from sim import runner
from sim.tb import noc_stress as tb

__all__ = ["run", "format_table", "run_stress", "STRESS_2X2", "STRESS_4X4", "STRESS_8X8"]

# flit_width 16 carries the 16-bit sequence number in a head flit.
STRESS_2X2 = {"kx": 2, "ky": 2, "flit_width": 16, "vcs": 2, "vc_depth": 4, "max_packet_flits": 4}
STRESS_4X4 = {"kx": 4, "ky": 4, "flit_width": 16, "vcs": 2, "vc_depth": 4, "max_packet_flits": 4}
# The 8 x 8 mesh is reduced (1 virtual channel, packets of up to 2 flits, buffers of 3: the least one
# VC at 1 flit per cycle per link allows) to keep its emission and Verilator build to minutes.
STRESS_8X8 = {"kx": 8, "ky": 8, "flit_width": 16, "vcs": 1, "vc_depth": 3, "max_packet_flits": 2}

_BUILDS = {}


def build_stress(noc):
    key = json.dumps(noc, sort_keys=True)
    if key not in _BUILDS:
        _BUILDS[key] = tb.build(noc, name=f"noc_stress_{noc['kx']}x{noc['ky']}", sim="verilator")
    return _BUILDS[key]


def run_stress(noc, cycles, seed, out_dir, fault="none", **env):
    """One stress run of ``cycles`` saturated cycles; the results dict of :mod:`sim.tb.noc_stress`
    (``problems`` lists what failed)."""
    sim_build = build_stress(noc)
    out = Path(out_dir) / f"stress_{noc['kx']}x{noc['ky']}_{fault}.json"
    runner.run(sim_build, "sim.tb.noc_stress", testcase="stress", seed=seed,
               extra_env={"ACCELGEN_STRESS_CYCLES": str(cycles), "ACCELGEN_RESULTS": str(out),
                          "ACCELGEN_STRESS_FAULT": fault, **{k: str(v) for k, v in env.items()}})
    result = json.loads(out.read_text())
    print(f"{noc['kx']}x{noc['ky']} fault={fault} seed={seed}: {result['cycles']} cycles "
          f"({result['injection_cycles']} injecting, {result['drain_cycles']} draining) in "
          f"{result['wall_seconds']:.1f} s = {result['cycles_per_second']:.0f} cycles/s "
          f"({result['cycles_per_cpu_second']:.0f} per CPU second); "
          f"{result['tx_packets_total']} packets ({result['tx_mcast_total']} multicast), "
          f"{result['rx_packets_total']} copies delivered, "
          f"{result['accepted_flits_per_node_cycle']:.3f} flits/node/cycle, longest stall "
          f"{result['wd_max']} cycles; problems: {result['problems'] or 'none'}")
    return result


def run(quick=False, sim=None):
    if sim not in (None, "verilator"):
        raise ValueError("the NoC stress bench runs on Verilator only (Icarus: about 60 cycles/s)")
    seed = runner.seed_from_env(default=1)
    plan = [(STRESS_2X2, 20_000)] if quick else [(STRESS_4X4, 1_000_000), (STRESS_8X8, 100_000)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for noc, cycles in plan:
            t0 = time.perf_counter()
            build_stress(noc)
            build_s = time.perf_counter() - t0
            r = run_stress(noc, cycles, seed, tmp)
            rows.append({
                "mesh": f"{noc['kx']}x{noc['ky']}", "noc": noc, "seed": seed,
                "cycles": r["cycles"], "injection_cycles": r["injection_cycles"],
                "drain_cycles": r["drain_cycles"], "packets": r["tx_packets_total"],
                "multicast": r["tx_mcast_total"], "copies_delivered": r["rx_packets_total"],
                "accepted_flits_per_node_cycle": r["accepted_flits_per_node_cycle"],
                "longest_stall": r["wd_max"], "watchdog_fired": r["wd_fired"], "drained": r["drained"],
                "problems": r["problems"], "passed": not r["problems"],
                "build_s": round(build_s, 1), "run_s": round(r["wall_seconds"], 1),
            })
    return {"block": "noc-stress", "quick": quick, "simulator": "verilator", "runs": rows}


def format_table(result):
    lines = ["NoC stress (saturation, uniform/transpose/hotspot + 20% multicast, 30% backpressure)",
             f"{'mesh':5} {'cycles':>9} {'drain':>6} {'packets':>9} {'mcast':>8} {'copies':>9} "
             f"{'flits/n/c':>9} {'stall':>5} {'result':>6} {'build s':>8} {'run s':>7}"]
    for r in result["runs"]:
        lines.append(f"{r['mesh']:5} {r['injection_cycles']:>9} {r['drain_cycles']:>6} {r['packets']:>9} "
                     f"{r['multicast']:>8} {r['copies_delivered']:>9} "
                     f"{r['accepted_flits_per_node_cycle']:>9.3f} {r['longest_stall']:>5} "
                     f"{'pass' if r['passed'] else 'FAIL':>6} {r['build_s']:>8} {r['run_s']:>7}")
        if r["problems"]:
            lines.extend(f"  {p}" for p in r["problems"])
    return "\n".join(lines)
