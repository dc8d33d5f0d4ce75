"""Hierarchical emission: one Verilog module per distinct component, instantiated where it is used.

Amaranth turns every submodule into a module of its own, named after its place in the hierarchy
(``\\top.array.pe_3_7``), so an R x C array becomes R x C module definitions. Here, a component whose
class mixes in :class:`Reused` is instead *instantiated*: the parent gets an ``Instance`` of a module
named after the top and the component (``accelgen_gemm_pe``), and the component is elaborated and
converted once per distinct parameter set (its constructor's keyword arguments), however often it is
used. Everything else (the glue logic of a block, small helpers) is flattened into the module that
uses it, with ``_``-joined names (``array_skew_a_3_0``).

How: :func:`convert` collects the distinct components while Amaranth elaborates the top (:func:`add`
stands in for ``m.submodules[name] = component``), converts each to RTLIL on its own, marks it
``keep_hierarchy`` and runs Amaranth's builtin Yosys once over all of them: ``proc`` (processes become
plain multiplexers and flip-flops, so the Verilog has no ``always @*`` blocks that need a time-zero
trigger and reads the same under Verilog-2005 and SystemVerilog rules), ``flatten`` (everything but the
kept modules), ``opt_clean -purge`` (wires nothing reads) and ``write_verilog``. Components whose memories are never
read before written (FIFO storage) say so (``memory_init = False``) and get no per-word
initialization. Names Yosys leaves
escaped (``\\a.b``, ``\\x[3]``) are made plain identifiers, and identifiers that are SystemVerilog
keywords are renamed, so every name in the file is a plain Verilog-2005 and SystemVerilog identifier.

A component that supplies its own Verilog (:meth:`Reused.verilog`, the SRAM macros of
:mod:`gen.lib.sram`) is declared to Yosys as a black box and its text is returned beside the design.

Outside :func:`convert` (for example in Amaranth's simulator), :func:`add` is a plain submodule.
"""

import inspect
import json
import re
import threading
from dataclasses import dataclass, field

from amaranth.hdl import ClockSignal, Elaboratable, Instance, ResetSignal, Value
from amaranth.lib import wiring

__all__ = ["Reused", "add", "convert", "Converted", "ModuleInfo", "KEYWORDS", "plain_name"]

# Verilog-2005 (IEEE 1364-2005, Annex B) and SystemVerilog (IEEE 1800-2017, Annex B) keywords.
VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign default
defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule endprimitive
endspecify endtable endtask event for force forever fork function generate genvar highz0 highz1 if
ifnone incdir include initial inout input instance integer join large liblist library localparam
macromodule medium module nand negedge nmos nor noshowcancelled not notif0 notif1 or output parameter
pmos posedge primitive pull0 pull1 pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small
specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1
triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
""".split())
SYSTEMVERILOG_KEYWORDS = frozenset("""
accept_on alias always_comb always_ff always_latch assert assume before bind bins binsof bit break byte
chandle checker class clocking const constraint context continue cover covergroup coverpoint cross dist
do endchecker endclass endclocking endgroup endinterface endpackage endprogram endproperty endsequence
enum eventually expect export extends extern final first_match foreach forkjoin global iff ignore_bins
illegal_bins implements implies import inside int interconnect interface intersect join_any join_none
let local logic longint matches modport nettype new nexttime null package packed priority program
property protected pure rand randc randcase randsequence ref reject_on restrict return s_always
s_eventually s_nexttime s_until s_until_with sequence shortint shortreal soft solve static string
strong struct super sync_accept_on sync_reject_on tagged this throughout timeprecision timeunit type
typedef union unique unique0 until until_with untyped var virtual void wait_order weak wildcard with
within
""".split())
KEYWORDS = VERILOG_KEYWORDS | SYSTEMVERILOG_KEYWORDS


def plain_name(text):
    """``text`` as a plain identifier: other characters become ``_``, a keyword gets a ``_`` appended."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "_" + name
    if name in KEYWORDS:
        name += "_"
    return name


