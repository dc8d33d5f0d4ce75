"""cocotb bench of the NoC stress top (:mod:`gen.noc_stress`): it only configures the top (seed,
backpressure, enable, stop, test knobs), lets it run, and reads its counters. Traffic, checking and the
watchdog are hardware, so a run costs no Python per cycle.

Environment (from ``tests/test_noc_stress.py``):

ACCELGEN_MANIFEST : the stress top's manifest.
ACCELGEN_STRESS_CYCLES : cycles of saturated injection before ``stop`` (default 20000).
ACCELGEN_STRESS_DRAIN : cycles the drain may take at most (default 20000).
ACCELGEN_STALL : probability of a stalled ejection cycle per node (default 0.3; ``stall / 256``).
ACCELGEN_STRESS_FAULT : ``none`` (default), ``corrupt`` (one flit of node 0 gets a bit flipped halfway)
    or ``stuck`` (node ``hotspot``'s ejection stops for good a quarter of the way).
ACCELGEN_RESULTS : JSON file the figures and counters are written to.
SEED : seed of the traffic and the backpressure.

With no fault, the run must pass :func:`verdict`; with a fault the bench only records, and the pytest side
checks that the fault was caught.
"""

import json
import os
import time

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from sim.golden import noc_stress as golden
from sim.runner import seed_from_env
from sim.tb.streams import load_manifest, start_clock

PERIOD_NS = 10
CHUNK = 1 << 16   # cycles simulated per check of the watchdog while running


def verdict(r):
    """The problems of a run's results ``r`` (empty when it passed): watchdog, drain, errors, drops,
    totals, and every node's counters against :func:`sim.golden.noc_stress.expected_counts`."""
    problems = []
    if r["wd_fired"]:
        problems.append(f"watchdog fired at cycle {r['wd_at']}")
    if not r["drained"]:
        problems.append(f"not drained: {r['in_flight']} flit deliveries owed, generators active "
                        f"{r['active']}, after {r['drain_cycles']} cycles")
    if r["errors_total"] or r["error_any"]:
        bad = {n: (e, k) for n, (e, k) in enumerate(zip(r["errors"], r["err_kinds"], strict=True)) if e or k}
        problems.append(f"checker errors (node: (packets, kinds)): {bad}; kinds bits "
                        f"{r['err_kind_names']}")
    if r["drops"]:
        problems.append(f"{r['drops']} packets dropped as bad by the interfaces")
    if r["tx_copies_total"] != r["rx_packets_total"]:
        problems.append(f"{r['tx_copies_total']} copies sent, {r['rx_packets_total']} received")
    exp = r["expected"]
    for name in ("tx_flits", "tx_mcast", "tx_copies", "rx_packets", "rx_flits"):
        if r[name] != exp[name]:
            diff = [(n, a, b) for n, (a, b) in enumerate(zip(r[name], exp[name], strict=True)) if a != b]
            problems.append(f"{name} differs from the golden model at (node, rtl, golden) "
                            f"{diff[:6]}")
    return problems


async def read_counters(dut, man):
    par = man.parameters
    nodes = par["nodes"]
    r = {name: [] for name in [*par["counters"], "err_kinds"]}
    for n in range(nodes):
        dut.sel.value = n
        await Timer(1, "ns")
        await ReadOnly()
        for name in par["counters"]:
            r[name].append(int(getattr(dut, f"n_{name}").value))
        r["err_kinds"].append(int(dut.n_err_kinds.value))
        await RisingEdge(dut.clk)
    for name in ("in_flight", "cycles", "wd_at", "wd_max", "wd_fired", "active", "error_any",
                 "drops"):
        r[name] = int(getattr(dut, name).value)
    return r


async def run_cycles(dut, cycles):
    """Let ``cycles`` clock cycles pass, in chunks of simulated time (no Python per cycle); stop early
    when the watchdog fires."""
    left = cycles
    while left > 0:
        step = min(left, CHUNK)
        await Timer(step * PERIOD_NS, "ns")
        left -= step
        if int(dut.wd_fired.value):
            break


