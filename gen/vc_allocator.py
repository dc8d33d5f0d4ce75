"""Virtual-channel allocation of the mesh router: which waiting heads get which output VCs."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arbiter import RoundRobinArbiter
from .lib import hier
from .lib.noc import PORTS, can_turn

__all__ = ["VcAllocator"]


class VcAllocator(wiring.Component):
    """Gives each waiting head flit a free virtual channel on every output its route needs, and
    keeps, per input VC, the route and the output VCs of the packet until its tail has left.

    A head at the front of input VC ``(i, a)`` (``valid`` and ``head``, not yet ``routed``) waits
    for allocation; ``want[i][a]`` are its outputs (:class:`gen.route_compute.RouteCompute`),
    ``blocked[i][a]`` the outputs the in-order rule holds it back from
    (:class:`gen.order_rule.InOrderRule`; zero with one VC). Every output ``o`` reports whether it has
    a free VC and the lowest one (``any_free[o]``, ``low[o]``, :class:`gen.output_vcs.OutputVcState`);
    a head given ``o`` gets ``low[o]``, and ``alloc[o]`` tells the output that it was taken.

    Rules (the deadlock argument is in :class:`gen.router.Router`): each output gives its VC to at
    most one head per cycle, round robin over the input VCs that can reach it
    (:class:`gen.arbiter.RoundRobinArbiter`). A head with one output requests it when it has a free
    VC. A head with several outputs (a multicast branching here) gets all of them at once or none: per
    cycle one such head whose outputs all have a free VC is allocated, before any single-output head.
    One multi-output head, chosen round robin and kept until it is allocated, *reserves* its outputs
    against the single-output heads of every input ``i`` for which each of those outputs is a later
    link under dimension-order routing (:func:`gen.lib.noc.can_turn`); other heads never wait for it.
    Pipelined, the reservation is a register: the head chosen in an earlier cycle reserves while it
    still requests, and a new one is chosen when it is allocated or stops requesting.

    The results: ``routed`` (the packet has its VCs), ``route`` (its outputs) and ``ovc[o]`` (its VC
    on output ``o``), valid in the cycle of the allocation and kept until ``release`` (the tail flit
    has left on every output of the route; the release wins over an allocation in the same cycle, a
    one-flit packet sent at once).

    Combinational for the head (:attr:`latency` = 0): a head that can be allocated is, in the cycle
    it reaches the front, and may be switched in that cycle. Pipelined (``params.pipelined``,
    :attr:`latency` = 1): ``routed``, ``route`` and ``ovc`` come from the registers alone, so a head
    allocated in one cycle is switched from the next, and no path runs from allocation to the
    switch.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    valid, head : In(1).array(5, vcs)
        Input VC ``(i, a)`` has a front flit, and it is a head.
    want, blocked : In(5).array(5, vcs)
    release : In(1).array(5, vcs)
    any_free : In(1).array(5)
    low : In(vc_bits).array(5)
    alloc : Out(1).array(5)
    routed : Out(1).array(5, vcs)
    route : Out(5).array(5, vcs)
    ovc : Out(vc_bits).array(5, vcs, 5)
    """

    def __init__(self, params):
        self._p = params
        n, V = len(PORTS), params.vcs
        super().__init__({
            "valid": In(1).array(n, V),
            "head": In(1).array(n, V),
            "want": In(n).array(n, V),
            "blocked": In(n).array(n, V),
            "release": In(1).array(n, V),
            "any_free": In(1).array(n),
            "low": In(params.vc_bits).array(n),
            "alloc": Out(1).array(n),
            "routed": Out(1).array(n, V),
            "route": Out(n).array(n, V),
            "ovc": Out(params.vc_bits).array(n, V, n),
        })

    @staticmethod
    def latency_of(params):
        """Cycles from a head at the front until the switch sees its allocation: 0, or 1
        pipelined."""
        return 1 if params.pipelined else 0

    @property
    def latency(self):
        return self.latency_of(self._p)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        V = p.vcs
        here = list(range(len(PORTS)))
        name = PORTS
        sources = {o: [i for i in here if can_turn(p.routing, i, o)] for o in here}
        targets = {i: [o for o in here if can_turn(p.routing, i, o)] for i in here}
        ivcs = [(i, a) for i in here for a in range(V)]
        want = {(i, a): self.want[i][a] for i, a in ivcs}
        blocked = {(i, a): self.blocked[i][a] for i, a in ivcs}

        routed, route, ovc, head_wait, multi = {}, {}, {}, {}, {}
        for i, a in ivcs:
            tag = f"{name[i]}{a}"
            routed[i, a] = Signal(name=f"routed_{tag}")
            route[i, a] = Signal(len(here), name=f"route_{tag}")
            head_wait[i, a] = Signal(name=f"head_wait_{tag}")
            multi[i, a] = Signal(name=f"multi_{tag}")
            for o in targets[i]:
                ovc[i, a, o] = Signal(p.vc_bits, name=f"ovc_{tag}_{name[o]}")
            m.d.comb += [
                head_wait[i, a].eq(self.valid[i][a] & self.head[i][a] & ~routed[i, a]),
                # More than one bit of want.
                multi[i, a].eq((want[i, a] & (want[i, a] - 1)).any()),
            ]

        def unblocked(i, a):
            return Cat(~want[i, a][o] | ~blocked[i, a][o] for o in targets[i]).all()

        def arbiter(width, arb_name, request, advance=Const(1, 1)):
            arb = hier.add(m, arb_name, RoundRobinArbiter(width))
            m.d.comb += [arb.request.eq(request), arb.advance.eq(advance)]
            return arb.grant

        # Multi-output heads. One of them, chosen round robin and kept until it is allocated,
        # reserves its outputs; in each cycle one multi-output head whose outputs all have a free VC is
        # allocated (the reserving one first), before any single-output head.
        m_req = Signal(len(ivcs), name="multi_req")
        m.d.comb += m_req.eq(Cat(head_wait[i, a] & multi[i, a] & unblocked(i, a) for i, a in ivcs))
        m_fits = Signal(len(ivcs), name="multi_fits")
        m.d.comb += m_fits.eq(Cat(
            Cat(~want[i, a][o] | self.any_free[o] for o in targets[i]).all()
            for i, a in ivcs) & m_req)
        m_grant = Signal(len(ivcs), name="multi_grant")
        if p.pipelined:
            # The reservation as a register: the head chosen in an earlier cycle, while it still
            # requests (no arbiter between the requests and the single-output allocation).
            res = Signal(len(ivcs), name="multi_res_reg")
            m_res = Signal(len(ivcs), name="multi_res")
            keep = Signal(name="multi_res_keep")
            m.d.comb += [m_res.eq(res & m_req), keep.eq((m_res & ~m_grant).any())]
            pick = arbiter(len(ivcs), "multi_res", m_req, ~keep)
            m.d.sync += res.eq(Mux(keep, m_res, pick))
        else:
            m_res_done = Signal(name="multi_res_done")
            m_res = arbiter(len(ivcs), "multi_res", m_req, m_res_done)
            m.d.comb += m_res_done.eq((m_res & m_grant).any())
        m_any = arbiter(len(ivcs), "multi_fit", m_fits)
        m.d.comb += m_grant.eq(Mux((m_res & m_fits).any(), m_res, m_any))

        def outputs_of(heads, sig_name):
            """One bit per port: the outputs the heads (one-hot) want."""
            bits = Signal(len(here), name=sig_name)
            m.d.comb += bits.eq(Cat(
                Cat(heads[k] & want[i, a][o] for k, (i, a) in enumerate(ivcs)
                    if o in targets[i]).any()
                for o in here))
            return bits

        res_want = outputs_of(m_res, "multi_reserved")
        grant_want = outputs_of(m_grant, "multi_granted")
        # The reservation holds back the single-output heads of input i only if each reserved output
        # can follow input i under dimension-order routing (a later link than i's).
        holds_back = {}
        for i in here:
            outside = Const(sum(1 << o for o in here if o not in targets[i]), len(here))
            holds_back[i] = Signal(name=f"multi_holds_{name[i]}")
            m.d.comb += holds_back[i].eq((res_want & outside) == 0)

        # Single-output heads: per output, one request granted per cycle (round robin), unless a
        # multi-output head takes the output in this cycle (applied after the arbiter, which then
        # does not advance: the same as leaving every request out).
        granted = {(i, a): [m_grant[k]] for k, (i, a) in enumerate(ivcs)}
        for o in here:
            reqs = [(i, a) for i in sources[o] for a in range(V)]
            bits = [head_wait[i, a] & ~multi[i, a] & want[i, a][o] & ~blocked[i, a][o]
                    & ~(res_want[o] & holds_back[i]) for i, a in reqs]
            request = Signal(len(reqs), name=f"alloc_req_{name[o]}")
            m.d.comb += request.eq(Cat(bits) & self.any_free[o].replicate(len(reqs)))
            single = arbiter(len(reqs), f"alloc_{name[o]}", request, ~grant_want[o])
            grant = Signal(len(reqs), name=f"alloc_grant_{name[o]}")
            m.d.comb += grant.eq(single & (~grant_want[o]).replicate(len(reqs)))
            for k, (i, a) in enumerate(reqs):
                granted[i, a].append(grant[k])
            m.d.comb += self.alloc[o].eq(grant.any() | grant_want[o])

        for i, a in ivcs:
            now = Signal(name=f"granted_{name[i]}{a}")
            m.d.comb += now.eq(Cat(granted[i, a]).any())
            m.d.comb += [
                self.routed[i][a].eq(routed[i, a] | (0 if p.pipelined else now)),
                self.route[i][a].eq(Mux(routed[i, a], route[i, a], 0)),
            ]
            for o in targets[i]:
                m.d.comb += self.ovc[i][a][o].eq(ovc[i, a, o])
            with m.If(now):
                m.d.sync += [routed[i, a].eq(1), route[i, a].eq(want[i, a])]
                if not p.pipelined:
                    m.d.comb += self.route[i][a].eq(want[i, a])
                for o in targets[i]:
                    m.d.sync += ovc[i, a, o].eq(self.low[o])
                    if not p.pipelined:
                        m.d.comb += self.ovc[i][a][o].eq(self.low[o])
            with m.If(self.release[i][a]):
                m.d.sync += routed[i, a].eq(0)
        return m
