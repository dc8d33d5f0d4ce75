"""cocotb bench of the mesh network-on-chip (:class:`gen.mesh.Mesh`) against :mod:`sim.golden.noc`.

The pytest side (``tests/test_noc.py``, ``sim/bench/noc.py``) builds the mesh with :mod:`sim.runner` and
passes, in the environment:

ACCELGEN_MANIFEST : the top's manifest (ports, payload fields, parameters).
ACCELGEN_NOC_PACKETS : packets per source for ``traffic`` (default 20).
ACCELGEN_NOC_MCAST, ACCELGEN_NOC_BADS : fractions of multicast and of bad packets (default 0.2, 0).
ACCELGEN_GAP, ACCELGEN_STALL : probabilities of an idle cycle before each injected beat and of a stalled
    cycle on every ejection stream (0 by default).
ACCELGEN_NOC_POINTS : for ``load_sweep``, a JSON list of [pattern, offered load] (flits per sending node
    per cycle; patterns of :data:`sim.golden.noc.PATTERNS`).
ACCELGEN_NOC_LOADS : for ``load_sweep`` without ACCELGEN_NOC_POINTS, uniform traffic at these loads.
ACCELGEN_NOC_WINDOW : for ``load_sweep``, "warm-up,window" cycles per load (default "300,1000").
ACCELGEN_NOC_CYCLES : for ``stress``, cycles of saturation before the drain (default 2000).
ACCELGEN_RESULTS : where ``load_sweep`` and ``zero_load`` write their figures (JSON).
SEED : the seed of the traffic, gaps and stalls.

One coroutine drives every node's injection stream and takes every ejection stream, once per clock
edge, with a single cycle counter, so that latencies compare across nodes. The scoreboard groups the
received packets by (source, destination) and compares each group, in order, with the golden model's:
a lost, duplicated, reordered or corrupted packet is a mismatch.
"""

import json
import os
from collections import deque

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from sim.golden import noc as golden
from sim.runner import seed_from_env
from sim.tb.streams import load_manifest, reset, start_clock

PERIOD_NS = 10


