"""Test-only stress top of the mesh network-on-chip: synthesizable traffic generators, checkers, ejection
backpressure and a watchdog placed around a :class:`gen.mesh.Mesh`.

It is not part of any emitted accelerator: ``tests/test_noc_stress.py`` emits it (:func:`stress_top`) and
runs it for millions of cycles with cocotb only configuring it and reading its counters
(``sim/tb/noc_stress.py``). It uses only the mesh's external ports (the ``i<n>``/``o<n>`` streams of the
network interfaces, ``drops<n>`` and ``bad``), never router internals.

Packets. Packet ``k`` of source ``s`` is a pure function of ``(seed, s, k mod 2**16)``: the hash
``H = fmix(fmix(key ^ seed) + seed)``, with ``key = s << 16 | seq`` and ``fmix`` the 32-bit finalizer of
MurmurHash3 (Appleby, public domain), decides its length (1 to ``max_packet_flits``), whether it is a
multicast (``mcast_256 / 256`` of the packets, 51/256 = 19.9% by default) with a random destination mask
(every node with probability 1/2; never empty), and else its unicast pattern, a third each: uniform random
destination, transpose (``(x, y) -> (y, x)``; bit complement ``(kx-1-x, ky-1-y)`` on a non-square mesh),
hotspot (the hotspot node with probability 1/2, else uniform). Self-sends are allowed. Flit 0 carries the
sequence number in its low 16 data bits (and check bits above), flit ``i > 0`` the data word
``D(H, i)``. So a checker recomputes from ``(src, seq)`` alone what the packet must be.
:mod:`sim.golden.noc_stress` is the same function in numpy.

Traffic generator (one per node): at saturation, a packet is offered as soon as the previous one is taken
(``i.valid`` stays high while ``enable``); ``stop`` ends injection after the packet in progress (a beat
offered and not yet taken is kept). Ejection backpressure: ``o.ready`` is low when the low byte of a
per-node xorshift32 register (Marsaglia, "Xorshift RNGs", J. Stat. Software 8(14), 2003; an LFSR-class
generator over GF(2)) is below ``stall`` (``stall / 256`` of the cycles), or while bit ``n`` of ``hold``
is set.

Checker (one per node), per packet: the destination is one of the packet's (``dest``), the sequence number
from this source is later than the last one seen here (``order``: serial-number arithmetic modulo 2**16,
so a lost packet is a gap but a duplicate or a reordering is an error), every flit's data is as
computed (``data``), ``last`` comes exactly on flit ``length - 1`` (``length``), and ``src`` stays the same
through the packet (``src``). A packet with any error adds 1 to the node's error counter; the kinds are
sticky bits of ``err_kinds`` (1 data, 2 dest, 4 order, 8 length, 16 src).

Global: ``in_flight`` counts flit deliveries owed (every injected flit adds its packet's number of
destinations, every ejected flit subtracts 1); the watchdog fires (sticky ``wd_fired``, cycle in ``wd_at``)
when for ``watchdog`` cycles no beat is taken on any injection or ejection stream while deliveries are
owed or a generator is offering a beat. ``wd_max`` is the longest such run seen (saturating at
``watchdog``).

Test knobs: ``corrupt`` arms a one-shot flip of the top data bit of the next flit node 0 injects;
``hold`` stalls ejection streams for good.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .mesh import Mesh

__all__ = ["NocStress", "stress_top", "SEQ_BITS", "FMIX_C1", "FMIX_C2", "GOLDEN", "MASK_K2",
           "MASK_K3", "LFSR_K", "ERR_KINDS"]

SEQ_BITS = 16
FMIX_C1, FMIX_C2 = 0x85EBCA6B, 0xC2B2AE35
GOLDEN = 0x9E3779B9
MASK_K2, MASK_K3 = 0x5BD1E995, 0x27D4EB2F
LFSR_K = 0x632BE5AB
ERR_KINDS = ("data", "dest", "order", "length", "src")
COUNTERS = ("tx_packets", "tx_flits", "tx_mcast", "tx_copies", "rx_packets", "rx_flits", "errors")


def _fmix(v):
    """MurmurHash3's 32-bit finalizer on a 32-bit value (an expression)."""
    h = v[:32] ^ (v[:32] >> 16)
    h = (h * FMIX_C1)[:32]
    h = h ^ (h >> 13)
    h = (h * FMIX_C2)[:32]
    return h ^ (h >> 16)


