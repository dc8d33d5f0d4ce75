"""The host program builder of the accelgen tile system, pure Python + numpy.

It turns a workload (the digits MLP, one attention head, one MLP layer) into what the host port of
the system takes: packets of W-bit words (a header word, then payload words), grouped in phases,
as :class:`gen.tile.Tile` and the README ("Tile and multi-tile system") define them. Every field
offset and width comes from the system's manifest (the word layouts ``command``, ``header``, ``a``,
``w``, ``o``), so nothing here hard-codes the hardware's packing.

Pieces, bottom up:

* :class:`sim.layout.Layout` (re-exported here): packs and unpacks one word layout of the
  manifest by field name (nested fields as ``gemm.m``, arrays as ``data.0``, or given as dicts
  and lists).
* :class:`System`: the manifest's parameters and layouts, and the word builders (header words,
  the four command words, the engine's ``a`` / ``w`` beats as words via :mod:`sim.golden.gemm`,
  output words back to matrices).
* :class:`Phase` (packets the host injects + the number of HOST payload words it then waits for,
  JSON-able) and :class:`Plan` (a sequence of phases that may depend on the words received in the
  earlier ones, e.g. the MLP's float steps between layers, and the reassembly of the results).
* Plan builders: :func:`mlp_plan`, :func:`attention_plan`, :func:`layer_plan`.

Model parallelism follows the weight-stationary scheme of the ISSCC 2024 short course on ML
hardware (weights distributed across the tiles once, activations multicast, partial results
gathered): a layer's output columns are split across the tiles in whole C-column tiles.

Use (a bench drives the phases; ``run_phase`` injects a phase's packets at the host port, in
order, and returns the HOST packets received once ``phase.host_words`` payload words are in, each
as ``{"src", "header", "words"}`` with ``words`` the payload without the header)::

    plan = mlp_plan(manifest, model, images, setting)     # or attention_plan, layer_plan
    phase = plan.start()
    while phase is not None:
        phase = plan.step(await run_phase(phase))
    plan.result                     # {"output": logits, "accumulators": [...]}
    plan.ideal_cycles               # per tile; phase.ideal_cycles per tile and phase

``plan.run(execute)`` does the same with a synchronous ``execute``; ``plan.finish(received)``
replays recorded packets (a list per phase). :func:`sim.golden.system.execute` runs a plan on
the word-level model of the system.

The attention head's quantization is chosen here (:func:`quantize_attention`): Q, K, V are INT8
per tensor (symmetric, max calibration); the post unit turns BMM1's accumulator ``S = Q K^T`` into
the softmax unit's INT8 input with ``in_frac`` fraction bits of a *base-2* exponent, i.e. it folds
``1 / sqrt(d)`` and ``log2(e)`` (Softermax computes ``2**x``; Stevens et al., DAC 2021) into one
fixed-point multiplier: ``x = round(S * s_q * s_k / sqrt(d) * log2(e) * 2**in_frac)``, saturated.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from sim.golden import gemm as G
from sim.golden import sparsity as SP
from sim.layout import Layout

__all__ = ["Layout", "System", "Packet", "Phase", "Plan", "HostPacket", "OUTS",
           "mlp_plan", "attention_plan", "layer_plan", "quantize_attention", "split_tiles",
           "parse_host_packets"]

OUTS = {"acc": 0, "int8": 1, "int4": 2, "fp32": 3}     # the GEMM command's post-unit `out`
LOG2E = math.log2(math.e)


# -- the system ------------------------------------------------------------------------------------

WORDS = ("command", "header", "a", "w", "o")
"""The word layouts a system manifest describes under ``words``."""

PARAMETERS = ("kx", "ky", "nodes", "spad_words", "addr_bits", "word_bits", "max_packet_flits",
              "cmd_depth", "ops", "kinds", "rows", "cols", "max_m", "max_n", "max_k", "modes",
              "mode_codes", "out_width", "vsq_vector_sizes", "vsq_scale_bits",
              "vsq_post_mult_bits", "softmax")
"""The ``parameters`` of a system manifest the host reads."""

SOFTMAX_PARAMETERS = ("lanes", "in_width", "in_frac", "out_frac", "max_len", "sum_frac",
                      "recip_bits")
"""The softmax unit's parameters (``softmax_<name>``), present when ``softmax`` is true."""


