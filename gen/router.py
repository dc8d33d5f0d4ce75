"""The 5-port mesh router: dimension-order routing, virtual channels, credits, multicast replication."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.hier import Reused
from .lib.noc import (
    EAST,
    LOCAL,
    NORTH,
    PORTS,
    SOUTH,
    WEST,
    flit_layout,
    link_signature,
    region_bits,
)
from .vc_buffer import VcBuffer

__all__ = ["Router", "PlacedRouter", "round_robin", "present_ports", "can_turn", "vc_free"]


def _lowest(m, value, width, name):
    """One-hot of the lowest set bit of ``value`` (0 if none)."""
    out = Signal(width, name=name)
    m.d.comb += out.eq((value & (~value + 1))[:width])
    return out


def round_robin(m, request, width, name, advance=True):
    """A round-robin arbiter: the one-hot grant among the bits of ``request``.

    The search starts just above the previous grant (a register of the bits above it), so a requester
    waits at most ``width - 1`` grants. ``advance`` (a signal or ``True``) says when the grant is used.
    """
    above = Signal(width, init=(1 << width) - 1, name=f"{name}_above")
    high = Signal(width, name=f"{name}_high")
    m.d.comb += high.eq(request & above)
    first_high = _lowest(m, high, width, f"{name}_first_high")
    first_any = _lowest(m, request, width, f"{name}_first_any")
    grant = Signal(width, name=f"{name}_grant")
    m.d.comb += grant.eq(first_any)
    with m.If(high.any()):
        m.d.comb += grant.eq(first_high)
    with m.If(grant.any() & advance):
        m.d.sync += above.eq(~(grant | (grant - 1))[:width])
    return grant


def vc_free(p, owned, credits, since_head):
    """Can an output give its virtual channel to a new packet? (a signal)

    ``owned``: a packet holds the VC (until its tail has left; ``None`` if the caller sends one packet
    at a time); ``credits``: free slots of the next
    buffer; ``since_head``: flits sent on the VC since the last head flit (that packet's length so far).
    The VC must hold a whole packet (``credits >= max_packet_flits``: virtual cut-through); with more
    than one VC, the last packet's head must also have left the next buffer (``credits + since_head >
    vc_depth``: of the flits still there, fewer than that packet's own), so that a buffer never holds
    two waiting heads of one VC (the head order of :class:`gen.vc_buffer.VcBuffer`).
    """
    room = credits >= p.max_packet_flits
    if owned is not None:
        room = room & ~owned
    if p.vcs == 1:
        return room
    return room & (credits + since_head > p.vc_depth)


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

    Switch. Per output port, one flit per cycle is sent: the input VC that sent the last flit keeps the
    output while it has a flit ready and its tail has not left (packets stay whole when they can),
    otherwise round robin over every input VC routed there. The crossbar has one input per input VC,
    so several VCs of one input port may leave in the same cycle toward different outputs. A packet
    holds the output at most for its ``max_packet_flits`` flits, so every requester is served.

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
    def latency(self):
        """Zero-load cycles of a head flit through this router and its output link."""
        return self._p.router_cycles

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
        regions = {}
        for port in here:
            regions[port] = Signal(p.nodes, name=f"region_{name[port]}")
            m.d.comb += regions[port].eq(region_bits(p, self.x, self.y, port))
        ins = {port: getattr(self, f"i_{name[port]}") for port in here}
        outs = {port: getattr(self, f"o_{name[port]}") for port in here}
        # The inputs whose packets can leave through each output under dimension-order routing.
        sources = {o: [i for i in here if can_turn(p.routing, i, o)] for o in here}
        targets = {i: [o for o in here if can_turn(p.routing, i, o)] for i in here}
        ivcs = [(i, a) for i in here for a in range(V)]

        bufs = {}
        for i in here:
            buf = VcBuffer(p, bypass=p.router_cycles == 1)
            hier.add(m, f"buf_{name[i]}", buf)
            wiring.connect(m, wiring.flipped(ins[i]), buf.i)
            bufs[i] = buf

        # Output state per (port, VC): held by a packet, credits of the next buffer, flits sent since
        # the last head; the free VCs of each output and the lowest of them.
        owned, credits, since_head = {}, {}, {}
        any_free, low_vc = {}, {}
        for o in here:
            free = []
            for c in range(V):
                owned[o, c] = Signal(name=f"owned_{name[o]}{c}")
                credits[o, c] = Signal(range(p.vc_depth + 1), init=p.vc_depth,
                                       name=f"credits_{name[o]}{c}")
                since_head[o, c] = Signal(range(p.max_packet_flits + 1), init=1,
                                          name=f"since_head_{name[o]}{c}")
                f = Signal(name=f"free_{name[o]}{c}")
                m.d.comb += f.eq(vc_free(p, owned[o, c], credits[o, c], since_head[o, c]))
                free.append(f)
            free_bits = Signal(V, name=f"free_{name[o]}")
            m.d.comb += free_bits.eq(Cat(free))
            any_free[o] = free_bits.any()
            low_vc[o] = Signal(p.vc_bits, name=f"low_vc_{name[o]}")
            for c in reversed(range(V)):
                with m.If(free_bits[c]):
                    m.d.comb += low_vc[o].eq(c)

        # Input state per (port, VC): the front flit, its route (one bit per output in
        # ``targets[i]`` order), the VC it was given on each output, the outputs it has been sent to.
        fv, fl, routed, route, ovc, sent, want, head_wait = {}, {}, {}, {}, {}, {}, {}, {}
        route_now, routed_now, ovc_now, multi = {}, {}, {}, {}
        for i, a in ivcs:
            n_out = len(targets[i])
            fv[i, a] = bufs[i].valid[a]
            fl[i, a] = bufs[i].flit[a]
            tag = f"{name[i]}{a}"
            routed[i, a] = Signal(name=f"routed_{tag}")
            route[i, a] = Signal(n_out, name=f"route_{tag}")
            sent[i, a] = Signal(n_out, name=f"sent_{tag}")
            want[i, a] = Signal(n_out, name=f"want_{tag}")
            route_now[i, a] = Signal(n_out, name=f"route_now_{tag}")
            routed_now[i, a] = Signal(name=f"routed_now_{tag}")
            head_wait[i, a] = Signal(name=f"head_wait_{tag}")
            multi[i, a] = Signal(name=f"multi_{tag}")
            for o in targets[i]:
                ovc[i, a, o] = Signal(p.vc_bits, name=f"ovc_{tag}_{name[o]}")
                ovc_now[i, a, o] = Signal(p.vc_bits, name=f"ovc_now_{tag}_{name[o]}")
            m.d.comb += [
                want[i, a].eq(Cat(
                    (fl[i, a].mask & regions[o]).any() for o in targets[i])),
                head_wait[i, a].eq(fv[i, a] & fl[i, a].head & ~routed[i, a]),
                # More than one bit of want.
                multi[i, a].eq((want[i, a] & (want[i, a] - 1)).any()),
            ]

        # In-order rule: (i, a) may not be given output o while an older waiting head of input i has
        # not been sent on o (or its route is not known yet).
        blocked = {}
        for i, a in ivcs:
            for j, o in enumerate(targets[i]):
                terms = []
                buf = bufs[i]
                for b in range(V):
                    if b == a:
                        continue
                    terms.append(buf.older[b * V + a] & buf.pending[b]
                                 & (buf.behind[b] | (want[i, b][j] & ~sent[i, b][j])))
                blocked[i, a, o] = Signal(name=f"blocked_{name[i]}{a}_{name[o]}")
                m.d.comb += blocked[i, a, o].eq(Cat(terms).any() if terms else 0)

        def unblocked(i, a):
            return Cat(~want[i, a][j] | ~blocked[i, a, o] for j, o in enumerate(targets[i])).all()

        # Multi-output heads. One of them, chosen round robin and kept until it is allocated, reserves
        # its outputs; in each cycle one multi-output head whose outputs all have a free VC is
        # allocated (the reserving one first), before any single-output head.
        m_req = Signal(len(ivcs), name="multi_req")
        m.d.comb += m_req.eq(Cat(head_wait[i, a] & multi[i, a] & unblocked(i, a) for i, a in ivcs))
        m_fits = Signal(len(ivcs), name="multi_fits")
        m.d.comb += m_fits.eq(Cat(
            Cat(~want[i, a][j] | any_free[o] for j, o in enumerate(targets[i])).all()
            for i, a in ivcs) & m_req)
        m_grant = Signal(len(ivcs), name="multi_grant")
        m_res = round_robin(m, m_req, len(ivcs), "multi_res", advance=(m_res_done := Signal()))
        m.d.comb += m_res_done.eq((m_res & m_grant).any())
        m_any = round_robin(m, m_fits, len(ivcs), "multi_fit")
        m.d.comb += m_grant.eq(Mux((m_res & m_fits).any(), m_res, m_any))

        def outputs_of(heads, sig_name):
            """One bit per port of ``here``: the outputs the heads (one-hot) want."""
            bits = Signal(len(here), name=sig_name)
            m.d.comb += bits.eq(Cat(
                Cat(heads[k] & want[i, a][targets[i].index(o)]
                    for k, (i, a) in enumerate(ivcs) if o in targets[i]).any()
                for o in here))
            return bits

        res_want = outputs_of(m_res, "multi_reserved")
        grant_want = outputs_of(m_grant, "multi_granted")
        # The reservation holds back the single-output heads of input i only if each reserved output
        # can follow input i under dimension-order routing (a later link than i's): see the deadlock
        # argument. Other multi-output heads never wait for it.
        holds_back = {}
        for i in here:
            outside = Const(sum(1 << n for n, o in enumerate(here) if o not in targets[i]), len(here))
            holds_back[i] = Signal(name=f"multi_holds_{name[i]}")
            m.d.comb += holds_back[i].eq((res_want & outside) == 0)

        # Single-output heads: per output, one request granted per cycle (round robin).
        alloc = {(i, a, o): [] for i, a in ivcs for o in targets[i]}
        for k, (i, a) in enumerate(ivcs):
            for o in targets[i]:
                alloc[i, a, o].append(m_grant[k])
        for o in here:
            reqs = [(i, a) for i in sources[o] for a in range(V)]
            bits = []
            n = here.index(o)
            for i, a in reqs:
                j = targets[i].index(o)
                bits.append(head_wait[i, a] & ~multi[i, a] & want[i, a][j] & ~blocked[i, a, o]
                            & ~(res_want[n] & holds_back[i]) & ~grant_want[n])
            request = Signal(len(reqs), name=f"alloc_req_{name[o]}")
            m.d.comb += request.eq(Cat(bits) & any_free[o].replicate(len(reqs)))
            grant = round_robin(m, request, len(reqs), f"alloc_{name[o]}")
            for k, (i, a) in enumerate(reqs):
                alloc[i, a, o].append(grant[k])
            got = Signal(name=f"alloc_any_{name[o]}")
            m.d.comb += got.eq(grant.any() | grant_want[here.index(o)])
            with m.If(got):
                for c in range(V):
                    with m.If(low_vc[o] == c):
                        m.d.sync += owned[o, c].eq(1)

        for i, a in ivcs:
            granted_now = Signal(name=f"granted_{name[i]}{a}")
            m.d.comb += granted_now.eq(Cat(Cat(alloc[i, a, o]).any() for o in targets[i]).any())
            m.d.comb += [
                routed_now[i, a].eq(routed[i, a] | granted_now),
                route_now[i, a].eq(Mux(routed[i, a], route[i, a], 0)),
            ]
            for o in targets[i]:
                m.d.comb += ovc_now[i, a, o].eq(ovc[i, a, o])
            with m.If(granted_now):
                m.d.comb += route_now[i, a].eq(want[i, a])
                m.d.sync += [routed[i, a].eq(1), route[i, a].eq(want[i, a])]
                for o in targets[i]:
                    m.d.comb += ovc_now[i, a, o].eq(low_vc[o])
                    m.d.sync += ovc[i, a, o].eq(low_vc[o])

        # Switch, per output port: one flit of any input VC that still has to go there. The packet
        # holds its VC there, which has room for all of it, so no credit check is needed.
        granted = {(i, a): [] for i, a in ivcs}
        for o in here:
            reqs = [(i, a) for i in sources[o] for a in range(V)]
            bits = []
            for i, a in reqs:
                j = targets[i].index(o)
                bits.append(fv[i, a] & route_now[i, a][j] & ~sent[i, a][j])
            request = Signal(len(reqs), name=f"sw_req_{name[o]}")
            m.d.comb += request.eq(Cat(bits))
            # The packet that sent the last flit keeps the output while it has flits to send, so
            # packets leave whole when they can (fewer interleaved packets at the ejection).
            hold = Signal(len(reqs), name=f"sw_hold_{name[o]}")
            held = Signal(len(reqs), name=f"sw_held_{name[o]}")
            m.d.comb += held.eq(hold & request)
            rr = round_robin(m, request, len(reqs), f"sw_{name[o]}", advance=~held.any())
            grant = Signal(len(reqs), name=f"sw_grant_{name[o]}")
            m.d.comb += grant.eq(Mux(held.any(), held, rr))
            chosen = Signal(flit_layout(p), name=f"xbar_{name[o]}")
            width = len(chosen.as_value())
            value = 0
            vc = Signal(p.vc_bits, name=f"xbar_vc_{name[o]}")
            vc_value = 0
            for k, (i, a) in enumerate(reqs):
                value = value | (fl[i, a].as_value() & grant[k].replicate(width))
                vc_value = vc_value | (ovc_now[i, a, o] & grant[k].replicate(p.vc_bits))
                granted[i, a].append((o, grant[k]))
            m.d.comb += [chosen.eq(value), vc.eq(vc_value)]
            with m.If(grant.any()):
                m.d.sync += hold.eq(Mux(chosen.tail, 0, grant))
            m.d.sync += [
                outs[o].valid.eq(grant.any()),
                outs[o].vc.eq(vc),
                outs[o].flit.eq(chosen),
                outs[o].flit.mask.eq(chosen.mask & regions[o]),
            ]
            for c in range(V):
                used = Signal(name=f"used_{name[o]}{c}")
                m.d.comb += used.eq(grant.any() & (vc == c))
                m.d.sync += credits[o, c].eq(credits[o, c] + outs[o].credit[c] - used)
                with m.If(used):
                    m.d.sync += since_head[o, c].eq(Mux(chosen.head, 1, since_head[o, c] + 1))
                    with m.If(chosen.tail):
                        m.d.sync += owned[o, c].eq(0)

        # Free the input flit once every output of its route has sent it.
        for i, a in ivcs:
            tag = f"{name[i]}{a}"
            by_output = dict(granted[i, a])
            done_set = Signal(len(targets[i]), name=f"done_set_{tag}")
            m.d.comb += done_set.eq(sent[i, a] | Cat(by_output[o] for o in targets[i]))
            done = Signal(name=f"done_{tag}")
            m.d.comb += done.eq(fv[i, a] & routed_now[i, a]
                                & ((done_set & route_now[i, a]) == route_now[i, a]))
            m.d.comb += bufs[i].pop[a].eq(done)
            with m.If(done):
                m.d.sync += sent[i, a].eq(0)
                with m.If(fl[i, a].tail):
                    m.d.sync += routed[i, a].eq(0)
            with m.Else():
                m.d.sync += sent[i, a].eq(done_set)
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


def can_turn(routing, i, o):
    """Can a packet that came in on port ``i`` leave on port ``o`` under dimension-order routing?

    Never back where it came from (except local to local, a node sending to itself); with ``xy`` a
    packet travelling along y never turns into x, with ``yx`` one travelling along x never turns into y.
    """
    if i == LOCAL or o == LOCAL:
        return True
    if i == o:
        return False
    along_x_in, along_x_out = i in (EAST, WEST), o in (EAST, WEST)
    if routing == "xy":
        return along_x_in or not along_x_out
    return not along_x_in or along_x_out
