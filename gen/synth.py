"""Logic synthesis of the emitted tops with Yosys, and timing on ice40 with nextpnr: ``accelgen synth``.

For each top of a configuration, one Yosys run (the system ``yosys``; Debian's 0.23 is known to work)
does:

1. ``proc; flatten; wreduce``: the word-level design, where multipliers (``$mul``) and memories are
   counted before they are turned into gates;
2. ``synth -flatten`` without ``memory_map`` (target ``generic``: Yosys's internal gate library, with
   memories kept whole, as SRAM macros would be, and reported in bits) or ``synth_ice40`` (target
   ``ice40``: SB_LUT4, SB_CARRY, SB_DFF*, SB_RAM40_4K), and the cell counts of the result;
3. ``check -assert``: fails on combinational loops, multiple drivers and undriven nets.

Flip-flops are the cells whose type names a DFF (one bit each at gate level), latches those naming a
latch. With target ``ice40`` and ``nextpnr-ice40`` on PATH, the netlist is also placed and routed inside an
out-of-context wrapper (:func:`ooc_wrapper`) and the maximum clock frequency reported by nextpnr is given.

Reports are JSON-ready dicts; :func:`format_table` prints them.
"""

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["ToolMissing", "synthesize", "yosys_check", "ooc_wrapper", "place_and_route", "run",
           "format_table", "manifest_from_verilog", "baseline_of", "compare_baseline", "TARGETS", "ICE40_DEVICES",
           "QOR_TOLERANCE"]

TARGETS = ("generic", "ice40")
QOR_TOLERANCE = 0.02
"""Relative change in cells or flip-flops that :func:`compare_baseline` flags."""
ICE40_DEVICES = {"hx8k": ("--hx8k", "ct256"), "up5k": ("--up5k", "sg48"), "hx1k": ("--hx1k", "tq144")}


class ToolMissing(RuntimeError):
    """A synthesis or place-and-route tool is not installed."""


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} is not on PATH (Debian package {name})")
    return path


def _is_ff(cell_type):
    return "DFF" in cell_type.upper()


def _is_latch(cell_type):
    upper = cell_type.upper()
    return "DLATCH" in upper or upper.startswith("$_SR_") or upper == "$SR"


def _stat_cells(stat):
    """``{cell type: count}`` of the (flattened) design of a ``stat -json`` report."""
    if "design" in stat:
        design = stat["design"]
    else:
        modules = stat["modules"]
        if len(modules) != 1:
            raise RuntimeError(f"expected one flattened module, Yosys reports {sorted(modules)}")
        (design,) = modules.values()
    return {k: int(v) for k, v in sorted(design.get("num_cells_by_type", {}).items())}


def _read_stat(path):
    text = Path(path).read_text()
    return json.loads(text[text.index("{"):])