def _jsonable(value):
    if hasattr(value, "as_dict"):
        return _jsonable(value.as_dict())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return repr(value)


class Reused:
    """Mixin for a :class:`wiring.Component` that is emitted as one Verilog module per distinct set of
    constructor arguments (which must determine its hardware completely; a positional parameter
    object with an ``as_dict`` method counts as its fields).

    ``module_suffix`` names the module after the top (``<top>_<suffix>``); :meth:`module_suffix_for`
    may refine it from the parameters (a FIFO's width and depth). A subclass that writes its own
    Verilog overrides :meth:`verilog`.
    """

    module_suffix = None
    verilog_parameters = ()
    """Constructor arguments that are parameters of the module's own Verilog (:meth:`verilog`),
    set per instance (``#(.DEPTH(5))``) rather than giving modules of their own."""
    memory_init = True
    """False for a component whose memories need no initial contents (never read before written):
    the Verilog then has no per-word initialization for them."""
    optional_parameters = ()
    """Constructor arguments left out of the module's parameters while they hold their default
    (features added later: a module built without them keeps the parameters it had before)."""

    def __new__(cls, *args, src_loc_at=0, **kwargs):
        self = super().__new__(cls, *args, src_loc_at=src_loc_at + 1, **kwargs)
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        params, self._instance_parameters = {}, {}
        defaults = inspect.signature(cls.__init__).parameters
        for key, value in list(bound.arguments.items())[1:]:
            if key in cls.optional_parameters and value == defaults[key].default:
                continue
            if key in cls.verilog_parameters:
                self._instance_parameters[key.upper()] = value
            elif hasattr(value, "as_dict"):
                params.update(value.as_dict())
            else:
                params[key] = value
        self._reuse_parameters = _jsonable(params)
        return self

    @property
    def module_parameters(self):
        """The parameters the module was generated with (JSON-ready)."""
        return self._reuse_parameters

    @property
    def instance_parameters(self):
        """Verilog parameters of this instance (:attr:`verilog_parameters`, upper case)."""
        return self._instance_parameters

    def module_suffix_for(self, parameters):
        return self.module_suffix or plain_name(type(self).__name__.lower())

    def verilog(self, module_name):
        """Verilog of this component's module, for components that write their own; ``None`` else."""
        return None


@dataclass
class ModuleInfo:
    """One emitted module: its name, the component class, its parameters, its instantiations."""

    name: str
    component: str
    parameters: dict
    rtlil: str = ""
    ports: dict = field(default_factory=dict)
    """Port name -> ``"input"`` or ``"output"``, as converted."""
    verilog: str = None
    memory_init: bool = True
    """False: the component's memories get no initial contents (:attr:`Reused.memory_init`)."""
    uses: dict = field(default_factory=dict)
    """Module name -> instantiations of it in this module."""

    def as_dict(self, instances):
        return {"module": self.name, "component": self.component, "parameters": self.parameters,
                "instances": instances}


class _Collection:
    def __init__(self, top):
        self.top = top
        self.by_key = {}
        self.by_name = {}
        self.stack = []

    def module_for(self, comp):
        params = comp.module_parameters
        key = (type(comp).__module__, type(comp).__qualname__,
               json.dumps(params, sort_keys=True))
        info = self.by_key.get(key)
        if info is None:
            base = plain_name(f"{self.top}_{comp.module_suffix_for(params)}")
            name, n = base, 2
            while name in self.by_name:
                name, n = f"{base}_{n}", n + 1
            info = ModuleInfo(name=name, component=f"{type(comp).__module__}.{type(comp).__qualname__}",
                              parameters=params, memory_init=comp.memory_init)
            self.by_key[key] = self.by_name[name] = info
            self._convert(info, comp)
        else:
            _mark_used(comp)
        return info

    def _convert(self, info, comp):
        text = comp.verilog(info.name)
        if text is not None:
            _mark_used(comp)
            info.verilog = text
            info.ports = {"__".join(map(str, path)): ("input" if member.flow == wiring.In else "output")
                          for path, member, _ in comp.signature.flatten(comp)}
            if getattr(comp, "clocked", True):
                reset = {"rst": "input"} if getattr(comp, "resettable", False) else {}
                info.ports = {"clk": "input", **reset, **info.ports}
            info.rtlil = _blackbox_rtlil(info.name, comp, info.ports)
            return
        from amaranth.back import rtlil
        self.stack.append(info)
        try:
            info.rtlil = rtlil.convert(comp, name=info.name, emit_src=False)
        finally:
            self.stack.pop()
        info.ports = _rtlil_ports(info.rtlil, info.name)