class System:
    """What the host needs to know of a generated system, read from its manifest (a dict, as
    ``gen.emit.manifest_of`` makes it for the ``system`` top): the word layouts of
    ``manifest["words"]`` (:data:`WORDS`) and the values of ``manifest["parameters"]``
    (:data:`PARAMETERS`, and :data:`SOFTMAX_PARAMETERS` as ``softmax_<name>`` when the tiles
    have a softmax unit). Anything missing is an error naming it; nothing is defaulted.

    ``ops`` and ``kinds`` (name -> code of a command's ``op`` and a header's ``kind``) come from
    the manifest too.
    """

    def __init__(self, manifest):
        if not isinstance(manifest, dict):
            raise ValueError(f"manifest is a {type(manifest).__name__}: must be a dict (the JSON "
                             "manifest of the system)")
        self.manifest = manifest
        words = manifest.get("words")
        if not isinstance(words, dict):
            raise ValueError("manifest has no 'words' (the word layouts " + ", ".join(WORDS)
                             + "): not the manifest of a system top")
        missing = [n for n in WORDS if n not in words]
        if missing:
            raise ValueError("manifest 'words' lacks the layouts " + ", ".join(missing))
        self.layouts = {n: Layout(words[n], n) for n in WORDS}
        self.command, self.header = self.layouts["command"], self.layouts["header"]
        self.a, self.w, self.o = self.layouts["a"], self.layouts["w"], self.layouts["o"]
        params = manifest.get("parameters")
        if not isinstance(params, dict):
            raise ValueError("manifest has no 'parameters': not the manifest of a system top")
        need = list(PARAMETERS)
        if params.get("softmax"):
            need += [f"softmax_{n}" for n in SOFTMAX_PARAMETERS]
        missing = [n for n in need if n not in params]
        if missing:
            raise ValueError("manifest 'parameters' lacks " + ", ".join(missing))
        for name in ("kx", "ky", "nodes", "spad_words", "addr_bits", "word_bits",
                     "max_packet_flits", "cmd_depth", "rows", "cols", "max_m", "max_n", "max_k",
                     "out_width"):
            setattr(self, name, int(params[name]))
        self.scale_bits = int(params["vsq_scale_bits"])
        self.post_mult_bits = int(params["vsq_post_mult_bits"])
        self.ops = {str(k): int(v) for k, v in params["ops"].items()}
        self.kinds = {str(k): int(v) for k, v in params["kinds"].items()}
        for what, table, names in (("ops", self.ops, ("gemm", "softmax", "send", "wait")),
                                   ("kinds", self.kinds, ("cmd", "data", "host"))):
            lack = [n for n in names if n not in table]
            if lack:
                raise ValueError(f"manifest parameter {what!r} lacks " + ", ".join(lack))
        self.modes = tuple(params["modes"])
        self.sparse = params.get("sparsity") == "2:4"
        self.mode_codes = {str(k): int(v) for k, v in params["mode_codes"].items()}
        self.vector_sizes = tuple(int(v) for v in params["vsq_vector_sizes"])
        self.softmax = ({n: int(params[f"softmax_{n}"]) for n in SOFTMAX_PARAMETERS}
                        if params["softmax"] else None)
        if self.nodes != self.kx * self.ky:
            raise ValueError(f"manifest: nodes = {self.nodes} is not kx * ky = {self.kx * self.ky}")
        if self.rows != self.cols:
            raise ValueError(f"manifest: rows = {self.rows} and cols = {self.cols}: the system "
                             "needs rows == cols")

    @property
    def ack_tag(self):
        """The HOST tag reserved for acknowledgements (``spad_words - 1``): a plan's result tags
        stay below it."""
        return self.spad_words - 1

    # -- addressing --------------------------------------------------------------------------------

    def xy(self, node):
        """(x, y) of node ``node = y * kx + x``."""
        self._check_node(node)
        return node % self.kx, node // self.kx

    def _check_node(self, node):
        if not (isinstance(node, (int, np.integer)) and 0 <= node < self.nodes):
            raise ValueError(f"node = {node!r}: must be 0 to {self.nodes - 1} "
                             f"({self.kx} x {self.ky} mesh)")

    def mask_of(self, nodes):
        m = 0
        for n in nodes:
            self._check_node(n)
            m |= 1 << int(n)
        return m

    # -- words -------------------------------------------------------------------------------------

    def kind_code(self, kind):
        """The header ``kind`` code of ``kind`` (a name of the manifest's ``kinds`` or a code)."""
        if kind in self.kinds:
            return self.kinds[kind]
        if isinstance(kind, (int, np.integer)) and int(kind) in self.kinds.values():
            return int(kind)
        raise ValueError(f"kind = {kind!r}: must be one of " + ", ".join(self.kinds))

    def header_word(self, kind, addr=0):
        """Header of a packet: ``kind`` ``cmd``, ``data`` or ``host`` (or 0 to 2) and ``addr``."""
        k = self.kind_code(kind)
        if not 0 <= addr < self.spad_words:
            raise ValueError(f"header addr = {addr}: must be 0 to {self.spad_words - 1}")
        return self.header.pack(kind=k, addr=addr)

    def _span(self, what, addr, count):
        if count < 0 or addr < 0 or addr + count > self.spad_words:
            raise ValueError(f"{what}: words {addr} to {addr + count - 1} are outside the "
                             f"scratchpad (spad_words = {self.spad_words})")

    def gemm_command(self, *, m, n, k, mode, a_addr, a_count, w_addr, w_count, o_addr, pack=0,
                     vector_size=None, out="acc", relu=0, sparse=False):
        """A GEMM command word. ``vector_size`` V makes it a VSQ command (V must be built);
        ``out`` is the post unit's output (``acc``, ``int8``, ``int4``, ``fp32``); ``sparse``: a
        2:4 command (engines built with ``sparsity = "2:4"``)."""
        if mode not in self.modes:
            raise ValueError(f"mode = {mode!r}: the system's engines are built with "
                             + ", ".join(self.modes))
        for name, value, top in (("m", m, self.max_m), ("n", n, self.max_n), ("k", k, self.max_k)):
            if not 1 <= value <= top:
                raise ValueError(f"GEMM {name} = {value}: must be 1 to max_{name} = {top}")
        self._span("GEMM a", a_addr, a_count)
        self._span("GEMM w", w_addr, w_count)
        g = {"m": m, "n": n, "k": k, "mode": self.mode_codes[mode]}
        if sparse:
            if not self.sparse:
                raise ValueError("sparse: the engines are built without 2:4 sparsity")
            g["sparse"] = 1
        if vector_size is not None:
            if vector_size not in self.vector_sizes:
                raise ValueError(f"vector_size = {vector_size}: the engines are built with VSQ "
                                 f"vector sizes {list(self.vector_sizes)}")
            g.update(vsq=1, vsel=self.vector_sizes.index(vector_size))
        if out not in OUTS:
            raise ValueError(f"out = {out!r}: must be one of " + ", ".join(OUTS))
        if out != "acc" or relu:
            if not self.post_mult_bits:
                raise ValueError(f"out = {out!r}: the engines have no post-processing unit")
            g.update(out=OUTS[out], relu=int(relu))
        return self.command.pack(op=self.ops["gemm"], a_addr=a_addr, a_count=a_count, w_addr=w_addr,
                                 w_count=w_count, o_addr=o_addr, gemm=g, pack=pack)

    def softmax_command(self, *, a_addr, o_addr, rows, beats, stride):
        if self.softmax is None:
            raise ValueError("SOFTMAX: the system's tiles have no softmax unit")
        return self.command.pack(op=self.ops["softmax"], a_addr=a_addr, o_addr=o_addr, rows=rows,
                                 beats=beats, stride=stride)

    def send_command(self, *, a_addr, a_count, kind, tag=0, node=None, mask=None):
        """SEND ``a_count`` words from ``a_addr``; header kind ``kind``, header addr ``tag`` (+ the
        packet's offset); to ``node`` or to the multicast ``mask``."""
        self._span("SEND", a_addr, a_count)
        if (node is None) == (mask is None):
            raise ValueError("SEND: give a destination node or a multicast mask (one of them)")
        if not 0 <= tag or tag + a_count > self.spad_words:
            raise ValueError(f"SEND tag {tag} + {a_count} words: tags must stay below "
                             f"spad_words = {self.spad_words}")
        dest = {"mcast": 1, "mask": mask} if mask is not None else dict(
            zip(("dest_x", "dest_y"), self.xy(node), strict=True))
        return self.command.pack(op=self.ops["send"], a_addr=a_addr, a_count=a_count,
                                 kind=self.kind_code(kind), o_addr=tag, **dest)

    def wait_command(self, count):
        top = (1 << self.command.field_width("a_count")) - 1
        if not 0 <= count <= top:
            raise ValueError(f"WAIT count = {count}: must be 0 to {top}")
        return self.command.pack(op=self.ops["wait"], a_count=count)

    def a_words(self, a, mode, *, vector_size=None, s_qa=None, row_mult=None, row_shift=None,
                sparse=False):
        """The ``a`` beats of A (M x K codes) as words (:func:`sim.golden.gemm.act_beats`), with
        the VSQ scales ``s_qa`` (M x K/V) and, where the layout has them, the post unit's per-row
        ``mult`` / ``shift`` (default 1 and 0: no per-row factor). ``sparse``: the 2R-byte beats
        of a 2:4 command (:func:`sim.golden.sparsity.act_beats`); a dense command's beats on
        2:4 engines fill the upper R lanes with 0."""
        a = np.asarray(a)
        m, k = a.shape
        G_ = SP if sparse else G
        beats = G_.act_beats(a, mode, self.rows, vector_size=vector_size)
        if self.sparse and not sparse:
            beats = [list(b) + [0] * self.rows for b in beats]
        if len(beats) and len(beats[0]) != self.a.count("data"):
            raise ValueError(f"a beats of {len(beats[0])} bytes for a layout of "
                             f"{self.a.count('data')}")
        extra = [dict() for _ in beats]
        if vector_size is not None:
            for e, s in zip(extra, G_.act_scale_beats(s_qa, mode, self.rows, k, vector_size),
                            strict=True):
                e["scale"] = s
        if self.a.has("mult"):
            mults = G_.act_row_beats(np.ones(m) if row_mult is None else row_mult, mode,
                                     self.rows, k, vector_size)
            shifts = G_.act_row_beats(np.zeros(m) if row_shift is None else row_shift, mode,
                                      self.rows, k, vector_size)
            for e, mu, sh in zip(extra, mults, shifts, strict=True):
                e.update(mult=mu, shift=sh)
        return [self.a.pack(data=b, **e) for b, e in zip(beats, extra, strict=True)]

    def w_words(self, w, mode, *, vector_size=None, s_qw=None, mult=None, shift=None,
                sparse=False):
        """The ``w`` beats of W (K x N codes) as words (:func:`sim.golden.gemm.weight_beats`), with
        the VSQ scales ``s_qw`` (K/V x N) and the post unit's per-column ``mult`` / ``shift``.
        ``sparse``: W (at most 2 nonzeros in every group of 4 along K) compressed for a 2:4
        command, the kept values and their positions (:mod:`sim.golden.sparsity`)."""
        w = np.asarray(w)
        k, n = w.shape
        R, C = self.rows, self.cols
        G_ = SP if sparse else G
        if sparse:
            if not self.sparse:
                raise ValueError("sparse: the engines are built without 2:4 sparsity")
            values, meta = SP.compress(w)
            beats = SP.weight_beats(values, mode, R, C, vector_size=vector_size)
            extra = [{"meta": mt} for mt in SP.meta_beats(meta, mode, R, C,
                                                          vector_size=vector_size)]
        else:
            beats = G.weight_beats(w, mode, R, C, vector_size=vector_size)
            extra = [dict() for _ in beats]
        if vector_size is not None:
            for e, s in zip(extra, G_.weight_scale_beats(s_qw, mode, R, C, k, vector_size),
                            strict=True):
                e["scale"] = s
        if mult is not None:
            if not self.w.has("mult"):
                raise ValueError("w: the engines have no post-processing unit (no mult lanes)")
            for key, vals in (("mult", mult), ("shift", shift)):
                vals = np.broadcast_to(np.asarray(vals, dtype=np.int64), (n,))
                for e, lanes in zip(extra, G_.column_param_beats(vals, mode, R, C, k,
                                                                 vector_size), strict=True):
                    e[key] = lanes
        return [self.w.pack(data=b, **e) for b, e in zip(beats, extra, strict=True)]

    def output_lanes(self, word, pack=0):
        """The C lanes of an output word: pack 0 signed ``out_width`` lanes, pack 1 signed bytes."""
        if pack:
            return [((int(word) >> (8 * c) & 0xFF) ^ 0x80) - 0x80 for c in range(self.cols)]
        return self.o.unpack(word)["data"]

    def output_matrix(self, words, m, n, pack=0):
        """The M x N result of a GEMM from its output words (engine order: n tile, then row)."""
        need = m * -(-n // self.cols)
        if len(words) != need:
            raise ValueError(f"{len(words)} output words for an {m} x {n} result: need {need}")
        return G.outputs_to_matrix([self.output_lanes(wd, pack) for wd in words], m, n, self.cols)

    def output_words(self, y, pack=0):
        """Inverse of :meth:`output_matrix`: the words a GEMM writes for result ``y``."""
        out = []
        for lanes, _ in G.output_beats(np.asarray(y), self.cols):
            if pack:
                out.append(sum((int(v) & 0xFF) << (8 * c) for c, v in enumerate(lanes)))
            else:
                out.append(self.o.pack(data=lanes))
        return out


# -- packets and phases ----------------------------------------------------------------------------

@dataclass
class Packet:
    """A packet the host injects: ``words`` (header first) to ``node`` or to multicast ``mask``."""

    words: list
    node: int | None = None
    mask: int | None = None

    def to_json(self):
        dest = {"node": self.node} if self.mask is None else {"mask": self.mask}
        return {**dest, "words": [int(w) for w in self.words]}


@dataclass
class Phase:
    """Packets the host injects, in order, then the HOST payload words it waits for."""

    name: str
    packets: list = field(default_factory=list)
    host_words: int = 0
    ideal_cycles: list = field(default_factory=list)   # per tile: its GEMMs' ideal cycles

    def to_json(self):
        return {"name": self.name, "host_words": self.host_words,
                "ideal_cycles": list(self.ideal_cycles),
                "packets": [p.to_json() for p in self.packets]}

    @staticmethod
    def from_json(d):
        return Phase(d["name"], [Packet(list(p["words"]), p.get("node"), p.get("mask"))
                                 for p in d["packets"]], int(d["host_words"]),
                     list(d.get("ideal_cycles", [])))


@dataclass
class HostPacket:
    """A packet received at the host port: source node, header word, payload words (no header)."""

    src: int
    header: int
    words: list


def _host_packets(system, received):
    """``[(src, tag, words)]`` of received HOST packets (see :func:`parse_host_packets`)."""
    out = []
    for p in received:
        if isinstance(p, dict):
            src, header, words = p.get("src"), p["header"], p["words"]
        elif isinstance(p, HostPacket):
            src, header, words = p.src, p.header, p.words
        else:
            src, header, words = p
        h = system.header.unpack(header)
        if h["kind"] != system.kinds["host"]:
            raise ValueError(f"received packet with header kind {h['kind']}: the host takes only "
                             f"HOST packets (kind {system.kinds['host']})")
        out.append((src, h["addr"], [int(w) for w in words]))
    return out


def parse_host_packets(system, received):
    """``[(tag, words)]`` from received HOST packets (HostPacket, dicts ``{"src", "header",
    "words"}`` or tuples ``(src, header, words)``); refuses a header whose kind is not HOST."""
    return [(tag, words) for _, tag, words in _host_packets(system, received)]


def _check_acks(system, received, expected, what):
    """Check the acknowledgements of a phase: from every node of ``expected`` (node -> the word
    it must send) exactly one HOST packet of that one word with the tag :attr:`System.ack_tag`,
    and nothing else."""
    got = {}
    for src, tag, words in _host_packets(system, received):
        if tag != system.ack_tag:
            raise ValueError(f"{what}: HOST packet with tag {tag} from node {src}: the phase "
                             f"expects only acknowledgements (tag {system.ack_tag})")
        if src not in expected:
            raise ValueError(f"{what}: acknowledgement from node {src}, which got no weights")
        if src in got:
            raise ValueError(f"{what}: node {src} acknowledged twice")
        if words != [expected[src]]:
            raise ValueError(f"{what}: node {src} acknowledged with {len(words)} words "
                             f"{[hex(w) for w in words[:2]]}: expected its last weight word "
                             f"{hex(expected[src])}")
        got[src] = words
    missing = sorted(set(expected) - set(got))
    if missing:
        raise ValueError(f"{what}: no acknowledgement from node(s) {missing}")


class _Builder:
    """Builds phases; tracks the commands outstanding at every tile against ``cmd_depth``."""

    def __init__(self, system):
        self.s = system
        self.outstanding = [0] * system.nodes
        self.phase = None

    def start(self, name):
        self.phase = Phase(name, ideal_cycles=[0.0] * self.s.nodes)
        self.ends_with_host_send = {}
        return self.phase

    def _packets(self, kind, addr, words, node=None, mask=None, addr_step=True):
        step = self.s.max_packet_flits - 1
        for i in range(0, len(words), step):
            header = self.s.header_word(kind, addr + i if addr_step else 0)
            self.phase.packets.append(Packet([header] + list(words[i:i + step]), node, mask))

    def data(self, addr, words, node=None, nodes=None):
        """DATA packets writing ``words`` at ``addr`` of ``node`` or (multicast) of ``nodes``."""
        self.s._span("DATA", addr, len(words))
        if nodes is not None:
            nodes = sorted(set(nodes))
            if len(nodes) == 1:
                node, nodes = nodes[0], None
        if nodes is None:
            self.s._check_node(node)
            self._packets("data", addr, words, node=node)
        else:
            self._packets("data", addr, words, mask=self.s.mask_of(nodes))

    def gemm(self, node, m, n, k, mode):
        """Count a GEMM's ideal cycles for ``node`` in this phase."""
        self.phase.ideal_cycles[node] += G.ideal_cycles(m, n, k, mode, self.s.rows, self.s.cols)

    def commands(self, node, words):
        """CMD packets of command ``words`` for ``node``; at most ``cmd_depth`` outstanding."""
        self.s._check_node(node)
        self.outstanding[node] += len(words)
        if self.outstanding[node] > self.s.cmd_depth:
            raise ValueError(f"tile {node} would have {self.outstanding[node]} commands "
                             f"outstanding: more than cmd_depth = {self.s.cmd_depth}")
        self._packets("cmd", 0, words, node=node, addr_step=False)
        if words:
            self.ends_with_host_send[node] = self._host_send(words[-1])

    def _host_send(self, word):
        c = self.s.command.unpack(word)
        return (c["op"] == self.s.ops["send"] and c["kind"] == self.s.kinds["host"]
                and not c["mcast"] and (c["dest_x"], c["dest_y"]) == (0, 0) and c["a_count"] > 0)

    def finish(self, host_words):
        """Close the phase. A tile whose last command in the phase is a SEND to the host has
        finished all its commands once the host has the phase's words (they include that SEND's),
        so its count starts again from 0; any other tile's commands stay outstanding."""
        self.phase.host_words = int(host_words)
        for node, done in self.ends_with_host_send.items():
            if done:
                self.outstanding[node] = 0
        phase, self.phase = self.phase, None
        return phase


class _Spad:
    """A bump allocator of scratchpad words (the same layout on every tile)."""

    def __init__(self, system):
        self.s, self.top, self.regions = system, 0, {}

    def alloc(self, name, words):
        addr = self.top
        self.top += words
        if self.top > self.s.spad_words:
            need = ", ".join([f"{k} {v[1]}" for k, v in self.regions.items()] + [f"{name} {words}"])
            raise ValueError(f"the plan needs {self.top} scratchpad words per tile ({need}): "
                             f"more than spad_words = {self.s.spad_words}")
        self.regions[name] = (addr, words)
        return addr


# -- plans -----------------------------------------------------------------------------------------

class Plan:
    """A program for the system: phases to run in order, and what the host makes of the answers.

    Either ``program``, a generator function that yields :class:`Phase` objects, receives for
    each the list of HOST packets the host got (``gen.send(received)``) and returns the result
    (a dynamic plan: later phases depend on earlier answers, as the MLP's layers do), or
    ``phases`` and ``reassemble(received per phase) -> result`` (a static plan).
    Use it step by step (:meth:`start`, :meth:`step`; an async bench awaits between the calls),
    with a synchronous executor (:meth:`run`), or replay recorded answers (:meth:`finish`).

    Attributes: ``name``; ``ideal_cycles`` (per tile, the sum over its GEMMs of ``M N K / (R C
    MACs per PE per cycle)``); ``info`` (a JSON-able description: shapes, spad layout, ...);
    ``phases``: all phases of a static plan, those produced so far of a dynamic one;
    ``result`` once the last phase's packets have been given to :meth:`step`.
    """

    def __init__(self, name, ideal_cycles, info, *, program=None, phases=None, reassemble=None):
        if (program is None) == (phases is None):
            raise ValueError("Plan: give program (dynamic) or phases and reassemble (static)")
        self.name = name
        self._program = program
        self._static = phases
        self._reassemble = reassemble
        self.static = phases is not None
        self.ideal_cycles = list(ideal_cycles)
        self.info = info
        self.phases = list(phases) if phases is not None else []
        self.result = None
        self._gen = None
        self._received = []

    def start(self):
        """The first phase (starts the plan from the beginning)."""
        self.result, self._received = None, []
        if self.static:
            return self.phases[0]
        self._gen = self._program()
        self.phases = [next(self._gen)]
        return self.phases[0]

    def step(self, received):
        """Give the HOST packets received in the last phase; the next phase, or None when done
        (the result is then in :attr:`result`)."""
        received = list(received)
        if self.static:
            self._received.append(received)
            if len(self._received) < len(self.phases):
                return self.phases[len(self._received)]
            self.result = self._reassemble(self._received)
            return None
        try:
            phase = self._gen.send(received)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self.phases.append(phase)
        return phase

    def run(self, execute):
        """Run the plan with ``execute(phase) -> received HOST packets``; the result."""
        phase = self.start()
        while phase is not None:
            phase = self.step(execute(phase))
        return self.result

    def finish(self, received):
        """The result from the HOST packets received per phase (a list per phase, in order)."""
        received = list(received)
        it = iter(received)

        def execute(phase):
            try:
                return next(it)
            except StopIteration:
                raise ValueError(f"received packets for {len(received)} phases: the plan has "
                                 "more") from None
        result = self.run(execute)
        if len(self.phases) != len(received):
            raise ValueError(f"received packets for {len(received)} phases: the plan has "
                             f"{len(self.phases)}")
        return result

    def to_json(self):
        """The JSON-able plan: phases (all of a static plan; those run so far otherwise)."""
        return {"name": self.name, "static": self.static, "ideal_cycles": self.ideal_cycles,
                "info": self.info, "phases": [p.to_json() for p in self.phases]}

    def dumps(self):
        return json.dumps(self.to_json())


def split_tiles(count, parts):
    """Split ``count`` units (C-column tiles, rows) into ``parts`` contiguous ranges, as even as
    possible (the first ones one longer); ``[(start, stop)]``, empty ranges at the end."""
    base, extra = divmod(count, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def _gather(system, received, total, what):
    """Place the payload words of HOST packets by tag into a list of ``total`` words; every word
    exactly once."""
    buf = [None] * total
    for tag, words in parse_host_packets(system, received):
        for i, w in enumerate(words):
            if not 0 <= tag + i < total:
                raise ValueError(f"{what}: HOST word at tag {tag + i} outside 0..{total - 1}")
            if buf[tag + i] is not None:
                raise ValueError(f"{what}: HOST word at tag {tag + i} received twice")
            buf[tag + i] = w
    missing = [i for i, w in enumerate(buf) if w is None]
    if missing:
        raise ValueError(f"{what}: {len(missing)} of {total} HOST words missing (first tag "
                         f"{missing[0]})")
    return buf


# -- the MLP ---------------------------------------------------------------------------------------

def _setting(system, setting):
    from sim.bench import vsq as B
    try:
        a_bits, w_bits, m, cal = (setting["a_bits"], setting["w_bits"], setting["m"],
                                  setting.get("calibration", "max"))
    except (KeyError, TypeError):
        raise ValueError(f"setting = {setting!r}: must be a dict with a_bits, w_bits, m "
                         "(and calibration), as sim.bench.vsq_rtl.SETTINGS") from None
    mode = B._MODE.get((a_bits, w_bits))
    if mode is None or mode == "int8":
        raise ValueError(f"setting W{w_bits}A{a_bits}: VS-Quant settings are W4A4 and W4A8")
    if mode not in system.modes:
        raise ValueError(f"setting W{w_bits}A{a_bits} needs mode {mode}: the engines are built "
                         "with " + ", ".join(system.modes))
    if B.VECTOR_SIZE not in system.vector_sizes:
        raise ValueError(f"the MLP needs VSQ vector size {B.VECTOR_SIZE}: the engines are built "
                         f"with {list(system.vector_sizes)}")
    if m != system.scale_bits:
        raise ValueError(f"setting m = {m}: the engines are built with vsq_scale_bits = "
                         f"{system.scale_bits}")
    return mode, a_bits, w_bits, m, cal


class _LayerMap:
    """One layer's placement: column tiles per node, weight words per node."""

    def __init__(self, system, w_codes, s_qw, mode, k, n, nodes_used, vector_size, sparse=False):
        C = system.cols
        self.k, self.n, self.mode = k, n, mode
        self.t_total = -(-n // C)
        self.ranges = split_tiles(self.t_total, nodes_used)
        self.nodes = [i for i, (a, b) in enumerate(self.ranges) if b > a]
        self.cols = {i: (a * C, min(b * C, n)) for i, (a, b) in enumerate(self.ranges) if b > a}
        self.w_words = {}
        for node, (c0, c1) in self.cols.items():
            self.w_words[node] = system.w_words(w_codes[:, c0:c1], mode, vector_size=vector_size,
                                               s_qw=s_qw[:, c0:c1], sparse=sparse)
            if c1 - c0 > system.max_n:
                raise ValueError(f"{c1 - c0} columns on tile {node}: more than max_n = "
                                 f"{system.max_n}")


def _mlp_program(system, model, images, setting, layers, batch, name):
    """The MLP plan (all layers or the ones in ``layers``) over ``images`` in batches."""
    from sim.bench import vsq as B
    mode, a_bits, w_bits, m_bits, cal = _setting(system, setting)
    sparse = bool(setting.get("sparse"))
    beats = SP if sparse else G
    weights, biases = model["weights"], model["biases"]
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != weights[0].shape[0]:
        raise ValueError(f"images of shape {x.shape}: must be (count, {weights[0].shape[0]})")
    batch = batch or system.max_m
    if not 1 <= batch <= system.max_m:
        raise ValueError(f"batch = {batch}: must be 1 to max_m = {system.max_m}")
    V = B.VECTOR_SIZE
    # Weight codes and scales do not depend on the activations: quantize them once.
    maps = []
    for li in layers:
        w = weights[li]
        k, n = w.shape
        if k > system.max_k:
            raise ValueError(f"layer {li}: K = {k} is more than max_k = {system.max_k}")
        ops = B.vsq_layer_operands(np.ones((1, k)), w, a_bits, w_bits, m_bits, cal)
        maps.append(_LayerMap(system, ops["w"], ops["s_qw"], mode, k, n, system.nodes, V,
                              sparse))
    spad = _Spad(system)
    w_addr = {li: spad.alloc(f"weights of layer {li}", max(len(v) for v in lm.w_words.values()))
              for li, lm in zip(layers, maps, strict=True)}
    a_count = {li: len(beats.act_beats(np.zeros((batch, lm.k), np.int64), mode, system.rows,
                                       vector_size=V)) for li, lm in zip(layers, maps, strict=True)}
    a_addr = spad.alloc("activations", max(a_count.values()))
    o_count = max(-(-(c1 - c0) // system.cols) * batch
                  for lm in maps for c0, c1 in lm.cols.values())
    o_addr = spad.alloc("outputs", o_count)
    for lm in maps:
        if lm.t_total * batch > system.ack_tag:
            raise ValueError(f"{lm.t_total * batch} output words per batch: HOST tags must stay "
                             f"below the acknowledgement tag spad_words - 1 = {system.ack_tag}")
    ideal = [0.0] * system.nodes
    batches = [(s, min(s + batch, len(x))) for s in range(0, len(x), batch)]
    for b0, b1 in batches:
        for lm in maps:
            for node, (c0, c1) in lm.cols.items():
                ideal[node] += beats.ideal_cycles(b1 - b0, c1 - c0, lm.k, mode, system.rows,
                                                  system.cols)
    info = {"setting": dict(setting), "mode": mode, "vector_size": V, "batch": batch,
            "images": len(x), "layers": list(layers),
            "spad": {k: list(v) for k, v in spad.regions.items()},
            "columns": {str(li): {str(n): list(c) for n, c in lm.cols.items()}
                        for li, lm in zip(layers, maps, strict=True)}}

    def program():
        b = _Builder(system)
        b.start("weights")
        for lm, li in zip(maps, layers, strict=True):
            for node, words in lm.w_words.items():
                b.data(w_addr[li], words, node=node)
        per_node, last_word = {}, {}
        for lm, li in zip(maps, layers, strict=True):
            for node, words in lm.w_words.items():
                per_node[node] = per_node.get(node, 0) + len(words)
                last_word[node] = (w_addr[li] + len(words) - 1, words[-1])
        for node, count in sorted(per_node.items()):
            b.commands(node, [
                system.wait_command(count),
                system.send_command(a_addr=last_word[node][0], a_count=1, kind="host",
                                    tag=system.ack_tag, node=0)])
        received = yield b.finish(len(per_node))
        _check_acks(system, received, {n: w for n, (_, w) in last_word.items()}, "weights")
        outs, accs = [], []
        for b0, b1 in batches:
            h = x[b0:b1]
            mb = b1 - b0
            layer_accs = []
            for lm, li in zip(maps, layers, strict=True):
                ops = B.vsq_layer_operands(h, weights[li], a_bits, w_bits, m_bits, cal)
                words = system.a_words(ops["a"], mode, vector_size=V, s_qa=ops["s_qa"],
                                       sparse=sparse)
                b.start(f"batch {b0}-{b1 - 1} layer {li}")
                b.data(a_addr, words, nodes=lm.nodes)
                for node, (c0, c1) in lm.cols.items():
                    t0 = lm.ranges[node][0]
                    n_out = -(-(c1 - c0) // system.cols) * mb
                    b.gemm(node, mb, c1 - c0, lm.k, mode)
                    b.commands(node, [
                        system.wait_command(len(words)),
                        system.gemm_command(m=mb, n=c1 - c0, k=lm.k, mode=mode, a_addr=a_addr,
                                            a_count=len(words), w_addr=w_addr[li],
                                            w_count=len(lm.w_words[node]), o_addr=o_addr,
                                            vector_size=V, sparse=sparse),
                        system.send_command(a_addr=o_addr, a_count=n_out, kind="host",
                                            tag=t0 * mb, node=0)])
                received = yield b.finish(lm.t_total * mb)
                got = _gather(system, received, lm.t_total * mb,
                              f"layer {li}, images {b0}-{b1 - 1}")
                acc = system.output_matrix(got, mb, lm.n)
                layer_accs.append(acc)
                h = B.layer_output(acc, ops["gamma"]) + biases[li]
                if li < len(weights) - 1:
                    h = np.maximum(h, 0)
            outs.append(h)
            accs.append(layer_accs)
        return {"output": np.concatenate(outs),
                "accumulators": [np.concatenate([a[i] for a in accs]) for i in range(len(maps))]}

    return Plan(name, ideal, info, program=program)


def mlp_plan(manifest, model, images, setting, batch=None):
    """The digits MLP (``model`` as :func:`sim.bench.vsq.train_digits_mlp` gives it) over
    ``images`` (count x 64 floats) with a VS-Quant ``setting`` (a dict of
    :data:`sim.bench.vsq_rtl.SETTINGS`; with ``"sparse": True`` the weights, 2:4 already, go
    compressed and the GEMMs are 2:4 commands), in batches of ``batch`` (default ``max_m``) images.

    Phases: ``weights`` (every layer's weights, each tile its own C-column tiles; on each tile
    with weights a WAIT for them, then a SEND of one word, its last weight word, to the host with
    the reserved tag :attr:`System.ack_tag`: the phase waits for these acknowledgements, one
    word per tile, so it ends when the weights have landed; the plan checks each tile's word),
    then per batch and layer one phase: the quantized activations multicast to the tiles
    with columns; on each of them WAIT, GEMM (VSQ, accumulator output, pack 0), SEND to the host
    (tag = the global output word index of its first column tile). The host applies the float
    steps of :mod:`sim.bench.vsq` between the layers, from the received accumulators.

    Result (``plan.result`` / ``plan.finish(received)``): ``{"output": logits (images x 10,
    float64), "accumulators": [per layer, images x N int64]}``.
    """
    system = System(manifest)
    return _mlp_program(system, model, images, setting, list(range(len(model["weights"]))), batch,
                        "mlp")


def layer_plan(manifest, model, images, setting, layer=0):
    """One MLP layer (``layer``, default the first) for one batch of ``images`` (at most max_m):
    the strong-scaling workload (run on 1x1, 2x2 and 4x4 systems). Phases: ``weights``, then one
    compute phase. Result: ``{"output": the layer's output after bias (and ReLU unless it is the
    last layer), "accumulators": [images x N int64]}``."""
    system = System(manifest)
    if not 0 <= layer < len(model["weights"]):
        raise ValueError(f"layer = {layer}: the model has layers 0 to {len(model['weights']) - 1}")
    if len(images) > system.max_m:
        raise ValueError(f"{len(images)} images: one batch holds at most max_m = {system.max_m}")
    return _mlp_program(system, model, images, setting, [layer], len(images), f"layer {layer}")


# -- attention -------------------------------------------------------------------------------------

def quantize_attention(q, k, v, *, in_frac, mult_bits=16):
    """INT8 operands of one attention head from float Q, K, V (L x d each).

    Q, K and V are quantized per tensor to symmetric INT8 codes (max calibration, codes -127..127,
    :func:`sim.golden.quant.quantize_tensor`). The scores' scale for the softmax unit (base 2,
    ``in_frac`` fraction bits) is ``s_q * s_k / sqrt(d) * log2(e) * 2**in_frac``, given to the post
    unit as ``mult * 2**-shift`` (``mult_bits`` bits). Returns a dict with the codes, the scales
    ``s_q``, ``s_k``, ``s_v``, ``score_scale`` (the real value), ``mult``, ``shift``, and how
    the INT8 scores use their range: ``score_peak`` (the largest ``|x|`` before saturation, in
    INT8 units; 127 is the limit) and ``saturated`` (the fraction of scores beyond it).
    """
    from sim.golden import quant as Q
    from sim.golden import vsq as S
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    if q.ndim != 2 or q.shape != k.shape or k.shape != v.shape:
        raise ValueError(f"q, k, v have shapes {q.shape}, {k.shape}, {v.shape}: must be equal "
                         "(L x d)")
    d = q.shape[1]
    tq, tk, tv = (Q.quantize_tensor(t, 8, "tensor") for t in (q, k, v))
    s_q, s_k, s_v = (float(np.asarray(t.scale).reshape(-1)[0]) for t in (tq, tk, tv))
    score_scale = s_q * s_k / math.sqrt(d) * LOG2E * 2.0 ** in_frac
    mult, shift = S.fixed_point_multiplier(score_scale, mult_bits=mult_bits)
    scores = (tq.codes @ tk.codes.T) * (int(mult) / 2.0 ** int(shift))
    return {"q": tq.codes, "k": tk.codes, "v": tv.codes, "s_q": s_q, "s_k": s_k, "s_v": s_v,
            "score_scale": score_scale, "mult": int(mult), "shift": int(shift), "in_frac": in_frac,
            "score_peak": float(np.abs(scores).max()),
            "saturated": float(np.mean((scores > 127.5) | (scores < -128.5)))}


def attention_plan(manifest, q, k, v):
    """One attention head ``softmax(Q K^T / sqrt(d)) V`` for float Q, K, V (L x d), INT8.

    Quantization: :func:`quantize_attention` with the softmax unit's ``in_frac``. Q's rows are
    split across the tiles; K^T (BMM1's weights, with the post unit's mult / shift on every
    column) and V (BMM2's weights) are multicast. One phase: on each tile WAIT for its words,
    GEMM BMM1 (INT8, out INT8, pack 1: the scores as base-2 fixed point), SOFTMAX (rows = the
    tile's M rows, stride M: the probabilities as unsigned bytes, 1.0 clamped to 127), GEMM BMM2
    (A = the probability bytes, INT8, accumulator output), SEND to the host (tag = the tile's
    first output word in the global order: tile after tile, each in engine order).

    Result: ``{"acc": L x d int64 (P V in units of 2**-out_frac * s_v), "output": L x d float64
    (dequantized), "quant": the quantize_attention dict}``.
    """
    system = System(manifest)
    if system.softmax is None:
        raise ValueError("attention needs tiles with a softmax unit (no [system.softmax])")
    sm = system.softmax
    if "int8" not in system.modes:
        raise ValueError("attention needs the int8 mode")
    if not system.post_mult_bits:
        raise ValueError("attention needs the post-processing unit (vsq_post_mult_bits > 0)")
    quant = quantize_attention(q, k, v, in_frac=sm["in_frac"], mult_bits=system.post_mult_bits)
    L, d = quant["q"].shape
    lanes, C, R = sm["lanes"], system.cols, system.rows
    if lanes != C:
        raise ValueError(f"softmax lanes = {lanes}: must equal cols = {C}")
    if L % lanes:
        raise ValueError(f"L = {L}: must be a multiple of the softmax lanes = {lanes} (a padded "
                         "lane would take part in the softmax)")
    if L > sm["max_len"]:
        raise ValueError(f"L = {L}: more than the softmax unit's max_len = {sm['max_len']}")
    for name, val, top in (("L", L, system.max_n), ("L", L, system.max_k),
                           ("d", d, system.max_k), ("d", d, system.max_n)):
        if val > top:
            raise ValueError(f"{name} = {val}: more than the engines' limits "
                             f"(max_n = {system.max_n}, max_k = {system.max_k})")
    ranges = [r for r in split_tiles(L, system.nodes) if r[1] > r[0]]
    used = list(range(len(ranges)))
    mt_max = max(b - a for a, b in ranges)
    if mt_max > system.max_m:
        raise ValueError(f"{mt_max} rows of Q per tile: more than max_m = {system.max_m}")
    kt_words = system.w_words(quant["k"].T, "int8", mult=np.full(L, quant["mult"]),
                              shift=np.full(L, quant["shift"]))
    v_words = system.w_words(quant["v"], "int8")
    spad = _Spad(system)
    kt_addr = spad.alloc("K^T", len(kt_words))
    v_addr = spad.alloc("V", len(v_words))
    q_addr = spad.alloc("Q", mt_max * -(-d // R))
    s_addr = spad.alloc("scores", mt_max * (L // C))
    p_addr = spad.alloc("probabilities", mt_max * (L // C))
    y_addr = spad.alloc("output", mt_max * -(-d // C))
    y_per_row = -(-d // C)
    total = L * y_per_row
    if total > system.spad_words:
        raise ValueError(f"{total} output words: HOST tags must stay below spad_words")
    ideal = [0.0] * system.nodes
    for node, (r0, r1) in enumerate(ranges):
        ideal[node] = (G.ideal_cycles(r1 - r0, L, d, "int8", R, C)
                       + G.ideal_cycles(r1 - r0, d, L, "int8", R, C))
    info = {"L": L, "d": d, "tiles": len(used), "rows": [list(r) for r in ranges],
            "spad": {k: list(v) for k, v in spad.regions.items()},
            "quant": {k: quant[k] for k in ("s_q", "s_k", "s_v", "score_scale", "mult", "shift",
                                            "in_frac", "score_peak", "saturated")}}

    b = _Builder(system)
    b.start("attention")
    b.data(kt_addr, kt_words, nodes=used)
    b.data(v_addr, v_words, nodes=used)
    for node, (r0, r1) in enumerate(ranges):
        mt = r1 - r0
        q_words = system.a_words(quant["q"][r0:r1], "int8")
        n_p, n_y = mt * (L // R), mt * y_per_row
        b.data(q_addr, q_words, node=node)
        b.gemm(node, mt, L, d, "int8")
        b.gemm(node, mt, d, L, "int8")
        b.commands(node, [
            system.wait_command(len(kt_words) + len(v_words) + len(q_words)),
            system.gemm_command(m=mt, n=L, k=d, mode="int8", a_addr=q_addr, a_count=len(q_words),
                                w_addr=kt_addr, w_count=len(kt_words), o_addr=s_addr, pack=1,
                                out="int8"),
            system.softmax_command(a_addr=s_addr, o_addr=p_addr, rows=mt, beats=L // lanes,
                                   stride=mt),
            system.gemm_command(m=mt, n=d, k=L, mode="int8", a_addr=p_addr, a_count=n_p,
                                w_addr=v_addr, w_count=len(v_words), o_addr=y_addr),
            system.send_command(a_addr=y_addr, a_count=n_y, kind="host", tag=r0 * y_per_row,
                                node=0)])
    phases = [b.finish(total)]

    def reassemble(received):
        got = _gather(system, received[0], total, "attention")
        acc = np.zeros((L, d), dtype=np.int64)
        for r0, r1 in ranges:
            acc[r0:r1] = system.output_matrix(got[r0 * y_per_row:r1 * y_per_row], r1 - r0, d)
        return {"acc": acc, "output": acc * (quant["s_v"] / 2.0 ** sm["out_frac"]),
                "quant": quant}

    return Plan("attention", ideal, info, phases=phases, reassemble=reassemble)
