"""Configuration -> Verilog, JSON manifest, filelist, SDC, XDC and FuseSoC core file, one set per emitted top.

Beside the tops, ``accelgen_lint.vlt`` holds the Verilator lint waivers the core files' ``lint`` target
uses (:mod:`gen.flow`).

Emission is deterministic: the same configuration gives byte-identical files on any machine (Amaranth is
asked for no source locations, the builtin Yosys is pinned, and nothing records paths or dates). Files are
written by :mod:`gen.outdir`: only into a new, empty or accelgen-stamped folder, each file renamed into
place whole, and nothing accelgen did not write is replaced or removed.
"""

import json
import os
from dataclasses import dataclass, field

from amaranth.hdl import Shape
from amaranth.lib import data, stream, wiring

from . import __version__
from .config import AccelConfig, config_hash

__all__ = ["Top", "elaborate_tops", "emit", "convert_top", "to_verilog", "manifest_of",
           "manifest_without_verilog", "payload_fields", "constraint_files", "TOPS"]


@dataclass
class Top:
    """One emitted top: its module name, the component, and what the manifest says of it."""

    block: str
    name: str
    component: wiring.Component
    formats: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    performance: dict = field(default_factory=dict)
    words: dict = field(default_factory=dict)
    """Layouts of memory words (name -> layout), described in the manifest like stream payloads."""


def _gemm_args(cfg):
    """Keyword arguments of :class:`gen.gemm.GemmEngine` for a :class:`GemmConfig`."""
    return dict(rows=cfg.rows, cols=cfg.cols, modes=cfg.modes, acc_width=cfg.acc_width,
                max_m=cfg.max_m, max_n=cfg.max_n, max_k=cfg.max_k,
                out_fifo_depth=cfg.out_fifo_depth,
                vsq_vector_sizes=cfg.vsq_vector_sizes, vsq_scale_bits=cfg.vsq_scale_bits,
                post_mult_bits=cfg.vsq_post_mult_bits,
                post_row_mult_bits=cfg.vsq_post_row_mult_bits,
                sparse=cfg.sparsity == "2:4")


def _softmax_args(cfg):
    """Keyword arguments of :class:`gen.softmax.Softmax` for a :class:`SoftmaxConfig`."""
    return dict(lanes=cfg.lanes, in_width=cfg.in_width, in_frac=cfg.in_frac,
                out_frac=cfg.out_frac, max_len=cfg.max_len, sum_frac=cfg.sum_frac,
                recip_bits=cfg.recip_bits, table_reg=cfg.table_reg, shift_reg=cfg.shift_reg,
                recip_step_bits=cfg.recip_step_bits, mult_stages=cfg.mult_stages)