class NocTB:
    """Clock, reset, and the local side of every node: injection queues and ejection sinks."""

    def __init__(self, dut, *, seed, gap=0.0, stall=0.0):
        self.dut = dut
        self.man = load_manifest()
        par = self.man.parameters
        self.kx, self.ky = par["kx"], par["ky"]
        self.nodes = par["nodes"]
        self.lmax = par["max_packet_flits"]
        self.flit_width = par["flit_width"]
        self.routing = par["routing"]
        self.rng = np.random.default_rng(seed)
        self.gap, self.stall = gap, stall
        self.inj = self.man.payloads["i0"]
        self.ej = self.man.payloads["o0"]
        n = self.nodes
        self.i_valid = [getattr(dut, f"i{k}__valid") for k in range(n)]
        self.i_ready = [getattr(dut, f"i{k}__ready") for k in range(n)]
        self.i_payload = [getattr(dut, f"i{k}__payload") for k in range(n)]
        self.o_valid = [getattr(dut, f"o{k}__valid") for k in range(n)]
        self.o_ready = [getattr(dut, f"o{k}__ready") for k in range(n)]
        self.o_payload = [getattr(dut, f"o{k}__payload") for k in range(n)]
        self.queues = [deque() for _ in range(n)]   # (packet id, beat index, word, is_last)
        self.holding = [None] * n
        self.partial = [[] for _ in range(n)]       # data of the packet arriving at each node
        self.received = []                          # (src, dst, payload, first cycle, last cycle)
        self.first_in = {}                          # packet id -> cycle of its first beat's handshake
        self.first_out = {}
        self.cycle = 0
        self.injected_flits = 0
        self.moved = 0
        for k in range(n):
            self.i_valid[k].value = 0
            self.o_ready[k].value = 0 if stall else 1

    async def start(self):
        await start_clock(self.dut, PERIOD_NS)
        await reset(self.dut)
        cocotb.start_soon(self._run())

    def send(self, pid, packet):
        """Queue ``packet`` (:class:`sim.golden.noc.Packet`) at its source, under id ``pid``."""
        q = self.queues[packet.src]
        for b, data in enumerate(packet.payload):
            last = b == len(packet.payload) - 1
            word = self.inj.pack(data=data, last=int(last), mcast=int(packet.mcast),
                                 mask=packet.mask, dest_x=packet.dest_x, dest_y=packet.dest_y)
            q.append((pid, b, word, last))

    def idle(self):
        return not any(self.queues) and all(h is None for h in self.holding)

    async def _run(self):
        edge = RisingEdge(self.dut.clk)
        n = self.nodes
        rng, gap, stall = self.rng, self.gap, self.stall
        width = self.flit_width
        src_shift, src_width = self.ej.fields["src"][0], self.ej.fields["src"][1]
        last_shift = self.ej.fields["last"][0]
        while True:
            await edge
            self.cycle += 1
            cyc = self.cycle
            for k in range(n):
                held = self.holding[k]
                if held is not None and self.i_ready[k].value == 1:
                    if held[1] == 0:
                        self.first_in[held[0]] = cyc
                    self.injected_flits += 1
                    held = self.holding[k] = None
                if held is None:
                    q = self.queues[k]
                    if q and not (gap and rng.random() < gap):
                        held = self.holding[k] = q.popleft()
                        self.i_payload[k].value = held[2]
                        self.i_valid[k].value = 1
                    else:
                        self.i_valid[k].value = 0
                if self.o_ready[k].value == 1 and self.o_valid[k].value == 1:
                    word = self.o_payload[k].value.to_unsigned()
                    part = self.partial[k]
                    if not part:
                        self.first_out[k] = cyc
                    part.append(word & ((1 << width) - 1))
                    self.moved += 1
                    if word >> last_shift & 1:
                        src = word >> src_shift & ((1 << src_width) - 1)
                        self.received.append((src, k, list(part), self.first_out[k], cyc))
                        self.partial[k] = []
                if stall:
                    self.o_ready[k].value = 0 if rng.random() < stall else 1

    async def wait_delivered(self, flits, timeout_cycles, what, expected=None):
        """Wait until ``flits`` flits in all have been taken on the ejection streams; on a timeout,
        say what is missing (compared with ``expected`` deliveries, when given)."""
        start = self.cycle
        edge = RisingEdge(self.dut.clk)
        while self.moved < flits:
            if self.cycle - start > timeout_cycles:
                message = (f"{what}: {self.moved} of {flits} flits delivered after "
                           f"{timeout_cycles} cycles; {sum(map(len, self.queues))} beats not "
                           f"injected; partial packets at nodes "
                           f"{[k for k in range(self.nodes) if self.partial[k]]}")
                if expected is not None:
                    try:
                        self.check(expected)
                    except AssertionError as exc:
                        message += "\n" + str(exc)
                raise AssertionError(message)
            await edge

    async def settle(self, cycles=20):
        edge = RisingEdge(self.dut.clk)
        for _ in range(cycles):
            await edge

    def expected_flits(self, expected):
        return sum(len(p) for payloads in expected.values() for p in payloads)

    def check(self, expected, drops=None):
        """Compare what was received with the golden deliveries; raise listing the first problems."""
        got = {}
        for src, dst, payload, _, _ in self.received:
            got.setdefault((src, dst), []).append(payload)
        problems = []
        for key in sorted(set(expected) | set(got)):
            want, have = expected.get(key, []), got.get(key, [])
            if want != have:
                problems.append(_describe(key, want, have))
        if drops is not None:
            hw = [int(getattr(self.dut, f"drops{k}").value) for k in range(self.nodes)]
            if hw != drops:
                problems.append(f"drops per node: expected {drops}, got {hw}")
            flags = int(self.dut.bad.value)
            want_flags = sum(1 << k for k, d in enumerate(drops) if d)
            if flags != want_flags:
                problems.append(f"bad flags: expected {want_flags:#x}, got {flags:#x}")
        if problems:
            raise AssertionError(f"{len(problems)} (source, destination) pairs differ; the first:\n"
                                 + "\n".join(problems[:8]))
        return sum(len(v) for v in got.values())


