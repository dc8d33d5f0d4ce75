"""What the ASIC flow needs from a Liberty file, and the Liberty models of SRAM macros.

:func:`read_cells` reads a Liberty library's cells (area, sequential or not, pins with direction,
capacitance and function), enough to add up areas, to choose ABC's driving cell and load
(:func:`drive_and_load`) and to tell flip-flops from logic. :func:`macro_library` writes the Liberty
text of black-box SRAM macros: area, and timing arcs that make their ports register boundaries
(read data launched by the clock, inputs checked against it), so that OpenSTA times the logic around
them.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cell", "read_cells", "drive_and_load", "macro_library", "MacroPort"]

_TOKEN = re.compile(r'/\*.*?\*/|"(?:\\.|[^"\\])*"|[{};]|[^{};"/]+|/', re.S)


@dataclass
class Cell:
    """A Liberty cell: ``area``, ``sequential`` (it holds state: ``ff``, ``latch`` or
    ``statetable`` group), and ``pins`` as ``{name: {"direction", "capacitance", "function"}}``."""

    name: str
    area: float
    sequential: bool = False
    pins: dict = field(default_factory=dict)


def _statements(text):
    """``(kind, head)`` pairs: ``("open", head)`` for ``head {``, ``("close", "")`` for ``}`` and
    ``("attr", head)`` for ``head ;``, comments and line continuations removed."""
    text = text.replace("\\\n", " ")
    pending = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok.startswith("/*"):
            continue
        if tok == "{":
            yield "open", "".join(pending).strip()
            pending = []
        elif tok == "}":
            if "".join(pending).strip():
                yield "attr", "".join(pending).strip()
            pending = []
            yield "close", ""
        elif tok == ";":
            yield "attr", "".join(pending).strip()
            pending = []
        else:
            pending.append(tok)


def _group(head):
    m = re.fullmatch(r"(\w+)\s*\((.*)\)", head, re.S)
    if m is None:
        return head, ""
    return m.group(1), m.group(2).strip().strip('"')


def _attr(head):
    if ":" not in head:
        return None, None
    key, value = head.split(":", 1)
    return key.strip(), value.strip().strip('"')


def read_cells(path):
    """``{cell name: Cell}`` of the Liberty file ``path``."""
    cells = {}
    stack = []
    cell = pin = None
    for kind, head in _statements(Path(path).read_text(encoding="utf-8", errors="replace")):
        if kind == "open":
            name, arg = _group(head)
            stack.append(name)
            if name == "cell" and len(stack) == 2:
                cell = Cell(arg, 0.0)
                cells[arg] = cell
            elif cell is not None and len(stack) == 3:
                if name in ("ff", "latch", "statetable", "ff_bank", "latch_bank"):
                    cell.sequential = True
                elif name == "pin":
                    pin = cell.pins.setdefault(arg, {"direction": None, "capacitance": 0.0,
                                                     "function": None})
        elif kind == "close":
            name = stack.pop() if stack else None
            if name == "cell" and len(stack) == 1:
                cell = None
            elif name == "pin" and len(stack) == 2:
                pin = None
        else:
            key, value = _attr(head)
            if key is None:
                continue
            if cell is not None and len(stack) == 2 and key == "area":
                cell.area = float(value)
            elif pin is not None and len(stack) == 3:
                if key == "direction":
                    pin["direction"] = value
                elif key == "capacitance":
                    pin["capacitance"] = float(value)
                elif key == "function":
                    pin["function"] = value.replace(" ", "")
    return cells


def drive_and_load(cells):
    """``(driving cell, load)`` for ABC's buffering: the smallest inverter of the library (one input
    ``A``, output function ``!A`` or ``A'``), and four times its input capacitance as the load on
    every output (a fanout of four)."""
    inverters = []
    for c in cells.values():
        ins = [p for p, d in c.pins.items() if d["direction"] == "input"]
        outs = [d for d in c.pins.values() if d["direction"] == "output"]
        if len(ins) == 1 and len(outs) == 1 and not c.sequential:
            (a,) = ins
            if outs[0]["function"] in (f"!{a}", f"{a}'", f"(!{a})"):
                inverters.append((c.area, c.name, c.pins[a]["capacitance"]))
    if not inverters:
        raise ValueError("the Liberty file has no inverter (a cell with one input A and "
                         "function !A) to drive ABC's inputs")
    _, name, cap = min(inverters)
    return name, round(4 * cap, 6)


@dataclass(frozen=True)
class MacroPort:
    """One scalar pin of an SRAM macro: ``name``, ``direction`` (``input``/``output``), ``clock``
    (the name of the clock pin it is timed against, or None), ``clock_pin`` (it is a clock),
    ``through`` (for an asynchronous read data pin: the address pins it depends on)."""

    name: str
    direction: str
    clock: str | None = None
    clock_pin: bool = False
    through: tuple = ()


def _scalar(kind, value):
    return f"{kind} (scalar) {{ values (\"{value:g}\"); }}"


def macro_library(name, macros, *, access_ns, setup_ns, capacitance_pf=0.01):
    """Liberty text of a library ``name`` holding the black-box SRAM macros ``macros``, a list of
    ``(cell name, area, [MacroPort, ...])``. Read data pins of a synchronous port are launched by
    their clock after ``access_ns``; inputs timed against a clock have a setup time of ``setup_ns``;
    asynchronous read data follows its address pins after ``access_ns``."""
    lines = [
        f"library ({name}) {{",
        "  delay_model : table_lookup;",
        '  time_unit : "1ns";',
        '  voltage_unit : "1V";',
        '  current_unit : "1uA";',
        "  capacitive_load_unit (1,pf);",
        '  leakage_power_unit : "1nW";',
        '  pulling_resistance_unit : "1kohm";',
    ]
    for th in ("slew_upper_threshold_pct_rise : 80", "slew_lower_threshold_pct_rise : 20",
               "slew_upper_threshold_pct_fall : 80", "slew_lower_threshold_pct_fall : 20",
               "input_threshold_pct_rise : 50", "input_threshold_pct_fall : 50",
               "output_threshold_pct_rise : 50", "output_threshold_pct_fall : 50"):
        lines.append(f"  {th};")
    for cell, area, ports in macros:
        lines += [f"  cell ({cell}) {{", f"    area : {area:.3f};", "    dont_use : true;",
                  "    dont_touch : true;", "    interface_timing : true;"]
        for p in ports:
            lines.append(f"    pin ({p.name}) {{")
            lines.append(f"      direction : {p.direction};")
            if p.direction == "input":
                lines.append(f"      capacitance : {capacitance_pf:g};")
            if p.clock_pin:
                lines.append("      clock : true;")
            arcs = []
            if p.direction == "output" and p.clock:
                arcs.append((p.clock, "rising_edge", "cell"))
            elif p.direction == "output":
                arcs += [(a, "combinational", "cell") for a in p.through]
            elif p.clock and not p.clock_pin:
                arcs.append((p.clock, "setup_rising", "constraint"))
            for related, kind, what in arcs:
                lines += ["      timing () {", f'        related_pin : "{related}";',
                          f"        timing_type : {kind};"]
                if what == "cell":
                    lines += [f"        {_scalar('cell_rise', access_ns)}",
                              f"        {_scalar('cell_fall', access_ns)}",
                              f"        {_scalar('rise_transition', 0.1)}",
                              f"        {_scalar('fall_transition', 0.1)}"]
                else:
                    lines += [f"        {_scalar('rise_constraint', setup_ns)}",
                              f"        {_scalar('fall_constraint', setup_ns)}"]
                lines.append("      }")
            lines.append("    }")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
