"""The network interface of one mesh node: local injection and ejection streams <-> router links."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.hier import Reused
from .lib.noc import eject_layout, inject_layout, link_signature
from .output_vcs import vc_free
from .vc_buffer import VcBuffer

__all__ = ["NetworkInterface"]


class NetworkInterface(Reused, wiring.Component):
    """Turns packets of the local stream ``i`` into flits for the router, and the router's flits back into
    packets on ``o``.

    Injection. A packet is a run of beats on ``i`` ending with ``last``; each beat is one flit. The first
    beat names the destinations (:func:`gen.lib.noc.inject_layout`); the fields are ignored in later beats.
    The interface waits (``i.ready`` low) until a virtual channel of its router input is free for a
    whole packet (:func:`gen.output_vcs.vc_free`), takes the lowest such VC for the packet, then passes one
    beat per cycle with credits. Packets are injected in stream order on one link, which starts the
    in-order argument of :class:`gen.router.Router`. In a pipelined mesh with more than one VC a
    packet never takes the VC of the packet before it, so that its head does not wait in the
    router's input behind that packet's tail (the router allocates a head a cycle before switching
    it, and only a head at the front of its VC). A bad packet
    is taken at full speed and dropped: it never enters the network. Bad means a unicast destination
    outside the mesh (``dest_x >= kx`` or ``dest_y >= ky``) or a multicast with an empty mask; each one
    adds 1 to ``drops`` (saturating) and sets ``bad`` (sticky until reset). A packet longer than
    ``max_packet_flits`` is cut: its first ``max_packet_flits`` beats go out as a packet, the rest are
    dropped, and it is counted as bad too.

    Ejection. Flits arrive in one buffer per virtual channel (``vc_depth`` flits each, credits to the
    router). ``o`` presents one packet at a time, whole, the oldest first (by the arrival of its head
    flit, :class:`gen.vc_buffer.VcBuffer`), which keeps the packets of every source in order; a flit
    arriving at an empty buffer is presented in the same cycle. ``src`` says which node sent the packet.
    While ``o`` is stalled the buffers fill and credits stop: only this node's traffic waits.

    Latency: the first beat of a packet taken on ``i`` is on the router's input link the next cycle
    (:attr:`inject_latency` = 1); a flit on the ejection link is on ``o`` in the same cycle (0).

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    node : In(node_bits)
        The node's index ``y * kx + x`` (a constant in a mesh).
    i : In(stream.Signature(inject_layout(params)))
    o : Out(stream.Signature(eject_layout(params)))
    net_o : Out(link_signature(params))
        To the router's local input.
    net_i : In(link_signature(params))
        From the router's local output.
    drops : Out(16)
        Bad packets seen on ``i``, saturating.
    bad : Out(1)
        A bad packet was seen since reset.
    """

    inject_latency = 1
    eject_latency = 0

    module_suffix = "ni"

    def __init__(self, params):
        self._p = params
        super().__init__({
            "node": In(params.node_bits),
            "i": In(stream.Signature(inject_layout(params))),
            "o": Out(stream.Signature(eject_layout(params))),
            "net_o": Out(link_signature(params)),
            "net_i": In(link_signature(params)),
            "drops": Out(16),
            "bad": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        self._inject(m, p)
        self._eject(m, p)
        return m

    def _inject(self, m, p):
        V = p.vcs
        lmax = p.max_packet_flits
        beat = self.i.payload
        credits = [Signal(range(p.vc_depth + 1), init=p.vc_depth, name=f"inj_credits{c}")
                   for c in range(V)]
        since_head = [Signal(range(lmax + 1), init=1, name=f"inj_since_head{c}") for c in range(V)]
        free = Signal(V)
        m.d.comb += free.eq(Cat(vc_free(p, None, credits[c], since_head[c]) for c in range(V)))
        last_vc = None
        if p.pipelined and V > 1:
            # Not the VC of the packet before (see the class docstring).
            last_vc = Signal(p.vc_bits, name="inj_last_vc")
            usable = Signal(V, name="inj_usable")
            m.d.comb += usable.eq(free & ~(Const(1, V) << last_vc)[:V])
            free = usable
        low = Signal(p.vc_bits)
        for c in reversed(range(V)):
            with m.If(free[c]):
                m.d.comb += low.eq(c)
        vc = Signal(p.vc_bits)      # the VC of the packet being sent
        vc_now = Signal(p.vc_bits)
        busy = Signal()        # inside a packet that is being sent
        dropping = Signal()    # inside a packet that is being dropped
        count = Signal(range(lmax + 1))
        first = ~busy & ~dropping
        m.d.comb += vc_now.eq(Mux(busy, vc, low))
        room = Signal()
        m.d.comb += room.eq(Array(credits)[vc_now] != 0)

        mask = Signal(p.nodes)
        unicast = Cat((beat.dest_x == n % p.kx) & (beat.dest_y == n // p.kx)
                      for n in range(p.nodes))
        m.d.comb += mask.eq(unicast)
        bad_header = Signal()
        with m.If(beat.mcast):
            m.d.comb += [mask.eq(beat.mask), bad_header.eq(beat.mask == 0)]
        with m.Else():
            m.d.comb += bad_header.eq((beat.dest_x >= p.kx) | (beat.dest_y >= p.ky))

        with m.If(dropping | (first & bad_header)):
            m.d.comb += self.i.ready.eq(1)
        with m.Elif(first):
            m.d.comb += self.i.ready.eq(free.any())
        with m.Else():
            m.d.comb += self.i.ready.eq(room)

        take = self.i.valid & self.i.ready
        send = Signal()
        tail = Signal()
        m.d.comb += [
            send.eq(take & ~dropping & ~(first & bad_header)),
            tail.eq(beat.last | (count == lmax - 1)),
        ]
        count_bad = Signal()
        m.d.sync += [
            self.net_o.valid.eq(send),
            self.net_o.vc.eq(vc_now),
            self.net_o.flit.data.eq(beat.data),
            self.net_o.flit.head.eq(first),
            self.net_o.flit.tail.eq(tail),
            self.net_o.flit.src.eq(self.node),
            self.net_o.flit.mask.eq(mask),
        ]
        for c in range(V):
            used = send & (vc_now == c)
            m.d.sync += credits[c].eq(credits[c] + self.net_o.credit[c] - used)
            with m.If(used):
                m.d.sync += since_head[c].eq(Mux(first, 1, since_head[c] + 1))
        with m.If(take):
            with m.If(dropping):
                with m.If(beat.last):
                    m.d.sync += dropping.eq(0)
            with m.Elif(first & bad_header):
                m.d.comb += count_bad.eq(1)
                m.d.sync += dropping.eq(~beat.last)
            with m.Else():
                m.d.sync += [busy.eq(~tail), vc.eq(vc_now), count.eq(Cat(count + 1)[:len(count)])]
                if last_vc is not None:
                    m.d.sync += last_vc.eq(vc_now)
                with m.If(tail):
                    m.d.sync += count.eq(0)
                    with m.If(~beat.last):
                        m.d.comb += count_bad.eq(1)
                        m.d.sync += dropping.eq(1)
        with m.If(count_bad):
            m.d.sync += self.bad.eq(1)
            with m.If(self.drops != 0xFFFF):
                m.d.sync += self.drops.eq(self.drops + 1)

    def _eject(self, m, p):
        V = p.vcs
        buf = hier.add(m, "eject_buf", VcBuffer(p))
        wiring.connect(m, wiring.flipped(self.net_i), buf.i)
        locked = Signal()
        current = Signal(V)
        # The oldest waiting head first (the head order of the buffer): packets of one source
        # leave in the order they arrived (see gen/router.py).
        oldest = Signal(V)
        m.d.comb += oldest.eq(Cat(
            buf.valid[a] & buf.flit[a].head
            & ~Cat(buf.older[b * V + a] & buf.pending[b] for b in range(V) if b != a).any()
            for a in range(V)) if V > 1 else buf.valid)
        grant = _lowest_bit(m, oldest, V)
        select = Signal(V)
        m.d.comb += select.eq(current)
        with m.If(~locked):
            m.d.comb += select.eq(grant)
        for c in range(V):
            with m.If(select[c]):
                m.d.comb += [
                    self.o.valid.eq(buf.valid[c]),
                    self.o.payload.data.eq(buf.flit[c].data),
                    self.o.payload.last.eq(buf.flit[c].tail),
                    self.o.payload.src.eq(buf.flit[c].src),
                    buf.pop[c].eq(self.o.ready),
                ]
        with m.If(self.o.valid):
            with m.If(self.o.ready & self.o.payload.last):
                m.d.sync += locked.eq(0)
            with m.Else():
                m.d.sync += [locked.eq(1), current.eq(select)]


def _lowest_bit(m, value, width):
    out = Signal(width)
    m.d.comb += out.eq((value & (~value + 1))[:width])
    return out
