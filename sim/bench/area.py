"""``accelgen bench area``: the area and clock-rate figures of the README, from Yosys and nextpnr.

Every figure comes from one synthesis of one component by :func:`gen.synth.synthesize` (system Yosys):
``cells`` are Yosys's generic gates after ``synth -flatten`` with memories kept whole (SRAM macros in
an ASIC flow: their bits are given apart as ``mem bits`` and are not in ``cells``); ``LUTs`` are
SB_LUT4 cells of ``synth_ice40`` (iCE40 has no hard multipliers on the HX parts, so multipliers are
LUTs); ``fmax`` is nextpnr-ice40's for the component placed and routed inside the out-of-context
wrapper of :func:`gen.synth.ooc_wrapper` on an iCE40 HX8K (ct256), the largest iCE40 device nextpnr
supports (7680 logic cells; LP8K is the same die, UP5K has 5280).

Sections (``--only``):

``modes``
    The cost of each GEMM mode: one PE (:class:`gen.pe.MixedPE`, with the partial-sum width of an
    R-row column) and the R x C PE array (:class:`gen.systolic.SystolicArray`) per mode set. A PE does
    2 MACs per cycle in INT4 and 1 in the other modes; ``cells/MAC`` divides by the PE's most MACs
    per cycle. ``+cells/PE`` is the difference from the INT8-only PE (or array, per PE).
``vsq``
    The cost of per-vector scaling (VS-Quant, Dai et al., MLSys 2021): the whole GEMM engine
    (:class:`gen.gemm.GemmEngine`, as ``accelgen emit`` writes it) with INT8 + INT4, without VSQ,
    with VSQ (V = 16, M = 4), with VSQ and the post-processing unit, and with the post unit alone.
``vsquant``
    The VS-Quant comparison at equal MACs per cycle (Keller et al., VLSI 2022, report about 37% less
    area for 4-bit VSQ than for 8-bit per-channel): an INT4-only R x C engine with VSQ (V = 16,
    M = 4) and the post unit (2 R C MACs per cycle) against INT8-only R x 2C and 2R x C engines with
    the post unit (per-channel scaling), all with the smallest accumulator their configuration
    allows; and the same for the PE arrays alone.
``vsquant_nopost``
    The INT4 R x C engine with VSQ and the INT8 2R x C engine without post-processing units: how
    much of the difference the per-column post units, equal in both, take.
``vsquant_tall``
    The taller pair with post units: INT4 8 x 4 with VSQ against INT8 16 x 4 (the column units are
    shared by twice as many PEs).
``router``
    NoC router cells (:class:`gen.router.Router`) of a 3 x 3 mesh (so that the flit format is the
    same): the corner (3 ports), edge (4) and centre (5) routers with 2 virtual channels, and the
    centre router with 1, 2 and 4 VCs. Cells per port and per VC are least-squares slopes; per port
    includes its input buffer (``vc_depth`` x ``vcs`` flits of flip-flops) and its share of the
    allocators and crossbar.
``softmax``
    Softmax unit cells (:class:`gen.softmax.Softmax`, default formats) for P = 1, 2, 4, 8 lanes and
    the slope in cells per lane (row buffer bits apart).
``fmax``
    nextpnr-ice40 fmax of a PE (INT8 only and all modes), a 4 x 4 array (INT8 only and the three
    integer modes; with FP8 it needs about 11500 LUTs, more than an HX8K has), the centre router and
    the softmax unit (P = 1, with L_max 1024 and, as that needs more LUTs than an HX8K has, 64). A
    design that does not fit is reported with its LUT count.

``--quick`` measures small sizes (2 x 2 arrays, narrow flits, short softmax rows, fewer mode sets)
in about 4 minutes, generic cells only, and the fmax of one PE.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gen import synth

__all__ = ["run", "format_table", "SECTIONS", "linear_fit"]

SECTIONS = ("modes", "vsq", "vsquant", "vsquant_nopost", "vsquant_tall", "router", "softmax",
            "fmax")

ALL = ("int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2")
PE_MODE_SETS = [("int8",), ("int4",), ("w4a8",), ("fp8_e4m3",), ("fp8_e5m2",), ("int8", "int4"),
                ("int8", "w4a8"), ("int8", "fp8_e4m3"), ("int8", "fp8_e5m2"),
                ("int8", "int4", "w4a8"), ALL]
ARRAY_MODE_SETS = [("int8",), ("int4",), ("int8", "int4"), ("int8", "int4", "w4a8"), ALL]
QUICK_MODE_SETS = [("int8",), ("int4",), ("int8", "int4")]
QUICK_ARRAY_MODE_SETS = QUICK_MODE_SETS
DEVICE = "hx8k"


def _log(text):
    print(text, file=sys.stderr, flush=True)


def _verilog(component, name):
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


def linear_fit(xs, ys):
    """Least-squares slope and intercept of ``ys`` against ``xs``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