def synthesize(verilog, top, target="generic", *, netlist=None, timeout=3600):
    """Synthesize ``top`` from the file ``verilog`` for ``target``; the report as a dict.

    ``netlist``: where to write the JSON netlist (for place and route). The report has ``cells`` (total),
    ``cells_by_type``, ``flip_flops``, ``latches``, ``luts`` (ice40), ``carries`` (ice40),
    ``memories`` (word-level, with bits), ``ram_blocks`` (ice40 SB_RAM40_4K), ``multipliers`` (word-level
    ``$mul`` by output width), ``check_passed`` and ``seconds``.
    """
    if target not in TARGETS:
        raise ValueError(f"target = {target!r}: must be one of " + ", ".join(TARGETS))
    yosys = _tool("yosys")
    verilog = Path(verilog).resolve()
    with tempfile.TemporaryDirectory(prefix="accelgen-synth-") as tmp:
        tmp = Path(tmp)
        if target == "ice40":
            synth_cmd = f"synth_ice40 -top {top}\n"
        else:
            # Yosys's `synth` without its memory_map step: memories stay whole ($mem_v2 cells, as
            # SRAM macros would in an ASIC flow) instead of becoming flip-flops and multiplexers.
            synth_cmd = (f"synth -flatten -top {top} -run begin:fine\n"
                         "opt -fast -full\nopt -full\ntechmap\nopt -fast\nabc -fast\nopt -fast\n")
        write = f"write_json {Path(netlist).resolve()}\n" if netlist else ""
        script = (
            f"read_verilog {verilog}\n"
            f"hierarchy -check -top {top}\n"
            "proc\nflatten\nopt_clean\nwreduce\nopt_clean\n"
            f"tee -q -o {tmp / 'word.json'} stat -json -width\n"
            "memory -nomap\nopt_clean\n"
            f"{synth_cmd}"
            f"tee -q -o {tmp / 'gate.json'} stat -json\n"
            f"{write}"
            "check -assert\n"
        )
        (tmp / "script.ys").write_text(script)
        start = time.monotonic()
        proc = subprocess.run([yosys, "-q", "-l", str(tmp / "yosys.log"), "-s",
                               str(tmp / "script.ys")], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp)
        seconds = time.monotonic() - start
        log = (tmp / "yosys.log").read_text() if (tmp / "yosys.log").exists() else proc.stderr
        if not (tmp / "gate.json").exists():
            raise RuntimeError(f"yosys failed on {top}:\n" + (proc.stdout + proc.stderr)[-3000:])
        check_passed = proc.returncode == 0
        if not check_passed and "check -assert" not in log[-5000:] and "Found and reported" not in log:
            raise RuntimeError(f"yosys failed on {top}:\n" + log[-3000:])
        word = _read_stat(tmp / "word.json")
        gate = _read_stat(tmp / "gate.json")
    word_cells = _stat_cells(word)
    cells = _stat_cells(gate)
    multipliers = {}
    for cell_type, count in word_cells.items():
        m = re.fullmatch(r"\$mul_(\d+)", cell_type)
        if m:
            multipliers[f"{m.group(1)}-bit product"] = count
    word_design = word.get("design") or next(iter(word["modules"].values()))
    memories = {t: n for t, n in cells.items() if t.startswith("$mem")}
    report = {
        "top": top,
        "target": target,
        "cells": sum(n for t, n in cells.items() if not t.startswith("$mem")),
        "cells_by_type": cells,
        "flip_flops": sum(n for t, n in cells.items() if _is_ff(t)),
        "latches": sum(n for t, n in cells.items() if _is_latch(t)),
        "multipliers": multipliers,
        "multiplier_count": sum(multipliers.values()),
        "memories": memories,
        "memory_count": int(word_design.get("num_memories", 0)),
        "memory_bits": int(word_design.get("num_memory_bits", 0)),
        "check_passed": check_passed,
        "seconds": round(seconds, 1),
        "log_tail": "" if check_passed else log[-2000:],
    }
    if target == "ice40":
        report["luts"] = cells.get("SB_LUT4", 0)
        report["carries"] = cells.get("SB_CARRY", 0)
        report["ram_blocks"] = cells.get("SB_RAM40_4K", 0)
    return report


def yosys_check(verilog, top):
    """Generic synthesis of ``top`` with ``check -assert``: the :func:`synthesize` report."""
    return synthesize(verilog, top, "generic")


def source_file(folder, manifest):
    """The one Verilog file of a top written into ``folder``: ``<top>.v``, or, where the manifest
    lists more sources (SRAM models beside black-box wrappers), all of them in one file."""
    folder = Path(folder)
    names = manifest.get("sources") or [f"{manifest['top']}.v"]
    if len(names) == 1:
        return folder / names[0]
    combined = folder / f"{manifest['top']}.all.v"
    combined.write_text("".join((folder / n).read_text(encoding="utf-8") for n in names),
                        encoding="utf-8")
    return combined


def manifest_from_verilog(text, top, block="component"):
    """A minimal manifest (``top``, ``block``, ``ports``) read from the port declarations of module
    ``top`` in Verilog ``text``, for components synthesized outside ``accelgen emit`` (a PE, an array).
    ``clk`` is the clock and ``rst`` the reset."""
    start = re.search(rf"^module \\?{re.escape(top)}\s*\(", text, re.M)
    if start is None:
        raise ValueError(f"no module {top} in the Verilog")
    body = text[start.start():]
    body = body[:body.index("endmodule")]
    ports = []
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+)\s*;",
                                           body, re.M):
        role = {"clk": "clock", "rst": "reset"}.get(name, "data")
        ports.append({"name": name, "direction": "in" if direction == "input" else "out",
                      "width": int(msb) + 1 if msb else 1, "role": role})
    return {"top": top, "block": block, "ports": ports}