@cocotb.test()
async def stress(dut):
    man = load_manifest()
    par = man.parameters
    seed = seed_from_env()
    cycles = int(os.environ.get("ACCELGEN_STRESS_CYCLES", "20000"))
    drain_limit = int(os.environ.get("ACCELGEN_STRESS_DRAIN", "20000"))
    stall = float(os.environ.get("ACCELGEN_STALL", "0.3"))
    fault = os.environ.get("ACCELGEN_STRESS_FAULT", "none")
    if fault not in ("none", "corrupt", "stuck"):
        raise ValueError(f"ACCELGEN_STRESS_FAULT = {fault!r}: must be none, corrupt or stuck")
    nodes = par["nodes"]

    dut.enable.value = 0
    dut.stop.value = 0
    dut.corrupt.value = 0
    dut.hold.value = 0
    dut.sel.value = 0
    dut.seed.value = seed & 0xFFFFFFFF
    dut.stall.value = min(255, round(stall * 256))
    await start_clock(dut, PERIOD_NS)
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    wall, cpu = time.perf_counter(), time.process_time()
    dut.enable.value = 1
    if fault == "none":
        await run_cycles(dut, cycles)
    else:
        first = cycles // 2 if fault == "corrupt" else cycles // 4
        await run_cycles(dut, first)
        await RisingEdge(dut.clk)
        if fault == "corrupt":
            dut.corrupt.value = 1
            await RisingEdge(dut.clk)
            dut.corrupt.value = 0
        else:
            dut.hold.value = 1 << par["hotspot"]
        await run_cycles(dut, cycles - first - 1)
    while not int(dut.wd_fired.value) and int(dut.cycles.value) < cycles:
        await RisingEdge(dut.clk)
    await ReadOnly()
    run_cycles_done = int(dut.cycles.value)
    await RisingEdge(dut.clk)
    dut.stop.value = 1
    drained = False
    t0 = run_cycles_done
    while int(dut.cycles.value) - t0 < drain_limit:
        await Timer(64 * PERIOD_NS, "ns")
        await ReadOnly()
        if int(dut.wd_fired.value):
            break
        if int(dut.in_flight.value) == 0 and not int(dut.active.value):
            drained = True
            break
        await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    drain_cycles = int(dut.cycles.value) - t0
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    r = await read_counters(dut, man)
    r.update({
        "seed": seed, "fault": fault, "stall": stall, "nodes": nodes,
        "kx": par["kx"], "ky": par["ky"], "cycles_requested": cycles,
        "injection_cycles": run_cycles_done, "drain_cycles": drain_cycles, "drained": drained,
        "wall_seconds": wall, "cycles_per_second": r["cycles"] / wall if wall else 0,
        "cpu_seconds": cpu, "cycles_per_cpu_second": r["cycles"] / cpu if cpu else 0,
        "err_kind_names": par["err_kinds"], "errors_total": sum(r["errors"]),
        "tx_packets_total": sum(r["tx_packets"]), "tx_copies_total": sum(r["tx_copies"]),
        "rx_packets_total": sum(r["rx_packets"]), "rx_flits_total": sum(r["rx_flits"]),
        "tx_mcast_total": sum(r["tx_mcast"]),
    })
    r["expected"] = golden.expected_counts(
        seed, r["tx_packets"], kx=par["kx"], ky=par["ky"],
        max_packet_flits=par["max_packet_flits"], mcast_256=par["mcast_256"],
        hotspot=par["hotspot"])
    r["accepted_flits_per_node_cycle"] = r["rx_flits_total"] / max(1, r["cycles"]) / nodes
    problems = verdict(r)
    r["problems"] = problems
    if "ACCELGEN_RESULTS" in os.environ:
        with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1)
    dut._log.info(
        "stress %dx%d seed %d: %d cycles (%d injecting, %d draining) in %.1f s = %.0f cycles/s "
        "(%.0f per CPU second); "
        "%d packets sent (%d multicast), %d copies and %d flits delivered, %.3f flits/node/cycle; "
        "longest stall %d cycles; problems: %s", par["kx"], par["ky"], seed, r["cycles"],
        run_cycles_done, drain_cycles, wall, r["cycles_per_second"], r["cycles_per_cpu_second"],
        r["tx_packets_total"],
        r["tx_mcast_total"], r["rx_packets_total"], r["rx_flits_total"],
        r["accepted_flits_per_node_cycle"], r["wd_max"], problems or "none")
    if fault == "none":
        assert not problems, "; ".join(problems)


# Verilator builds of the stress tops: only the top's ports are visible to cocotb (a configuration file
# instead of cocotb's --public-flat-rw, which keeps every net of the mesh and triples the C++), and the
# model's C++ is compiled with OPT_FAST (Verilator's default -Os is slower to compile).
VERILATOR_ARGS = ("--no-public-flat-rw",)
OPT_FAST = "-O1"


def ports_vlt(manifest):
    """A Verilator configuration file making the top's ports (and only them) visible over VPI."""
    top = manifest["top"]
    return "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{port["name"]}"\n' for port in manifest["ports"])


def build(noc, *, name, sim=None, opt_fast=OPT_FAST, **options):
    """Emit the stress top around the mesh of ``noc`` (a ``[noc]`` section dict) and build it; the
    :class:`sim.runner.SimBuild`. Emission goes to a folder keyed by the generator and the options."""
    from gen.config import parse_config
    from gen.emit import manifest_of, to_verilog
    from gen.noc_stress import stress_top
    from sim import runner

    config = parse_config({"noc": dict(noc, top=name)})

    def write(out):
        top = stress_top(config.noc, name=name, **options)
        manifest = manifest_of(top, config)
        (out / f"{name}.v").write_text(to_verilog(top), encoding="utf-8")
        (out / f"{name}.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                          encoding="utf-8")
        (out / f"{name}.vlt").write_text(ports_vlt(manifest), encoding="utf-8")

    out = runner.cached_emission(json.dumps([noc, name, options, "vlt"], sort_keys=True), write,
                                 prefix="stress-")
    if runner.simulator(sim) != "verilator":
        return runner.build(out, name, sim=sim)
    return runner.build(out, name, sim=sim, extra_sources=[out / f"{name}.vlt"],
                        verilator_args=VERILATOR_ARGS,
                        make_vars=[f"OPT_FAST={opt_fast}"] if opt_fast else [])