class _Synth:
    """Synthesizes Verilog texts one at a time in a scratch folder; keeps the results by top."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.done = {}

    def path(self, top, text):
        path = self.tmp / f"{top}.v"
        if not path.exists():
            path.write_text(text)
        return path

    def __call__(self, top, text, ice40=False):
        key = (top, ice40)
        if key in self.done:
            return self.done[key]
        path = self.path(top, text)
        g = synth.synthesize(path, top, "generic")
        row = {"top": top, "cells": g["cells"], "flip_flops": g["flip_flops"],
               "memory_bits": g["memory_bits"], "multipliers": g["multiplier_count"],
               "check_passed": g["check_passed"], "seconds": g["seconds"]}
        if ice40:
            i = synth.synthesize(path, top, "ice40")
            row.update(luts=i["luts"], ice40_flip_flops=i["flip_flops"], ram_blocks=i["ram_blocks"],
                       check_passed=row["check_passed"] and i["check_passed"])
            row["seconds"] = round(row["seconds"] + i["seconds"], 1)
        _log(f"  {top}: {row['cells']} cells, {row['flip_flops']} FFs"
             + (f", {row['luts']} LUTs" if ice40 else "") + f" ({row['seconds']} s)")
        self.done[key] = row
        return row


def _tag(modes):
    return "_".join(modes)


def _pe(modes, rows):
    from gen.pe import MixedPE
    from gen.systolic import psum_width
    top = f"pe_{_tag(modes)}"
    return top, _verilog(MixedPE(modes=modes, psum_width=psum_width(rows, modes)), top)


def _array(modes, rows, cols):
    from gen.systolic import SystolicArray
    top = f"array_{rows}x{cols}_{_tag(modes)}"
    return top, _verilog(SystolicArray(rows=rows, cols=cols, modes=modes), top)


def _macs_per_pe(modes):
    from gen.lib.formats import mode_by_name
    return max(mode_by_name(n).macs_per_pe for n in modes)


def section_modes(s, quick):
    rows = cols = 2 if quick else 4
    ice40 = not quick
    out = []
    for kind, sets in (("pe", QUICK_MODE_SETS if quick else PE_MODE_SETS),
                       ("array", QUICK_ARRAY_MODE_SETS if quick else ARRAY_MODE_SETS)):
        for modes in sets:
            top, text = _pe(modes, rows) if kind == "pe" else _array(modes, rows, cols)
            r = dict(s(top, text, ice40))
            pes = 1 if kind == "pe" else rows * cols
            macs = pes * _macs_per_pe(modes)
            r.update(kind=kind, modes=list(modes), pes=pes, macs_per_cycle=macs,
                     cells_per_pe=round(r["cells"] / pes, 1), cells_per_mac=round(r["cells"] / macs, 1))
            if ice40:
                r.update(luts_per_pe=round(r["luts"] / pes, 1), luts_per_mac=round(r["luts"] / macs, 1))
            out.append(r)
    for r in out:
        (base,) = [b for b in out if b["kind"] == r["kind"] and b["modes"] == ["int8"]]
        r["extra_cells_per_pe"] = round((r["cells"] - base["cells"]) / r["pes"], 1)
        r["cells_vs_int8"] = round(r["cells"] / base["cells"], 3)
        if ice40:
            r["extra_luts_per_pe"] = round((r["luts"] - base["luts"]) / r["pes"], 1)
    return {"rows": rows, "cols": cols, "results": out}


def _min_acc_width(modes, max_k, vsizes=(), scale_bits=4):
    from gen.config import gemm_acc_width_needed
    from gen.lib.formats import INT_MODE_NAMES, vsq_acc_width
    need = gemm_acc_width_needed(max_k)
    for n in modes:
        if n in INT_MODE_NAMES:
            need = max([need] + [vsq_acc_width(n, v, scale_bits, max_k) for v in vsizes])
    return need


def _engine(name, rows, cols, modes, max_m, max_k, vsizes=(), post=0):
    from gen.config import parse_config
    from gen.emit import render
    gemm = {"top": name, "rows": rows, "cols": cols, "modes": list(modes), "max_m": max_m,
            "max_n": 256, "max_k": max_k, "out_fifo_depth": 8,
            "acc_width": _min_acc_width(modes, max_k, vsizes), "vsq_vector_sizes": list(vsizes),
            "vsq_scale_bits": 4, "vsq_post_mult_bits": post}
    files = render(parse_config({"gemm": gemm}))
    return name, files[f"{name}.v"], gemm


def section_vsq(s, quick):
    rows = cols = 2 if quick else 4
    max_m, max_k = (8, 64) if quick else (16, 256)
    modes = ("int8", "int4")
    post = 16
    variants = [("plain", (), 0), ("vsq", (16,), 0), ("vsq+post", (16,), post), ("post", (), post)]
    out = []
    for label, vs, pb in variants:
        top, text, gemm = _engine(f"eng_{rows}x{cols}_i8i4_{label.replace('+', '_')}", rows, cols,
                                  modes, max_m, max_k, vs, pb)
        r = dict(s(top, text))
        r.update(variant=label, rows=rows, cols=cols, modes=list(modes), acc_width=gemm["acc_width"],
                 vector_sizes=list(vs), post_mult_bits=pb)
        out.append(r)
    base = out[0]
    for r in out:
        r["extra_cells"] = r["cells"] - base["cells"]
        r["extra_cells_per_column"] = round(r["extra_cells"] / cols, 1)
        r["extra_cells_per_pe"] = round(r["extra_cells"] / (rows * cols), 1)
        r["extra_memory_bits"] = r["memory_bits"] - base["memory_bits"]
    return {"rows": rows, "cols": cols, "max_m": max_m, "max_k": max_k, "results": out}


def section_vsquant(s, quick, post=16, size=None, wide=True, arrays=True):
    r4, c4 = size or ((2, 2) if quick else (4, 4))
    max_m, max_k = (8, 64) if quick else (16, 256)
    tail = "+post" if post else ""
    builds = [
        (f"int4 vsq{tail}", r4, c4, ("int4",), (16,), post),
        (f"int8 {'post' if post else 'plain'}", r4, 2 * c4, ("int8",), (), post),
        (f"int8 {'post' if post else 'plain'}", 2 * r4, c4, ("int8",), (), post),
    ]
    if not wide:
        del builds[1]
    out = []
    for label, r, c, modes, vs, pb in builds:
        name = f"eng_{r}x{c}_{_tag(modes)}" + ("_vsq" if vs else "") + ("_post" if pb else "")
        top, text, gemm = _engine(name, r, c, modes, max_m, max_k, vs, pb)
        row = dict(s(top, text))
        row.update(kind="engine", label=label, rows=r, cols=c, modes=list(modes),
                   macs_per_cycle=r * c * _macs_per_pe(modes), acc_width=gemm["acc_width"],
                   post_mult_bits=pb)
        out.append(row)
        if post and arrays:
            top, text = _array(modes, r, c)
            row = dict(s(top, text, ice40=not quick))
            row.update(kind="array", label=label.split()[0], rows=r, cols=c, modes=list(modes),
                       macs_per_cycle=r * c * _macs_per_pe(modes))
            out.append(row)
    for kind in ("engine", "array"):
        int4 = [x for x in out if x["kind"] == kind and x["modes"] == ["int4"]]
        for x in out:
            if int4 and x["kind"] == kind and x is not int4[0]:
                x["int4_cells_ratio"] = round(int4[0]["cells"] / x["cells"], 3)
                if "luts" in x and "luts" in int4[0]:
                    x["int4_luts_ratio"] = round(int4[0]["luts"] / x["luts"], 3)
    return {"max_m": max_m, "max_k": max_k, "goal_ratio": 0.65, "post_mult_bits": post,
            "results": out}


def section_vsquant_nopost(s, quick):
    return section_vsquant(s, quick, post=0, wide=False)


def section_vsquant_tall(s, quick):
    return section_vsquant(s, quick, size=(4, 2) if quick else (8, 4), wide=False, arrays=False)


def _noc_params(quick, vcs):
    from gen.lib.noc import NocParams
    return NocParams(kx=3, ky=3, flit_width=8 if quick else 32, vcs=vcs, vc_depth=4,
                     max_packet_flits=4, routing="xy")


def _router(quick, x, y, vcs):
    from gen.router import PlacedRouter, present_ports
    p = _noc_params(quick, vcs)
    ports = len(present_ports(p, x, y))
    top = f"router_{ports}p_{vcs}vc_f{p.flit_width}"
    return top, _verilog(PlacedRouter(p, x=x, y=y), top), ports, p


def section_router(s, quick):
    points = [(0, 0, 2), (1, 0, 2), (1, 1, 2), (1, 1, 1), (1, 1, 4)]
    if quick:
        points = [(0, 0, 1), (1, 1, 1), (1, 1, 2)]
    out = []
    for x, y, vcs in points:
        top, text, ports, p = _router(quick, x, y, vcs)
        r = dict(s(top, text))
        r.update(ports=ports, vcs=vcs, flit_width=p.flit_width, vc_depth=p.vc_depth, x=x, y=y)
        out.append(r)
    vc_ref = 2 if not quick else 1
    by_port = [r for r in out if r["vcs"] == vc_ref]
    by_vc = [r for r in out if r["ports"] == 5]
    fits = {}
    for name, rows, key in (("per_port", by_port, "ports"), ("per_vc", by_vc, "vcs")):
        slope, icpt = linear_fit([r[key] for r in rows], [r["cells"] for r in rows])
        fslope, _ = linear_fit([r[key] for r in rows], [r["flip_flops"] for r in rows])
        fits[name] = {"cells": round(slope, 1), "intercept": round(icpt, 1),
                      "flip_flops": round(fslope, 1), "points": len(rows),
                      "at": f"{vc_ref} VCs" if key == "ports" else "5 ports"}
    # Per VC per port: the 5-port slope over VCs shared by the five ports.
    fits["per_vc_per_port"] = {"cells": round(fits["per_vc"]["cells"] / 5, 1),
                               "flip_flops": round(fits["per_vc"]["flip_flops"] / 5, 1)}
    return {"mesh": "3x3", "results": out, "fits": fits}


def _softmax(lanes, max_len):
    from gen.softmax import Softmax
    top = f"softmax_p{lanes}_l{max_len}"
    return top, _verilog(Softmax(lanes=lanes, in_width=8, in_frac=4, out_frac=8, max_len=max_len),
                         top)


def section_softmax(s, quick):
    lanes = (1, 2) if quick else (1, 2, 4, 8)
    max_len = 64 if quick else 1024
    out = []
    for p in lanes:
        top, text = _softmax(p, max_len)
        r = dict(s(top, text))
        r.update(lanes=p, max_len=max_len)
        out.append(r)
    slope, icpt = linear_fit([r["lanes"] for r in out], [r["cells"] for r in out])
    fslope, _ = linear_fit([r["lanes"] for r in out], [r["flip_flops"] for r in out])
    return {"max_len": max_len, "results": out,
            "fit": {"cells_per_lane": round(slope, 1), "intercept": round(icpt, 1),
                    "flip_flops_per_lane": round(fslope, 1)}}


def section_fmax(s, quick):
    if shutil.which("nextpnr-ice40") is None:
        return {"skipped": "nextpnr-ice40 is not on PATH"}
    items = [("PE", "pe", *_pe(("int8",), 4))]
    if not quick:
        items += [
            ("PE", "pe", *_pe(ALL, 4)),
            ("4x4 array", "array", *_array(("int8",), 4, 4)),
            # All five modes: about 11500 LUTs (the modes section), more than an HX8K's 7680.
            ("4x4 array", "array", *_array(("int8", "int4", "w4a8"), 4, 4)),
            ("router, 5 ports, 2 VCs, 32-bit flits", "router", *_router(False, 1, 1, 2)[:2]),
            ("softmax, P = 1", "softmax", *_softmax(1, 1024)),
            ("softmax, P = 1, L_max 64", "softmax", *_softmax(1, 64)),
        ]
    out = []
    for what, block, top, text in items:
        path = s.path(top, text)
        manifest = synth.manifest_from_verilog(text, top, block)
        start = time.monotonic()
        try:
            t = synth.place_and_route(path, manifest, DEVICE)
        except RuntimeError as exc:
            t = {"fits": False, "fmax_mhz": None, "message": str(exc).strip().splitlines()[-1]}
        t.update(what=what, top=top, seconds_total=round(time.monotonic() - start, 1))
        t.pop("utilization", None)
        _log(f"  {top}: fmax {t.get('fmax_mhz')} MHz, {t.get('luts')} LUTs (wrapped), "
             f"fits {t.get('fits')} ({t['seconds_total']} s)")
        out.append(t)
    return {"device": DEVICE, "results": out}


_RUNNERS = {"modes": section_modes, "vsq": section_vsq, "vsquant": section_vsquant,
            "vsquant_nopost": section_vsquant_nopost, "vsquant_tall": section_vsquant_tall,
            "router": section_router, "softmax": section_softmax, "fmax": section_fmax}


def run(quick=False, sim=None, only=SECTIONS):
    """Measure the sections ``only`` (all by default); ``sim`` is unused (no simulation)."""
    for name in only:
        if name not in _RUNNERS:
            raise ValueError(f"section = {name!r}: must be one of " + ", ".join(SECTIONS))
    result = {"quick": quick, "yosys": synth._yosys_version(), "sections": {}}
    with tempfile.TemporaryDirectory(prefix="accelgen-area-") as tmp:
        s = _Synth(tmp)
        for name in only:
            _log(f"area: {name}")
            start = time.monotonic()
            sec = _RUNNERS[name](s, quick)
            sec["seconds"] = round(time.monotonic() - start, 1)
            result["sections"][name] = sec
    return result


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _modes_name(modes):
    return "+".join(m.upper().replace("FP8_", "FP8 ") for m in modes)


def format_table(result):
    secs = result["sections"]
    parts = []
    if "modes" in secs:
        m = secs["modes"]
        head = ["what", "modes", "MACs/cycle", "cells", "cells/PE", "cells/MAC", "+cells/PE vs INT8",
                "x INT8", "FFs", "LUTs", "LUTs/PE", "+LUTs/PE vs INT8"]
        rows = []
        for r in m["results"]:
            what = "PE" if r["kind"] == "pe" else f"{m['rows']}x{m['cols']} array"
            rows.append([what, _modes_name(r["modes"]), r["macs_per_cycle"], r["cells"],
                         r["cells_per_pe"], r["cells_per_mac"], r["extra_cells_per_pe"],
                         r["cells_vs_int8"], r["flip_flops"], r.get("luts"), r.get("luts_per_pe"),
                         r.get("extra_luts_per_pe")])
        parts.append("Cost of each mode (PE, and PE array: PEs, skew and deskew registers)\n\n"
                     + _table(head, rows))
    if "vsq" in secs:
        v = secs["vsq"]
        head = ["engine INT8+INT4", "acc bits", "cells", "+cells", "+cells/column", "+cells/PE",
                "FFs", "mem bits", "+mem bits"]
        rows = [[r["variant"], r["acc_width"], r["cells"], r["extra_cells"],
                 r["extra_cells_per_column"], r["extra_cells_per_pe"], r["flip_flops"],
                 r["memory_bits"], r["extra_memory_bits"]] for r in v["results"]]
        parts.append(f"Cost of per-vector scaling ({v['rows']}x{v['cols']} engine, max_m "
                     f"{v['max_m']}, max_k {v['max_k']}, V = 16, M = 4, 16-bit post multiplier)\n\n"
                     + _table(head, rows))
    for key in ("vsquant", "vsquant_tall", "vsquant_nopost"):
        if key not in secs:
            continue
        v = secs[key]
        head = ["what", "build", "MACs/cycle", "cells", "INT4 / this", "LUTs", "INT4 / this (LUTs)",
                "FFs", "mem bits"]
        rows = []
        for r in v["results"]:
            build = f"{_modes_name(r['modes'])} {r['rows']}x{r['cols']}"
            rows.append([r["kind"], build + (" " + r["label"].split(" ", 1)[1]
                                             if r["kind"] == "engine" else ""),
                         r["macs_per_cycle"], r["cells"], r.get("int4_cells_ratio"), r.get("luts"),
                         r.get("int4_luts_ratio"), r["flip_flops"], r["memory_bits"]])
        what = ("with the per-column post-processing unit (16-bit multiplier) in both"
                if v.get("post_mult_bits", 16) else "without post-processing units")
        parts.append(f"VS-Quant comparison at equal MACs per cycle, {what} (max_m {v['max_m']}, "
                     f"max_k {v['max_k']}; goal: INT4 + VSQ at most {v['goal_ratio']} x the INT8 "
                     "cells)\n\n" + _table(head, rows))
    if "router" in secs:
        r = secs["router"]
        head = ["router", "ports", "VCs", "flit bits", "cells", "FFs"]
        rows = [[f"({x['x']}, {x['y']})", x["ports"], x["vcs"], x["flit_width"], x["cells"],
                 x["flip_flops"]] for x in r["results"]]
        f = r["fits"]
        parts.append("Router cells (3x3 mesh positions, VC depth 4)\n\n" + _table(head, rows)
                     + f"\n\nper port ({f['per_port']['at']}): {f['per_port']['cells']} cells, "
                     f"{f['per_port']['flip_flops']} FFs; per VC (5 ports): {f['per_vc']['cells']} "
                     f"cells, {f['per_vc']['flip_flops']} FFs; per VC per port: "
                     f"{f['per_vc_per_port']['cells']} cells (least-squares slopes)")
    if "softmax" in secs:
        sm = secs["softmax"]
        head = ["lanes P", "cells", "FFs", "row buffer bits"]
        rows = [[x["lanes"], x["cells"], x["flip_flops"], x["memory_bits"]] for x in sm["results"]]
        parts.append(f"Softmax cells per lane (max_len {sm['max_len']}, INT8 scores)\n\n"
                     + _table(head, rows) + f"\n\nslope: {sm['fit']['cells_per_lane']} cells and "
                     f"{sm['fit']['flip_flops_per_lane']} FFs per lane")
    if "fmax" in secs:
        fm = secs["fmax"]
        if "skipped" in fm:
            parts.append(f"fmax: skipped ({fm['skipped']})")
        else:
            head = ["block", "top", "fits", "LUTs (wrapped)", "FFs (wrapped)", "fmax MHz"]
            rows = [[x["what"], x["top"], "yes" if x["fits"] else "no", x.get("luts"),
                     x.get("flip_flops"), x["fmax_mhz"]] for x in fm["results"]]
            parts.append(f"Maximum clock frequency on iCE40 {fm['device'].upper()} (nextpnr-ice40, "
                         "out-of-context wrapper)\n\n" + _table(head, rows))
    parts.append(f"{result['yosys']}; cells: generic gates without memories; LUTs: synth_ice40.")
    return "\n\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.bench.area", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, generic cells only")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections (default: all): " + ", ".join(SECTIONS))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="measure nothing: print the tables of these JSON results together "
                             "(sections measured by separate runs)")
    args = parser.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        result = {"quick": any(x["quick"] for x in parts), "yosys": parts[0]["yosys"],
                  "sections": {k: v for x in parts for k, v in x["sections"].items()}}
    else:
        result = run(args.quick, only=[x for x in args.only.split(",") if x])
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