def _describe(key, want, have):
    src, dst = key
    lost = len(want) - len(have)
    head = f"  {src} -> {dst}: expected {len(want)} packets, got {len(have)}"
    for i, (a, b) in enumerate(zip(want, have, strict=False)):
        if a != b:
            return head + f"; packet {i} differs: expected {a}, got {b}"
    return head + (" (lost at the end)" if lost > 0 else " (extra at the end)")


def _env_float(name, default):
    return float(os.environ.get(name, default))


@cocotb.test()
async def traffic(dut):
    """Random unicast and multicast packets of random lengths from every node, all queued at once,
    with injection gaps and ejection backpressure: every delivery as the golden model says."""
    gap, stall = _env_float("ACCELGEN_GAP", 0), _env_float("ACCELGEN_STALL", 0)
    tb = NocTB(dut, seed=seed_from_env(), gap=gap, stall=stall)
    await tb.start()
    count = int(os.environ.get("ACCELGEN_NOC_PACKETS", "20"))
    packets = golden.random_traffic(tb.rng, tb.kx, tb.ky, count, max_packet_flits=tb.lmax,
                                    flit_width=tb.flit_width,
                                    mcast_fraction=_env_float("ACCELGEN_NOC_MCAST", 0.2),
                                    bad_fraction=_env_float("ACCELGEN_NOC_BADS", 0))
    order = tb.rng.permutation(len(packets))
    for pid in order:
        tb.send(int(pid), packets[pid])
    expected, drops = golden.deliveries(tb.kx, tb.ky, [packets[i] for i in order], tb.lmax)
    flits = tb.expected_flits(expected)
    budget = int(50 * (flits + 100) / max(0.05, (1 - gap) * (1 - stall)))
    await tb.wait_delivered(flits, budget, "traffic", expected)
    await tb.settle(50)
    packets_ok = tb.check(expected, drops)
    assert tb.idle(), "injection queues did not drain"
    dut._log.info("%d packets (%d flits) delivered as expected in %d cycles; %d bad dropped",
                  packets_ok, flits, tb.cycle, sum(drops))


@cocotb.test()
async def zero_load(dut):
    """Every (source, destination) pair, one packet at a time in an empty network, with lengths 1 to
    the maximum in turn, and a multicast from every source to all nodes: the latency to each
    destination is the manifest's formula, hops + length + 1."""
    tb = NocTB(dut, seed=seed_from_env())
    await tb.start()
    zl = tb.man.data["performance"]["zero_load_latency"]
    problems, results = [], []
    pid = 0
    cases = []
    for s in range(tb.nodes):
        for d in range(tb.nodes):
            length = 1 + (s + d) % tb.lmax
            x, y = golden.coords(tb.kx, d)
            cases.append(golden.Packet(s, list(range(length)), dest_x=x, dest_y=y))
        cases.append(golden.Packet(s, [7] * tb.lmax, mcast=True, mask=(1 << tb.nodes) - 1))
    for packet in cases:
        tb.send(pid, packet)
        dests, payload, _ = golden.classify(tb.kx, tb.ky, packet, tb.lmax)
        before = len(tb.received)
        await tb.wait_delivered(tb.moved + len(payload) * len(dests), 200, f"packet {packet}")
        t_in = tb.first_in[pid]
        for src, dst, got, _, t_last in tb.received[before:]:
            hop_count = golden.hops(tb.kx, src, dst)
            want = zl["inject"] + (hop_count + 1) * zl["router"] + (len(payload) - 1) + zl["eject"]
            assert want == golden.zero_load_latency(hop_count, len(payload), zl["router"])
            measured = t_last - t_in
            results.append({"src": src, "dst": dst, "length": len(payload), "hops": hop_count,
                            "latency": measured, "formula": want})
            if measured != want or got != payload or src != packet.src:
                problems.append(f"{packet.src} -> {dst} ({hop_count} hops, {len(payload)} flits): "
                                f"latency {measured}, formula {want}, payload {got}")
        assert len(tb.received) - before == len(dests), f"{packet}: wrong number of deliveries"
        await tb.settle(3)
        pid += 1
    if "ACCELGEN_RESULTS" in os.environ:
        with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
            json.dump(results, f)
    assert not problems, f"{len(problems)} latencies differ; the first:\n" + "\n".join(problems[:8])
    dut._log.info("%d deliveries at the zero-load latency of the formula", len(results))