class _Decisions:
    """What packet ``(src, seq)`` is, as expressions of its hash (see the module's docstring)."""

    def __init__(self, m, p, seed, src, seq, *, mcast_256, name):
        key = Signal(32, name=f"{name}_key")
        m.d.comb += key.eq(Cat(seq, src) ^ seed)
        h1 = Signal(32, name=f"{name}_h1")
        m.d.comb += h1.eq(_fmix(key))
        self.h = h = Signal(32, name=f"{name}_h")
        m.d.comb += h.eq(_fmix((h1 + seed)[:32]))
        self.h2 = h2 = Signal(32, name=f"{name}_h2")
        m.d.comb += h2.eq(_fmix(h ^ MASK_K2))
        words = [h2]
        if p.nodes > 32:
            h3 = Signal(32, name=f"{name}_h3")
            m.d.comb += h3.eq(_fmix(h2 ^ MASK_K3))
            words.append(h3)
        raw = Cat(*words)[:p.nodes]
        self.mask = Signal(p.nodes, name=f"{name}_mask")
        m.d.comb += self.mask.eq(Mux(raw == 0, 1, raw))
        self.length = Signal(range(p.max_packet_flits + 1), name=f"{name}_len")
        m.d.comb += self.length.eq(((h[0:8] * p.max_packet_flits) >> 8) + 1)
        self.mcast = Signal(name=f"{name}_mcast")
        m.d.comb += self.mcast.eq(h[8:16] < mcast_256)
        self.pattern = Signal(2, name=f"{name}_pattern")   # 0 uniform, 1 transpose, 2 hotspot
        m.d.comb += self.pattern.eq((h[16:24] * 3) >> 8)
        self.ux = Signal(range(p.kx), name=f"{name}_ux")
        self.uy = Signal(range(p.ky), name=f"{name}_uy")
        m.d.comb += [self.ux.eq((h2[0:8] * p.kx) >> 8), self.uy.eq((h2[8:16] * p.ky) >> 8)]
        self.hot = h2[16]


def transpose(p, n):
    """The transpose partner of node ``n`` (bit complement on a non-square mesh); an involution."""
    x, y = n % p.kx, n // p.kx
    if p.kx == p.ky:
        return x * p.kx + y
    return (p.ky - 1 - y) * p.kx + (p.kx - 1 - x)


