"""Switch allocation of the mesh router: which input VC sends a flit on each output."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arbiter import RoundRobinArbiter
from .lib import hier
from .lib.noc import PORTS, can_turn

__all__ = ["SwitchAllocator"]


class SwitchAllocator(wiring.Component):
    """Per output port, one flit per cycle from the input VCs routed there; per input VC, the outputs
    its front flit has been sent on, and when it is done.

    Input VC ``(i, a)`` requests output ``o`` when it has a front flit (``valid``), its packet holds
    its VCs (``routed``, from :class:`gen.vc_allocator.VcAllocator`), ``o`` is in its ``route`` and
    the flit has not been sent on ``o`` yet (a multicast flit leaves on several outputs, possibly in
    different cycles). The input VC that sent the last flit on ``o`` keeps it while it requests and
    its tail has not left (packets stay whole when they can); otherwise round robin over the requests
    (:class:`gen.arbiter.RoundRobinArbiter`). No credit check is needed: the packet's VC has room for
    all of it (virtual cut-through, :class:`gen.router.Router`). A packet holds an output for at most
    ``max_packet_flits`` flits, so every requester is served.

    ``grant_<o>`` is one-hot over the requesters of ``o``: the input VCs ``(i, a)`` of the ports ``i``
    that can turn to ``o`` (:func:`gen.lib.noc.can_turn`), in port order, VCs within a port.
    ``pop[i][a]``: the front flit has now been sent on every output of its route (the input buffer
    frees it); ``sent[i][a]`` the outputs it was sent on in earlier cycles.

    Combinational (:attr:`latency` = 0): a routed flit at the front is granted in that cycle.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    valid, tail, routed : In(1).array(5, vcs)
    route : In(5).array(5, vcs)
    blocked : In(5).array(5, vcs)
        Outputs the input VC may not request yet (the pipelined router's in-order rule,
        :class:`gen.order_rule.InOrderRule`; zero otherwise).
    grant_l, grant_n, grant_e, grant_s, grant_w : Out(requesters of that output)
    pop : Out(1).array(5, vcs)
    sent : Out(5).array(5, vcs)
    """

    def __init__(self, params):
        self._p = params
        n, V = len(PORTS), params.vcs
        members = {
            "valid": In(1).array(n, V),
            "tail": In(1).array(n, V),
            "routed": In(1).array(n, V),
            "route": In(n).array(n, V),
            "blocked": In(n).array(n, V),
        }
        for o in range(n):
            members[f"grant_{PORTS[o]}"] = Out(len(self.requesters(o)))
        members["pop"] = Out(1).array(n, V)
        members["sent"] = Out(n).array(n, V)
        super().__init__(members)

    def requesters(self, o):
        """The input VCs ``(i, a)`` that may send on output ``o``, in the order of ``grant_<o>``."""
        return [(i, a) for i in range(len(PORTS)) if can_turn(self._p.routing, i, o)
                for a in range(self._p.vcs)]

    latency = 0
    """Cycles from a routed flit at the front to its grant: 0 (combinational)."""

    def elaborate(self, platform):
        m = Module()
        p = self._p
        V = p.vcs
        here = list(range(len(PORTS)))
        name = PORTS
        targets = {i: [o for o in here if can_turn(p.routing, i, o)] for i in here}
        ivcs = [(i, a) for i in here for a in range(V)]
        sent = {(i, a): Signal(len(here), name=f"sent_{name[i]}{a}") for i, a in ivcs}
        for i, a in ivcs:
            m.d.comb += self.sent[i][a].eq(sent[i, a])

        by_output = {(i, a): {} for i, a in ivcs}
        for o in here:
            reqs = self.requesters(o)
            request = Signal(len(reqs), name=f"sw_req_{name[o]}")
            m.d.comb += request.eq(Cat(self.valid[i][a] & self.route[i][a][o] & ~sent[i, a][o]
                                       & ~self.blocked[i][a][o] for i, a in reqs))
            # The packet that sent the last flit keeps the output while it has flits to send, so
            # packets leave whole when they can (fewer interleaved packets at the ejection).
            hold = Signal(len(reqs), name=f"sw_hold_{name[o]}")
            held = Signal(len(reqs), name=f"sw_held_{name[o]}")
            m.d.comb += held.eq(hold & request)
            arb = hier.add(m, f"sw_{name[o]}", RoundRobinArbiter(len(reqs)))
            m.d.comb += [arb.request.eq(request), arb.advance.eq(~held.any())]
            grant = getattr(self, f"grant_{name[o]}")
            m.d.comb += grant.eq(Mux(held.any(), held, arb.grant))
            tail = Signal(name=f"sw_tail_{name[o]}")
            m.d.comb += tail.eq(Cat(self.tail[i][a] & grant[k]
                                    for k, (i, a) in enumerate(reqs)).any())
            with m.If(grant.any()):
                m.d.sync += hold.eq(Mux(tail, 0, grant))
            for k, (i, a) in enumerate(reqs):
                by_output[i, a][o] = grant[k]

        # Free the input flit once every output of its route has sent it.
        for i, a in ivcs:
            tag = f"{name[i]}{a}"
            done_set = Signal(len(here), name=f"done_set_{tag}")
            m.d.comb += done_set.eq(sent[i, a]
                                    | Cat(by_output[i, a].get(o, Const(0, 1)) for o in here))
            done = Signal(name=f"done_{tag}")
            route = self.route[i][a]
            m.d.comb += done.eq(self.valid[i][a] & self.routed[i][a]
                                & ((done_set & route) == route))
            m.d.comb += self.pop[i][a].eq(done)
            with m.If(done):
                m.d.sync += sent[i, a].eq(0)
            with m.Else():
                m.d.sync += sent[i, a].eq(done_set)
        return m