@cocotb.test()
async def stream(dut):
    """One uncontended stream at a time: back-to-back packets from one source to one destination
    (the farthest node, and a neighbour), in runs of one-flit packets, of ``max_packet_flits``-flit
    packets, of alternating lengths and of random lengths. Without gaps and stalls the destination
    takes one flit per cycle from the run's first flit to its last: the manifest's
    ``flits_per_cycle_per_link``, whatever the lengths. With gaps and stalls (ACCELGEN_GAP,
    ACCELGEN_STALL) every delivery is still checked against the golden model."""
    gap, stall = _env_float("ACCELGEN_GAP", 0), _env_float("ACCELGEN_STALL", 0)
    tb = NocTB(dut, seed=seed_from_env(), gap=gap, stall=stall)
    await tb.start()
    rate = tb.man.data["performance"]["flits_per_cycle_per_link"]
    lmax, rng = tb.lmax, tb.rng
    runs = {
        "one-flit": [1] * (4 * lmax + 8),
        "longest": [lmax] * 8,
        "alternating": [1, lmax] * 6,
        "random": [int(v) for v in rng.integers(1, lmax + 1, 16)],
    }
    far = tb.nodes - 1
    pairs = [(0, far)] + ([(far, far - 1)] if tb.nodes > 1 else [])
    problems, figures, pid = [], [], 0
    data_max = 1 << min(tb.flit_width, 30)
    for src, dst in pairs:
        x, y = golden.coords(tb.kx, dst)
        for run_name, lengths in runs.items():
            packets = [golden.Packet(src, [int(v) for v in rng.integers(0, data_max, n)],
                                     dest_x=x, dest_y=y) for n in lengths]
            before = len(tb.received)
            for packet in packets:
                tb.send(pid, packet)
                pid += 1
            expected, _ = golden.deliveries(tb.kx, tb.ky, packets, lmax)
            flits = tb.expected_flits(expected)
            budget = int(20 * (flits + 50) / max(0.05, (1 - gap) * (1 - stall)))
            await tb.wait_delivered(tb.moved + flits, budget, f"stream {src} -> {dst} {run_name}")
            got = tb.received[before:]
            tb_expected = [p for p in expected[(src, dst)]]
            if [payload for _, _, payload, _, _ in got] != tb_expected:
                problems.append(f"{src} -> {dst} {run_name}: payloads differ")
            span = got[-1][4] - got[0][3] + 1
            figures.append((src, dst, run_name, flits, span))
            if not gap and not stall and flits / span != rate:
                problems.append(f"{src} -> {dst} {run_name} ({lengths}): {flits} flits in {span} "
                                f"cycles, {flits / span:.3f} flits per cycle; the manifest says "
                                f"{rate}")
            await tb.settle(5)
    assert not problems, f"{len(problems)} runs differ; the first:\n" + "\n".join(problems[:8])
    dut._log.info("streams (src, dst, run, flits, cycles): %s", figures)