def _data_word(h, idx, width):
    """``D(H, i)``: the low ``width`` bits of ``H + (i + 1) * GOLDEN`` repeated."""
    word = (h + (idx + 1) * GOLDEN)[:32]
    reps = -(-width // 32)
    return Cat(*([word] * reps))[:width]


class NocStress(wiring.Component):
    """A :class:`gen.mesh.Mesh` with a traffic generator and a checker at every node, ejection
    backpressure and a watchdog (see the module's docstring).

    Parameters
    ----------
    kx, ky, flit_width, vcs, vc_depth, max_packet_flits, routing, router_cycles
        The mesh (:class:`gen.mesh.Mesh`); ``flit_width`` at least 16.
    mcast_256 : int
        Multicast packets per 256.
    hotspot : int
        The hotspot node.
    watchdog : int
        Cycles without progress that fire the watchdog.

    Members
    -------
    seed : In(32)
        Taken while ``enable`` is low: the traffic and the backpressure.
    enable, stop : In(1)
    stall : In(8)
    hold : In(kx * ky)
    corrupt : In(1)
    sel : In(node index)
        The node whose counters appear on ``n_<counter>``.
    n_tx_packets, n_tx_flits, n_tx_mcast, n_tx_copies, n_rx_packets, n_rx_flits, n_errors : Out(32)
    n_err_kinds : Out(5)
    in_flight, cycles, wd_at : Out(32)
    wd_max : Out(range(watchdog + 1))
    wd_fired, active, error_any : Out(1)
        ``active``: a generator is inside a packet or offering a beat.
    drops : Out(16)
        Packets the interfaces dropped as bad, all nodes.
    """

    def __init__(self, *, kx, ky, flit_width, vcs, vc_depth, max_packet_flits, routing,
                 router_cycles=1, mcast_256=51, hotspot=0, watchdog=1000):
        if flit_width < SEQ_BITS:
            raise ValueError(f"flit_width = {flit_width}: the stress top needs at least {SEQ_BITS}")
        if not 0 <= mcast_256 <= 256:
            raise ValueError(f"mcast_256 = {mcast_256}: must be from 0 to 256")
        self.mesh = Mesh(kx=kx, ky=ky, flit_width=flit_width, vcs=vcs, vc_depth=vc_depth,
                         max_packet_flits=max_packet_flits, routing=routing,
                         router_cycles=router_cycles)
        p = self.mesh.params
        if not 0 <= hotspot < p.nodes:
            raise ValueError(f"hotspot = {hotspot}: must be from 0 to {p.nodes - 1}")
        self._p = p
        self.mcast_256 = mcast_256
        self.hotspot = hotspot
        self.watchdog = watchdog
        members = {
            "seed": In(32), "enable": In(1), "stop": In(1), "stall": In(8), "hold": In(p.nodes),
            "corrupt": In(1), "sel": In(range(p.nodes)),
        }
        for name in COUNTERS:
            members[f"n_{name}"] = Out(32)
        members.update({
            "n_err_kinds": Out(len(ERR_KINDS)),
            "in_flight": Out(32), "cycles": Out(32), "wd_at": Out(32),
            "wd_max": Out(range(watchdog + 1)), "wd_fired": Out(1), "active": Out(1),
            "error_any": Out(1), "drops": Out(16),
        })
        super().__init__(members)

    @property
    def params(self):
        return self._p

    def elaborate(self, platform):
        m = Module()
        p = self._p
        m.submodules.mesh = mesh = self.mesh
        seed = Signal(32)
        with m.If(~self.enable):
            m.d.sync += seed.eq(self.seed)
        run = self.enable
        with m.If(run):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        moves, adds, ejects, offering, counters = [], [], [], [], []
        for n in range(p.nodes):
            cnt = {name: Signal(32, name=f"{name}_{n}") for name in COUNTERS}
            cnt["err_kinds"] = Signal(len(ERR_KINDS), name=f"err_kinds_{n}")
            counters.append(cnt)
            self._generator(m, p, n, seed, getattr(mesh, f"i{n}"), cnt, moves, adds, offering)
            self._checker(m, p, n, seed, getattr(mesh, f"o{n}"), cnt, moves, ejects)

        # Counters of the selected node.
        with m.Switch(self.sel):
            for n, cnt in enumerate(counters):
                with m.Case(n):
                    for name in COUNTERS:
                        m.d.comb += getattr(self, f"n_{name}").eq(cnt[name])
                    m.d.comb += self.n_err_kinds.eq(cnt["err_kinds"])
        m.d.comb += [
            self.error_any.eq(Cat(c["errors"] != 0 for c in counters).any()),
            self.active.eq(Cat(offering).any()),
        ]
        drops = Signal(16 + (p.nodes - 1).bit_length())
        m.d.comb += [drops.eq(sum(getattr(mesh, f"drops{n}") for n in range(p.nodes))),
                     self.drops.eq(Mux(drops >> 16 != 0, 0xFFFF, drops))]

        # Deliveries owed, and the watchdog.
        m.d.sync += self.in_flight.eq(self.in_flight + sum(adds) - sum(ejects))
        moved = Signal()
        m.d.comb += moved.eq(Cat(moves).any())
        idle = Signal(range(self.watchdog + 1))
        stuck = run & ~moved & ((self.in_flight != 0) | self.active)
        with m.If(stuck):
            with m.If(idle != self.watchdog):
                m.d.sync += idle.eq(idle + 1)
                with m.If(idle + 1 > self.wd_max):
                    m.d.sync += self.wd_max.eq(idle + 1)
                with m.If((idle + 1 == self.watchdog) & ~self.wd_fired):
                    m.d.sync += [self.wd_fired.eq(1), self.wd_at.eq(self.cycles)]
        with m.Else():
            m.d.sync += idle.eq(0)
        return m

    def _generator(self, m, p, n, seed, i, cnt, moves, adds, offering):
        seq = Signal(SEQ_BITS, name=f"tg_seq_{n}")
        idx = Signal(range(p.max_packet_flits), name=f"tg_idx_{n}")
        busy = Signal(name=f"tg_busy_{n}")          # a packet is half sent
        pending = Signal(name=f"tg_pending_{n}")    # a beat is offered and not yet taken
        d = _Decisions(m, p, seed, Const(n, p.node_bits), seq, mcast_256=self.mcast_256,
                       name=f"tg{n}")
        tx, ty = transpose(p, n) % p.kx, transpose(p, n) // p.kx
        hx, hy = self.hotspot % p.kx, self.hotspot // p.kx
        beat = i.payload
        with m.Switch(d.pattern):
            with m.Case(1):
                m.d.comb += [beat.dest_x.eq(tx), beat.dest_y.eq(ty)]
            with m.Case(2):
                m.d.comb += [beat.dest_x.eq(Mux(d.hot, hx, d.ux)),
                             beat.dest_y.eq(Mux(d.hot, hy, d.uy))]
            with m.Default():
                m.d.comb += [beat.dest_x.eq(d.ux), beat.dest_y.eq(d.uy)]
        data = Signal(p.flit_width, name=f"tg_data_{n}")
        m.d.comb += data.eq(Mux(idx == 0, Cat(seq, _data_word(d.h, 0, p.flit_width)[SEQ_BITS:]),
                                _data_word(d.h, idx, p.flit_width)))
        last = Signal(name=f"tg_last_{n}")
        m.d.comb += last.eq(idx == d.length - 1)
        flip = Signal(name=f"tg_flip_{n}")
        m.d.comb += [
            i.valid.eq(self.enable & (busy | pending | ~self.stop)),
            beat.data.eq(data ^ (flip << (p.flit_width - 1))),
            beat.last.eq(last),
            beat.mcast.eq(d.mcast),
            beat.mask.eq(d.mask),
        ]
        if n == 0:
            armed = Signal(name="corrupt_armed")
            m.d.comb += flip.eq(armed)
            with m.If(self.corrupt):
                m.d.sync += armed.eq(1)
            with m.Elif(i.valid & i.ready):
                m.d.sync += armed.eq(0)
        copies = Signal(range(p.nodes + 1), name=f"tg_copies_{n}")
        m.d.comb += copies.eq(Mux(d.mcast, sum(d.mask[k] for k in range(p.nodes)), 1))
        take = Signal(name=f"tg_take_{n}")
        m.d.comb += take.eq(i.valid & i.ready)
        m.d.sync += pending.eq(i.valid & ~i.ready)
        moves.append(take)
        adds.append(Mux(take, copies, 0))
        offering.append(busy | i.valid)
        with m.If(take):
            m.d.sync += [cnt["tx_flits"].eq(cnt["tx_flits"] + 1),
                         cnt["tx_copies"].eq(cnt["tx_copies"] + Mux(idx == 0, copies, 0))]
            with m.If(idx == 0):
                m.d.sync += cnt["tx_packets"].eq(cnt["tx_packets"] + 1)
                with m.If(d.mcast):
                    m.d.sync += cnt["tx_mcast"].eq(cnt["tx_mcast"] + 1)
            with m.If(last):
                m.d.sync += [idx.eq(0), busy.eq(0), seq.eq(seq + 1)]
            with m.Else():
                m.d.sync += [idx.eq(idx + 1), busy.eq(1)]

    def _checker(self, m, p, n, seed, o, cnt, moves, ejects):
        lfsr = Signal(32, name=f"bp_lfsr_{n}")
        with m.If(~self.enable):
            m.d.sync += lfsr.eq(_fmix(seed ^ ((LFSR_K + n * GOLDEN) & 0xFFFFFFFF)) | 1)
        with m.Else():
            x1 = lfsr ^ (lfsr << 13)[:32]
            x2 = x1 ^ (x1 >> 17)
            m.d.sync += lfsr.eq(x2 ^ (x2 << 5)[:32])
        m.d.comb += o.ready.eq(self.enable & (lfsr[0:8] >= self.stall) & ~self.hold[n])

        beat = o.payload
        take = Signal(name=f"ck_take_{n}")
        m.d.comb += take.eq(o.valid & o.ready)
        moves.append(take)
        ejects.append(take)
        busy = Signal(name=f"ck_busy_{n}")
        idx = Signal(range(p.max_packet_flits), name=f"ck_idx_{n}")
        cur_src = Signal(p.node_bits, name=f"ck_src_{n}")
        cur_seq = Signal(SEQ_BITS, name=f"ck_seq_{n}")
        pkt_err = Signal(len(ERR_KINDS), name=f"ck_err_{n}")
        first = ~busy
        seq_in = beat.data[:SEQ_BITS]
        src = Signal(p.node_bits, name=f"ck_hsrc_{n}")
        seq = Signal(SEQ_BITS, name=f"ck_hseq_{n}")
        m.d.comb += [src.eq(Mux(first, beat.src, cur_src)), seq.eq(Mux(first, seq_in, cur_seq))]
        d = _Decisions(m, p, seed, src, seq, mcast_256=self.mcast_256, name=f"ck{n}")

        # Is this node a destination of the packet?
        hot = self.hotspot
        uni = Signal(name=f"ck_uni_{n}")
        m.d.comb += uni.eq((d.ux == n % p.kx) & (d.uy == n // p.kx))
        is_dest = Signal(name=f"ck_isdest_{n}")
        with m.If(d.mcast):
            m.d.comb += is_dest.eq(d.mask[n])
        with m.Elif(d.pattern == 1):
            m.d.comb += is_dest.eq(src == transpose(p, n))
        with m.Elif(d.pattern == 2):
            m.d.comb += is_dest.eq(Mux(d.hot, n == hot, uni))
        with m.Else():
            m.d.comb += is_dest.eq(uni)

        last_seq = Memory(shape=unsigned(SEQ_BITS), depth=p.nodes,
                          init=[(1 << SEQ_BITS) - 1] * p.nodes)
        m.submodules[f"ck_last_seq_{n}"] = last_seq
        rd = last_seq.read_port(domain="comb")
        wr = last_seq.write_port()
        m.d.comb += rd.addr.eq(beat.src)
        gap = Signal(SEQ_BITS, name=f"ck_gap_{n}")
        m.d.comb += gap.eq(seq_in - rd.data)
        order_ok = (gap != 0) & ~gap[SEQ_BITS - 1]

        expect = Signal(p.flit_width, name=f"ck_expect_{n}")
        m.d.comb += expect.eq(Mux(first, Cat(seq_in, _data_word(d.h, 0, p.flit_width)[SEQ_BITS:]),
                                  _data_word(d.h, idx, p.flit_width)))
        pos = Mux(first, 0, idx)
        err = Signal(len(ERR_KINDS), name=f"ck_beat_err_{n}")
        m.d.comb += err.eq(Cat(
            beat.data != expect,
            first & ~is_dest,
            first & ~order_ok,
            beat.last != (pos == d.length - 1),
            ~first & (beat.src != cur_src),
        ))
        m.d.comb += [wr.addr.eq(beat.src), wr.data.eq(seq_in),
                     wr.en.eq(take & first & is_dest & order_ok)]
        with m.If(take):
            m.d.sync += [cnt["rx_flits"].eq(cnt["rx_flits"] + 1),
                         cnt["err_kinds"].eq(cnt["err_kinds"] | err)]
            with m.If(first):
                m.d.sync += [cur_src.eq(beat.src), cur_seq.eq(seq_in)]
            with m.If(beat.last):
                m.d.sync += [busy.eq(0), idx.eq(0), pkt_err.eq(0),
                             cnt["rx_packets"].eq(cnt["rx_packets"] + 1)]
                with m.If((pkt_err | err) != 0):
                    m.d.sync += cnt["errors"].eq(cnt["errors"] + 1)
            with m.Else():
                m.d.sync += [busy.eq(1), idx.eq(idx + 1), pkt_err.eq(pkt_err | err)]


def stress_top(noc, *, name, mcast_256=51, hotspot=0, watchdog=1000):
    """The :class:`gen.emit.Top` of a stress top around the mesh of ``noc``
    (:class:`gen.config.NocConfig`), for :func:`gen.emit.to_verilog` and :func:`gen.emit.manifest_of`."""
    from .emit import Top
    top = NocStress(kx=noc.kx, ky=noc.ky, flit_width=noc.flit_width, vcs=noc.vcs,
                    vc_depth=noc.vc_depth, max_packet_flits=noc.max_packet_flits,
                    routing=noc.routing, router_cycles=noc.router_cycles, mcast_256=mcast_256,
                    hotspot=hotspot, watchdog=watchdog)
    p = top.params
    return Top(
        block="noc", name=name, component=top,
        parameters={
            "kx": p.kx, "ky": p.ky, "nodes": p.nodes, "flit_width": p.flit_width, "vcs": p.vcs,
            "vc_depth": p.vc_depth, "max_packet_flits": p.max_packet_flits,
            "routing": p.routing, "router_cycles": p.router_cycles, "seq_bits": SEQ_BITS,
            "mcast_256": mcast_256, "hotspot": hotspot, "watchdog": watchdog,
            "counters": list(COUNTERS), "err_kinds": list(ERR_KINDS),
        },
    )
