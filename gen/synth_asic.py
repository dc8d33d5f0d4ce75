"""Standard-cell synthesis and static timing of the emitted tops: ``accelgen synth --target asic``.

For each top, with the system ``yosys`` (Debian's 0.23 is known to work) and OpenSTA (``sta``,
Debian package ``opensta``):

1. ``synth -run begin:fine``: the word-level design, hierarchy kept (each module is synthesized
   once, however often it is instantiated), memories as ``$mem_v2`` cells.
2. **SRAM macros** are black boxes, left out of the logic figures and reported apart with the area
   model below: the SRAM wrapper modules the manifest's ``hierarchy`` names
   (:class:`gen.lib.sram.SramMacro`, kept whole with their ports), and any other memory of at least
   ``sram_min_bits`` bits. Smaller memories become flip-flops and multiplexers (``memory_map``), as
   a register file would.
3. Gate mapping to the Liberty library: ``techmap``, ``dfflibmap -liberty``, then ``abc -liberty
   -constr -D`` with the period of the top's SDC as the delay target. The constraint file gives ABC
   a driving cell (the library's smallest inverter) and a load (four of its inputs), which makes ABC
   buffer and resize after mapping (its ``buffer; upsize; dnsize`` steps): without it a net such as
   an enable that fans out to hundreds of gates is left on one minimum-size gate, and the timing of
   the netlist is meaningless.
4. Area: the Liberty ``area`` of every cell, per module (the module's own cells, and with its
   submodules), and per top.
5. OpenSTA reads the Liberty library, a Liberty model of the macros (see below), the mapped netlist
   and the top's SDC (``<top>.sdc`` as ``accelgen emit`` writes it: clock, I/O delays, reset false
   path), and reports the worst setup slack. The **minimum period** is the SDC's period minus that
   slack, with the I/O delays kept at their SDC values in nanoseconds. The library has no wire-load
   model, so wires add no capacitance (a placed design is slower).

SRAM area model: ``sram_um2_per_bit`` (default 9.32 um^2 per bit) times the macro's bits, an assumed
0.18 um six-transistor bit cell of about 4.66 um^2 at 50 % array efficiency (decoders, sense
amplifiers and I/O take the other half). It is a model, not a memory compiler's figure: for another
library pass the bit area of its SRAMs. For timing, each macro port is a register boundary: read
data leaves ``sram_access_ns`` after the clock edge (asynchronous read ports: after the address),
and addresses, enables and write data must arrive ``sram_setup_ns`` before it (both 0 by default:
the macro's own access time is not counted).

Reports are JSON-ready dicts; :func:`format_table` prints them.
"""

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .liberty import MacroPort, drive_and_load, macro_library, read_cells
from .synth import ToolMissing, _tool, source_file

__all__ = ["DEFAULT_LIBERTY", "SRAM_UM2_PER_BIT", "SRAM_MIN_BITS", "liberty_path", "synthesize",
           "sram_modules", "run", "format_table"]

DEFAULT_LIBERTY = "/usr/share/qflow/tech/osu018/osu018_stdcells.lib"
"""OSU 0.18 um standard cells, from Debian's ``qflow-tech-osu018``."""
SRAM_UM2_PER_BIT = 9.32
SRAM_MIN_BITS = 1024


def liberty_path(liberty=None):
    """The Liberty file to map to: ``liberty``, else the OSU 0.18 um library when installed."""
    if liberty is not None:
        path = Path(liberty)
        if not path.is_file():
            raise FileNotFoundError(2, "no such file", str(liberty))
        return path.resolve()
    path = Path(DEFAULT_LIBERTY)
    if not path.is_file():
        raise ToolMissing(f"{DEFAULT_LIBERTY} is missing (Debian package qflow-tech-osu018; "
                          "or give --liberty FILE)")
    return path


def _sta_tool():
    path = shutil.which("sta")
    if path is None:
        raise ToolMissing("sta is not on PATH (Debian package opensta)")
    return path


def _bits(value):
    """A Yosys JSON parameter (binary string, most significant bit first, or int) as an int."""
    if isinstance(value, int):
        return value
    return int(value.replace("x", "0").replace("z", "0"), 2)