@cocotb.test()
async def bad_packets(dut):
    """Unicast destinations outside the mesh, empty multicast masks and over-long packets are dropped
    (or cut) at the injecting interface, counted and flagged; good packets around them arrive."""
    tb = NocTB(dut, seed=seed_from_env(), stall=0.2)
    await tb.start()
    kx, ky, lmax = tb.kx, tb.ky, tb.lmax
    packets = []
    for s in range(tb.nodes):
        data = [int(v) for v in tb.rng.integers(0, 1 << min(tb.flit_width, 30), lmax + 2)]
        x, y = golden.coords(kx, (s + 1) % tb.nodes)
        packets += [
            golden.Packet(s, data[:2], dest_x=x, dest_y=y),
            golden.Packet(s, data[:3], dest_x=kx, dest_y=0),
            golden.Packet(s, data[:1], mcast=True, mask=0),
            golden.Packet(s, data[:2], dest_x=0, dest_y=ky),
            golden.Packet(s, data[:lmax + 2], dest_x=x, dest_y=y),
            golden.Packet(s, data[:1], mcast=True, mask=(1 << tb.nodes) - 1),
        ]
    for pid, packet in enumerate(packets):
        tb.send(pid, packet)
    expected, drops = golden.deliveries(kx, ky, packets, lmax)
    assert all(d == 4 for d in drops)
    await tb.wait_delivered(tb.expected_flits(expected), 20000, "bad packets")
    await tb.settle(50)
    tb.check(expected, drops)
    assert tb.idle()


@cocotb.test()
async def load_sweep(dut):
    """Synthetic traffic (:data:`sim.golden.noc.PATTERNS`) at each point of ACCELGEN_NOC_POINTS: packets of
    ``max_packet_flits`` flits, Bernoulli injection into an unbounded source queue at every sending node,
    warm-up, measurement window, drain. Average latency (from the packet's creation to its last flit's
    delivery, over the packets created in the window) and accepted throughput (flits delivered per
    sending node per cycle in the window); every delivery is also checked."""
    tb = NocTB(dut, seed=seed_from_env(1))
    await tb.start()
    if "ACCELGEN_NOC_POINTS" in os.environ:
        points = json.loads(os.environ["ACCELGEN_NOC_POINTS"])
    else:
        points = [["uniform", load] for load in json.loads(os.environ["ACCELGEN_NOC_LOADS"])]
    warm, window = (int(v) for v in os.environ.get("ACCELGEN_NOC_WINDOW", "300,1000").split(","))
    length = tb.lmax
    results = []
    pid = 0
    edge = RisingEdge(dut.clk)
    rng = tb.rng
    data_max = 1 << min(tb.flit_width, 30)
    for pattern, load in points:
        senders = [s for s in range(tb.nodes)
                   if golden.destination_weights(pattern, tb.kx, tb.ky, s)]
        rate = load / length
        created = []
        sent_packets = []
        start_received = len(tb.received)
        t0 = tb.cycle
        moved0 = None
        for step in range(warm + window):
            if step == warm:
                moved0 = tb.moved
            for s, draw in zip(senders, rng.random(len(senders)), strict=True):
                if draw < rate:
                    d = golden.pattern_destination(pattern, tb.kx, tb.ky, s, rng)
                    x, y = golden.coords(tb.kx, d)
                    data = [int(v) for v in rng.integers(0, data_max, length)]
                    packet = golden.Packet(s, data, dest_x=x, dest_y=y)
                    tb.send(pid, packet)
                    created.append((tb.cycle, step >= warm))
                    sent_packets.append(packet)
                    pid += 1
            await edge
        accepted = (tb.moved - moved0) / (window * len(senders))
        expected, _ = golden.deliveries(tb.kx, tb.ky, sent_packets, tb.lmax)
        total = start_received + sum(len(v) for v in expected.values())
        drain_start = tb.cycle
        while len(tb.received) < total:
            if tb.cycle - drain_start > 200000:
                raise AssertionError(f"{pattern} at load {load}: the network did not drain")
            await edge
        # Latency of the packets created in the window, matched by (src, dst) order.
        by_pair = {}
        for (t_created, in_window), packet in zip(created, sent_packets, strict=True):
            by_pair.setdefault((packet.src, golden.node(tb.kx, packet.dest_x, packet.dest_y)),
                               []).append((t_created, in_window, packet.payload))
        latencies = []
        got = {}
        for src, dst, payload, _, t_last in tb.received[start_received:]:
            got.setdefault((src, dst), []).append((payload, t_last))
        assert set(got) <= set(by_pair), f"{pattern} at load {load}: unexpected deliveries"
        for key, sent in by_pair.items():
            recv = got.get(key, [])
            assert [p for _, _, p in sent] == [p for p, _ in recv], \
                f"{pattern} at load {load}: {key} differs"
            for (t_created, in_window, _), (_, t_last) in zip(sent, recv, strict=True):
                if in_window:
                    latencies.append(t_last - t_created)
        results.append({"pattern": pattern, "offered": load, "accepted": accepted,
                        "latency": float(np.mean(latencies)) if latencies else None,
                        "packets": len(latencies), "senders": len(senders),
                        "cycles": tb.cycle - t0})
        await tb.settle(10)
    with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
        json.dump(results, f)