def _gemm_top(cfg, engine=None):
    """The engine's top; ``engine``: an engine of ``cfg`` built elsewhere (a tile's)."""
    from .gemm import GemmEngine
    from .lib.formats import mode_by_name

    if engine is None:
        engine = GemmEngine(**_gemm_args(cfg))
    codes = ", ".join(f"{name}={mode_by_name(name).code}" for name in cfg.modes)
    fp_names = [name for name in cfg.modes if mode_by_name(name).fp8]
    fp_note = ("; " + ", ".join(f"OCP FP8 {mode_by_name(n).fp8.upper()} code ({n})" for n in fp_names)
               if fp_names else "")
    vsq_formats, vsq_parameters = {}, {}
    if cfg.vsq_vector_sizes:
        sizes = ", ".join(f"{i}: V = {v}" for i, v in enumerate(cfg.vsq_vector_sizes))
        mb = cfg.vsq_scale_bits
        vsq_formats = {
            "cmd.vsq": "flag: 1 for a per-vector scaled (VS-Quant) GEMM; integer modes only",
            "cmd.vsel": f"uint: vector size of a VSQ command ({sizes})",
            "a.scale": f"uint{mb}: VSQ activation scale s_qa[m, v] of the vector v the beat's "
                       "elements belong to (the engine reads it on the vector's last k tile)",
            "w.scale": f"uint{mb}: VSQ weight scale s_qw[v, n0 + c] in lane c of the vector v the "
                       "beat's k tile belongs to (the engine keeps the tile's last beat's)",
        }
        vsq_parameters = {
            "vsq_post_mult_bits": cfg.vsq_post_mult_bits,
            "vsq_vector_sizes": list(cfg.vsq_vector_sizes), "vsq_scale_bits": mb,
            "vsq_partial_width": engine.vsq_partial_width, "vsq_term_width": engine.vsq_term_width,
        }
    if cfg.vsq_post_mult_bits:
        # The post-processing unit, with or without VSQ.
        pb = cfg.vsq_post_mult_bits
        vsq_formats.update({
            "cmd.out": "uint: 0 accumulator, 1 INT8, 2 INT4 (post-processed, rounded to nearest "
                       "even, saturated), 3 FP32 (binary32 in bits 31:0, upper bits 0, rounded "
                       "once to nearest even); integer modes only",
            "cmd.relu": "flag: ReLU before saturation (post-processed outputs; FP32: +0)",
            "w.mult": f"uint{pb}: post-processing multiplier of column n0 + c (the "
                      "engine keeps the last k tile's)",
            "w.shift": "uint6: post-processing right shift of column n0 + c, rounding to "
                       "nearest, ties to even",
        })
        vsq_parameters["vsq_post_mult_bits"] = pb
        if cfg.vsq_post_row_mult_bits:
            rb = cfg.vsq_post_row_mult_bits
            vsq_formats.update({
                "a.mult": f"uint{rb}: post-processing multiplier of row m (read from the row's "
                          "beat in the last k tile; the scale is w.mult * a.mult)",
                "a.shift": "uint6: post-processing right shift of row m, added to w.shift",
            })
            vsq_parameters["vsq_post_row_mult_bits"] = rb
    sparse_performance = {}
    if cfg.sparsity == "2:4":
        p = engine.params
        vsq_formats.update({
            "cmd.sparse": "flag: 1 for 2:4 compressed weights (every mode, VSQ and post-processed "
                          "commands too); K is the dense reduction length",
            "w.meta": "uint: 2:4 commands: position (0 to 3) in its group of 4 "
                      "reduction elements of the kept weight in w.data bits 3:0 (bits 1:0 of "
                      "meta) and, INT4 and W4A8, of the one in bits 7:4 (bits 3:2); dense "
                      "commands: ignored",
        })
        vsq_parameters.update({
            "sparsity": "2:4", "meta_bits": p.meta_bits, "act_lanes": p.act_lanes,
            "sparse_tile_k": {name: 2 * cfg.rows * mode_by_name(name).k_per_row
                              for name in cfg.modes},
            "sparse_format": {
                "groups": "W (K x N) is cut per column into groups of 4 consecutive K elements, "
                          "K padded with zeros to K4 = 4 * ceil(K / 4); each group keeps 2 values "
                          "(zeros allowed) and their positions p0 < p1",
                "kept_matrix": "Wc (K4 / 2 x N): row 2g + j of column n is kept value j of "
                               "group g; P (same shape) its position",
                "w.data": "the beats of Wc as a dense weight matrix of K4 / 2 rows: tiles of R "
                          "kept values (INT4 and W4A8: pairs of kept values packed like INT4 "
                          "pairs); VSQ vectors of V dense elements are V / 2 kept values",
                "w.meta": "P, packed like w.data: lane c holds the position of the kept value "
                          "of w.data lane c (bits 1:0), and of the high INT4 one (bits 3:2)",
                "a.data": f"{p.act_lanes} bytes: the dense activations of a k tile of "
                          f"{2 * cfg.rows} (INT4: {4 * cfg.rows}) reduction elements, packed as "
                          "in a dense beat; dense commands use the first "
                          f"{cfg.rows} bytes",
                "result": "Y[m, n] = sum over kept values of Wc[kk, n] * A[m, 4 * (kk // 2) + "
                          "P[kk, n]] for positions below K",
            },
        })
        sparse_performance = {
            "sparse_modes": {name: {"macs_per_cycle": engine.macs_per_cycle(name, sparse=True),
                                    "multiplies_per_cycle": engine.macs_per_cycle(name),
                                    "latency": engine.pipeline_depth}
                             for name in cfg.modes},
        }
    return Top(
        block="gemm", name=cfg.top, component=engine,
        formats={
            **vsq_formats,
            "cmd.m": "uint: rows of A (1 to max_m)",
            "cmd.n": "uint: columns of W (1 to max_n)",
            "cmd.k": "uint: reduction length (1 to max_k)",
            "cmd.mode": f"uint: mode code ({codes})",
            "a.data": "int8 (int8, w4a8) or int4 pair (int4): element k in bits 3:0, k+1 in 7:4"
                      + fp_note + ("; 2:4 builds: 2R bytes, dense commands use the first R"
                                   if cfg.sparsity == "2:4" else ""),
            "w.data": "int8 (int8) or int4 pair along K (int4, w4a8)" + fp_note,
            "o.data": f"int{cfg.acc_width}: two's complement accumulator" + (
                ", sign-extended; FP8 modes: IEEE binary32 bit pattern in bits 31:0, upper bits 0"
                if engine.fp_acc_width else "") + (
                "; post-processed: INT8 / INT4 sign-extended, FP32 binary32 in bits 31:0, upper "
                "bits 0" if cfg.vsq_post_mult_bits else ""),
            "o.last": "flag: final beat of a command",
        },
        parameters={
            "rows": cfg.rows, "cols": cfg.cols, "modes": list(cfg.modes),
            "acc_width": cfg.acc_width, "psum_width": engine.psum_width,
            "fp_acc_width": engine.fp_acc_width,
            "act_buffer_words": engine.act_buffer_depth,
            "mode_codes": {name: mode_by_name(name).code for name in cfg.modes},
            "tile_k": {name: cfg.rows * mode_by_name(name).k_per_row for name in cfg.modes},
            **vsq_parameters,
        },
        performance={
            "pipeline_depth": engine.pipeline_depth,
            "modes": {name: {"macs_per_cycle": engine.macs_per_cycle(name),
                             "latency": engine.pipeline_depth}
                      for name in cfg.modes},
            **sparse_performance,
        },
    )


