"""The 5-port mesh router: dimension-order routing, virtual channels, credits, multicast replication."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.noc import (
    EAST,
    LOCAL,
    NORTH,
    PORTS,
    SOUTH,
    WEST,
    flit_layout,
    link_signature,
    region_mask,
)
from .vc_buffer import VcBuffer

__all__ = ["Router", "round_robin", "present_ports", "can_turn"]


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


class Router(wiring.Component):
    """A 5-port (local, north, east, south, west) router of a ``kx`` x ``ky`` mesh at ``(x, y)``.

    Switching and flow control. Flits move with credits: an output port keeps, per virtual channel (VC),
    the free slots of the next input buffer. A packet's head flit takes the same VC on every output it
    needs, and only if that VC is not held by another packet and has room for a whole packet
    (``credits >= max_packet_flits``); the VC is held until the tail flit has left. Because every VC buffer
    holds at least ``max_packet_flits`` (the configuration enforces ``vc_depth >= max_packet_flits``), a
    packet that has been given its next VC always fits there: this is virtual cut-through allocation
    carried by wormhole-style head/body/tail flits (Kermani and Kleinrock, 1979; Dally and Towles 2004,
    ch. 13 and 16).

    Virtual channels. Every packet of source ``s`` travels on VC ``s mod vcs`` on every link (its class).
    Packets of one source to one destination share their path and their class, and every buffer and
    every allocation is first-in first-out within a class, so they arrive in order. Different classes
    share the links flit by flit, so a blocked packet does not block the other classes.

    Routing and multicast. A head flit names its remaining destinations as a bitmask. The router splits
    the mask by the region of each output under dimension-order routing (:func:`gen.lib.noc.region_mask`,
    constants of the router's position) and sends the flit on every output whose part is not empty, with
    that part as the new mask: the packet is copied where its XY tree branches, and each link carries it
    at most once. The outputs of a multicast head are allocated together (all or none). Each copy then
    moves independently; the input flit is freed when every output has sent it.

    Deadlock freedom (unicast and multicast together). Within one class, a packet waits only for VCs
    on outputs its dimension-order route leads to; these channel dependencies follow the order of
    dimension-order routing (x links before y links, each in the direction of travel), which has no cycle
    (Dally and Seitz, 1987), and a multicast tree only uses links of dimension-order paths, so it adds no
    dependency that unicast lacks. A packet waiting for VC allocation holds nothing downstream (its outputs
    are taken all at once), and a packet that holds its VCs never waits for buffer space again (virtual
    cut-through), only for the fair round-robin switch, so the replicas of a multicast cannot block each
    other. Classes share no buffers. The network interfaces sink every packet (:mod:`gen.noc_ni`), so
    nothing waits forever.

    Timing. The router has no pipeline register besides its output link registers: a flit at the front
    of an input buffer (or arriving on an empty one, through the bypass) is routed, allocated and switched
    in the cycle it is there, and is on the next link in the next cycle. Zero-load head latency is 1 cycle
    per hop (router plus link), straight or turning. With ``router_cycles = 2`` (registered mode) the
    input buffers have no bypass and return credits from a register: 2 cycles per hop, and every path
    between two routers starts and ends at a register.

    Allocation. Per class, one head flit per cycle is given its outputs (round robin over the inputs).
    Per output port, one flit per cycle is switched (round robin over every input VC): the crossbar has one
    input per input VC, so several VCs of one input port may leave in the same cycle toward different
    outputs.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`
    x, y : int
        Position of the router in the mesh.

    Members
    -------
    i_l, i_n, i_e, i_s, i_w : In(link_signature(params))
        Input links (``i_l`` from the local network interface).
    o_l, o_n, o_e, o_s, o_w : Out(link_signature(params))
        Output links, registered.
    """

    def __init__(self, params, *, x, y):
        if not (0 <= x < params.kx and 0 <= y < params.ky):
            raise ValueError(f"router ({x}, {y}) is outside the {params.kx} x {params.ky} mesh")
        self._p = params
        self._x, self._y = x, y
        self._ports = present_ports(params, x, y)
        members = {}
        for port in self._ports:
            members[f"i_{PORTS[port]}"] = In(link_signature(params))
        for port in self._ports:
            members[f"o_{PORTS[port]}"] = Out(link_signature(params))
        super().__init__(members)

    @property
    def position(self):
        return self._x, self._y

    @property
    def latency(self):
        """Zero-load cycles of a head flit through this router and its output link."""
        return self._p.router_cycles

    @property
    def ports(self):
        """Indices of the ports this router has (see :func:`present_ports`)."""
        return self._ports

    def elaborate(self, platform):
        m = Module()
        p = self._p
        V = p.vcs
        here = self._ports
        name = {port: PORTS[port] for port in here}
        regions = {port: region_mask(p, self._x, self._y, port) for port in here}
        ins = {port: getattr(self, f"i_{name[port]}") for port in here}
        outs = {port: getattr(self, f"o_{name[port]}") for port in here}
        # The inputs whose packets can leave through each output under dimension-order routing.
        sources = {o: [i for i in here if can_turn(p.routing, i, o)] for o in here}
        targets = {i: [o for o in here if can_turn(p.routing, i, o)] for i in here}

        bufs = {}
        for i in here:
            buf = VcBuffer(p, bypass=p.router_cycles == 1)
            m.submodules[f"buf_{name[i]}"] = buf
            wiring.connect(m, wiring.flipped(ins[i]), buf.i)
            bufs[i] = buf

        # Output state per (port, class): held by a packet, and credits of the next buffer.
        owned, credits, free = {}, {}, {}
        for o in here:
            for c in range(V):
                owned[o, c] = Signal(name=f"owned_{name[o]}{c}")
                credits[o, c] = Signal(range(p.vc_depth + 1), init=p.vc_depth,
                                       name=f"credits_{name[o]}{c}")
                free[o, c] = Signal(name=f"free_{name[o]}{c}")
                m.d.comb += free[o, c].eq(~owned[o, c] & (credits[o, c] >= p.max_packet_flits))

        # Input state per (port, class): the front flit, its route (one bit per output in
        # ``targets[i]`` order), the outputs it has been sent to.
        fv, fl, routed, route, sent, want = {}, {}, {}, {}, {}, {}
        route_now, routed_now = {}, {}
        for i in here:
            n_out = len(targets[i])
            for c in range(V):
                fv[i, c] = bufs[i].valid[c]
                fl[i, c] = bufs[i].flit[c]
                tag = f"{name[i]}{c}"
                routed[i, c] = Signal(name=f"routed_{tag}")
                route[i, c] = Signal(n_out, name=f"route_{tag}")
                sent[i, c] = Signal(n_out, name=f"sent_{tag}")
                want[i, c] = Signal(n_out, name=f"want_{tag}")
                route_now[i, c] = Signal(n_out, name=f"route_now_{tag}")
                routed_now[i, c] = Signal(name=f"routed_now_{tag}")
                m.d.comb += want[i, c].eq(Cat(
                    (fl[i, c].mask & Const(regions[o], p.nodes)).any() for o in targets[i]))

        # Allocation, per class: one waiting head flit whose outputs are all free.
        for c in range(V):
            request = Signal(len(here), name=f"alloc_req{c}")
            bits = []
            for i in here:
                fits = Cat(~want[i, c][j] | free[o, c] for j, o in enumerate(targets[i])).all()
                bits.append(fv[i, c] & fl[i, c].head & ~routed[i, c] & fits)
            m.d.comb += request.eq(Cat(bits))
            grant = round_robin(m, request, len(here), f"alloc{c}")
            for k, i in enumerate(here):
                m.d.comb += [
                    routed_now[i, c].eq(routed[i, c] | grant[k]),
                    route_now[i, c].eq(Mux(routed[i, c], route[i, c], 0)),
                ]
                with m.If(grant[k]):
                    m.d.comb += route_now[i, c].eq(want[i, c])
                    m.d.sync += [routed[i, c].eq(1), route[i, c].eq(want[i, c])]
                    for j, o in enumerate(targets[i]):
                        with m.If(want[i, c][j]):
                            m.d.sync += owned[o, c].eq(1)

        # Switch, per output port: one flit of any input VC that still has to go there.
        granted = {(i, c): [] for i in here for c in range(V)}
        for o in here:
            reqs = [(i, c) for i in sources[o] for c in range(V)]
            bits = []
            for i, c in reqs:
                j = targets[i].index(o)
                bits.append(fv[i, c] & route_now[i, c][j] & ~sent[i, c][j]
                            & (credits[o, c] != 0))
            request = Signal(len(reqs), name=f"sw_req_{name[o]}")
            m.d.comb += request.eq(Cat(bits))
            grant = round_robin(m, request, len(reqs), f"sw_{name[o]}")
            chosen = Signal(flit_layout(p), name=f"xbar_{name[o]}")
            width = len(chosen.as_value())
            value = 0
            for k, (i, c) in enumerate(reqs):
                value = value | (fl[i, c].as_value() & grant[k].replicate(width))
                granted[i, c].append((o, grant[k]))
            m.d.comb += chosen.eq(value)
            vc = Signal(p.vc_bits, name=f"xbar_vc_{name[o]}")
            for k, (_, c) in enumerate(reqs):
                if c:
                    with m.If(grant[k]):
                        m.d.comb += vc.eq(c)
            m.d.sync += [
                outs[o].valid.eq(grant.any()),
                outs[o].vc.eq(vc),
                outs[o].flit.eq(chosen),
                outs[o].flit.mask.eq(chosen.mask & Const(regions[o], p.nodes)),
            ]
            for c in range(V):
                used = Cat(grant[k] for k, (_, cc) in enumerate(reqs) if cc == c).any()
                m.d.sync += credits[o, c].eq(credits[o, c] + outs[o].credit[c] - used)
                with m.If(used & chosen.tail):
                    m.d.sync += owned[o, c].eq(0)

        # Free the input flit once every output of its route has sent it.
        for i in here:
            for c in range(V):
                tag = f"{name[i]}{c}"
                by_output = dict(granted[i, c])
                done_set = Signal(len(targets[i]), name=f"done_set_{tag}")
                m.d.comb += done_set.eq(sent[i, c] | Cat(by_output[o] for o in targets[i]))
                done = Signal(name=f"done_{tag}")
                m.d.comb += done.eq(fv[i, c] & routed_now[i, c]
                                    & ((done_set & route_now[i, c]) == route_now[i, c]))
                m.d.comb += bufs[i].pop[c].eq(done)
                with m.If(done):
                    m.d.sync += sent[i, c].eq(0)
                    with m.If(fl[i, c].tail):
                        m.d.sync += routed[i, c].eq(0)
                with m.Else():
                    m.d.sync += sent[i, c].eq(done_set)
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
