"""The arrival order of the waiting head flits of one input port's virtual channels."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["HeadOrder"]


class HeadOrder(wiring.Component):
    """Tracks the *waiting heads* of an input buffer with more than one VC: head flits that have
    arrived and not yet been popped, at most one per VC (:class:`gen.vc_buffer.VcBuffer`).

    ``pending[c]``: VC c holds a waiting head; ``behind[c]``: it is not at the front yet;
    ``older[a * vcs + b]``: the waiting head of VC ``a`` arrived before that of VC ``b`` (meaningful
    when both wait; a head arriving in this cycle is younger than every other). One flit arrives per
    cycle, so the waiting heads are totally ordered.

    :attr:`latency` = 0: an arriving head counts (younger than the others) in its arrival cycle.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    arrive_head : In(vcs)
        A head flit arrives on VC c.
    front_head : In(vcs)
        VC c offers a head flit at its front.
    pop : In(vcs)
        The front flit of VC c is taken.
    pending, behind : Out(vcs)
    older : Out(vcs * vcs)
    """

    latency = 0

    def __init__(self, params):
        self._p = params
        V = params.vcs
        super().__init__({
            "arrive_head": In(V), "front_head": In(V), "pop": In(V),
            "pending": Out(V), "behind": Out(V), "older": Out(V * V),
        })

    def elaborate(self, platform):
        m = Module()
        V = self._p.vcs
        waiting = [Signal(name=f"waiting_head{c}") for c in range(V)]   # arrived, not popped, earlier
        older = {(a, b): Signal(name=f"older_{a}_{b}") for a in range(V) for b in range(V) if a != b}
        for c in range(V):
            m.d.comb += [
                self.pending[c].eq(waiting[c] | self.front_head[c]),
                self.behind[c].eq(waiting[c] & ~self.front_head[c]),
            ]
            m.d.sync += waiting[c].eq((waiting[c] | self.arrive_head[c])
                                      & ~(self.pop[c] & self.front_head[c]))
        for (a, b), reg in older.items():
            with m.If(self.arrive_head[b]):
                m.d.sync += reg.eq(1)
            with m.Elif(self.arrive_head[a]):
                m.d.sync += reg.eq(0)
            m.d.comb += self.older[a * V + b].eq(
                (reg | self.arrive_head[b]) & ~self.arrive_head[a])
        return m
