"""The network interface of one mesh node: local injection and ejection streams <-> router links."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .lib.noc import eject_layout, inject_layout, link_signature
from .router import round_robin
from .vc_buffer import VcBuffer

__all__ = ["NetworkInterface"]


class NetworkInterface(wiring.Component):
    """Turns packets of the local stream ``i`` into flits for the router, and the router's flits back into
    packets on ``o``.

    Injection. A packet is a run of beats on ``i`` ending with ``last``; each beat is one flit. The first
    beat names the destinations (:func:`gen.lib.noc.inject_layout`); the fields are ignored in later beats.
    The interface waits (``i.ready`` low) until its router input has room for a whole packet on this
    node's virtual channel (``node mod vcs``), then passes one beat per cycle with credits. A bad packet
    is taken at full speed and dropped: it never enters the network. Bad means a unicast destination
    outside the mesh (``dest_x >= kx`` or ``dest_y >= ky``) or a multicast with an empty mask; each one
    adds 1 to ``drops`` (saturating) and sets ``bad`` (sticky until reset). A packet longer than
    ``max_packet_flits`` is cut: its first ``max_packet_flits`` beats go out as a packet, the rest are
    dropped, and it is counted as bad too.

    Ejection. Flits arrive in one buffer per virtual channel (``vc_depth`` flits each, credits to the
    router). ``o`` presents one packet at a time, whole, choosing among the channels round robin; a flit
    arriving at an empty buffer is presented in the same cycle. ``src`` says which node sent the packet.
    While ``o`` is stalled the buffers fill and credits stop: only this node's traffic waits.

    Latency: the first beat of a packet taken on ``i`` is on the router's input link the next cycle
    (:attr:`inject_latency` = 1); a flit on the ejection link is on ``o`` in the same cycle (0).

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`
    node : int
        The node's index ``y * kx + x``.

    Members
    -------
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

    def __init__(self, params, *, node):
        if not 0 <= node < params.nodes:
            raise ValueError(f"node = {node}: must be from 0 to {params.nodes - 1}")
        self._p = params
        self._node = node
        super().__init__({
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
        vc = p.vc_of(self._node)
        lmax = p.max_packet_flits
        beat = self.i.payload
        credits = Signal(range(p.vc_depth + 1), init=p.vc_depth)
        busy = Signal()        # inside a packet that is being sent
        dropping = Signal()    # inside a packet that is being dropped
        count = Signal(range(lmax + 1))
        first = ~busy & ~dropping

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
            m.d.comb += self.i.ready.eq(credits >= lmax)
        with m.Else():
            m.d.comb += self.i.ready.eq(credits != 0)

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
            self.net_o.vc.eq(vc),
            self.net_o.flit.data.eq(beat.data),
            self.net_o.flit.head.eq(first),
            self.net_o.flit.tail.eq(tail),
            self.net_o.flit.src.eq(self._node),
            self.net_o.flit.mask.eq(mask),
            credits.eq(credits + self.net_o.credit[vc] - send),
        ]
        with m.If(take):
            with m.If(dropping):
                with m.If(beat.last):
                    m.d.sync += dropping.eq(0)
            with m.Elif(first & bad_header):
                m.d.comb += count_bad.eq(1)
                m.d.sync += dropping.eq(~beat.last)
            with m.Else():
                m.d.sync += [busy.eq(~tail), count.eq(Cat(count + 1)[:len(count)])]
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
        m.submodules.eject_buf = buf = VcBuffer(p)
        wiring.connect(m, wiring.flipped(self.net_i), buf.i)
        locked = Signal()
        current = Signal(V)
        grant = round_robin(m, buf.valid, V, "eject", advance=~locked)
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