def _flag(value, index):
    """Bit ``index`` of a Yosys JSON bit-string parameter."""
    if isinstance(value, int):
        return (value >> index) & 1
    return value[-1 - index] == "1" if index < len(value) else 0


def _rtlil_memories(text):
    """``[(module, cell, bits)]`` of the ``$mem_v2`` cells of an RTLIL text."""
    out = []
    module = None
    cell = None
    params = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "module":
            module = words[1]
        elif words[0] == "cell" and words[1] == "$mem_v2":
            cell, params = words[2], {}
        elif cell is not None and words[0] == "parameter":
            params[words[1]] = words[2]
        elif cell is not None and words[0] == "end":
            out.append((module, cell, int(params["\\SIZE"]) * int(params["\\WIDTH"])))
            cell = None
    return out


def _escape(name):
    """A module name for a Yosys command (escaped when it is no plain identifier)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name


def _yosys_name(name):
    """A module or cell name of RTLIL (``\\a.b``, ``$x``) as a Yosys selection pattern."""
    return name[1:] if name.startswith("\\") else name


def _macro_of(cell):
    """``(macro cell name, signature, ports)`` of a ``$mem_v2`` cell of a JSON netlist, and the new
    connections: every port bit becomes a scalar pin ``<PORT><bit>``."""
    p = cell["parameters"]
    size, width, abits = _bits(p["SIZE"]), _bits(p["WIDTH"]), _bits(p["ABITS"])
    n_rd, n_wr = _bits(p["RD_PORTS"]), _bits(p["WR_PORTS"])
    sync = [_flag(p["RD_CLK_ENABLE"], k) for k in range(n_rd)]
    conns = cell["connections"]
    widths = {"RD_CLK": 1, "RD_EN": 1, "RD_ARST": 1, "RD_SRST": 1, "RD_ADDR": abits,
              "RD_DATA": width, "WR_CLK": 1, "WR_EN": width, "WR_ADDR": abits, "WR_DATA": width}
    ports, new = [], {}
    for port, bits in conns.items():
        per = widths.get(port, len(bits))
        for i, bit in enumerate(bits):
            k = i // per if per else 0
            pin = f"{port}{i}"
            new[pin] = [bit]
            direction = cell["port_directions"][port]
            if port.startswith("RD"):
                clock = f"RD_CLK{k}" if k < n_rd and sync[k] else None
            else:
                clock = f"WR_CLK{k}"
            if port in ("RD_CLK", "WR_CLK"):
                ports.append(MacroPort(pin, direction, clock_pin=not isinstance(bit, str)
                                       and (port == "WR_CLK" or sync[k])))
            elif port == "RD_ARST":
                ports.append(MacroPort(pin, direction))
            elif port == "RD_DATA" and not sync[k]:
                through = tuple(f"RD_ADDR{k * abits + j}" for j in range(abits))
                ports.append(MacroPort(pin, direction, through=through))
            else:
                ports.append(MacroPort(pin, direction, clock=clock))
    sig = (size, width, n_rd, n_wr, tuple(sync), tuple(p for p in ports))
    name = f"accelgen_sram_{size}x{width}_{n_rd}r{n_wr}w" + ("" if all(sync) else "_async")
    return name, sig, ports, new, {"words": size, "width": width, "bits": size * width,
                                   "read_ports": n_rd, "write_ports": n_wr,
                                   "synchronous_read": all(sync)}


def _wrapper_macro(cell, definition, desc, clock):
    """The macro of an instance of an SRAM wrapper module (a black box): every port bit a scalar
    pin, outputs launched by ``clock``, inputs checked against it (the wrappers read
    synchronously)."""
    ports, new = [], {}
    for port, info in definition["ports"].items():
        bits = cell["connections"].get(port, ["x"] * len(info["bits"]))
        for i, bit in enumerate(bits):
            pin = port if len(bits) == 1 else f"{port}{i}"
            new[pin] = [bit]
            if port == clock:
                ports.append(MacroPort(pin, "input", clock_pin=True))
            else:
                ports.append(MacroPort(pin, info["direction"], clock=clock))
    return ports, new, {**desc, "bits": desc["words"] * desc["width"], "synchronous_read": True}


def _replace_macros(netlist, um2_per_bit, sram_modules=None, clock="clk"):
    """Replace the ``$mem_v2`` cells of a JSON netlist, and the instances of the black-box SRAM
    wrapper modules ``sram_modules`` (``{module: {"words", "width", "read_ports",
    "write_ports"}}``), by macro cells, in place; the macros as ``{cell name: (area, ports,
    description)}`` and the instances as ``[(module, cell, macro)]``."""
    macros, sigs, instances = {}, {}, []
    wrappers = {name: netlist["modules"].pop(name) for name in (sram_modules or {})
                if name in netlist["modules"]}
    for mname, module in netlist["modules"].items():
        for cname, cell in module.get("cells", {}).items():
            if cell["type"] in wrappers:
                name = cell["type"]
                ports, new, desc = _wrapper_macro(cell, wrappers[name], sram_modules[name], clock)
                macros[name] = (desc["bits"] * um2_per_bit, ports, desc)
                cell.update(parameters={}, attributes={},
                            port_directions={p.name: p.direction for p in ports}, connections=new)
                instances.append((mname, cname, name))
                continue
            if cell["type"] != "$mem_v2":
                continue
            name, sig, ports, new, desc = _macro_of(cell)
            if sigs.setdefault(name, sig) != sig:
                name = f"{name}_{len([n for n in sigs if n.startswith(name)])}"
                sigs[name] = sig
            area = desc["bits"] * um2_per_bit
            macros[name] = (area, ports, desc)
            cell.update(type=name, parameters={}, attributes={},
                        port_directions={p.name: p.direction for p in ports}, connections=new)
            instances.append((mname, cname, name))
    return macros, instances


def _sdc_period(sdc_text):
    m = re.search(r"create_clock\b[^\n]*-period\s+([0-9.]+)", sdc_text)
    if m is None:
        raise ValueError("the SDC has no create_clock -period")
    return float(m.group(1))


def _run(cmd, log, timeout, cwd, what):
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        text = Path(log).read_text() if log and Path(log).exists() else ""
        raise RuntimeError(f"{what} failed:\n" + (text + proc.stdout + proc.stderr)[-3000:])
    return proc, seconds


def module_display_name(name):
    """A module name as the report shows it: Yosys's ``$paramod\\NAME\\DEPTH=32'b...`` of a
    parameterized module (a delay line) as ``NAME #(DEPTH=3)``."""
    if not name.startswith("$paramod"):
        return name.lstrip("\\")
    base, *params = name.split("\\")[1:]
    shown = []
    for param in params:
        key, _, value = param.partition("=")
        bits = value.split("'")[-1]
        shown.append(f"{key}={int(bits, 2)}" if bits and set(bits) <= {"0", "1"} else param)
    return f"{base} #({', '.join(shown)})"


