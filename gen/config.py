"""Configuration: one frozen dataclass per block, TOML loading and validation.

A configuration is a TOML document with one table per block (``[gemm]``, ...). A block that has no table is
not emitted. Every key is checked: unknown keys, wrong types and values out of range raise
:class:`ConfigError`, whose message is one line naming the field, the value and what is allowed.

Example::

    [gemm]
    rows = 8
    cols = 8
    modes = ["int8", "int4", "w4a8"]
    max_k = 256

    [flow]                    # optional: constraints for FPGA and ASIC flows
    clock_period_ns = 5.0
    io_delay_fraction = 0.2

The multi-tile system has nested tables for its tiles' blocks::

    [system]
    kx = 2
    ky = 2
    [system.gemm]             # GemmConfig keys but top, checked as system.gemm.<key>
    rows = 4
    cols = 4
    [system.softmax]          # optional: SoftmaxConfig keys but top; absent = no softmax
    lanes = 4
    out_frac = 7
"""

import dataclasses
import hashlib
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from .lib.formats import (
    INT_MODE_NAMES,
    MODES,
    VSQ_VECTOR_SIZES,
    max_k_tiles,
    mode_by_name,
    vsq_acc_width,
)

__all__ = [
    "ConfigError", "ConfigFileError", "GemmConfig", "SoftmaxConfig", "NocConfig", "SystemConfig", "FlowConfig",
    "AccelConfig",
    "SECTIONS", "SETTINGS",
    "load_config", "parse_config", "default_config", "config_hash", "gemm_acc_width_needed",
    "VERILOG_KEYWORDS",
]


class ConfigError(ValueError):
    """A configuration value is not allowed.

    Parameters
    ----------
    field : str
        Dotted name of the field (``gemm.rows``).
    value : object
        The offending value as given.
    allowed : str
        What is allowed instead.
    """

    def __init__(self, field, value, allowed):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{_key(field)} = {_shorter(_show(value))}: {allowed}")


class ConfigFileError(ConfigError):
    """A configuration file cannot be read as one: the message is ``<path>: <why>``."""

    def __init__(self, path, why):
        self.field = "config"
        self.value = str(path)
        self.allowed = why
        ValueError.__init__(self, f"{_path_shown(path)}: {why}")


def _path_shown(path):
    text = str(path)
    return text if text and text.isprintable() and text.strip() == text else json.dumps(text)


_SHOWN_MAX = 120


def _shorter(text):
    """``text`` cut to :data:`_SHOWN_MAX` characters, so that a message stays one readable line."""
    if len(text) <= _SHOWN_MAX:
        return text
    return text[:_SHOWN_MAX - 4] + "..." + {"[": "]", "{": "}", '"': '"'}.get(text[0], "")


def _key(name):
    """A dotted key as written in TOML: parts that are not bare keys in quotes."""
    return ".".join(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
                    for part in str(name).split(".")) if isinstance(name, str) else str(name)