_local = threading.local()


def _current():
    return getattr(_local, "collection", None)


def _mark_used(obj, seen=None):
    """Mark ``obj`` and the elaboratables it holds as used (they are instantiated, not elaborated)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Elaboratable):
        obj._MustUse__used = True
        values = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    elif isinstance(obj, dict):
        values = obj.values()
    else:
        return
    for value in values:
        if isinstance(value, (Elaboratable, list, tuple, dict)):
            _mark_used(value, seen)


def add(m, name, comp):
    """``m.submodules[name] = comp``, or, while :func:`convert` runs and ``comp`` is :class:`Reused`,
    an instance of ``comp``'s module connected to ``comp``'s interface signals. Returns ``comp``."""
    col = _current()
    if col is None or not isinstance(comp, Reused):
        m.submodules[name] = comp
        return comp
    info = col.module_for(comp)
    parent = col.stack[-1] if col.stack else None
    if parent is not None:
        parent.uses[info.name] = parent.uses.get(info.name, 0) + 1
    else:
        col.top_uses[info.name] = col.top_uses.get(info.name, 0) + 1
    conns = {}
    if info.ports.get("clk") == "input":
        conns["i_clk"] = ClockSignal("sync")
    if info.ports.get("rst") == "input":
        conns["i_rst"] = ResetSignal("sync")
    for path, member, value in comp.signature.flatten(comp):
        port = "__".join(map(str, path))
        if port in info.ports:
            prefix = "i_" if member.flow == wiring.In else "o_"
            conns[prefix + port] = Value.cast(value)
    for key, value in comp.instance_parameters.items():
        conns["p_" + key] = value
    m.submodules[name] = Instance(info.name, **conns)
    return comp


_PORT_RE = re.compile(r"^\s*wire (?:width \d+ )?(input|output|inout) \d+\s+(?:signed\s+)?\\(\S+)\s*$")


def _rtlil_ports(text, module):
    """Ports of ``module`` in RTLIL ``text``: name -> direction."""
    ports, inside = {}, False
    for line in text.splitlines():
        if line.startswith("module "):
            inside = line.split()[1] == "\\" + module
        elif inside:
            hit = _PORT_RE.match(line)
            if hit:
                ports[hit.group(2)] = hit.group(1)
    return ports


def _blackbox_rtlil(name, comp, ports):
    widths = {"clk": 1, "rst": 1}
    for path, _, value in comp.signature.flatten(comp):
        widths["__".join(map(str, path))] = len(Value.cast(value))
    lines = ["attribute \\blackbox 1", f"module \\{name}"]
    lines += [f"  parameter \\{key} {value}" for key, value in comp.instance_parameters.items()]
    for k, (port, direction) in enumerate(ports.items(), 1):
        lines.append(f"  wire width {widths[port]} {direction} {k} \\{port}")
    lines.append("end")
    return "\n".join(lines) + "\n"


@dataclass
class Converted:
    """The result of :func:`convert`: Verilog of the design, text of self-written modules, and the
    module hierarchy (top first, then by name)."""

    verilog: str
    macros: dict
    """Module name -> Verilog of the modules that supply their own (SRAM macros)."""
    hierarchy: list


def _without_initial_contents(rtlil_text):
    """``rtlil_text`` without its memory initialization cells."""
    return re.sub(r"(?ms)^\s*cell \$meminit_v2 .*?^\s*end\n", "", rtlil_text)


def _keep(rtlil_text, name):
    """``rtlil_text`` with module ``name`` marked to survive ``flatten``."""
    return re.sub(rf"(?m)^module \\{re.escape(name)}$",
                  lambda hit: "attribute \\keep_hierarchy 1\n" + hit.group(0), rtlil_text, count=1)


def convert(top, name):
    """Verilog of component ``top`` as module ``name``, with its :class:`Reused` parts as modules."""
    import os

    from amaranth._toolchain.yosys import find_yosys
    from amaranth.back import rtlil

    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    if _current() is not None:
        raise RuntimeError("hier.convert is not reentrant")
    col = _Collection(name)
    col.top_uses = {}
    _local.collection = col
    try:
        top_rtlil = rtlil.convert(top, name=name, emit_src=False)
    finally:
        _local.collection = None
    infos = list(col.by_name.values())
    parts = [top_rtlil] + [_keep(info.rtlil, info.name) if info.verilog is None else info.rtlil
                           for info in infos]
    parts = [text if info is None or info.memory_init else _without_initial_contents(text)
             for info, text in zip([None] + infos, parts, strict=True)]
    script = [
        "read_rtlil <<rtlil\n" + "\n".join(parts) + "\nrtlil",
        f"hierarchy -top {_rtlil_id(name)}",
        "proc -norom",
        "flatten -separator _ -noscopeinfo",
        f"hierarchy -top {_rtlil_id(name)}",
        "opt_clean -purge",
        "memory_collect",
        "attrmap -remove generator -remove top -remove src -remove amaranth.hierarchy "
        "-remove amaranth.decoding -remove keep_hierarchy",
        "attrmap -modattr -remove generator -remove top -remove src -remove amaranth.hierarchy "
        "-remove amaranth.decoding -remove keep_hierarchy",
        "write_verilog -noattr",
    ]
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    text = yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)
    text = _tidy(text)

    uses = {name: col.top_uses}
    uses.update({info.name: info.uses for info in infos})
    totals = {name: 1}

    def total(mod):
        if mod not in totals:
            totals[mod] = sum(total(parent) * n.get(mod, 0) for parent, n in uses.items()
                              if mod in n)
        return totals[mod]

    hierarchy = [{"module": name, "component": f"{type(top).__module__}.{type(top).__qualname__}",
                  "parameters": {}, "instances": 1}]
    for info in sorted(infos, key=lambda i: i.name):
        hierarchy.append(info.as_dict(total(info.name)))
    macros = {info.name: info.verilog for info in infos if info.verilog is not None}
    return Converted(verilog=text, macros=macros, hierarchy=hierarchy)


def _rtlil_id(name):
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name


_ESCAPED = re.compile(r"\\(\S+)(?=\s)")
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_$]*\b")


def _tidy(text):
    """Yosys's Verilog made plain: no banner, no escaped identifiers, no keyword used as a name."""
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].startswith("/*") or lines[0].startswith("//") or not lines[0].strip()
                     or lines[0].lstrip().startswith("*")):
        if lines[0].startswith("module"):
            break
        lines.pop(0)
    text = "".join(lines)
    out = []
    for chunk in re.split(r"(?m)^(?=module )", text):
        out.append(_tidy_module(chunk))
    return "".join(out)


def _tidy_module(chunk):
    taken = set(_WORD.findall(_ESCAPED.sub(" ", chunk)))
    mapping = {}

    def fresh(raw):
        base = plain_name(raw)
        candidate, n = base, 1
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        return candidate

    def escaped(hit):
        raw = hit.group(1)
        if raw not in mapping:
            mapping[raw] = fresh(raw)
        return mapping[raw]

    chunk = _ESCAPED.sub(escaped, chunk)
    # A plain identifier that is a SystemVerilog keyword (Yosys writes only Verilog-2005 keywords).
    sv_only = SYSTEMVERILOG_KEYWORDS
    renames = {}

    def word(hit):
        w = hit.group(0)
        if w in sv_only:
            if w not in renames:
                renames[w] = fresh(w + "_")
            return renames[w]
        return w

    return _WORD.sub(word, chunk)