def _module_areas(netlist, top, cell_areas, macros):
    """Per module: own logic area, flip-flops, cells, submodule instances, macro instances, and the
    totals with submodules, and the number of instances under ``top``."""
    mods = netlist["modules"]
    own = {}
    for name, module in mods.items():
        if module.get("attributes", {}).get("blackbox"):
            continue
        area = ffs = cells = 0
        subs, mac, unmapped = {}, {}, {}
        for cell in module.get("cells", {}).values():
            t = cell["type"]
            if t in mods:
                subs[t] = subs.get(t, 0) + 1
            elif t in macros:
                mac[t] = mac.get(t, 0) + 1
            elif t in cell_areas:
                area += cell_areas[t].area
                cells += 1
                ffs += cell_areas[t].sequential
            else:
                unmapped[t] = unmapped.get(t, 0) + 1
        own[name] = {"area": area, "flip_flops": ffs, "cells": cells, "submodules": subs,
                     "macros": mac, "unmapped": unmapped}
    total = {}

    def totals(name):
        if name in total:
            return total[name]
        o = own[name]
        t = {"area": o["area"], "flip_flops": o["flip_flops"], "cells": o["cells"],
             "macros": dict(o["macros"]), "unmapped": dict(o["unmapped"])}
        for sub, n in o["submodules"].items():
            s = totals(sub)
            for key in ("area", "flip_flops", "cells"):
                t[key] += n * s[key]
            for key in ("macros", "unmapped"):
                for k, v in s[key].items():
                    t[key][k] = t[key].get(k, 0) + n * v
        total[name] = t
        return t

    count = {top: 1}
    order = [top]
    for name in order:          # breadth first: parents before children
        for sub, n in own[name]["submodules"].items():
            if sub not in count:
                order.append(sub)
            count[sub] = count.get(sub, 0) + n * count[name]
    rows = []
    for name in order:
        t = totals(name)
        macro_area = sum(macros[m][0] * n for m, n in t["macros"].items())
        rows.append({"module": module_display_name(name), "instances": count[name],
                     "area_um2": round(own[name]["area"], 1),
                     "area_with_submodules_um2": round(t["area"], 1),
                     "flip_flops": t["flip_flops"], "cells": t["cells"],
                     "sram_macros": sum(t["macros"].values()),
                     "sram_area_um2": round(macro_area, 1), "macro_counts": t["macros"],
                     "unmapped": t["unmapped"]})
    return rows