def _stress_packet(tb, src, pid):
    """One packet of the stress mix: 20% multicast, else a third each uniform random, transpose
    (bit-complement on a non-square mesh) and hotspot (half of them to node 0)."""
    rng = tb.rng
    length = int(rng.integers(1, tb.lmax + 1))
    data = [int(v) for v in rng.integers(0, 1 << min(tb.flit_width, 30), length)]
    r = rng.random()
    if r < 0.2:
        mask = 0
        while mask == 0:
            mask = int(rng.integers(1, 1 << tb.nodes))
        return golden.Packet(src, data, mcast=True, mask=mask)
    x, y = golden.coords(tb.kx, src)
    if r < 0.2 + 0.8 / 3:
        d = int(rng.integers(tb.nodes))
        x, y = golden.coords(tb.kx, d)
    elif r < 0.2 + 1.6 / 3:
        x, y = (y, x) if tb.kx == tb.ky else (tb.kx - 1 - x, tb.ky - 1 - y)
    else:
        x, y = (0, 0) if rng.random() < 0.5 else golden.coords(tb.kx, int(rng.integers(tb.nodes)))
    return golden.Packet(src, data, dest_x=x, dest_y=y)


@cocotb.test()
async def stress(dut):
    """Saturation for ACCELGEN_NOC_CYCLES cycles (every source always has packets waiting) with the
    mix of :func:`_stress_packet` and random ejection backpressure (ACCELGEN_STALL, default 0.3); then
    injection stops and the network must drain. A watchdog fails the test when, with deliveries
    outstanding, no flit is injected or delivered for 1000 cycles. Every delivery is checked."""
    tb = NocTB(dut, seed=seed_from_env(), stall=_env_float("ACCELGEN_STALL", 0.3))
    await tb.start()
    cycles = int(os.environ.get("ACCELGEN_NOC_CYCLES", "2000"))
    edge = RisingEdge(dut.clk)
    packets = []
    expected_flits = 0
    last_progress, last_count = 0, (0, 0)

    def watchdog():
        nonlocal last_progress, last_count
        count = (tb.injected_flits, tb.moved)
        if count != last_count:
            last_count, last_progress = count, tb.cycle
        elif tb.cycle - last_progress > 1000:
            raise AssertionError(f"watchdog: no flit moved for 1000 cycles at cycle {tb.cycle}; "
                                 f"{tb.moved} of {expected_flits} flits delivered")

    start = tb.cycle
    while tb.cycle - start < cycles:
        for s in range(tb.nodes):
            if len(tb.queues[s]) < 2 * tb.lmax:
                packet = _stress_packet(tb, s, len(packets))
                tb.send(len(packets), packet)
                packets.append(packet)
                dests, payload, _ = golden.classify(tb.kx, tb.ky, packet, tb.lmax)
                expected_flits += len(dests) * len(payload)
        watchdog()
        await edge
    while tb.moved < expected_flits:
        watchdog()
        await edge
    await tb.settle(50)
    expected, drops = golden.deliveries(tb.kx, tb.ky, packets, tb.lmax)
    tb.check(expected, drops)
    dut._log.info("stress: %d packets, %d flits delivered in %d cycles (%d of saturation), "
                  "%.3f flits delivered per node per cycle", len(packets), tb.moved,
                  tb.cycle - start, cycles, tb.moved / ((tb.cycle - start) * tb.nodes))
