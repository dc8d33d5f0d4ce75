"""The 5-port mesh router: dimension-order routing, virtual channels, credits, multicast replication."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.hier import Reused
from .lib.noc import EAST, LOCAL, NORTH, PORTS, SOUTH, WEST, can_turn, flit_layout, link_signature
from .order_rule import InOrderRule
from .output_vcs import OutputVcState, vc_free
from .route_compute import RouteCompute
from .switch_allocator import SwitchAllocator
from .vc_allocator import VcAllocator
from .vc_buffer import VcBuffer

__all__ = ["Router", "PlacedRouter", "present_ports", "can_turn", "vc_free"]


class Router(Reused, wiring.Component):
    """A 5-port (local, north, east, south, west) router of a ``kx`` x ``ky`` mesh, at the position its
    ``x`` and ``y`` inputs name.

    One router module serves every position: the mesh ties ``x`` and ``y`` to constants and leaves the
    ports toward missing neighbours unconnected (no flit arrives there, and no destination lies that
    way, so nothing is sent there).

    Switching and flow control. Flits move with credits: an output port keeps, per virtual channel (VC),
    the free slots of the next input buffer. A packet's head flit is given, on each output it needs, one
    VC that no other packet holds and that has room for a whole packet (``credits >= max_packet_flits``,
    :func:`vc_free`); the packet holds it until its tail flit has left. Because every VC buffer holds at
    least ``max_packet_flits`` (the configuration enforces ``vc_depth >= max_packet_flits``), a packet that
    has been given its next VC always fits there: this is virtual cut-through allocation carried by
    wormhole-style head/body/tail flits (Kermani and Kleinrock, 1979; Dally and Towles 2004, ch. 13 and
    16).

    Virtual channels: any free one, at every hop. A head takes the lowest free VC of each output it
    needs, whatever VC it came in on (dynamic VC allocation, Dally 1992), so a packet blocked on one
    output does not hold back packets of the same input for other outputs while VCs are free. With
    more than one VC, a VC is given to a new packet only when the head of the packet before it on that
    VC has left the next buffer (:func:`vc_free`): every input VC then holds at most one *waiting head*
    (arrived, not yet sent on), and the input buffer knows the arrival order of its waiting heads
    (:class:`gen.vc_buffer.VcBuffer`).

    In-order delivery per (source, destination). Packets of one flow follow one path (dimension-order
    routing is deterministic), and this rule keeps them in order on it: *a head may be given output o
    only when no older waiting head of the same input port still has to be sent on o* (an older head
    whose route is not known yet, because it waits behind the body of the packet before it, counts as
    needing every output). By induction along the path: if two packets A before B of one flow reach an
    input in that order (at the first router, the interface injects them in stream order on one link),
    A's head is older; B needs the same output, so B is given it only after A's head has been sent on it
    (the rule reads the registered "sent" state, so at least one cycle later); the link is
    first-in first-out, so A's head reaches the next input before B's. At the destination the interface
    presents the oldest waiting head first (:mod:`gen.noc_ni`). Body flits follow their head on its
    VC. With one VC every buffer is one first-in first-out queue, and the rule is empty.

    Routing and multicast. A head flit names its remaining destinations as a bitmask. The router splits
    the mask by the region of each output under dimension-order routing (:func:`gen.lib.noc.region_bits`,
    comparisons of the router's position with each node's) and sends the flit on every output whose part is not empty, with
    that part as the new mask: the packet is copied where its XY tree branches, and each link carries it
    at most once. Each copy then moves independently; the input flit is freed when every output has
    sent it.

    Allocation. Each output gives its VC to at most one head per cycle (round robin over the input VCs
    that request it), so several heads of one router, up to one per output, are allocated in the same
    cycle. A head that needs one output (a unicast, or a multicast with one branch here) requests that
    output when it has a free VC. A head that needs several outputs is allocated on all of them at once
    or not at all (it never holds some VCs while waiting for others): per cycle, one such head whose
    outputs all have a free VC is allocated, before any single-output head. One of them, chosen round
    robin and kept until it is allocated, has priority and *reserves* its outputs against the
    single-output heads of every input ``i`` whose packets could also take all of those outputs (each
    output is a later link than ``i`` under dimension-order routing, :func:`can_turn`), so these cannot
    overtake it forever. Heads of the other inputs, and other multi-output heads, never wait for it:
    that wait could point to a link that is not later and close a cycle (a westbound packet waiting for
    a multicast that waits for an eastbound link, held by an eastbound packet waiting for a multicast
    that waits for the westbound link; both cycles were found by the stress test).

    Deadlock freedom (unicast and multicast together). Order the links by dimension-order routing
    (x links before y links, each in its direction of travel; the injection link first, the ejection
    link last). A packet that holds VCs never waits for buffer space again (virtual cut-through): its
    flits only wait for the round-robin switch, which serves every requester within a bounded time. A
    head waiting for allocation holds nothing downstream and waits only for (a) free VCs on outputs of
    its route, i.e. on later links, (b) an older head of its input needing the same output (which waits
    for the same later link, or for the switch) or waiting behind a packet body (which holds its VCs and
    moves), or (c) the reserving multi-output head of its router, only if it is a single-output head
    and each output the reserving head waits for is a later link than its input. No wait points to an earlier or the same link, and the dependency order of dimension-order routing has no
    cycle (Dally and Seitz, 1987); a multicast tree only uses links of dimension-order paths, so it adds
    no dependency unicast lacks, and its replicas, once allocated, move independently. The interfaces
    sink every packet (:mod:`gen.noc_ni`), so, by induction from the last links backwards, every VC is
    freed again and nothing waits forever.

    Timing. The router has no pipeline register besides its output link registers: a flit at the front
    of an input buffer (or arriving on an empty one, through the bypass) is routed, allocated and switched
    in the cycle it is there, and is on the next link in the next cycle. Zero-load head latency is 1 cycle
    per hop (router plus link), straight or turning. With ``router_cycles = 2`` (registered mode) the
    input buffers have no bypass and return credits from a register: 2 cycles per hop, and every path
    between two routers starts and ends at a register.

    Pipelined (``params.pipelined``): VC allocation and switch allocation in separate stages. A head
    is allocated in one cycle (its route and output VCs into registers) and switched from the next,
    so no path runs from allocation to the switch, the input buffers' pops and the credits; the
    multi-output reservation is a register too. A hop costs 2 cycles, body flits follow their head
    without gaps. Two rules change, with their arguments: the in-order rule lets a younger head be
    allocated once every older head of its input holds its VCs, and holds back its switch requests
    on an output until the older heads have been sent there (:class:`gen.order_rule.InOrderRule`:
    it still leaves later, and waits only for heads that wait only for the switch); the interface
    gives a packet another VC than the packet before (:class:`gen.noc_ni.NetworkInterface`), and a
    router does too (the VC is still held when the next head is allocated), so a head never waits
    at an input behind its predecessor's tail. The deadlock argument is unchanged: no new wait
    points to an earlier link. Full link rate then needs 4 VCs (:func:`gen.lib.noc.full_rate_depth`).

    Link rate. An uncontended stream crosses every link at 1 flit per cycle when each head finds a
    free VC as soon as the tail before it has left. A VC is free for a new packet when it has credits
    for a whole packet and, with more than one VC, its last head's credit is back
    (:func:`vc_free`). At zero load ``r`` flits of a link are always on their way back as credits
    (``r = 1``, or 3 with ``router_cycles = 2``: :data:`gen.lib.noc.CREDIT_LOOP`), so one VC needs
    ``vc_depth >= max_packet_flits + r``; a stream on several VCs takes turns on them, and a VC is
    needed again only after a packet on each other VC: ``vc_depth >= max_packet_flits`` suffices when
    ``vcs >= r + 1``, and with fewer VCs (2 VCs with registered inputs) one-flit packets find no VC in
    time at any depth, because a head's own credit is back only ``r + 1`` cycles after it left
    (:func:`gen.lib.noc.full_rate_depth`; :func:`sim.golden.noc.stream_full_rate` checks the rule
    against every sequence of packet lengths). The configuration enforces the rule
    (:class:`gen.config.NocConfig`), so the manifest's 1 flit per cycle per link holds for every
    configuration it allows; credits stay reserved per packet, so the deadlock argument above is
    unchanged. Below the rule (a :class:`gen.lib.noc.NocParams` built directly) the router is still
    correct and deadlock-free, only slower: a single stream of L-flit packets on one VC of
    ``max_packet_flits`` flits moves L / (L + r) flits per cycle.

    Switch. Per output port, one flit per cycle is sent: the input VC that sent the last flit keeps the
    output while it has a flit ready and its tail has not left (packets stay whole when they can),
    otherwise round robin over every input VC routed there. The crossbar has one input per input VC,
    so several VCs of one input port may leave in the same cycle toward different outputs. A packet
    holds the output at most for its ``max_packet_flits`` flits, so every requester is served.

    Parts. An input buffer per port (:class:`gen.vc_buffer.VcBuffer`), route computation
    (:class:`gen.route_compute.RouteCompute`), the in-order rule with more than one VC
    (:class:`gen.order_rule.InOrderRule`), the VC state of each output
    (:class:`gen.output_vcs.OutputVcState`), VC allocation (:class:`gen.vc_allocator.VcAllocator`)
    and switch allocation (:class:`gen.switch_allocator.SwitchAllocator`), both with round-robin
    arbiters (:class:`gen.arbiter.RoundRobinArbiter`); the crossbar and the output link registers
    are the router's own. Each part states its latency; :attr:`latency_parts` adds them up.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    x, y : In(params.coord_bits)
        Position of the router in the mesh (constants in a mesh).
    i_l, i_n, i_e, i_s, i_w : In(link_signature(params))
        Input links (``i_l`` from the local network interface).
    o_l, o_n, o_e, o_s, o_w : Out(link_signature(params))
        Output links, registered.
    """

    module_suffix = "router"

    def __init__(self, params):
        self._p = params
        self._ports = [LOCAL, NORTH, EAST, SOUTH, WEST]
        xb, yb = params.coord_bits
        members = {"x": In(xb), "y": In(yb)}
        for port in self._ports:
            members[f"i_{PORTS[port]}"] = In(link_signature(params))
        for port in self._ports:
            members[f"o_{PORTS[port]}"] = Out(link_signature(params))
        super().__init__(members)

    @property
    def latency_parts(self):
        """Zero-load cycles of a head flit in each stage: input buffer, route computation, VC
        allocation, switch allocation, and switch traversal into the output link register."""
        return self.latency_parts_of(self._p)

    @staticmethod
    def latency_parts_of(p):
        return {"input_buffer": VcBuffer.latency_of(p.router_cycles == 1),
                "route": RouteCompute.latency, "vc_allocation": VcAllocator.latency_of(p),
                "switch_allocation": SwitchAllocator.latency, "switch_traversal": 1}

    @property
    def latency(self):
        """Zero-load cycles of a head flit through this router and its output link (the sum of
        :attr:`latency_parts`; ``router_cycles``)."""
        return sum(self.latency_parts.values())

    @property
    def ports(self):
        """Indices of the ports (all five; :func:`present_ports` says which a position uses)."""
        return self._ports

    def elaborate(self, platform):
        m = Module()
        p = self._p
        V = p.vcs
        here = self._ports
        name = {port: PORTS[port] for port in here}
        ins = {port: getattr(self, f"i_{name[port]}") for port in here}
        outs = {port: getattr(self, f"o_{name[port]}") for port in here}
        ivcs = [(i, a) for i in here for a in range(V)]

        bufs = {}
        for i in here:
            buf = VcBuffer(p, bypass=p.router_cycles == 1)
            hier.add(m, f"buf_{name[i]}", buf)
            wiring.connect(m, wiring.flipped(ins[i]), buf.i)
            bufs[i] = buf
        fv = {(i, a): bufs[i].valid[a] for i, a in ivcs}
        fl = {(i, a): bufs[i].flit[a] for i, a in ivcs}

        rc = hier.add(m, "route", RouteCompute(p))
        m.d.comb += [rc.x.eq(self.x), rc.y.eq(self.y)]
        va = hier.add(m, "vc_alloc", VcAllocator(p))
        sa = hier.add(m, "sw_alloc", SwitchAllocator(p))
        ovs = {o: hier.add(m, f"vcs_{name[o]}", OutputVcState(p)) for o in here}
        for i, a in ivcs:
            m.d.comb += [
                rc.mask[i][a].eq(fl[i, a].mask),
                va.valid[i][a].eq(fv[i, a]),
                va.head[i][a].eq(fl[i, a].head),
                va.want[i][a].eq(rc.want[i][a]),
                va.release[i][a].eq(sa.pop[i][a] & fl[i, a].tail),
                sa.valid[i][a].eq(fv[i, a]),
                sa.tail[i][a].eq(fl[i, a].tail),
                sa.routed[i][a].eq(va.routed[i][a]),
                sa.route[i][a].eq(va.route[i][a]),
                bufs[i].pop[a].eq(sa.pop[i][a]),
            ]
        for o in here:
            m.d.comb += [va.any_free[o].eq(ovs[o].any_free), va.low[o].eq(ovs[o].low),
                         ovs[o].alloc.eq(va.alloc[o])]
        if V > 1:
            # The in-order rule across VCs (with one VC every input is one FIFO and it is empty).
            order = hier.add(m, "order", InOrderRule(p))
            for i in here:
                m.d.comb += [order.older[i].eq(bufs[i].older), order.pending[i].eq(bufs[i].pending),
                             order.behind[i].eq(bufs[i].behind)]
            for i, a in ivcs:
                m.d.comb += [order.want[i][a].eq(rc.want[i][a]), order.sent[i][a].eq(sa.sent[i][a]),
                             va.blocked[i][a].eq(order.blocked[i][a])]
                if p.pipelined:
                    m.d.comb += [order.routed[i][a].eq(va.routed[i][a]),
                                 order.route[i][a].eq(va.route[i][a]),
                                 sa.blocked[i][a].eq(order.sw_blocked[i][a])]

        # Switch traversal, per output port: the granted input VC's flit and its output VC into the
        # link register, the mask cut to this output's region.
        for o in here:
            reqs = sa.requesters(o)
            grant = getattr(sa, f"grant_{name[o]}")
            chosen = Signal(flit_layout(p), name=f"xbar_{name[o]}")
            width = len(chosen.as_value())
            value = 0
            vc = Signal(p.vc_bits, name=f"xbar_vc_{name[o]}")
            vc_value = 0
            for k, (i, a) in enumerate(reqs):
                value = value | (fl[i, a].as_value() & grant[k].replicate(width))
                vc_value = vc_value | (va.ovc[i][a][o] & grant[k].replicate(p.vc_bits))
            m.d.comb += [chosen.eq(value), vc.eq(vc_value)]
            m.d.sync += [
                outs[o].valid.eq(grant.any()),
                outs[o].vc.eq(vc),
                outs[o].flit.eq(chosen),
                outs[o].flit.mask.eq(chosen.mask & rc.region[o]),
            ]
            m.d.comb += [
                ovs[o].credit.eq(outs[o].credit),
                ovs[o].send.eq(grant.any()),
                ovs[o].send_vc.eq(vc),
                ovs[o].send_head.eq(chosen.head),
                ovs[o].send_tail.eq(chosen.tail),
            ]
        return m


class PlacedRouter(wiring.Component):
    """The router at ``(x, y)`` on its own, with only the ports that position uses: what a mesh holds
    there, for area and timing figures of one router (the position becomes constants and the unused
    ports vanish in synthesis)."""

    def __init__(self, params, *, x, y):
        if not (0 <= x < params.kx and 0 <= y < params.ky):
            raise ValueError(f"router ({x}, {y}) is outside the {params.kx} x {params.ky} mesh")
        self._p, self._x, self._y = params, x, y
        self._ports = present_ports(params, x, y)
        members = {}
        for port in self._ports:
            members[f"i_{PORTS[port]}"] = In(link_signature(params))
        for port in self._ports:
            members[f"o_{PORTS[port]}"] = Out(link_signature(params))
        super().__init__(members)

    @property
    def ports(self):
        return self._ports

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = r = Router(self._p)
        m.d.comb += [r.x.eq(self._x), r.y.eq(self._y)]
        for port in self._ports:
            wiring.connect(m, wiring.flipped(getattr(self, f"i_{PORTS[port]}")),
                           getattr(r, f"i_{PORTS[port]}"))
            wiring.connect(m, getattr(r, f"o_{PORTS[port]}"),
                           wiring.flipped(getattr(self, f"o_{PORTS[port]}")))
        return m


def present_ports(params, x, y):
    """The ports of the router at ``(x, y)``: local, and one per neighbour the mesh has."""
    ports = [LOCAL]
    if y > 0:
        ports.append(NORTH)
    if x < params.kx - 1:
        ports.append(EAST)
    if y < params.ky - 1:
        ports.append(SOUTH)
    if x > 0:
        ports.append(WEST)
    return ports