_REG_MARK = "=== accelgen: register to register ==="

_PATH_LINE = re.compile(r"^\s*(-?[0-9.]+)\s+(-?[0-9.]+)\s+([\^v])\s+(\S+)\s+\((\S+)\)")


def _parse_sta(text, sequential=()):
    """Worst slack, start and end points and cells of the worst setup path of a ``report_checks``
    output."""
    m = re.search(r"^\s*(-?[0-9.]+)\s+slack \((?:MET|VIOLATED)\)", text, re.M)
    if m is None:
        return None
    slack = float(m.group(1))
    start = re.search(r"^Startpoint:\s*(.*)$", text, re.M)
    end = re.search(r"^Endpoint:\s*(.*)$", text, re.M)
    arrival = re.search(r"^\s*(-?[0-9.]+)\s+data arrival time", text, re.M)
    levels = 0
    section = text[text.find("Startpoint"):]
    section = section[:section.find("data arrival time")]
    for line in section.splitlines():
        pm = _PATH_LINE.match(line)
        if pm and "/" in pm.group(4) and pm.group(5) not in sequential:
            levels += 1
    return {"slack_ns": slack, "startpoint": start.group(1).strip() if start else None,
            "endpoint": end.group(1).strip() if end else None,
            "arrival_ns": float(arrival.group(1)) if arrival else None, "cell_levels": levels}


