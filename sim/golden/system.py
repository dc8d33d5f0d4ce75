"""System-level golden model of the accelgen tile system, numpy only.

Two levels:

* **Composed block models**, bit-exact: :func:`mlp_logits` (the digits MLP's VS-Quant path, every
  GEMM through :func:`sim.golden.vsq.vsq_gemm` and the float steps of :mod:`sim.bench.vsq`, the
  same as ``sim/bench/vsq_rtl.py`` and ``sim/tb/gemm_mlp.py`` compute from the engine) and
  :func:`attention` (BMM1 through :func:`sim.golden.gemm.gemm` and the post unit
  :func:`sim.golden.vsq.postprocess` to INT8 base-2 scores, the softmax unit
  :func:`sim.golden.softmax.softmax`, probabilities clamped to 127, BMM2), with
  :func:`attention_float` (float64) for the error report.
* **A word-level executor** (:class:`WordSystem`): the tiles' scratchpads, command FIFOs and
  received-word counters, running the command words of a :class:`sim.host.Phase` as
  :class:`gen.tile.Tile` defines them (GEMM decodes its ``a`` / ``w`` words back into operands and
  runs the block models; SOFTMAX, SEND, WAIT). No timing: each command runs whole, tiles in
  turn, until every tile waits or is idle. It checks a plan's word counts, addresses and FIFO
  depths, and gives the HOST packets the hardware must give.
"""

import math

import numpy as np

from sim.golden import gemm as G
from sim.golden import softmax as SM
from sim.golden import sparsity as SP
from sim.golden import vsq as S

__all__ = ["mlp_logits", "attention", "attention_float", "attention_error", "softmax_params",
           "WordSystem", "execute"]


# -- composed block models -------------------------------------------------------------------------

def mlp_logits(model, x, setting, return_accumulators=False):
    """Logits of the VS-Quant MLP for images ``x``: per layer the codes and scales of
    :func:`sim.bench.vsq.vsq_layer_operands`, the accumulator of :func:`sim.golden.vsq.vsq_gemm`
    (V = 16), then :func:`sim.bench.vsq.layer_output`, bias and ReLU (not after the last layer).
    ``setting``: ``{"a_bits", "w_bits", "m", "calibration"}``. Equal to
    :func:`sim.bench.vsq.mlp_forward_quantized` with scheme ``vsq``. With
    ``return_accumulators``: ``(logits, [accumulators per layer])``."""
    from sim.bench import vsq as B
    h = np.asarray(x, dtype=np.float64)
    accs = []
    last = len(model["weights"]) - 1
    for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        ops = B.vsq_layer_operands(h, w, setting["a_bits"], setting["w_bits"], setting["m"],
                                   setting.get("calibration", "max"))
        acc = S.vsq_gemm(ops["a"], ops["w"], ops["s_qa"], ops["s_qw"], mode=ops["mode"],
                         vector_size=B.VECTOR_SIZE, scale_bits=setting["m"])
        accs.append(acc)
        h = B.layer_output(acc, ops["gamma"]) + b
        if i < last:
            h = np.maximum(h, 0)
    return (h, accs) if return_accumulators else h


def softmax_params(softmax):
    """:class:`sim.golden.softmax.SoftmaxParams` from a dict of the softmax configuration."""
    keys = ("in_width", "in_frac", "out_frac", "max_len", "lanes", "sum_frac", "recip_bits")
    return SM.SoftmaxParams(**{k: int(softmax[k]) for k in keys if k in softmax})


def attention(q_codes, k_codes, v_codes, mult, shift, params):
    """The INT8 attention head as the tiles compute it, bit-exact.

    ``scores = postprocess(Q K^T, mult, shift, output="int8")`` (base-2 fixed point with
    ``params.in_frac`` fraction bits), ``probs[r] = min(softmax(scores[r]), 127)`` (``out_frac``
    fraction bits), ``acc = probs @ V`` (exact). Returns a dict of the three (int64 arrays).
    """
    q, k, v = (np.asarray(t, dtype=np.int64) for t in (q_codes, k_codes, v_codes))
    acc1 = G.gemm(q, k.T, "int8")
    scores = S.postprocess(acc1, np.full(k.shape[0], mult), np.full(k.shape[0], shift),
                           output="int8")
    table = SM.exp2_table(params)
    probs = np.stack([np.minimum(SM.softmax(row, p=params, table=table)[0], 127)
                      for row in scores])
    return {"scores": scores, "probs": probs, "acc": G.gemm(probs, v, "int8")}


