"""``accelgen bench qor``: accelgen's blocks and the designs a user compares them with, in one
standard-cell flow, as ratios to those peers.

Every design goes through :func:`gen.synth_asic.synthesize` (Yosys ``abc`` to the OSU 0.18 um cells,
buffered and sized for the period, ``stat``-style area from the Liberty file, OpenSTA) with the same
SDC: the one ``accelgen emit`` writes for the default ``[flow]`` (10 ns clock, inputs and outputs
given 20 % of the period outside the block, reset a false path), made from each design's own ports.
Two periods are given: the SDC's minimum period (all paths, I/O delays included) and the
register-to-register one (the core of the block, as it runs between registers of its neighbours).

Designs:

``hand``
    References written here in a few lines of Verilog: an INT8 multiply-accumulate into a 32-bit
    accumulator, and a weight-stationary INT8 PE with two weight banks (the structure of
    :class:`gen.pe.MixedPE` in INT8), each as ``acc + a * w`` and with the 16-bit product's sign
    extension written out (Yosys widens every partial product of ``a * w`` to the sum's width in the
    first form).
``pe``
    :class:`gen.pe.MixedPE` with a 32-bit partial sum: INT8 only, INT8 + INT4 + W4A8, and all five
    modes (the FP8 modes need a 65-bit Kulisch sum). Peer: the best hand-written WS PE (INT8), the
    INT8 PE (the others).
``router``
    :class:`gen.router.Router`, the module every router of a 4 x 4 mesh instantiates (5 ports, its
    position as inputs, as pymtl3-net's; YX routing, 32-bit flits, 4 flits per VC, 4-flit packets)
    with 1 and 2 VCs, and with 4 VCs unpipelined and pipelined (``pipelined``: VC allocation and
    switch allocation in separate stages). Peers: pymtl3-net's ``MeshRouterRTL`` and
    ``TorusRouterRTL`` (:mod:`sim.bench.pymtl3_peers`, when ``pymtl3-net`` is installed:
    ``pip install 'accelgen[qor]'``).
``softmax``
    :class:`gen.softmax.Softmax` with P = 1 and P = 4 lanes, rows up to 64 elements, its row buffer
    in flip-flops, and P = 1 with the buffer as an SRAM macro (black box, area model of
    :mod:`gen.synth_asic`).

Memories are flip-flops everywhere else too (the figures are logic and registers, as the
references are).

Every accelgen block's period is also given as a multiple of the INT8 PE's (a tile runs at one
clock). ``--quick`` measures the hand-written PEs, the INT8 and integer PEs, the 1-VC router and
pymtl3-net's mesh router.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from gen import synth_asic

__all__ = ["run", "format_table", "HAND"]

HAND = {
    "mac": ("INT8 MAC, 8 x 8 -> 32-bit accumulator, `acc + a * w`", """
module hand_mac(input clk, input rst, input signed [7:0] a, input signed [7:0] w,
                output reg signed [31:0] acc);
  always @(posedge clk) acc <= rst ? 32'sd0 : acc + a * w;
endmodule
"""),
    "mac_sext": ("INT8 MAC, the product's sign extension written out", """
module hand_mac_sext(input clk, input rst, input signed [7:0] a, input signed [7:0] w,
                     output reg signed [31:0] acc);
  wire signed [15:0] p = a * w;
  always @(posedge clk) acc <= rst ? 32'sd0 : acc + {{16{p[15]}}, p};
endmodule
"""),
    "ws_pe": ("WS INT8 PE, two weight banks, `ps + a * w`", """
module hand_ws_pe(input clk, input rst, input signed [7:0] a_i, input bank_i, input [7:0] w_data,
                  input [1:0] w_we, input signed [31:0] ps_i, output reg signed [7:0] a_o,
                  output reg bank_o, output reg signed [31:0] ps_o);
  reg signed [7:0] w0, w1;
  wire signed [7:0] w = bank_i ? w1 : w0;
  always @(posedge clk) begin
    if (w_we[0]) w0 <= w_data;
    if (w_we[1]) w1 <= w_data;
    a_o <= a_i;
    bank_o <= bank_i;
    ps_o <= ps_i + a_i * w;
  end
endmodule
"""),
    "ws_pe_sext": ("WS INT8 PE, the product's sign extension written out", """
module hand_ws_pe_sext(input clk, input rst, input signed [7:0] a_i, input bank_i,
                       input [7:0] w_data, input [1:0] w_we, input signed [31:0] ps_i,
                       output reg signed [7:0] a_o, output reg bank_o,
                       output reg signed [31:0] ps_o);
  reg signed [7:0] w0, w1;
  wire signed [7:0] w = bank_i ? w1 : w0;
  wire signed [15:0] p = a_i * w;
  always @(posedge clk) begin
    if (w_we[0]) w0 <= w_data;
    if (w_we[1]) w1 <= w_data;
    a_o <= a_i;
    bank_o <= bank_i;
    ps_o <= ps_i + {{16{p[15]}}, p};
  end