def synthesize(verilog, top, *, liberty=None, sdc=None, period_ns=None,
               sram_min_bits=SRAM_MIN_BITS, sram_um2_per_bit=SRAM_UM2_PER_BIT,
               sram_access_ns=0.0, sram_setup_ns=0.0, flatten=False, timing=True,
               flow=None, clock="clk", reset="rst", systemverilog=False, sram_modules=None,
               netlist=None, work_dir=None, timeout=7200):
    """Synthesize ``top`` of the Verilog file ``verilog`` to the Liberty library and time it.

    ``sdc``: the SDC text to time with; else, with ``flow`` (a :class:`gen.config.FlowConfig`),
    the SDC that ``accelgen emit`` would write for the top's ports (:func:`gen.flow.sdc_text`,
    ``clock`` and ``reset`` naming those ports); else a clock ``clock`` of ``period_ns`` (default
    10 ns) and no I/O delays. ``systemverilog``: read the source as SystemVerilog; ``flatten``:
    one module instead of the hierarchy; ``netlist``: where to write the mapped Verilog netlist;
    ``work_dir``: a folder to keep the scripts, logs and netlists in (else a temporary one).
    ``sram_modules``: SRAM wrapper modules to keep as black boxes (macros), as ``{module:
    {"words", "width", "read_ports", "write_ports"}}``; their contents are not synthesized.

    The report has ``area_um2`` (logic), ``sram`` (macros: count, bits, modelled area, shapes),
    ``total_area_um2``, ``flip_flops``, ``cells``, ``modules`` (per module, see
    :func:`format_table`), ``unmapped`` (cells left outside the library, such as latches, which
    should be empty), ``timing`` (``min_period_ns``, ``slack_ns`` at the SDC's period, the worst
    path's start and end points and cell levels, and ``register_to_register``: the same for the
    worst path between flip-flops or macros alone, without the I/O delays) and the tools' seconds.
    """
    yosys = _tool("yosys")
    sta = _sta_tool() if timing else None
    lib = liberty_path(liberty)
    cells = read_cells(lib)
    drive, load = drive_and_load(cells)
    if sdc is not None:
        period_ns = _sdc_period(sdc)
    elif flow is not None:
        period_ns = flow.clock_period_ns
    elif period_ns is None:
        period_ns = 10.0
    verilog = Path(verilog).resolve()
    with tempfile.TemporaryDirectory(prefix="accelgen-asic-") as tmp:
        tmp = Path(tmp)
        if work_dir is not None:
            tmp = Path(work_dir).resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        flat = " -flatten" if flatten else ""
        (tmp / "coarse.ys").write_text(
            f"read_verilog{' -sv' if systemverilog else ''} {verilog}\n"
            + "".join(f"blackbox {_escape(m)}\n" for m in sram_modules or {})
            + f"hierarchy -check -top {top}\n"
            f"synth{flat} -top {top} -run begin:fine\nwrite_rtlil {tmp / 'coarse.il'}\n")
        _, s1 = _run([yosys, "-q", "-l", str(tmp / "coarse.log"), "-s", str(tmp / "coarse.ys")],
                     tmp / "coarse.log", timeout, tmp, f"yosys on {top}")
        memories = _rtlil_memories((tmp / "coarse.il").read_text())
        small = [f"{_yosys_name(m)}/{_yosys_name(c)}" for m, c, bits in memories
                 if bits < sram_min_bits]
        (tmp / "abc.constr").write_text(f"set_driving_cell {drive}\nset_load {load}\n")
        script = [f"read_rtlil {tmp / 'coarse.il'}"]
        if small:
            script.append("memory_map " + " ".join(small))
        script += [
            "opt -fast -full", "opt -full", "techmap", "opt -fast",
            f"dfflibmap -liberty {lib}",
            "opt -fast",
            f"abc -liberty {lib} -constr {tmp / 'abc.constr'} -D {period_ns * 1000:.0f}",
            "opt_clean",
            f"write_json {tmp / 'net.json'}",
            "check",
        ]
        (tmp / "map.ys").write_text("\n".join(script) + "\n")
        _, s2 = _run([yosys, "-q", "-l", str(tmp / "map.log"), "-s", str(tmp / "map.ys")],
                     tmp / "map.log", timeout, tmp, f"yosys on {top}")
        net = json.loads((tmp / "net.json").read_text())
        macros, instances = _replace_macros(net, sram_um2_per_bit, sram_modules, clock)
        (tmp / "net_macros.json").write_text(json.dumps(net))
        _run([yosys, "-q", "-p", f"read_json {tmp / 'net_macros.json'}; "
              f"write_verilog -noattr -noexpr {tmp / 'net.v'}"], None, timeout, tmp,
             f"yosys (netlist of {top})")
        if netlist is not None:
            shutil.copyfile(tmp / "net.v", netlist)
        top_key = top if top in net["modules"] else f"\\{top}"
        if sdc is None and flow is not None:
            from .flow import sdc_text
            sdc = sdc_text(_manifest_of_ports(net["modules"][top_key], top, clock, reset), flow)
        modules = _module_areas(net, top_key, cells, macros)
        report = _report(top, modules, macros, lib, period_ns)
        report.update(seconds_yosys=round(s1 + s2, 1))
        if timing:
            report["timing"] = _time(sta, lib, cells, tmp, top, macros, sdc, period_ns,
                                     sram_access_ns, sram_setup_ns, timeout, clock)
    return report


def _manifest_of_ports(module, top, clock, reset):
    """The manifest (top, block, ports) :func:`gen.flow.sdc_text` needs, from a JSON netlist's
    module: ``clock`` and ``reset`` by name, every other port a data port."""
    ports = []
    for name, port in module["ports"].items():
        role = {clock: "clock", reset: "reset"}.get(name, "data")
        ports.append({"name": name, "direction": "in" if port["direction"] == "input" else "out",
                      "width": len(port["bits"]), "role": role})
    return {"top": top, "block": "component", "ports": ports}


