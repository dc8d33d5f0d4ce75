"""cocotb smoke bench of the multi-tile system (:class:`gen.system.System`) against the block
models.

Everything goes through the host port, as a host would do it: DATA packets (one of them multicast)
place a GEMM's weights and activations in tile 0's scratchpad, CMD packets run on it a GEMM with
``pack`` 0, the same GEMM with ``pack`` 1, a command the engine drops, a SOFTMAX over the packed
result (stride M) and SENDs of every result to the host; tile 0 also SENDs the probabilities to
tile 1 as DATA (itself on a 1 x 1 system), which WAITs for them and SENDs them to the host. A
packet to a column outside the mesh is dropped by the mesh. Every word the host receives is
compared, bit for bit, with :mod:`sim.golden.gemm` and :mod:`sim.golden.softmax`, and the
counters (``gemms<n>``, ``busy<n>``, ``errors``, ``idle``) with what the program implies.

The packet and command formats are :class:`gen.tile.Tile`'s, read from the manifest's ``words``. The
system needs R = C = softmax lanes. ``host_i`` has random idle cycles and ``host_o`` random
backpressure (``ACCELGEN_GAP``, ``ACCELGEN_STALL``); ``SEED`` seeds them and the operands.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout

from sim.golden import gemm as golden_gemm
from sim.golden import softmax as golden_softmax
from sim.runner import seed_from_env
from sim.tb.streams import Scoreboard, StreamSink, StreamSource, load_manifest, reset, start_clock

PERIOD_NS = 10


class Host:
    """Packs packets for ``host_i`` and unpacks those of ``host_o``, from the manifest."""

    def __init__(self, man):
        self.man = man
        q = man.parameters
        self.kx, self.lp = q["kx"], q["max_packet_flits"] - 1
        self.ops, self.kinds = q["ops"], q["kinds"]
        self.inject = man.payloads["host_i"]
        self.eject = man.payloads["host_o"]
        self.command = man.words["command"]
        self.header = man.words["header"]

    def packets(self, kind, words, addr=0, *, node=0, mask=None):
        """Beats of the packets carrying ``words`` (at most ``lp`` per packet) to ``node`` (an
        index, or coordinates ``(x, y)``) or, with ``mask``, to a set of nodes; DATA headers
        address ``addr`` onwards."""
        x, y = node if isinstance(node, tuple) else (node % self.kx, node // self.kx)
        beats = []
        for i in range(0, len(words), self.lp):
            chunk = words[i:i + self.lp]
            route = dict(mcast=1, mask=mask) if mask is not None else dict(dest_x=x, dest_y=y)
            head = self.header.pack(kind=self.kinds[kind], addr=addr + i)
            beats.append(self.inject.pack(data=head, last=0, **route))
            beats += [self.inject.pack(data=w, last=int(j == len(chunk) - 1))
                      for j, w in enumerate(chunk)]
        return beats

    def cmd(self, op, **fields):
        return self.command.pack(op=self.ops[op], **fields)

    def received(self, beats):
        """HOST packets as ``(src, header fields, words)``."""
        out, cur = [], None
        for beat in beats:
            f = self.eject.unpack(beat)
            if cur is None:
                cur = (f["src"], self.header.unpack(f["data"]), [])
            else:
                cur[2].append(f["data"])
            if f["last"]:
                out.append(cur)
                cur = None
        return out


def _uint(handle):
    """The value of a port of one or more bits, unsigned."""
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def gemm_counts(m, n, k, mode, rows, cols):
    """``(a_count, w_count, output words)`` of a plain GEMM."""
    tiles = golden_gemm.k_tile_count(k, mode, rows)
    wbeats = rows if mode in ("int8", "int4") else -(-rows // 2)
    return tiles * m, -(-n // cols) * tiles * wbeats, -(-n // cols) * m


@cocotb.test()
async def smoke(dut):
    seed = seed_from_env()
    rng = np.random.default_rng(seed)
    man = load_manifest()
    q = man.parameters
    R, C = q["rows"], q["cols"]
    assert q["softmax"] and q["softmax_lanes"] == C == R
    host = Host(man)
    gap = float(os.environ.get("ACCELGEN_GAP", "0.3"))
    stall = float(os.environ.get("ACCELGEN_STALL", "0.3"))
    await start_clock(dut, PERIOD_NS)
    src = StreamSource(dut, "host_i", dut.clk, gap=gap, rng=rng)
    sink = StreamSink(dut, "host_o", dut.clk, stall=stall, rng=rng)
    await reset(dut)

    # A GEMM M x K by K x N whose N spans two column tiles and K three k tiles (R = 2).
    M, K, N = 3, 2 * R + 1, 2 * C
    a, w = golden_gemm.random_operands(rng, M, N, K, "int8")
    y = golden_gemm.gemm(a, w, "int8")
    a_words = [man.words["a"].pack(data=b) for b in golden_gemm.act_beats(a, "int8", R)]
    w_words = [man.words["w"].pack(data=b) for b in golden_gemm.weight_beats(w, "int8", R, C)]
    a_count, w_count, o_count = gemm_counts(M, N, K, "int8", R, C)
    assert (a_count, w_count) == (len(a_words), len(w_words))
    A0, W0, O1, O2, P0, Q1 = 0, 32, 64, 96, 128, 40     # scratchpad addresses
    code = q["mode_codes"]["int8"]

    def gemm_cmd(o_addr, pack):
        return host.cmd("gemm", a_addr=A0, w_addr=W0, a_count=a_count, w_count=w_count,
                        o_addr=o_addr, pack=pack,
                        **{"gemm.m": M, "gemm.n": N, "gemm.k": K, "gemm.mode": code})

    def send(a_addr, count, o_addr, kind="host", node=0):
        return host.cmd("send", a_addr=a_addr, a_count=count, o_addr=o_addr, kind=host.kinds[kind],
                        dest_x=node % host.kx, dest_y=node // host.kx)

    # Phase 1: data (the weights multicast to tiles 0 and 1), two GEMMs, a dropped one, a SEND.
    # At most cmd_depth commands are outstanding at a tile at any time.
    src.send(host.packets("data", a_words, A0, node=0))
    src.send(host.packets("data", w_words, W0, mask=(1 << min(q["nodes"], 2)) - 1))
    bad = host.cmd("gemm", **{"gemm.m": 0, "gemm.n": N, "gemm.k": K, "gemm.mode": code})
    src.send(host.packets("cmd", [gemm_cmd(O1, 0), gemm_cmd(O2, 1), bad, send(O1, o_count, 0)],
                          node=0))
    # A packet to a column outside the mesh: the mesh's interface drops and counts it.
    src.send(host.packets("data", [1, 2], 0, node=(q["kx"], 0)))
    expected = {}
    beats = 0

    def expect(tag, words, src_node):
        nonlocal beats
        for i, word in enumerate(words):
            expected[tag + i] = (src_node, word)
        beats += len(words) + -(-len(words) // host.lp)

    o_beats = golden_gemm.output_beats(y, C)
    expect(0, [man.words["o"].pack(data=lanes) for lanes, _ in o_beats], 0)
    await with_timeout(sink.wait_for(beats), 20000 * PERIOD_NS, "ns")

    # Phase 2: SOFTMAX over the packed result (row r of Y, one beat per column tile), results
    # to the host, the probabilities to tile 1 (tile 0 itself on a 1 x 1 system).
    packed = [sum((v & 0xFF) << (8 * c) for c, v in enumerate(lanes)) for lanes, _ in o_beats]
    beats_per_row = -(-N // C)
    other = 1 if q["nodes"] > 1 else 0
    src.send(host.packets("cmd", [
        host.cmd("softmax", a_addr=O2, o_addr=P0, rows=M, beats=beats_per_row, stride=M),
        send(O2, o_count, 100), send(P0, o_count, 200),
        send(P0, o_count, Q1, kind="data", node=other)], node=0))
    p = golden_softmax.SoftmaxParams(
        in_width=q["softmax_in_width"], in_frac=q["softmax_in_frac"],
        out_frac=q["softmax_out_frac"], max_len=q["softmax_max_len"], lanes=C,
        sum_frac=q["softmax_sum_frac"], recip_bits=q["softmax_recip_bits"])
    scores = ((y & 0xFF) ^ 0x80) - 0x80             # bits 7:0 of each result, signed
    probs = np.zeros((M, beats_per_row * C), dtype=np.int64)
    for r in range(M):
        row = np.zeros(beats_per_row * C, dtype=np.int64)
        row[:N] = scores[r]
        probs[r], _ = golden_softmax.softmax(row, None, p)
    prob_words = [0] * o_count
    for r in range(M):
        for j in range(beats_per_row):
            lanes = np.minimum(probs[r, j * C:(j + 1) * C], 127)
            prob_words[j * M + r] = sum(int(v) << (8 * c) for c, v in enumerate(lanes))
    expect(100, packed, 0)
    expect(200, prob_words, 0)
    await with_timeout(sink.wait_for(beats), 40000 * PERIOD_NS, "ns")

    # Phase 3: that tile waits for every DATA word it was sent and forwards the probabilities.
    received = len(w_words) + o_count + (0 if other else len(a_words))
    src.send(host.packets("cmd", [host.cmd("wait", a_count=received), send(Q1, o_count, 150)],
                          node=other))
    expect(150, prob_words, other)
    await with_timeout(sink.wait_for(beats), 20000 * PERIOD_NS, "ns")
    for _ in range(20):
        await RisingEdge(dut.clk)

    board = Scoreboard("host_o", log=dut._log)
    got = {}
    for src_node, head, words in host.received(sink.received):
        board.compare(host.kinds["host"], head["kind"], f"kind of a packet from {src_node}")
        for i, word in enumerate(words):
            got[head["addr"] + i] = (src_node, word)
    board.compare(sorted(expected), sorted(got), "tags received")
    for tag, want in sorted(expected.items()):
        board.compare(want, got.get(tag), f"(source, word) of tag {tag}")
    nodes = q["nodes"]
    board.compare(2, _uint(dut.errors), "errors (a dropped GEMM, a packet to no node)")
    board.compare(2, _uint(dut.gemms0), "gemms0")
    if nodes > 1:
        board.compare(0, _uint(dut.gemms1), "gemms1")
        board.compare(0, _uint(dut.busy1), "busy1")
    board.compare((1 << nodes) - 1, _uint(dut.idle), "idle")
    busy = _uint(dut.busy0)
    dut._log.info(f"{len(sink.received)} beats from host_o, busy0 = {busy} cycles, "
                  f"{board.compared} compared")
    # Each GEMM streams its operands at one word per cycle at best.
    board.compare(True, 2 * max(a_count, w_count) <= busy < sink.cycle, f"busy0 = {busy}")
    board.check()