def ooc_wrapper(manifest, name=None):
    """Verilog of an out-of-context wrapper around the top of ``manifest`` for place and route.

    A block's hundreds of port bits do not fit a package's pins, and pins left floating would let
    synthesis remove the logic. The wrapper has five pins: ``clk``, ``rst``, ``sin``, ``cap``, ``sout``.
    All data inputs of the block come from one shift register fed by ``sin``; all outputs are captured
    (``cap``) into a second shift register that shifts out on ``sout``. Every input and output bit is
    thus a flip-flop, so the paths through the block are timed register to register and none is
    optimized away; the wrapper adds one flip-flop per input bit and a flip-flop and a 2:1 multiplexer
    per output bit.
    """
    from .flow import clock_port, io_ports, reset_port
    top = manifest["top"]
    name = name or f"{top}_ooc"
    clk, rst = clock_port(manifest), reset_port(manifest)
    inputs, outputs = io_ports(manifest)
    n_in = sum(w for _, w in inputs)
    n_out = sum(w for _, w in outputs)
    lines = [
        f"// Out-of-context wrapper of {top} for place and route (generated by accelgen synth).",
        f"module {name}(input wire clk, input wire rst, input wire sin, input wire cap, "
        "output wire sout);",
        f"  reg [{n_in - 1}:0] in_sr = 0;",
        f"  reg [{n_out - 1}:0] out_sr = 0;",
        f"  wire [{n_out - 1}:0] out_w;",
        "  always @(posedge clk) begin",
        "    in_sr <= " + ("sin;" if n_in == 1 else f"{{in_sr[{n_in - 2}:0], sin}};"),
        "    out_sr <= cap ? out_w : " + ("1'b0;" if n_out == 1
                                         else f"{{out_sr[{n_out - 2}:0], 1'b0}};"),
        "  end",
        f"  assign sout = out_sr[{n_out - 1}];",
        f"  {top} dut(",
        f"    .{clk}(clk),",
        f"    .{rst}(rst),",
    ]
    conns = []
    offset = 0
    for port, width in inputs:
        conns.append(f"    .{port}(in_sr[{offset + width - 1}:{offset}])")
        offset += width
    offset = 0
    for port, width in outputs:
        conns.append(f"    .{port}(out_w[{offset + width - 1}:{offset}])")
        offset += width
    lines.append(",\n".join(conns))
    lines += ["  );", "endmodule", ""]
    return "\n".join(lines)


def place_and_route(verilog, manifest, device="hx8k", *, seed=1, timeout=3600):
    """Synthesize ``verilog`` in its out-of-context wrapper for ice40 and place and route it with
    ``nextpnr-ice40``; a dict with ``fmax_mhz``, the wrapper's ``luts`` and ``flip_flops``, and
    ``fits`` (False, with no fmax, when the design needs more logic cells than the device has)."""
    nextpnr = _tool("nextpnr-ice40")
    if device not in ICE40_DEVICES:
        raise ValueError(f"device = {device!r}: must be one of " + ", ".join(ICE40_DEVICES))
    flag, package = ICE40_DEVICES[device]
    with tempfile.TemporaryDirectory(prefix="accelgen-pnr-") as tmp:
        tmp = Path(tmp)
        wrapper = tmp / "ooc.v"
        name = f"{manifest['top']}_ooc"
        wrapper.write_text(Path(verilog).read_text() + "\n" + ooc_wrapper(manifest, name))
        synth = synthesize(wrapper, name, "ice40", netlist=tmp / "net.json", timeout=timeout)
        start = time.monotonic()
        proc = subprocess.run([nextpnr, flag, "--package", package, "--json", str(tmp / "net.json"),
                               "--pcf-allow-unconstrained", "--seed", str(seed), "--freq", "12",
                               "--timing-allow-fail", "--report", str(tmp / "report.json"),
                               "--quiet"],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp)
        seconds = time.monotonic() - start
        out = {"device": device, "luts": synth["luts"], "flip_flops": synth["flip_flops"],
               "seed": seed, "seconds": round(seconds, 1)}
        if proc.returncode != 0 or not (tmp / "report.json").exists():
            text = proc.stdout + proc.stderr
            if "Unable to place" in text or "too many" in text.lower() or "needs" in text:
                out.update(fits=False, fmax_mhz=None, message=text.strip().splitlines()[-1])
                return out
            raise RuntimeError("nextpnr-ice40 failed:\n" + text[-3000:])
        report = json.loads((tmp / "report.json").read_text())
    fmax = report.get("fmax", {})
    clocks = {k: v for k, v in fmax.items() if "clk" in k}
    (achieved,) = [v["achieved"] for v in clocks.values()] or [None]
    out.update(fits=True, fmax_mhz=round(achieved, 2) if achieved is not None else None,
               utilization={k: v for k, v in report.get("utilization", {}).items()
                            if v.get("used")})
    return out