def _softmax_top(cfg):
    from .softmax import Softmax

    unit = Softmax(**_softmax_args(cfg))
    return Top(
        block="softmax", name=cfg.top, component=unit,
        formats={
            "i.data": f"sfix{cfg.in_width}.{cfg.in_frac}: score, signed, {cfg.in_frac} fraction bits",
            "i.mask": "bits: bit k set masks lane k (probability 0; pad a short last beat with it)",
            "i.last": "flag: final beat of a row",
            "o.data": f"ufix{cfg.out_frac + 1}.{cfg.out_frac}: probability, 2**{cfg.out_frac} = 1.0",
            "o.last": "flag: final beat of a row",
            "o.all_masked": "flag: every lane of the row was masked (data all 0)",
        },
        parameters={
            "lanes": cfg.lanes, "in_width": cfg.in_width, "in_frac": cfg.in_frac,
            "out_frac": cfg.out_frac, "out_width": cfg.out_frac + 1, "max_len": cfg.max_len,
            "max_beats": unit.max_beats,
            "sum_frac": unit.sum_frac, "sum_width": unit.sum_width,
            "table_entries": 1 << cfg.in_frac, "table_entry_width": unit.sum_frac + 1,
            "recip_bits": unit.recip_bits, "reciprocal_width": unit.recip_bits + 2,
            "derived": {"sum_frac": cfg.sum_frac == 0, "recip_bits": cfg.recip_bits == 0},
            "buffer_beats": unit.buffer_depth,
            "row_info_entries": unit.info_depth,
            "output_queue_beats": unit.out_depth,
            "pipeline": unit.pipeline,
            "error_bound_lsb": "0.51 with derived widths",
        },
        performance={
            "throughput_elements_per_cycle": cfg.lanes,
            "throughput_definition": "one beat (P elements) per cycle on both streams for any "
                                     "sequence of rows, back to back, while the output is ready",
            "min_row_beats_without_bubbles": unit.min_beats,
            "latency_cycles": f"ceil(L / {cfg.lanes}) + {unit.latency_constant}",
            "latency_constant": unit.latency_constant,
            "latency_parts": unit.latency_parts,
            "latency_definition": "cycles from a row's first input handshake to its first output "
                                  "beat, without stalls; the row's last output follows "
                                  "ceil(L / P) - 1 cycles later",
        },
    )