def _report(top, modules, macros, lib, period_ns):
    head = modules[0]
    shapes = []
    for name, n in sorted(head["macro_counts"].items()):
        area, _, desc = macros[name]
        shapes.append({"macro": name, "instances": n, **desc, "area_um2": round(area, 1)})
    return {
        "top": top,
        "liberty": str(lib),
        "area_um2": head["area_with_submodules_um2"],
        "flip_flops": head["flip_flops"],
        "cells": head["cells"],
        "sram": {"macros": head["sram_macros"], "area_um2": head["sram_area_um2"],
                 "bits": sum(x["bits"] * x["instances"] for x in shapes), "shapes": shapes},
        "total_area_um2": round(head["area_with_submodules_um2"] + head["sram_area_um2"], 1),
        "unmapped": head["unmapped"],
        "modules": modules,
        "abc_delay_target_ns": period_ns,
    }


def _time(sta, lib, cells, tmp, top, macros, sdc, period_ns, access_ns, setup_ns, timeout,
          clock="clk"):
    libs = [str(lib)]
    if macros:
        text = macro_library("accelgen_sram_models",
                             [(n, a, ports) for n, (a, ports, _) in macros.items()],
                             access_ns=access_ns, setup_ns=setup_ns)
        (tmp / "macros.lib").write_text(text)
        libs.append(str(tmp / "macros.lib"))
    if sdc is not None:
        (tmp / "top.sdc").write_text(sdc)
        constraints = f"read_sdc {tmp / 'top.sdc'}"
    else:
        constraints = f"create_clock -name {clock} -period {period_ns} [get_ports {clock}]"
    script = [f"read_liberty {x}" for x in libs] + [
        f"read_verilog {tmp / 'net.v'}",
        f"link_design {top}",
        constraints,
        "report_checks -path_delay max -digits 3",
        f"puts \"{_REG_MARK}\"",
        "report_checks -path_delay max -digits 3 -from [all_registers -clock_pins] "
        "-to [all_registers -data_pins]",
        "exit",
    ]
    (tmp / "sta.tcl").write_text("\n".join(script) + "\n")
    start = time.monotonic()
    proc = subprocess.run([sta, "-no_init", "-no_splash", "-exit", str(tmp / "sta.tcl")],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp)
    seconds = round(time.monotonic() - start, 1)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Error" in out:
        raise RuntimeError(f"OpenSTA failed on {top}:\n" + out[-3000:])
    sequential = {n for n, c in cells.items() if c.sequential} | set(macros)
    every, _, inside = out.partition(_REG_MARK)
    path = _parse_sta(every, sequential)
    if path is None:
        return {"min_period_ns": None, "note": "no constrained path", "seconds": seconds,
                "period_ns": period_ns}
    path.update(period_ns=period_ns, min_period_ns=round(period_ns - path["slack_ns"], 3),
                sram_access_ns=access_ns, sram_setup_ns=setup_ns, seconds=seconds)
    reg = _parse_sta(inside, sequential)
    path["register_to_register"] = None if reg is None else {
        "min_period_ns": round(period_ns - reg["slack_ns"], 3), "startpoint": reg["startpoint"],
        "endpoint": reg["endpoint"], "cell_levels": reg["cell_levels"]}
    return path