endmodule
"""),
}

ALL = ("int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2")
PES = {"pe_int8": ("accelgen PE, INT8", ("int8",), 32),
       "pe_int": ("accelgen PE, INT8 + INT4 + W4A8", ("int8", "int4", "w4a8"), 32),
       "pe_all": ("accelgen PE, all five modes (65-bit sum)", ALL, 65)}
ROUTERS = {"router_1vc": ("accelgen router, 5 ports, 1 VC x 4 flits, 32-bit flits", 1, False),
           "router_2vc": ("accelgen router, 5 ports, 2 VCs x 4 flits, 32-bit flits", 2, False),
           "router_4vc": ("accelgen router, 5 ports, 4 VCs x 4 flits, 32-bit flits", 4, False),
           "router_4vc_pipelined": ("accelgen router, 5 ports, 4 VCs x 4 flits, 32-bit flits, "
                                    "pipelined", 4, True)}
SOFTMAX = {"softmax_p1": ("accelgen softmax, P = 1, max_len 64", 1, False),
           "softmax_p4": ("accelgen softmax, P = 4, max_len 64", 4, False),
           "softmax_p1_sram": ("accelgen softmax, P = 1, max_len 64, row buffer as an SRAM macro",
                               1, True)}
PEERS = {"mesh": "pymtl3-net MeshRouterRTL (5 ports, YX, 4-entry queues, 41-bit packets)",
         "torus": "pymtl3-net TorusRouterRTL (5 ports, 2 VCs, 4 credits, 42-bit packets)"}
QUICK = ("ws_pe", "ws_pe_sext", "pe_int8", "pe_int", "router_1vc", "mesh")

# Ratios: the design, its peer, and the goal of the ratio (area, and register-to-register period)
# where one is set.
RATIOS = [
    ("pe_int8", "best_ws_pe", 1.05, None),
    ("pe_int", "pe_int8", None, None),
    ("pe_all", "pe_int8", 1.5, None),
    ("router_1vc", "mesh", 1.0, 1.0),
    ("router_2vc", "torus", 1.0, 1.0),
    ("router_4vc_pipelined", "router_4vc", None, None),
]


def _log(text):
    print(text, file=sys.stderr, flush=True)


def _verilog(component, name):
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


def _designs(quick):
    """``(key, group, label, builder)``: ``builder(folder)`` gives ``(path, top, options)``."""
    out = []

    def text_design(top, text):
        def build(folder):
            path = Path(folder) / f"{top}.v"
            path.write_text(text)
            return path, top, {}
        return build

    for key, (label, text) in HAND.items():
        out.append((key, "hand", label, text_design(f"hand_{key}", text)))
    for key, (label, modes, width) in PES.items():
        def build(folder, modes=modes, width=width, key=key):
            from gen.pe import MixedPE
            return text_design(key, _verilog(MixedPE(modes=modes, psum_width=width), key))(folder)
        out.append((key, "pe", label, build))
    for key, (label, vcs, pipelined) in ROUTERS.items():
        def build(folder, vcs=vcs, key=key, pipelined=pipelined):
            from gen.lib.noc import NocParams
            from gen.router import Router
            p = NocParams(kx=4, ky=4, flit_width=32, vcs=vcs, vc_depth=4, max_packet_flits=4,
                          routing="yx", pipelined=pipelined)
            return text_design(key, _verilog(Router(p), key))(folder)
        out.append((key, "router", label, build))
    for key, (label, lanes, macro) in SOFTMAX.items():
        def build(folder, lanes=lanes, key=key, macro=macro):
            from gen.softmax import Softmax
            comp = Softmax(lanes=lanes, in_width=8, in_frac=4, out_frac=8, max_len=64)
            path, top, options = text_design(key, _verilog(comp, key))(folder)
            return path, top, ({"sram_min_bits": 1} if macro else {})
        out.append((key, "softmax", label, build))
    for key, label in PEERS.items():
        def build(folder, key=key):
            from . import pymtl3_peers
            path, top, repairs = pymtl3_peers.generate(key, Path(folder) / key)
            return path, top, {"reset": "reset", "systemverilog": True, "repairs": repairs}
        out.append((key, "peer", label, build))
    if quick:
        out = [d for d in out if d[0] in QUICK]
    return out


def _measure(key, group, label, build, folder):
    from gen.config import FlowConfig
    start = time.monotonic()
    path, top, options = build(folder)
    repairs = options.pop("repairs", None)
    options.setdefault("sram_min_bits", 1 << 40)
    r = synth_asic.synthesize(path, top, flow=FlowConfig(), **options)
    t = r["timing"]
    reg = t.get("register_to_register") or {}
    row = {"key": key, "group": group, "what": label, "top": top,
           "area_um2": r["area_um2"], "flip_flops": r["flip_flops"], "cells": r["cells"],
           "sram_macros": r["sram"]["macros"], "sram_bits": r["sram"]["bits"],
           "sram_area_um2": r["sram"]["area_um2"], "unmapped": r["unmapped"],
           "min_period_ns": t["min_period_ns"], "worst_path": [t["startpoint"], t["endpoint"]],
           "cell_levels": t["cell_levels"],
           "reg_min_period_ns": reg.get("min_period_ns"), "reg_cell_levels": reg.get("cell_levels"),
           "seconds": round(time.monotonic() - start, 1)}
    if repairs is not None:
        row["translation_repairs"] = repairs
    _log(f"  {key}: {row['area_um2']:,.0f} um^2, {row['flip_flops']} FFs, min period "
         f"{row['min_period_ns']} ns (register to register {row['reg_min_period_ns']} ns) "
         f"({row['seconds']} s)")
    return row


def run(quick=False, sim=None):
    """Measure every design (the ``--quick`` subset with ``quick``); ``sim`` is unused."""
    from gen.synth import _yosys_version

    from . import pymtl3_peers
    lib = synth_asic.liberty_path()
    peer_missing = pymtl3_peers.available()
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="accelgen-qor-") as tmp:
        for key, group, label, build in _designs(quick):
            if group == "peer" and peer_missing:
                skipped[key] = peer_missing
                continue
            _log(f"qor: {key} ...")
            rows.append(_measure(key, group, label, build, tmp))
    by_key = {r["key"]: r for r in rows}
    ws = [by_key[k] for k in ("ws_pe", "ws_pe_sext") if k in by_key]
    if ws:
        best = min(ws, key=lambda r: r["area_um2"])
        by_key["best_ws_pe"] = best
    ratios = []
    for key, peer, area_goal, period_goal in RATIOS:
        if key not in by_key or peer not in by_key:
            continue
        a, b = by_key[key], by_key[peer]
        ratio = {"design": key, "peer": b["key"], "area": round(a["area_um2"] / b["area_um2"], 3)}
        for name, field in (("min_period", "min_period_ns"),
                            ("reg_min_period", "reg_min_period_ns")):
            if a[field] and b[field]:
                ratio[name] = round(a[field] / b[field], 3)
        ratio["area_goal"] = area_goal
        ratio["period_goal"] = period_goal
        if area_goal is not None:
            ratio["area_goal_met"] = ratio["area"] <= area_goal
        if period_goal is not None and "reg_min_period" in ratio:
            ratio["period_goal_met"] = ratio["reg_min_period"] <= period_goal
        ratios.append(ratio)
    if "pe_int8" in by_key:
        base = by_key["pe_int8"]
        for r in rows:
            if r["group"] in ("pe", "router", "softmax") and r["reg_min_period_ns"]:
                r["reg_period_vs_int8_pe"] = round(r["reg_min_period_ns"]
                                                   / base["reg_min_period_ns"], 3)
    return {"quick": quick, "liberty": str(lib), "yosys": _yosys_version(),
            "flow": "default [flow]: 10 ns clock, I/O delays 20 % of the period, reset false path",
            "results": rows, "ratios": ratios, "skipped": skipped}


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(x, digits=0):
    return None if x is None else f"{x:,.{digits}f}"


def format_table(result):
    head = ["design", "area um^2", "flip-flops", "SRAM um^2 (model)", "min period ns (SDC)",
            "register to register ns", "levels", "x INT8 PE period"]
    rows = [[r["what"], _n(r["area_um2"]), r["flip_flops"],
             _n(r["sram_area_um2"]) if r["sram_macros"] else None, _n(r["min_period_ns"], 2),
             _n(r["reg_min_period_ns"], 2), r["reg_cell_levels"], r.get("reg_period_vs_int8_pe")]
            for r in result["results"]]
    parts = ["Same flow for every design (" + result["flow"] + ")\n\n" + _table(head, rows)]
    by_key = {r["key"]: r for r in result["results"]}
    rrows = []
    for x in result["ratios"]:
        goal = []
        if x["area_goal"] is not None:
            goal.append(f"area <= {x['area_goal']:g}: {'met' if x['area_goal_met'] else 'NOT met'}")
        if x["period_goal"] is not None and "period_goal_met" in x:
            goal.append(f"period <= {x['period_goal']:g}: "
                        f"{'met' if x['period_goal_met'] else 'NOT met'}")
        rrows.append([by_key[x["design"]]["what"], by_key[x["peer"]]["what"], x["area"],
                      x.get("min_period"), x.get("reg_min_period"), "; ".join(goal) or None])
    if rrows:
        parts.append("Ratios to peers\n\n" + _table(
            ["design", "peer", "area", "min period (SDC)", "register to register", "goal"], rrows))
    for key, why in result["skipped"].items():
        parts.append(f"{key}: skipped ({why})")
    repaired = [r for r in result["results"] if "translation_repairs" in r]
    for r in repaired:
        parts.append(f"{r['top']}: translation repairs " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in r["translation_repairs"].items()))
    parts.append(f"{result['yosys']}; {result['liberty']}; OpenSTA.")
    return "\n\n".join(parts)


def main(argv=None):
    import argparse
    import json
    parser = argparse.ArgumentParser(prog="python -m sim.bench.qor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a subset (see above)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