def _noc_top(cfg):
    from .mesh import Mesh
    from .noc_ni import NetworkInterface
    from .router import Router

    mesh = Mesh(kx=cfg.kx, ky=cfg.ky, flit_width=cfg.flit_width, vcs=cfg.vcs, vc_depth=cfg.vc_depth,
                max_packet_flits=cfg.max_packet_flits, routing=cfg.routing,
                router_cycles=cfg.router_cycles, pipelined=cfg.pipelined)
    p = mesh.params
    hop = p.hop_cycles
    router_parts = Router.latency_parts_of(p)
    formats = {}
    for n in range(p.nodes):
        formats.update({
            f"i{n}.data": "uint: one flit of payload",
            f"i{n}.last": "flag: final beat of a packet",
            f"i{n}.mcast": "flag (first beat): multicast to mask, else unicast to (dest_x, dest_y)",
            f"i{n}.mask": "node bitmask (first beat): bit y * kx + x",
            f"i{n}.dest_x": "uint (first beat): unicast destination column; >= kx is dropped",
            f"i{n}.dest_y": "uint (first beat): unicast destination row; >= ky is dropped",
            f"o{n}.data": "uint: one flit of payload",
            f"o{n}.last": "flag: final beat of a packet",
            f"o{n}.src": "uint: source node y * kx + x",
        })
    return Top(
        block="noc", name=cfg.top, component=mesh, formats=formats,
        parameters={
            "kx": cfg.kx, "ky": cfg.ky, "nodes": p.nodes, "flit_width": cfg.flit_width,
            "vcs": cfg.vcs, "vc_depth": cfg.vc_depth, "max_packet_flits": cfg.max_packet_flits,
            "routing": cfg.routing, "router_cycles": cfg.router_cycles,
            **({"pipelined": True} if cfg.pipelined else {}), "node_index": "y * kx + x",
            "vc_allocation": "any free VC at every hop; packets of one source and destination "
                             "stay in order (gen/router.py)",
        },
        performance={
            "zero_load_latency": {
                "formula": "inject + (hops + 1) * router + (length - 1) + eject = "
                           + ("hops + length + 1" if hop == 1 else f"{hop} * hops + length + {hop}")
                           + " cycles, from the first beat taken on i<src> to the last beat taken "
                             "on o<dst>; hops = |dx| + |dy|",
                "inject": NetworkInterface.inject_latency, "router": hop,
                "eject": NetworkInterface.eject_latency,
                **({"router_parts": router_parts} if cfg.pipelined else {}),
            },
            "flits_per_cycle_per_link": 1,
            "link_rate_rule": (
                "1 flit per cycle on every link for one uncontended stream of packets of any "
                "lengths up to max_packet_flits; the configuration enforces the buffering that "
                "gives it: vc_depth >= max_packet_flits + r with 1 VC, vc_depth >= "
                "max_packet_flits with vcs >= r + 1 (2 VCs need router_cycles = 1), where r = 1, "
                "or 3 with router_cycles = 2, is the flits whose credits are on their way back; "
                "pipelined: 4 VCs, router_cycles = 1, vc_depth >= max_packet_flits "
                "(gen/router.py)"),
        },
    )