def run(config, target="generic", *, fmax=True, device="hx8k", seed=1):
    """Synthesize every top of ``config``; with ``target == "ice40"`` and ``fmax``, also place and
    route it (when nextpnr-ice40 is present). A JSON-ready dict."""
    from .emit import render
    files = render(config)
    results = []
    with tempfile.TemporaryDirectory(prefix="accelgen-synth-src-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            manifest = json.loads(files[name])
            verilog = source_file(tmp, manifest)
            report = synthesize(verilog, manifest["top"], target)
            report["block"] = manifest["block"]
            report["parameters"] = manifest["parameters"]
            if target == "ice40" and fmax:
                if shutil.which("nextpnr-ice40") is None:
                    report["timing"] = {"skipped": "nextpnr-ice40 is not on PATH"}
                else:
                    report["timing"] = place_and_route(verilog, manifest, device, seed=seed)
            results.append(report)
    return {"target": target, "yosys": _yosys_version(), "tops": results}


def _yosys_version():
    proc = subprocess.run([_tool("yosys"), "-V"], capture_output=True, text=True)
    return proc.stdout.strip()


def format_table(result):
    """A readable table of a :func:`run` result, one row per top."""
    ice40 = result["target"] == "ice40"
    head = ["top", "block", "cells", "flip-flops", "latches", "multipliers", "memories (bits)"]
    if ice40:
        head += ["LUTs", "carries", "RAM40", "fmax MHz (wrapped)"]
    head += ["check", "yosys s"]
    rows = [head, ["---"] * len(head)]
    for r in result["tops"]:
        row = [r["top"], r["block"], r["cells"], r["flip_flops"], r["latches"],
               r["multiplier_count"], f"{r['memory_count']} ({r['memory_bits']})"]
        if ice40:
            timing = r.get("timing", {})
            if "fmax_mhz" in timing and timing["fmax_mhz"] is not None:
                fmax = f"{timing['fmax_mhz']:.1f} ({timing['device']})"
            elif timing.get("fits") is False:
                fmax = f"does not fit {timing['device']}"
            else:
                fmax = timing.get("skipped", "-")
            row += [r["luts"], r["carries"], r["ram_blocks"], fmax]
        row += ["pass" if r["check_passed"] else "FAIL", r["seconds"]]
        rows.append(row)
    lines = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.append("")
    lines.append(f"{result['yosys']}, target {result['target']}. Cells by type:")
    for r in result["tops"]:
        lines.append(f"  {r['top']}: " + ", ".join(f"{t} {n}" for t, n in r["cells_by_type"].items()))
    return "\n".join(lines)


_BASELINE_KEYS = ("cells", "flip_flops", "luts")


def baseline_of(result):
    """The figures of a :func:`run` result that a QoR baseline keeps: per top, cells, flip-flops (and
    LUTs on ice40), with the Yosys version and the target."""
    return {
        "target": result["target"],
        "yosys": result["yosys"],
        "tops": {r["top"]: {k: r[k] for k in _BASELINE_KEYS if k in r} for r in result["tops"]},
    }


def compare_baseline(result, baseline, tolerance=QOR_TOLERANCE):
    """Lines describing every figure of ``result`` more than ``tolerance`` (relative) away from
    ``baseline``, and every top present in one but not the other; empty when within tolerance."""
    problems = []
    if result["target"] != baseline["target"]:
        raise ValueError(f"baseline is for target {baseline['target']}, not {result['target']}")
    now = baseline_of(result)["tops"]
    for top in sorted(set(now) | set(baseline["tops"])):
        if top not in now or top not in baseline["tops"]:
            problems.append(f"{top}: in the {'baseline' if top not in now else 'result'} only")
            continue
        for key, old in baseline["tops"][top].items():
            new = now[top].get(key)
            if new is None:
                continue
            change = (new - old) / old if old else float(new != 0)
            if abs(change) > tolerance:
                problems.append(f"{top}: {key} {old} -> {new} ({change:+.1%}, more than "
                                f"{tolerance:.0%})")
    return problems