def attention_float(q, k, v):
    """float64 ``softmax(Q K^T / sqrt(d)) V`` (natural base)."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    s = q @ k.T / math.sqrt(q.shape[1])
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ v


def attention_error(out, ref):
    """``{"max_abs", "rms", "rel_rms"}`` of ``out - ref`` (``rel_rms`` = rms / rms(ref))."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    err = out - ref
    rms = float(np.sqrt(np.mean(err ** 2)))
    return {"max_abs": float(np.abs(err).max()), "rms": rms,
            "rel_rms": rms / float(np.sqrt(np.mean(ref ** 2)))}


# -- word-level executor ---------------------------------------------------------------------------

class WordSystem:
    """The system at the level of words (functional, untimed), from the manifest.

    State per tile: ``spad`` (list of ints), ``fifo`` (command words), ``counter`` (DATA payload
    words received, minus WAITs). :meth:`inject` delivers a host packet; :meth:`run` executes
    commands until no tile can go on; HOST packets arriving at node 0 collect in :attr:`host`.
    Violations of the spec (a command FIFO over ``cmd_depth``, counts that do not match the
    command, addresses outside the scratchpad, stray HOST packets) raise ValueError.
    """

    def __init__(self, manifest):
        from sim.host import System
        self.s = System(manifest)
        n = self.s.nodes
        self.spad = [[0] * self.s.spad_words for _ in range(n)]
        self.fifo = [[] for _ in range(n)]
        self.counter = [0] * n
        self.host = []
        self.gemms = [0] * n
        self.codes = {v: k for k, v in self.s.mode_codes.items()}
        self.params = softmax_params(self.s.softmax) if self.s.softmax else None
        self.table = SM.exp2_table(self.params) if self.params else None

    # delivery
    def _deliver(self, src, dest_nodes, words):
        h = self.s.header.unpack(words[0])
        payload = [int(w) for w in words[1:]]
        if not 1 <= len(payload) <= self.s.max_packet_flits - 1:
            raise ValueError(f"packet of {len(payload)} payload words: must be 1 to "
                             f"max_packet_flits - 1 = {self.s.max_packet_flits - 1}")
        kinds = self.s.kinds
        for node in dest_nodes:
            if h["kind"] == kinds["host"]:
                if node != 0:
                    raise ValueError(f"HOST packet from node {src} to node {node}: dropped")
                self.host.append({"src": src, "header": int(words[0]), "words": payload})
            elif h["kind"] == kinds["data"]:
                if h["addr"] + len(payload) > self.s.spad_words:
                    raise ValueError(f"DATA packet at {h['addr']} runs past the scratchpad")
                self.spad[node][h["addr"]:h["addr"] + len(payload)] = payload
                self.counter[node] += len(payload)
            elif h["kind"] == kinds["cmd"]:
                for word in payload:
                    if len(self.fifo[node]) == self.s.cmd_depth:
                        raise ValueError(f"tile {node}: {self.s.cmd_depth + 1} commands queued, "
                                         f"more than cmd_depth = {self.s.cmd_depth}")
                    self.fifo[node].append(word)
            else:
                raise ValueError(f"packet with header kind {h['kind']}")

    def _dest(self, mask=None, node=None):
        if mask is not None:
            return [i for i in range(self.s.nodes) if mask >> i & 1]
        return [node]

    def inject(self, packet):
        """Deliver a :class:`sim.host.Packet` the host injects at node 0."""
        if packet.mask is None and not 0 <= packet.node < self.s.nodes:
            raise ValueError(f"packet to node {packet.node}: outside the {self.s.kx} x "
                             f"{self.s.ky} mesh (the network drops and counts it)")
        self._deliver(0, self._dest(packet.mask, packet.node), packet.words)

    # commands
    def run(self):
        """Execute commands, tile after tile, until none can run."""
        progress = True
        while progress:
            progress = False
            for node in range(self.s.nodes):
                while self.fifo[node] and self._execute(node, self.fifo[node][0]):
                    self.fifo[node].pop(0)
                    progress = True

    def _read(self, node, addr, count):
        if addr < 0 or addr + count > self.s.spad_words:
            raise ValueError(f"tile {node}: read of words {addr}..{addr + count - 1} outside "
                             "the scratchpad")
        return self.spad[node][addr:addr + count]

    def _write(self, node, addr, words):
        if addr < 0 or addr + len(words) > self.s.spad_words:
            raise ValueError(f"tile {node}: write of words {addr}..{addr + len(words) - 1} "
                             "outside the scratchpad")
        self.spad[node][addr:addr + len(words)] = words

    def _execute(self, node, word):
        c = self.s.command.unpack(word)
        op, ops = c["op"], self.s.ops
        if op == ops["wait"]:
            if self.counter[node] < c["a_count"]:
                return False
            self.counter[node] -= c["a_count"]
        elif op == ops["gemm"]:
            self._gemm(node, c)
        elif op == ops["softmax"]:
            self._softmax(node, c)
        elif op == ops["send"]:
            self._send(node, c)
        else:
            raise ValueError(f"tile {node}: command with op {op}")
        return True

    def _send(self, node, c):
        words = self._read(node, c["a_addr"], c["a_count"])
        step = self.s.max_packet_flits - 1
        if c["mcast"]:
            dest = self._dest(mask=c["mask"])
        elif c["dest_x"] >= self.s.kx or c["dest_y"] >= self.s.ky:
            raise ValueError(f"tile {node}: SEND to ({c['dest_x']}, {c['dest_y']}), outside the "
                             f"{self.s.kx} x {self.s.ky} mesh (the network drops and counts it)")
        else:
            dest = [c["dest_y"] * self.s.kx + c["dest_x"]]
        for i in range(0, len(words), step):
            header = self.s.header.pack(kind=c["kind"], addr=c["o_addr"] + i)
            self._deliver(node, dest, [header] + words[i:i + step])

    def _softmax(self, node, c):
        lanes = self.params.lanes
        for r in range(c["rows"]):
            addrs = [c["a_addr"] + j * c["stride"] + r for j in range(c["beats"])]
            xb = np.array([[((self._read(node, a, 1)[0] >> (8 * lane) & 0xFF) ^ 0x80) - 0x80
                            for lane in range(lanes)] for a in addrs], dtype=np.int64)
            y, _ = SM.softmax_beats(xb, np.zeros(xb.shape, bool), self.params, self.table)
            for j in range(c["beats"]):
                self._write(node, c["o_addr"] + j * c["stride"] + r,
                            [sum(min(int(v), 127) << (8 * lane) for lane, v in enumerate(y[j]))])

    def _gemm(self, node, c):
        s = self.s
        m, n, k = c["gemm.m"], c["gemm.n"], c["gemm.k"]
        mode = self.codes[c["gemm.mode"]]
        vsq = c.get("gemm.vsq", 0)
        V = s.vector_sizes[c["gemm.vsel"]] if vsq else None
        out = c.get("gemm.out", 0)
        R, C = s.rows, s.cols
        need_a = len(G.act_beats(np.zeros((m, k), np.int64), mode, R, vector_size=V))
        need_w = len(G.weight_beats(np.zeros((k, n), np.int64), mode, R, C, vector_size=V))
        sparse = c.get("gemm.sparse", 0)
        if sparse:
            # 2:4: the kept values as a dense matrix of K4 / 2 rows, 2R-byte activation beats.
            kk, vk = SP.padded_k(k) // 2, V // 2 if V else None
            need_a = len(SP.act_beats(np.zeros((m, k), np.int64), mode, R, vector_size=V))
            need_w = len(SP.weight_beats(np.zeros((kk, n), np.int64), mode, R, C, vector_size=V))
        if (c["a_count"], c["w_count"]) != (need_a, need_w):
            raise ValueError(f"tile {node}: GEMM {mode} {m}x{n}x{k} with a_count {c['a_count']}, "
                             f"w_count {c['w_count']}: the engine takes {need_a} and {need_w}")
        a_beats = [s.a.unpack(wd) for wd in self._read(node, c["a_addr"], need_a)]
        w_beats = [s.w.unpack(wd) for wd in self._read(node, c["w_addr"], need_w)]
        if sparse:
            a, s_qa, mult_a, shift_a = _decode_a(a_beats, m, k, mode, 2 * R, V)
            values, s_qw, mult, shift = _decode_w(w_beats, kk, n, mode, R, C, vk)
            two = G.MODES[mode][2] != 1
            meta_beats = [dict(b, data=[(x & 3) | ((x >> 2) & 3) << 4 if two else x & 3
                                        for x in b["meta"]]) for b in w_beats]
            meta = _decode_w(meta_beats, kk, n, mode, R, C, vk)[0]
            if vsq:
                acc = SP.sparse_vsq_gemm(a, values, meta, s_qa, s_qw, mode=mode, vector_size=V,
                                         scale_bits=s.scale_bits)
            else:
                acc = SP.sparse_gemm(a, values, meta, mode)
        else:
            a, s_qa, mult_a, shift_a = _decode_a(a_beats, m, k, mode, R, V)
            w, s_qw, mult, shift = _decode_w(w_beats, k, n, mode, R, C, V)
            if vsq:
                acc = S.vsq_gemm(a, w, s_qa, s_qw, mode=mode, vector_size=V,
                                 scale_bits=s.scale_bits)
            else:
                acc = G.gemm(a, w, mode)
        if out:
            kw = {"mult_a": mult_a, "shift_a": shift_a} if s.a.has("mult") else {}
            y = S.postprocess(acc, mult, shift, relu=bool(c.get("gemm.relu", 0)),
                              output=("int8", "int4", "fp32")[out - 1], **kw)
            if out == 3:
                y = y.astype(np.float32).view(np.uint32).astype(np.int64)
        else:
            y = acc
        self._write(node, c["o_addr"], s.output_words(y, c["pack"]))
        self.gemms[node] += 1

    def run_phase(self, phase):
        """Inject the phase's packets, run, and return the HOST packets received (checking their
        payload words add up to the phase's ``host_words``)."""
        self.host = []
        for p in phase.packets:
            self.inject(p)
        self.run()
        got = sum(len(p["words"]) for p in self.host)
        if got != phase.host_words:
            raise ValueError(f"phase {phase.name!r}: {got} HOST words received, the phase waits "
                             f"for {phase.host_words}")
        return self.host


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def _decode_a(beats, m, k, mode, R, V):
    """A (M x K), s_qa, mult_a, shift_a from the ``a`` beats (inverse of act_beats)."""
    a = np.zeros((m, k), np.int64)
    nv = -(-k // V) if V else 1
    s_qa = np.zeros((m, nv), np.int64)
    mult_a, shift_a = np.ones(m, np.int64), np.zeros(m, np.int64)
    for t, (k0, k1) in enumerate(G.k_tiles(k, mode, R, V)):
        for i in range(m):
            b = beats[t * m + i]
            for r, byte in enumerate(b["data"]):
                if mode == "int4":
                    for j, e in enumerate((byte & 0xF, byte >> 4)):
                        if k0 + 2 * r + j < k1:
                            a[i, k0 + 2 * r + j] = _signed(e, 4)
                elif k0 + r < k1:
                    a[i, k0 + r] = _signed(byte, 8)
            if V:
                s_qa[i, k0 // V] = b["scale"]
            if "mult" in b:
                mult_a[i], shift_a[i] = b["mult"], b["shift"]
    return a, s_qa, mult_a, shift_a


def _decode_w(beats, k, n, mode, R, C, V):
    """W (K x N), s_qw, mult, shift from the ``w`` beats (inverse of weight_beats)."""
    w = np.zeros((k, n), np.int64)
    nv = -(-k // V) if V else 1
    s_qw = np.zeros((nv, n), np.int64)
    mult, shift = np.zeros(n, np.int64), np.zeros(n, np.int64)
    per = G._beats_per_tile(mode, R)
    idx = 0
    for n0 in range(0, n, C):
        for k0, k1 in G.k_tiles(k, mode, R, V):
            for j in range(per):
                b = beats[idx]
                idx += 1
                for col, byte in enumerate(b["data"]):
                    if n0 + col >= n:
                        continue
                    if G.MODES[mode][2] == 1:
                        if k0 + j < k1:
                            w[k0 + j, n0 + col] = _signed(byte, 8)
                    else:
                        for h, e in enumerate((byte & 0xF, byte >> 4)):
                            if k0 + 2 * j + h < k1:
                                w[k0 + 2 * j + h, n0 + col] = _signed(e, 4)
                    if V:
                        s_qw[k0 // V, n0 + col] = b["scale"][col]
                    if "mult" in b:
                        mult[n0 + col], shift[n0 + col] = b["mult"][col], b["shift"][col]
    return w, s_qw, mult, shift


def execute(manifest, plan):
    """Run ``plan`` (a :class:`sim.host.Plan`) on a fresh :class:`WordSystem`; ``(result,
    received per phase, the WordSystem)``."""
    ws = WordSystem(manifest)
    received = []

    def run(phase):
        received.append(ws.run_phase(phase))
        return received[-1]
    return plan.run(run), received, ws