def _system_top(cfg):
    from .system import System
    from .tile import KINDS, OPS, word_layouts

    g, sm = cfg.gemm, cfg.softmax
    gemm_args = _gemm_args(g)
    sm_args = None if sm is None else _softmax_args(sm)
    system = System(kx=cfg.kx, ky=cfg.ky, gemm=gemm_args, softmax=sm_args,
                    spad_words=cfg.spad_words, cmd_depth=cfg.cmd_depth, vcs=cfg.vcs,
                    vc_depth=cfg.vc_depth, max_packet_flits=cfg.max_packet_flits,
                    routing=cfg.routing, router_cycles=cfg.router_cycles)
    tile = system.tiles[0]
    engine = tile.engine
    p = system.noc_params
    lane_width = engine.signature.members["o"].signature.members["payload"].shape["data"] \
        .shape.elem_shape.width
    ops = ", ".join(f"{v} {k.upper()}" for k, v in OPS.items())
    kinds = ", ".join(f"{v} {k.upper()}" for k, v in KINDS.items())
    engine_top = _gemm_top(g, engine=engine)
    formats = {}
    for key, text in engine_top.formats.items():
        stream_name, _, rest = key.partition(".")
        if stream_name == "cmd":
            formats[f"command.gemm.{rest}"] = text
        elif stream_name in ("a", "w"):
            formats[key] = text
    for stream_name in ("host_i", "host_o"):
        formats[f"{stream_name}.data"] = "uint: one word (the first: a header word)"
        formats[f"{stream_name}.last"] = "flag: final word of a packet"
    formats.update({
        "host_i.mcast": "flag (first beat): multicast to mask, else unicast to (dest_x, dest_y)",
        "host_i.mask": "node bitmask (first beat): bit y * kx + x",
        "host_i.dest_x": "uint (first beat): unicast destination column",
        "host_i.dest_y": "uint (first beat): unicast destination row",
        "host_o.src": "uint: source node y * kx + x",
        "header.kind": f"uint: {kinds} (3 is dropped and counted)",
        "header.addr": "uint: DATA: first scratchpad address; HOST: the host's tag (SEND's o_addr "
                       "plus the packet's word offset)",
        "command.op": f"uint: {ops}",
        "command.a_addr": "uint: GEMM a / SOFTMAX input / SEND source address",
        "command.w_addr": "uint: GEMM w address",
        "command.o_addr": "uint: GEMM / SOFTMAX output address; SEND header address (tag)",
        "command.a_count": "uint: GEMM a words / SEND words / WAIT received words",
        "command.w_count": "uint: GEMM w words",
        "command.pack": "flag: GEMM output words hold bits 7:0 of lane c in byte c",
        "command.rows": "uint: SOFTMAX rows",
        "command.beats": "uint: SOFTMAX beats per row",
        "command.stride": "uint: SOFTMAX address step from beat j to j + 1 of a row",
        "command.kind": "uint: SEND header kind",
        "command.mcast": "flag: SEND to the nodes of mask, else to (dest_x, dest_y)",
        "command.mask": "node bitmask: bit y * kx + x",
        "command.dest_x": "uint: SEND destination column",
        "command.dest_y": "uint: SEND destination row",
        "o.data": engine_top.formats["o.data"] + "; lane c of a result word written with pack = 0 "
                  "(pack = 1: byte c holds bits 7:0 of lane c)",
    })
    parameters = {
        **engine_top.parameters,
        "word_bits": tile.word_bits, "spad_words": cfg.spad_words, "addr_bits": tile.addr_bits,
        "kx": cfg.kx, "ky": cfg.ky, "nodes": p.nodes, "node_index": "y * kx + x",
        "max_packet_flits": cfg.max_packet_flits, "cmd_depth": cfg.cmd_depth,
        "vcs": cfg.vcs, "vc_depth": cfg.vc_depth, "routing": cfg.routing,
        "router_cycles": cfg.router_cycles,
        "ops": dict(OPS), "kinds": dict(KINDS),
        "out_width": lane_width, "max_m": g.max_m, "max_n": g.max_n, "max_k": g.max_k,
        "vsq_vector_sizes": list(g.vsq_vector_sizes), "vsq_scale_bits": g.vsq_scale_bits,
        "vsq_post_mult_bits": g.vsq_post_mult_bits,
        "vsq_post_row_mult_bits": g.vsq_post_row_mult_bits,
        "softmax": sm is not None,
    }
    if sm is not None:
        unit = tile.softmax
        parameters.update({
            "softmax_lanes": sm.lanes, "softmax_in_width": sm.in_width,
            "softmax_in_frac": sm.in_frac, "softmax_out_frac": sm.out_frac,
            "softmax_max_len": sm.max_len, "softmax_max_beats": unit.max_beats,
            "softmax_sum_frac": unit.sum_frac, "softmax_recip_bits": unit.recip_bits,
        })
    return Top(
        block="system", name=cfg.top, component=system, formats=formats, parameters=parameters,
        performance={
            "gemm_pipeline_depth": engine.pipeline_depth,
            "macs_per_cycle_per_tile": {name: engine.macs_per_cycle(name) for name in g.modes},
            "words_per_cycle": "one per read port (a, w) and per write port (network, results)",
            "mesh_zero_load_latency": (
                "hops + length + 1" if cfg.router_cycles == 1 else "2 * hops + length + 2")
            + " cycles from a packet's first word taken on a node's injection to its last word "
              "taken at the destination (gen/mesh.py); the merge and split at node 0 add none",
        },
        words=word_layouts(tile),
    )


