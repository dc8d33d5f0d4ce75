"""cocotb smoke bench of the multi-tile system (:class:`gen.system.System`) against the block
models.

Everything goes through the host port, as a host would do it: DATA packets (one of them multicast)
place a GEMM's weights and activations in tile 0's scratchpad, CMD packets run on it a GEMM with
``pack`` 0, the same GEMM with ``pack`` 1, a command the engine drops, a SOFTMAX over the packed
result (stride M) and SENDs of every result to the host; tile 0 also SENDs the probabilities to
tile 1 as DATA (itself on a 1 x 1 system), which WAITs for them and SENDs them to the host. A
packet to a row outside the mesh is dropped by the mesh. Every word the host receives is
compared, bit for bit, with :mod:`sim.golden.gemm` and :mod:`sim.golden.softmax`, and the
counters (``gemms<n>``, ``busy<n>``, ``errors``, ``idle``) with what the program implies.

The words are built by :class:`sim.host.System` from the manifest's ``words`` (the formats of
:class:`gen.tile.Tile`), the ``host_i`` beats by :func:`sim.tb.system.packet_beats`. The system
needs R = C = softmax lanes. ``host_i`` has random idle cycles and ``host_o`` random
backpressure (``ACCELGEN_GAP``, ``ACCELGEN_STALL``); ``SEED`` seeds them and the operands.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout

from sim import host as H
from sim.golden import gemm as golden_gemm
from sim.golden import softmax as golden_softmax
from sim.golden.system import softmax_params
from sim.runner import seed_from_env
from sim.tb.streams import Scoreboard, StreamSink, StreamSource, load_manifest, reset, start_clock
from sim.tb.system import packet_beats

PERIOD_NS = 10


def packets(system, kind, words, addr=0, *, node=0, mask=None):
    """The :class:`sim.host.Packet` s carrying ``words`` (at most ``max_packet_flits - 1`` each) to
    ``node`` or, with ``mask``, to a set of nodes; DATA headers address ``addr`` onwards."""
    step = system.max_packet_flits - 1
    return [H.Packet([system.header_word(kind, addr + i), *words[i:i + step]],
                     None if mask is not None else node, mask)
            for i in range(0, len(words), step)]


def host_packets(man, system, beats):
    """The HOST packets of the ``host_o`` beats as ``(src, header fields, words)``."""
    out, cur = [], None
    for beat in beats:
        f = man.payloads["host_o"].unpack(beat)
        if cur is None:
            cur = (f["src"], system.header.unpack(f["data"]), [])
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


@cocotb.test()
async def smoke(dut):
    seed = seed_from_env()
    rng = np.random.default_rng(seed)
    man = load_manifest()
    system = H.System(man.data)
    q = man.parameters
    R, C, kx = system.rows, system.cols, system.kx
    assert q["softmax"] and q["softmax_lanes"] == C == R
    gap = float(os.environ.get("ACCELGEN_GAP", "0.3"))
    stall = float(os.environ.get("ACCELGEN_STALL", "0.3"))
    await start_clock(dut, PERIOD_NS)
    src = StreamSource(dut, "host_i", dut.clk, gap=gap, rng=rng)
    sink = StreamSink(dut, "host_o", dut.clk, stall=stall, rng=rng)
    await reset(dut)

    def inject(packet_list):
        for packet in packet_list:
            src.send(packet_beats(man.payloads["host_i"], kx, packet))

    # A GEMM M x K by K x N whose N spans two column tiles and K three k tiles (R = 2).
    M, K, N = 3, 2 * R + 1, 2 * C
    a, w = golden_gemm.random_operands(rng, M, N, K, "int8")
    y = golden_gemm.gemm(a, w, "int8")
    a_words, w_words = system.a_words(a, "int8"), system.w_words(w, "int8")
    o_words = system.output_words(y)
    o_count = len(o_words)
    A0, W0, O1, O2, P0, Q1 = 0, 32, 64, 96, 128, 40     # scratchpad addresses

    def gemm_cmd(o_addr, pack):
        return system.gemm_command(m=M, n=N, k=K, mode="int8", a_addr=A0, a_count=len(a_words),
                                   w_addr=W0, w_count=len(w_words), o_addr=o_addr, pack=pack)

    def send(a_addr, count, tag, kind="host", node=0):
        return system.send_command(a_addr=a_addr, a_count=count, kind=kind, tag=tag, node=node)

    # Phase 1: data (the weights multicast to tiles 0 and 1), two GEMMs, a dropped one (M = 0,
    # which the host's builder refuses: packed by hand), a SEND.
    # At most cmd_depth commands are outstanding at a tile at any time.
    inject(packets(system, "data", a_words, A0, node=0))
    inject(packets(system, "data", w_words, W0, mask=system.mask_of(range(min(system.nodes, 2)))))
    bad = system.command.pack(op=system.ops["gemm"], gemm={"m": 0, "n": N, "k": K,
                                                       "mode": system.mode_codes["int8"]})
    inject(packets(system, "cmd", [gemm_cmd(O1, 0), gemm_cmd(O2, 1), bad, send(O1, o_count, 0)]))
    # A packet to node `nodes`, i.e. row ky of the mesh: its interface drops and counts it.
    inject(packets(system, "data", [1, 2], 0, node=system.nodes))
    expected = {}
    beats = 0

    def expect(tag, words, src_node):
        nonlocal beats
        for i, word in enumerate(words):
            expected[tag + i] = (src_node, word)
        beats += len(words) + -(-len(words) // (system.max_packet_flits - 1))

    expect(0, o_words, 0)
    await with_timeout(sink.wait_for(beats), 20000 * PERIOD_NS, "ns")

    # Phase 2: SOFTMAX over the packed result (row r of Y, one beat per column tile), results
    # to the host, the probabilities to tile 1 (tile 0 itself on a 1 x 1 system).
    packed = system.output_words(y, pack=1)
    beats_per_row = -(-N // C)
    other = 1 if system.nodes > 1 else 0
    inject(packets(system, "cmd", [
        system.softmax_command(a_addr=O2, o_addr=P0, rows=M, beats=beats_per_row, stride=M),
        send(O2, o_count, 100), send(P0, o_count, 200),
        send(P0, o_count, Q1, kind="data", node=other)]))
    p = softmax_params(system.softmax)
    scores = ((y & 0xFF) ^ 0x80) - 0x80             # bits 7:0 of each result, signed
    probs = np.zeros((M, beats_per_row * C), dtype=np.int64)
    for r in range(M):
        row = np.zeros(beats_per_row * C, dtype=np.int64)
        row[:N] = scores[r]
        probs[r], _ = golden_softmax.softmax(row, p=p)
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
    inject(packets(system, "cmd", [system.wait_command(received), send(Q1, o_count, 150)],
                   node=other))
    expect(150, prob_words, other)
    await with_timeout(sink.wait_for(beats), 20000 * PERIOD_NS, "ns")
    for _ in range(20):
        await RisingEdge(dut.clk)

    board = Scoreboard("host_o", log=dut._log)
    got = {}
    for src_node, head, words in host_packets(man, system, sink.received):
        board.compare(system.kinds["host"], head["kind"], f"kind of a packet from {src_node}")
        for i, word in enumerate(words):
            got[head["addr"] + i] = (src_node, word)
    board.compare(sorted(expected), sorted(got), "tags received")
    for tag, want in sorted(expected.items()):
        board.compare(want, got.get(tag), f"(source, word) of tag {tag}")
    nodes = system.nodes
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
    board.compare(True, 2 * max(len(a_words), len(w_words)) <= busy < sink.cycle,
                  f"busy0 = {busy}")
    board.check()