def _show(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if text.isprintable() else json.dumps(text)


def _int_field(default, lo, hi, doc):
    return field(default=default, metadata={"kind": "int", "lo": lo, "hi": hi, "doc": doc})


def _str_field(default, doc, choices=None):
    return field(default=default, metadata={"kind": "str", "choices": choices, "doc": doc})


def _num_field(default, lo, hi, doc):
    return field(default=default, metadata={"kind": "num", "lo": lo, "hi": hi, "doc": doc})


def _bool_field(default, doc):
    return field(default=default, metadata={"kind": "bool", "doc": doc})


def _strs_field(default, doc, choices):
    return field(default=default, metadata={"kind": "strs", "choices": choices, "doc": doc})


def _ints_field(default, doc, choices):
    return field(default=default, metadata={"kind": "ints", "choices": choices, "doc": doc})


def _section_field(cls, doc, optional=False, refused=None):
    """A nested table of ``cls`` keys (``[system.gemm]``); absent: ``cls()``, or ``None`` when
    ``optional``. ``refused``: keys of ``cls`` the nested table does not take (key -> the
    message's reason); they are left out of its dict."""
    return field(default=None if optional else dataclasses.MISSING,
                 default_factory=dataclasses.MISSING if optional else cls,
                 metadata={"kind": "section", "cls": cls, "optional": optional, "doc": doc,
                           "refused": dict(refused or {})})


def _field_like(cls, name, **changes):
    """Field ``name`` of the dataclass ``cls`` declared again for another one: the same kind,
    range and doc, with ``default`` and metadata entries (``lo``, ``doc``, ...) in ``changes``
    replaced."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    default = changes.pop("default", f.default)
    return field(default=default, metadata={**f.metadata, **changes})


def _check_field(section, f, value):
    name = f"{section}.{f.name}"
    meta = f.metadata
    kind = meta["kind"]
    if kind == "int":
        lo, hi = meta["lo"], meta["hi"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(name, value, f"must be an integer from {lo} to {hi}")
        if not lo <= value <= hi:
            raise ConfigError(name, value, f"must be an integer from {lo} to {hi}")
        return value
    if kind == "num":
        lo, hi = meta["lo"], meta["hi"]
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or value != value
                or not lo <= value <= hi):
            raise ConfigError(name, value, f"must be a number from {lo} to {hi}")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(name, value, "must be true or false")
        return value
    if kind == "str":
        choices = meta["choices"]
        if not isinstance(value, str) or (choices is not None and value not in choices):
            if choices is None:
                raise ConfigError(name, value, "must be a string")
            raise ConfigError(name, value, "must be one of " + ", ".join(choices))
        if choices is None and not _is_identifier(value):
            raise ConfigError(name, value,
                              "must be a Verilog identifier: a letter or _, then letters, digits or _")
        if choices is None and value in VERILOG_KEYWORDS:
            raise ConfigError(name, value, "is a Verilog or SystemVerilog keyword; choose another "
                                           "module name")
        if choices is None and len(value) > IDENTIFIER_MAX:
            raise ConfigError(name, value, f"must be at most {IDENTIFIER_MAX} characters long")
        return value
    if kind == "strs":
        choices = meta["choices"]
        allowed = "must be a non-empty list of distinct names from: " + ", ".join(choices)
        if (not isinstance(value, (list, tuple)) or not value
                or any(not isinstance(v, str) or v not in choices for v in value)
                or len(set(value)) != len(value)):
            raise ConfigError(name, value, allowed)
        return tuple(value)
    if kind == "ints":
        choices = meta["choices"]
        allowed = ("must be a list of distinct integers from: " + ", ".join(map(str, choices))
                   + " (empty for none)")
        if (not isinstance(value, (list, tuple))
                or any(isinstance(v, bool) or v not in choices for v in value)
                or len(set(value)) != len(value)):
            raise ConfigError(name, value, allowed)
        return tuple(value)
    raise AssertionError(kind)


IDENTIFIER_MAX = 128
"""Longest module name accepted (files are named after it)."""

VERILOG_KEYWORDS = frozenset("""
    always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
    default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
    endprimitive endspecify endtable endtask event for force forever fork function generate genvar
    highz0 highz1 if ifnone incdir include initial inout input instance integer join large liblist
    library localparam macromodule medium module nand negedge nmos nor noshowcancelled not notif0
    notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup
    pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat rnmos rpmos rtran
    rtranif0 rtranif1 scalared showcancelled signed small specify specparam strong0 strong1 supply0
    supply1 table task time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use
    uwire vectored wait wand weak0 weak1 while wire wor xnor xor

    accept_on alias always_comb always_ff always_latch assert assume before bind bins binsof bit
    break byte chandle checker class clocking const constraint context continue cover covergroup
    coverpoint cross dist do endchecker endclass endclocking endgroup endinterface endpackage
    endprogram endproperty endsequence enum eventually expect export extends extern final
    first_match foreach forkjoin global iff ignore_bins illegal_bins implements implies import
    inside int interconnect interface intersect join_any join_none let local logic longint matches
    modport nettype new nexttime null package packed priority program property protected pure rand
    randc randcase randsequence ref reject_on restrict return s_always s_eventually s_nexttime
    s_until s_until_with sequence shortint shortreal soft solve static string strong struct super
    sync_accept_on sync_reject_on tagged this throughout timeprecision timeunit type typedef union
    unique unique0 until until_with untyped var virtual void wait_order weak wildcard with within
""".split())
"""Reserved words of Verilog-2005 (IEEE 1364-2005, annex B) and SystemVerilog (IEEE 1800-2017,
annex B): a module may not be named after one."""


def _is_identifier(text):
    return (bool(text) and (text[0].isalpha() or text[0] == "_") and text.isascii()
            and all(c.isalnum() or c == "_" for c in text))


def gemm_acc_width_needed(max_k):
    """Accumulator width that cannot overflow for any GEMM with ``K <= max_k``.

    The largest product magnitude of every integer mode is INT8's (-128) * (-128) = 2**14; a sum of
    ``max_k`` of them needs ``(max_k * 2**14).bit_length()`` magnitude bits plus a sign bit. INT4 (2 x 64
    per PE per cycle, but over K elements: at most ``max_k * 64``) and W4A8 (``max_k * 1024``) need less.
    """
    return (max_k * 2**14).bit_length() + 1


@dataclass(frozen=True)
class GemmConfig:
    """The mixed-precision GEMM engine (:class:`gen.gemm.GemmEngine`)."""

    top: str = _str_field("accelgen_gemm", "name of the emitted Verilog module")
    rows: int = _int_field(8, 1, 64, "PE rows R: reduction elements per beat (INT8)")
    cols: int = _int_field(8, 1, 64, "PE columns C: output channels computed at once")
    modes: tuple = _strs_field(tuple(m.name for m in MODES),
                               "run-time modes built into the PEs (FP8 modes add floating-point "
                               "hardware and a wider accumulator)", tuple(m.name for m in MODES))
    acc_width: int = _int_field(32, 8, 64, "accumulator width in bits (two's complement)")
    max_m: int = _int_field(256, 1, 65536, "largest M (rows of A) a command may ask for")
    max_n: int = _int_field(256, 1, 65536, "largest N (columns of W) a command may ask for")
    max_k: int = _int_field(256, 1, 65536, "largest K (reduction length) a command may ask for")
    out_fifo_depth: int = _int_field(32, 4, 4096, "result rows buffered before backpressure stalls")
    vsq_vector_sizes: tuple = _ints_field(
        (), "vector sizes V of per-vector scaled (VS-Quant) commands; empty builds no VSQ hardware",
        VSQ_VECTOR_SIZES)
    vsq_scale_bits: int = _int_field(4, 3, 8, "M: bits of the unsigned per-vector integer scales")
    vsq_post_mult_bits: int = _int_field(
        0, 0, 32, "bits of the per-column post-processing multiplier (0: no post-processing unit; "
        "with or without VSQ, integer modes)")
    vsq_post_row_mult_bits: int = _int_field(
        0, 0, 32, "bits of the post-processing unit's per-row multiplier (streamed with row m of "
        "A, with a 6-bit shift); 0: none")
    sparsity: str = _str_field(
        "none", "structured weight sparsity: \"2:4\" builds 2:4 PEs (commands choose dense or 2:4, "
        "twice the MACs per cycle on 2:4 weights; needs even rows), \"none\" builds none",
        ("none", "2:4"))

    def _validate(self):
        need = gemm_acc_width_needed(self.max_k)
        if self.sparsity == "2:4" and self.rows % 2:
            raise ConfigError("gemm.rows", self.rows,
                              "must be even with gemm.sparsity = \"2:4\" (two PE rows hold the "
                              "2 kept weights of a group of 4)")
        if self.acc_width < need:
            raise ConfigError("gemm.acc_width", self.acc_width,
                              f"must be at least {need} so that gemm.max_k = {self.max_k} "
                              f"INT8 products cannot overflow")
        if self.vsq_post_mult_bits and not any(n in INT_MODE_NAMES for n in self.modes):
            raise ConfigError("gemm.vsq_post_mult_bits", self.vsq_post_mult_bits,
                              "must be 0 when gemm.modes has no integer mode (int8, int4, w4a8): "
                              "the post-processing unit scales integer accumulators")
        if self.vsq_post_mult_bits == 1:
            raise ConfigError("gemm.vsq_post_mult_bits", 1, "must be 0 (none) or from 2 to 32")
        if self.vsq_post_row_mult_bits and not self.vsq_post_mult_bits:
            raise ConfigError("gemm.vsq_post_row_mult_bits", self.vsq_post_row_mult_bits,
                              "must be 0 unless gemm.vsq_post_mult_bits is set (the per-row "
                              "factor is part of the post-processing unit)")
        if self.vsq_vector_sizes:
            ints = [n for n in self.modes if n in INT_MODE_NAMES]
            if not ints:
                raise ConfigError("gemm.vsq_vector_sizes", list(self.vsq_vector_sizes),
                                  "must be empty when gemm.modes has no integer mode (int8, int4, "
                                  "w4a8)")
            vneed = max(vsq_acc_width(n, v, self.vsq_scale_bits, self.max_k)
                        for n in ints for v in self.vsq_vector_sizes)
            if self.acc_width < vneed:
                raise ConfigError("gemm.acc_width", self.acc_width,
                                  f"must be at least {vneed} for VSQ (Na + Nw + log2 V + 2M + "
                                  f"log2(max_k / V) + 1 over the integer modes and "
                                  f"gemm.vsq_vector_sizes, M = {self.vsq_scale_bits})")
        tiles = max_k_tiles(self.rows, self.modes, self.vsq_vector_sizes, self.max_k)
        words = self.max_m * tiles
        if words > 1 << 20:
            what = ("ceil(max_k / rows)" if tiles == -(-self.max_k // self.rows) else
                    f"{tiles} (the k tiles of max_k with VSQ vectors padded to whole tiles)")
            raise ConfigError("gemm.max_m", self.max_m,
                              f"max_m * {what} must be at most {1 << 20} activation-buffer "
                              f"words; it is {words}")


@dataclass(frozen=True)
class SoftmaxConfig:
    """The softmax unit (:class:`gen.softmax.Softmax`): base-2, online-normalized, fixed point.

    ``sum_frac`` and ``recip_bits`` of 0 (the default) are derived from ``out_frac`` and ``max_len`` so
    that the error stays within 0.51 output LSB (see :mod:`sim.golden.softmax`); other values override.
    """

    top: str = _str_field("accelgen_softmax", "name of the emitted Verilog module")
    lanes: int = _int_field(4, 1, 16, "P: scores per input beat (and probabilities per output beat)")
    in_width: int = _int_field(8, 2, 24, "input scores: signed, this many bits")
    in_frac: int = _int_field(4, 0, 10,
                              "fraction bits of the input (the exp2 table has 2**in_frac entries)")
    out_frac: int = _int_field(8, 1, 16,
                               "fraction bits of the unsigned output (out_frac + 1 bits, 1.0 included)")
    max_len: int = _int_field(1024, 1, 16384, "longest row L_max in elements; longer rows are cut")
    sum_frac: int = _int_field(0, 0, 48, "S: fraction bits of exp2 terms and of the sum (0 = derived)")
    recip_bits: int = _int_field(0, 0, 40, "M: reciprocal precision in bits (0 = derived)")
    table_reg: bool = _bool_field(False, "a register after the exp2 table lookups (+1 cycle per "
                                         "pass)")
    shift_reg: bool = _bool_field(True, "a register after the table entries' shifts (+1 cycle per "
                                        "pass)")
    recip_step_bits: int = _int_field(1, 1, 8, "reciprocal quotient bits per pipeline stage "
                                               "(1 + ceil((M + 2) / this) cycles)")
    mult_stages: int = _int_field(2, 1, 2, "pipeline stages of the output multiply")

    def _validate(self):
        if self.in_frac > self.in_width - 1:
            raise ConfigError("softmax.in_frac", self.in_frac,
                              f"must be at most softmax.in_width - 1 = {self.in_width - 1}")
        if self.sum_frac and self.sum_frac < self.out_frac + 2:
            raise ConfigError("softmax.sum_frac", self.sum_frac,
                              f"must be 0 (derived) or from softmax.out_frac + 2 = {self.out_frac + 2} "
                              f"to 48")
        if self.recip_bits and self.recip_bits < 4:
            raise ConfigError("softmax.recip_bits", self.recip_bits,
                              "must be 0 (derived) or from 4 to 40")


@dataclass(frozen=True)
class NocConfig:
    """The mesh network-on-chip (:class:`gen.mesh.Mesh`)."""

    top: str = _str_field("accelgen_noc", "name of the emitted Verilog module")
    kx: int = _int_field(4, 1, 8, "mesh columns (x)")
    ky: int = _int_field(4, 1, 8, "mesh rows (y)")
    flit_width: int = _int_field(32, 1, 512, "payload bits per flit")
    vcs: int = _int_field(2, 1, 4, "virtual channels per link: 1, 2 or 4")
    vc_depth: int = _int_field(4, 1, 64, "flits buffered per virtual channel at every input")
    max_packet_flits: int = _int_field(4, 1, 64, "longest packet in flits (longer ones are cut)")
    routing: str = _str_field("xy", "dimension order: x then y, or y then x", ("xy", "yx"))
    router_cycles: int = _int_field(1, 1, 2, "zero-load cycles per hop: 1, or 2 (registered inputs)")
    pipelined: bool = _bool_field(
        False, "VC allocation and switch allocation in separate pipeline stages: one more cycle per "
        "hop, a shorter clock period (needs vcs = 4 and router_cycles = 1)")

    def _validate(self):
        if self.vcs not in (1, 2, 4):
            raise ConfigError("noc.vcs", self.vcs, "must be 1, 2 or 4")
        if self.vc_depth < self.max_packet_flits:
            raise ConfigError("noc.vc_depth", self.vc_depth,
                              f"must be at least noc.max_packet_flits = {self.max_packet_flits} "
                              f"(every buffer holds a whole packet; see gen/router.py)")
        # One flit per cycle per link (the manifest's figure) for every stream: see
        # gen.lib.noc.full_rate_depth and the router's docstring.
        from .lib.noc import CREDIT_LOOP, full_rate_depth
        if self.pipelined and self.router_cycles != 1:
            raise ConfigError("noc.router_cycles", self.router_cycles,
                              "must be 1 with noc.pipelined = true")
        if self.pipelined and self.vcs != 4:
            raise ConfigError("noc.vcs", self.vcs,
                              "must be 4 with noc.pipelined = true: a head is allocated a cycle "
                              "before it leaves, and a VC is free for a new packet once its last "
                              "head's credit is back, so fewer VCs cannot carry one-flit packets at "
                              "1 flit per cycle; see gen/router.py")
        need = full_rate_depth(self.vcs, self.max_packet_flits, self.router_cycles,
                               self.pipelined)
        loop = CREDIT_LOOP[self.router_cycles]
        if need is None:
            raise ConfigError("noc.vcs", self.vcs,
                              f"must be 1 or 4 with noc.router_cycles = {self.router_cycles}: a VC "
                              f"is free for a new packet once its last head's credit is back, "
                              f"{loop + 1} cycles after it left, so {self.vcs} VCs cannot carry "
                              f"one-flit packets at 1 flit per cycle; see gen/router.py")
        if self.vc_depth < need:
            raise ConfigError("noc.vc_depth", self.vc_depth,
                              f"must be at least noc.max_packet_flits + {loop} = {need} with "
                              f"noc.vcs = 1 and noc.router_cycles = {self.router_cycles} (a whole "
                              f"packet and the {loop} flit{'s' if loop > 1 else ''} whose credits "
                              f"are on their way back, for 1 flit per cycle per link; see "
                              f"gen/router.py)")


@dataclass(frozen=True)
class FlowConfig:
    """How the emitted blocks are constrained in FPGA and ASIC flows (:mod:`gen.flow`).

    The SDC and XDC files written beside each top declare the clock ``clk`` with ``clock_period_ns``,
    and give every input and output port (but the clock, and the reset when it is a false path) a delay
    of ``io_delay_fraction`` of the period outside the block: inputs arrive that long after the clock
    edge, outputs are needed that long before the next one.
    """

    clock_period_ns: float = _num_field(10.0, 0.5, 1000, "period of the clock clk in nanoseconds")
    io_delay_fraction: float = _num_field(
        0.2, 0, 0.45, "input and output delays outside the block, as a fraction of the period")
    reset_false_path: bool = _bool_field(
        True, "rst is a false path (a synchronized reset held for several cycles)")
    sram: str = _str_field(
        "behavioural", "SRAM wrappers: behavioural modules in each top's Verilog, or black boxes "
        "(<top>_sram_blackbox.v) with the behavioural models in <top>_sram_model.v, listed in "
        "the filelist", choices=("behavioural", "blackbox"))


def _is_power_of_two(n):
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class SystemConfig:
    """The multi-tile system (:class:`gen.system.System`): a ``kx`` x ``ky`` mesh of tiles
    (:class:`gen.tile.Tile`) with a host port at node 0. The tiles' engine and softmax unit are the
    nested tables ``[system.gemm]`` and ``[system.softmax]``; the mesh's flit width is the tiles'
    word width (derived)."""

    top: str = _str_field("accelgen_system", "name of the emitted Verilog module")
    kx: int = _field_like(NocConfig, "kx", default=2)
    ky: int = _field_like(NocConfig, "ky", default=2)
    spad_words: int = _int_field(4096, 256, 65536, "scratchpad words per tile (a power of two)")
    cmd_depth: int = _int_field(16, 4, 256, "commands each tile's command FIFO holds")
    vcs: int = _field_like(NocConfig, "vcs")
    vc_depth: int = _field_like(NocConfig, "vc_depth", default=8)
    max_packet_flits: int = _field_like(NocConfig, "max_packet_flits", default=8, lo=2,
                                        doc="longest packet in flits (header included)")
    routing: str = _field_like(NocConfig, "routing")
    router_cycles: int = _field_like(NocConfig, "router_cycles")
    gemm: GemmConfig = _section_field(
        GemmConfig, "the GEMM engine of every tile",
        refused={"top": "not allowed: a tile's engine is not a Verilog module of its own "
                        "(system.top names the system's)"})
    softmax: SoftmaxConfig | None = _section_field(
        SoftmaxConfig, "the softmax unit of every tile (absent: none)", optional=True,
        refused={"top": "not allowed: a tile's softmax unit is not a Verilog module of its own "
                        "(system.top names the system's)"})

    def _validate(self):
        if self.vcs not in (1, 2, 4):
            raise ConfigError("system.vcs", self.vcs, "must be 1, 2 or 4")
        if not _is_power_of_two(self.spad_words):
            raise ConfigError("system.spad_words", self.spad_words,
                              "must be a power of two from 256 to 65536")
        if self.max_packet_flits > self.vc_depth:
            raise ConfigError("system.max_packet_flits", self.max_packet_flits,
                              f"must be at most system.vc_depth = {self.vc_depth} (every buffer "
                              f"holds a whole packet; see gen/router.py)")
        g = self.gemm
        if g.cols != g.rows:
            raise ConfigError("system.gemm.cols", g.cols,
                              f"must equal system.gemm.rows = {g.rows} (a packed output word is "
                              f"an a beat of the next GEMM)")
        sm = self.softmax
        if sm is not None:
            if sm.lanes != g.cols:
                raise ConfigError("system.softmax.lanes", sm.lanes,
                                  f"must equal system.gemm.cols = {g.cols} (a softmax beat is a "
                                  f"packed output word)")
            if sm.in_width != 8:
                raise ConfigError("system.softmax.in_width", sm.in_width,
                                  "must be 8 (a score is a byte of a packed output word)")
            if sm.out_frac > 7:
                raise ConfigError("system.softmax.out_frac", sm.out_frac,
                                  "must be at most 7 (a probability is written as a byte, "
                                  "saturated at 127)")


SECTIONS = {"gemm": GemmConfig, "softmax": SoftmaxConfig, "noc": NocConfig,
            "system": SystemConfig}
"""Block sections: each one present is emitted as a top."""

SETTINGS = {"flow": FlowConfig}
"""Sections that are not blocks; each has a default when absent."""


@dataclass(frozen=True)
class AccelConfig:
    """A whole configuration: one optional section per block, and the settings sections."""

    gemm: GemmConfig | None = None
    softmax: SoftmaxConfig | None = None
    noc: NocConfig | None = None
    system: SystemConfig | None = None
    flow: FlowConfig = FlowConfig()

    def to_dict(self):
        out = {}
        for name in [*SECTIONS, *SETTINGS]:
            section = getattr(self, name)
            if section is not None:
                out[name] = _section_dict(section)
        return out

    @property
    def blocks(self):
        return {name: getattr(self, name) for name in SECTIONS if getattr(self, name) is not None}


def _section_dict(section, refused=()):
    """A section as a TOML-ready dict: tuples as lists, nested tables as dicts (absent ones, and
    the keys a nested table refuses, left out)."""
    out = {}
    for f in dataclasses.fields(section):
        if f.name in refused:
            continue
        value = getattr(section, f.name)
        if f.metadata["kind"] == "section":
            if value is not None:
                out[f.name] = _section_dict(value, f.metadata["refused"])
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _parse_section(name, cls, data, refused=None):
    if not isinstance(data, dict):
        raise ConfigError(name, data, "must be a table")
    refused = refused or {}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in refused}
    for key in data:
        if key in refused:
            raise ConfigError(f"{name}.{key}", data[key], refused[key])
        if key not in fields:
            raise ConfigError(f"{name}.{key}", data[key],
                              "unknown key; allowed keys are " + ", ".join(fields))
    values = {}
    for key, value in data.items():
        f = fields[key]
        if f.metadata["kind"] == "section":
            values[key] = _parse_section(f"{name}.{key}", f.metadata["cls"], value,
                                         f.metadata["refused"])
        else:
            values[key] = _check_field(name, f, value)
    section = cls(**values)
    if hasattr(section, "_validate"):  # cross-field rules, where a section has any
        own = name.rpartition(".")[2]
        try:
            section._validate()
        except ConfigError as exc:
            if own == name:
                raise
            # A nested section's rules name its fields "gemm.<key>": give the full path.
            raise _renamed(exc, own, name) from None
    return section


def _renamed(exc, short, full):
    """``exc`` with the section prefix ``short.`` of its field and message made ``full.``."""
    def fix(text):
        return re.sub(rf"(?<![\w.]){re.escape(short)}\.", full + ".", text)
    return ConfigError(fix(exc.field), exc.value, fix(exc.allowed))


def parse_config(data):
    """Validate a configuration given as a dict (as read from TOML) and return an :class:`AccelConfig`."""
    if not isinstance(data, dict):
        raise ConfigError("config", data, "must be a table of block sections")
    every = {**SECTIONS, **SETTINGS}
    for key in data:
        if key not in every:
            raise ConfigError(key, data[key],
                              "unknown section; allowed sections are " + ", ".join(every))
    if not any(key in SECTIONS for key in data):
        raise ConfigError("config", data,
                          "must have at least one section of: " + ", ".join(SECTIONS))
    config = AccelConfig(**{name: _parse_section(name, every[name], data[name]) for name in data})
    _check_tops(config)
    return config


def _check_tops(config):
    """Every block's top is a module and a file name of its own (letter case aside: file systems
    that ignore it would merge the files)."""
    seen = {}
    for block, section in config.blocks.items():
        other = seen.get(section.top.lower())
        if other is not None:
            same = "" if getattr(config, other).top == section.top else " when letter case is ignored"
            raise ConfigError(f"{block}.top", section.top,
                              f"must differ from {other}.top = {_show(getattr(config, other).top)}"
                              f"{same} (each block is a Verilog module and a set of files of its "
                              f"own)")
        seen[section.top.lower()] = block


def load_config(path=None):
    """Load and validate a TOML configuration; ``None`` gives the embedded default."""
    if path is None:
        text = resources.files("gen").joinpath("default.toml").read_text(encoding="utf-8")
        source = "default.toml"
    else:
        text = _read_text(path)
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(source, f"is not valid TOML ({exc})") from None
    return parse_config(data)


CONFIG_MAX_BYTES = 1 << 20
"""Largest configuration file read (a configuration is a few hundred bytes)."""


def _read_text(path):
    """The text of the configuration file ``path``: UTF-8, with or without a byte-order mark.
    Raises :class:`ConfigFileError` when it is not a readable, regular UTF-8 file."""
    text = os.fspath(path)
    if text == "":
        raise ConfigFileError(path, "the configuration path is empty; give a .toml file")
    try:
        st = os.stat(text)
    except FileNotFoundError:
        raise ConfigFileError(path, "no such file") from None
    except NotADirectoryError:
        raise ConfigFileError(path, "no such file (a part of the path is a file, not a "
                                    "folder)") from None
    except (OSError, ValueError) as exc:
        raise ConfigFileError(path, f"cannot be read ({_reason(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigFileError(path, "is a folder, not a configuration file; give a .toml file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigFileError(path, "is not a regular file (a device, pipe or socket); give a .toml "
                                    "file")
    if st.st_size > CONFIG_MAX_BYTES:
        raise ConfigFileError(path, f"is {st.st_size} bytes long; a configuration file is at most "
                                    f"{CONFIG_MAX_BYTES} bytes")
    try:
        with open(text, "rb") as f:
            raw = f.read(CONFIG_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(path, f"cannot be read ({_reason(exc)})") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigFileError(path, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line "
                                    f"{line}); save it as UTF-8") from None


def _reason(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def default_config():
    return load_config(None)


def config_hash(config):
    """SHA-256 of the canonical JSON of the whole configuration (defaults filled in)."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