def run(config, *, liberty=None, sram_min_bits=SRAM_MIN_BITS, sram_um2_per_bit=SRAM_UM2_PER_BIT,
        sram_access_ns=0.0, sram_setup_ns=0.0, flatten=False, timing=True, done=None):
    """Synthesize and time every top of ``config`` with its emitted SDC; a JSON-ready dict.
    ``done``: called with each top's name when it is finished."""
    from .emit import render
    from .synth import _yosys_version
    lib = liberty_path(liberty)
    _tool("yosys")
    if timing:
        _sta_tool()
    files = render(config)
    results = []
    with tempfile.TemporaryDirectory(prefix="accelgen-asic-src-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            manifest = json.loads(files[name])
            top = manifest["top"]
            report = synthesize(source_file(tmp, manifest), top, liberty=lib,
                                sram_modules=sram_modules(manifest),
                                sdc=files[f"{top}.sdc"], sram_min_bits=sram_min_bits,
                                sram_um2_per_bit=sram_um2_per_bit, sram_access_ns=sram_access_ns,
                                sram_setup_ns=sram_setup_ns, flatten=flatten, timing=timing)
            report["block"] = manifest["block"]
            report["parameters"] = manifest["parameters"]
            results.append(report)
            if done:
                done(top)
    return {"target": "asic", "liberty": str(lib), "yosys": _yosys_version(),
            "sta": _sta_version() if timing else None, "sram_min_bits": sram_min_bits,
            "sram_um2_per_bit": sram_um2_per_bit, "sram_access_ns": sram_access_ns,
            "sram_setup_ns": sram_setup_ns, "flatten": flatten, "tops": results}


def sram_modules(manifest):
    """The SRAM wrapper modules of a top's manifest (its ``hierarchy``), as
    :func:`synthesize` takes them."""
    out = {}
    for entry in manifest.get("hierarchy", []):
        if entry["component"].rsplit(".", 1)[-1] == "SramMacro":
            p = entry["parameters"]
            out[entry["module"]] = {"words": p["depth"], "width": p["width"],
                                    "read_ports": p["reads"], "write_ports": p["writes"]}
    return out


def _sta_version():
    proc = subprocess.run([_sta_tool(), "-version"], capture_output=True, text=True)
    return f"OpenSTA {proc.stdout.strip()}"


def _num(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _short(point):
    """A start or end point of OpenSTA without its description (``_123_ (rising edge...)``)."""
    return point.split(" (")[0] if point else "-"


def format_table(result):
    """Readable tables of a :func:`run` result: one row per top, then each top's modules."""
    head = ["top", "block", "logic um^2", "flip-flops", "SRAM macros", "SRAM bits",
            "SRAM um^2 (model)", "total um^2", "min period ns", "worst path", "levels"]
    rows = []
    for r in result["tops"]:
        t = r.get("timing") or {}
        path = f"{_short(t.get('startpoint'))} -> {_short(t.get('endpoint'))}" if t.get(
            "startpoint") else t.get("note", "-")
        rows.append([r["top"], r["block"], _num(r["area_um2"]), r["flip_flops"],
                     r["sram"]["macros"], _num(r["sram"]["bits"]), _num(r["sram"]["area_um2"]),
                     _num(r["total_area_um2"]), _num(t.get("min_period_ns"), 2), path,
                     t.get("cell_levels", "-")])
    parts = [_table(head, rows)]
    for r in result["tops"]:
        mrows = [[m["module"], m["instances"], _num(m["area_um2"]),
                  _num(m["area_with_submodules_um2"]), m["flip_flops"],
                  _num(m["sram_area_um2"]) if m["sram_macros"] else "-"] for m in r["modules"]]
        parts.append(f"{r['top']}: modules (area of one instance; with submodules: its own and "
                     "its submodules' logic)\n\n" + _table(
                         ["module", "instances", "own um^2", "with submodules um^2",
                          "flip-flops", "SRAM um^2"], mrows))
        if r["sram"]["shapes"]:
            srows = [[s["macro"], s["instances"], s["words"], s["width"], _num(s["bits"]),
                      f"{s['read_ports']}R{s['write_ports']}W"
                      + ("" if s["synchronous_read"] else " async read"), _num(s["area_um2"])]
                     for s in r["sram"]["shapes"]]
            parts.append(f"{r['top']}: SRAM macros (black boxes)\n\n" + _table(
                ["macro", "instances", "words", "bits/word", "bits", "ports", "um^2 each (model)"],
                srows))
        if r["unmapped"]:
            parts.append(f"{r['top']}: cells not in the library: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(r["unmapped"].items())))
    parts.append(
        f"{result['yosys']}, {result['sta'] or 'no timing'}; library {result['liberty']}. "
        f"Memories of at least {result['sram_min_bits']} bits are SRAM macros at "
        f"{result['sram_um2_per_bit']:g} um^2 per bit (a model), timed as register boundaries "
        f"(access {result['sram_access_ns']:g} ns, setup {result['sram_setup_ns']:g} ns). "
        "Min period: the SDC's period minus the worst setup slack (I/O delays as in the SDC; "
        "no wire load).")
    return "\n\n".join(parts)
