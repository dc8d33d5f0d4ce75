"""Area and clock rate of the GEMM engine's PE and PE array per mode set (``python -m sim.bench.gemm_area``).

For each mode set (INT8 only; INT8 + INT4; INT8 + W4A8; all three) this synthesizes, with the system Yosys
(:mod:`gen.synth`):

- one PE (:class:`gen.pe.MixedPE`, with the partial-sum width of an R-row column),
- the R x C PE array alone (:class:`gen.systolic.SystolicArray`: PEs, input skew, output deskew),
- the whole engine as ``accelgen emit`` writes it (array, activation buffer, sequencer, output FIFO),

for Yosys's generic gates and for iCE40 (LUTs), and reports cells and LUTs per PE (one INT8 MAC per
cycle). With ``--fmax``, the all-modes and INT8-only PE and array are placed and routed on an iCE40 HX8K
in the out-of-context wrapper of :func:`gen.synth.ooc_wrapper` and nextpnr's fmax is given.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from gen import synth
from gen.config import parse_config
from gen.emit import render

MODE_SETS = [("int8",), ("int8", "int4"), ("int8", "w4a8"), ("int8", "int4", "w4a8")]

__all__ = ["run", "format_table", "MODE_SETS"]


def _verilog(component, name):
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


def _components(rows, cols, modes):
    from gen.pe import MixedPE
    from gen.systolic import SystolicArray, psum_width
    tag = "_".join(modes)
    yield "pe", f"pe_{tag}", _verilog(MixedPE(modes=modes, psum_width=psum_width(rows, modes)),
                                      f"pe_{tag}")
    yield "array", f"array_{rows}x{cols}_{tag}", _verilog(
        SystolicArray(rows=rows, cols=cols, modes=modes), f"array_{rows}x{cols}_{tag}")
    top = f"engine_{rows}x{cols}_{tag}"
    files = render(parse_config({"gemm": {
        "top": top, "rows": rows, "cols": cols, "modes": list(modes), "max_m": 16, "max_n": 16,
        "max_k": 16, "acc_width": 20, "out_fifo_depth": 8}}))
    yield "engine", top, files[f"{top}.v"]


def run(rows=4, cols=4, fmax=False, device="hx8k", mode_sets=MODE_SETS):
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="accelgen-area-") as tmp:
        for modes in mode_sets:
            for kind, top, text in _components(rows, cols, modes):
                path = Path(tmp) / f"{top}.v"
                path.write_text(text)
                generic = synth.synthesize(path, top, "generic")
                ice40 = synth.synthesize(path, top, "ice40")
                pes = 1 if kind == "pe" else rows * cols
                row = {"kind": kind, "top": top, "modes": list(modes), "pes": pes,
                       "cells": generic["cells"], "flip_flops": generic["flip_flops"],
                       "luts": ice40["luts"], "ice40_flip_flops": ice40["flip_flops"],
                       "cells_per_pe": round(generic["cells"] / pes, 1),
                       "luts_per_pe": round(ice40["luts"] / pes, 1),
                       "multipliers": generic["multiplier_count"],
                       "check_passed": generic["check_passed"] and ice40["check_passed"]}
                if fmax and kind in ("pe", "array") and modes in (MODE_SETS[0], MODE_SETS[-1]):
                    manifest = synth.manifest_from_verilog(text, top, kind)
                    timing = synth.place_and_route(path, manifest, device)
                    row["fmax_mhz"] = timing["fmax_mhz"]
                    row["device"] = device
                rows_out.append(row)
                print(f"{top}: {row['cells']} cells, {row['luts']} LUTs"
                      + (f", {row['fmax_mhz']} MHz" if row.get("fmax_mhz") else ""),
                      file=sys.stderr, flush=True)
    base = {r["kind"]: r for r in rows_out if r["modes"] == list(MODE_SETS[0])}
    for r in rows_out:
        b = base.get(r["kind"])
        if b:
            r["cells_vs_int8"] = round(r["cells"] / b["cells"], 3)
            r["luts_vs_int8"] = round(r["luts"] / b["luts"], 3)
    return {"rows": rows, "cols": cols, "yosys": synth._yosys_version(), "results": rows_out}


def format_table(result):
    head = ["what", "modes", "cells", "cells/PE", "x INT8", "LUTs", "LUTs/PE", "x INT8", "FFs",
            "fmax MHz"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {"pe": "one PE", "array": f"{result['rows']}x{result['cols']} array",
             "engine": f"{result['rows']}x{result['cols']} engine"}
    for r in sorted(result["results"], key=lambda r: ("pe", "array", "engine").index(r["kind"])):
        fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") else "-"
        lines.append("| " + " | ".join(str(c) for c in [
            names[r["kind"]], "+".join(r["modes"]), r["cells"], r["cells_per_pe"],
            r.get("cells_vs_int8", "-"), r["luts"], r["luts_per_pe"], r.get("luts_vs_int8", "-"),
            r["flip_flops"], fmax]) + " |")
    lines.append(f"\n{result['yosys']}; cells: generic gates; LUTs: SB_LUT4 from synth_ice40; "
                 "fmax: nextpnr-ice40 (HX8K) in an out-of-context wrapper.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.bench.gemm_area", description=__doc__)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--fmax", action="store_true", help="also place and route (slow)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    result = run(args.rows, args.cols, fmax=args.fmax)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