TOPS = {"gemm": _gemm_top, "softmax": _softmax_top, "noc": _noc_top, "system": _system_top}


def elaborate_tops(config: AccelConfig):
    """The :class:`Top` of every block the configuration has, in a fixed order."""
    return [TOPS[block](section) for block, section in config.blocks.items()]


def _shape_format(shape):
    return ("sint" if shape.signed else "uint") + str(shape.width)


def payload_fields(layout, prefix="", offset=0):
    """Flatten a payload layout into ``(name, offset, width, shape format)`` leaves; arrays as ``x.0``."""
    if isinstance(layout, data.StructLayout):
        out = []
        for name, member in layout:
            out += payload_fields(member.shape, f"{prefix}{name}.", offset + member.offset)
        return out
    if isinstance(layout, data.ArrayLayout):
        out = []
        step = layout.size // layout.length
        for i in range(layout.length):
            out += payload_fields(layout.elem_shape, f"{prefix}{i}.", offset + i * step)
        return out
    shape = Shape.cast(layout)
    return [(prefix.rstrip("."), offset, shape.width, _shape_format(shape))]


def _format_of(formats, stream_name, field_name):
    parts = field_name.split(".")
    for i in range(len(parts), 0, -1):
        key = stream_name + "." + ".".join(p for p in parts[:i] if not p.isdigit())
        if key in formats:
            return formats[key]
    return None


def _layout_entry(layout, name, formats):
    """``{"width", "fields"}`` of a payload or word layout, as in a stream entry."""
    fields = []
    for fname, off, fwidth, fmt in payload_fields(layout):
        meaning = _format_of(formats, name, fname)
        fields.append({"name": fname, "offset": off, "width": fwidth,
                       "format": fmt + (f" ({meaning})" if meaning else "")})
    return {"width": Shape.cast(layout).width, "fields": fields}


def manifest_of(top: Top, config: AccelConfig):
    """The JSON-ready manifest of ``top`` (DESIGN.md, interfaces)."""
    ports = [
        {"name": "clk", "direction": "in", "width": 1, "role": "clock"},
        {"name": "rst", "direction": "in", "width": 1, "role": "reset (synchronous, active high)"},
    ]
    streams = {}
    for name, member in top.component.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            inward = member.flow == wiring.In
            direction = "in" if inward else "out"
            layout = member.signature.members["payload"].shape
            width = Shape.cast(layout).width
            ports += [
                {"name": f"{name}__valid", "direction": direction, "width": 1,
                 "role": f"stream {name}: valid"},
                {"name": f"{name}__ready", "direction": "out" if inward else "in", "width": 1,
                 "role": f"stream {name}: ready"},
                {"name": f"{name}__payload", "direction": direction, "width": width,
                 "role": f"stream {name}: payload"},
            ]
            streams[name] = {"direction": direction,
                             **_layout_entry(layout, name, top.formats)}
        else:
            shape = Shape.cast(member.shape)
            ports.append({"name": name, "direction": "in" if member.flow == wiring.In else "out",
                          "width": shape.width, "role": "status"})
    section = config.to_dict()[top.block]
    extra = {}
    if top.words:
        extra["words"] = {name: _layout_entry(layout, name, top.formats)
                          for name, layout in top.words.items()}
    return {
        **extra,
        "generator": {"name": "accelgen", "version": __version__},
        "top": top.name,
        "block": top.block,
        "config": {top.block: section},
        "config_hash": config_hash(config),
        "ports": ports,
        "streams": streams,
        "parameters": top.parameters,
        "performance": top.performance,
    }


SRAM_COMPONENT = "gen.lib.sram.SramMacro"


def convert_top(top: Top, sram="behavioural"):
    """``(verilog, hierarchy, sram_files)`` of ``top``: the Verilog text (one module per distinct
    reused component, self-written modules last; :mod:`gen.lib.hier`), the module hierarchy for the
    manifest, and, with ``sram = "blackbox"``, the files of the SRAM macros
    (``<top>_sram_model.v``: their behavioural models, ``<top>_sram_blackbox.v``: their black-box
    declarations), which the top's Verilog then leaves out."""
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    from .lib import hier
    from .lib.sram import blackbox_of
    converted = hier.convert(top.component, top.name)
    srams = sorted(e["module"] for e in converted.hierarchy if e["component"] == SRAM_COMPONENT)
    apart = srams if sram == "blackbox" else []
    text = converted.verilog + "".join("\n" + converted.macros[name]
                                       for name in sorted(converted.macros) if name not in apart)
    header = (f"// {top.name}: generated by accelgen {__version__} (block {top.block}).\n"
              f"// Do not edit; regenerate with `accelgen emit`. The manifest {top.name}.json "
              f"describes the ports and lists the modules.\n")
    sram_files = {}
    if apart:
        sram_files[f"{top.name}_sram_model.v"] = (
            f"// {top.name}: behavioural models of the SRAM macros, generated by accelgen "
            f"{__version__}.\n// Replace this file by the compiled macros of the same names and "
            f"ports; {top.name}_sram_blackbox.v declares them for synthesis.\n"
            + "".join("\n" + converted.macros[name] for name in apart))
        sram_files[f"{top.name}_sram_blackbox.v"] = (
            f"// {top.name}: black-box declarations of the SRAM macros, generated by accelgen "
            f"{__version__}.\n" + "".join("\n" + blackbox_of(converted.macros[name])
                                          for name in apart))
    return header + text, converted.hierarchy, sram_files


def to_verilog(top: Top):
    """Verilog text of ``top`` (see :func:`convert_top`)."""
    return convert_top(top)[0]


def manifest_without_verilog(config: AccelConfig, block):
    """The manifest of ``block``'s top, as :func:`render` writes it but without its ``hierarchy``
    (which needs the conversion), without converting the top to Verilog: the component is built for its signature and parameters only, then dropped (without
    Amaranth's warning that it was never elaborated)."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        top = TOPS[block](config.blocks[block])
        manifest = manifest_of(top, config)
        del top
        gc.collect()
    return manifest


def render(config: AccelConfig):
    """All emitted files, as a dict of file name -> text."""
    from .flow import LINT_WAIVERS, flow_files, lint_waivers_text
    files = {}
    for top in elaborate_tops(config):
        files[f"{top.name}.v"], hierarchy, sram_files = convert_top(top, config.flow.sram)
        manifest = manifest_of(top, config)
        manifest["hierarchy"] = hierarchy
        sources = [f"{top.name}.v"] + sorted(n for n in sram_files if n.endswith("_model.v"))
        manifest["sources"] = sources
        if sram_files:
            manifest["sram_blackbox"] = f"{top.name}_sram_blackbox.v"
        files.update(sram_files)
        files[f"{top.name}.json"] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        files[f"{top.name}.f"] = "".join(f"{name}\n" for name in sources)
        files.update(flow_files(manifest, config.flow))
    files[LINT_WAIVERS] = lint_waivers_text()
    return files


def constraint_files(files):
    """The SDC and XDC files among rendered ``files`` (what ``constraints/`` holds)."""
    return {name: text for name, text in files.items() if name.endswith((".sdc", ".xdc"))}


def write_atomically(files, out_dir):
    """Write ``files`` into ``out_dir`` by :func:`gen.outdir.write_folder`: a new, empty or
    accelgen-stamped folder, of which only accelgen's files are replaced."""
    from .outdir import write_folder
    return write_folder(files, out_dir)


def emit(config: AccelConfig, out_dir):
    """Render every top of ``config`` and write them into ``out_dir`` (see :func:`write_atomically`)."""
    return write_atomically(render(config), out_dir)
