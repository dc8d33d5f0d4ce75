"""The input buffer of a NoC port: one FIFO per virtual channel, with a same-cycle bypass."""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .head_order import HeadOrder
from .lib.hier import Reused
from .lib.noc import flit_layout, link_signature

__all__ = ["VcBuffer"]


class VcBuffer(Reused, wiring.Component):
    """Receives a link and holds its flits in one FIFO of ``vc_depth`` flits per virtual channel.

    The front flit of each VC is offered on ``valid``/``flit``; the router (or interface) takes it by
    raising ``pop`` for that VC in the same cycle, which returns a credit on the link at once
    (combinational; ``pop`` without ``valid`` does nothing). When a VC's FIFO is empty, a flit arriving on it is offered in the cycle it arrives
    (bypass) and is only written if it is not taken: this is what makes a hop cost one cycle (the link
    register of the upstream router) at zero load.

    The sender never sends without a credit, so the FIFO cannot overflow; a flit on a full FIFO would be
    lost, and never arrives under the credit protocol.

    With ``bypass=False`` (the registered mode) an arriving flit is always written first and offered
    from the next cycle, and the credit leaves one cycle after the pop, from a register: no
    combinational path then crosses the link in either direction.

    Head order (with more than one VC). The router and the interface keep packets of one flow in
    order across VCs (:class:`gen.router.Router`); for that the buffer tells the age of the *waiting
    heads* (:class:`gen.head_order.HeadOrder`, a part only buffers of more than one VC have): a
    head flit that has arrived and not yet been popped. The sender guarantees at most one waiting
    head per VC (it gives a VC to a new packet only once the previous packet's head has been popped,
    see :func:`gen.output_vcs.vc_free`), so the waiting heads of a port are totally ordered by their
    arrival cycle (one flit arrives per cycle). ``older[a * vcs + b]`` says that the waiting head of VC
    ``a`` arrived before that of VC ``b`` (meaningful when both wait; a head arriving in this cycle, offered
    through the bypass, is younger than every other); ``pending[c]``: VC c holds a waiting head;
    ``behind[c]``: that head is not at the front yet (the body of the previous packet is ahead of it).

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`
    bypass : bool
        Offer an arriving flit in its arrival cycle when the FIFO is empty.

    Members
    -------
    i : In(link_signature(params))
    valid : Out(vcs)
        The front flit of VC c is valid.
    flit : Out(flit_layout(params)).array(vcs)
        The front flit of each VC.
    pop : In(vcs)
        Take the front flit of VC c.
    pending, behind : Out(vcs)
    older : Out(vcs * vcs)
        Head order, see above (all zero with one VC).
    """

    module_suffix = "vc_buffer"

    def __init__(self, params, *, bypass=True):
        self._p = params
        self._bypass = bypass
        super().__init__({
            "i": In(link_signature(params)),
            "valid": Out(params.vcs),
            "flit": Out(flit_layout(params)).array(params.vcs),
            "pop": In(params.vcs),
            "pending": Out(params.vcs),
            "behind": Out(params.vcs),
            "older": Out(params.vcs * params.vcs),
        })

    @property
    def latency(self):
        """Cycles from a flit on the link to its offer at the front of an empty VC: 0 with the bypass,
        1 without."""
        return self.latency_of(self._bypass)

    @staticmethod
    def latency_of(bypass):
        return 0 if bypass else 1

    def elaborate(self, platform):
        m = Module()
        p = self._p
        depth = p.vc_depth
        taken = self.pop & self.valid
        if self._bypass:
            m.d.comb += self.i.credit.eq(taken)
        else:
            m.d.sync += self.i.credit.eq(taken)
        for c in range(p.vcs):
            slots = Array(Signal(flit_layout(p), name=f"vc{c}_slot{k}") for k in range(depth))
            rd = Signal(range(depth), name=f"vc{c}_rd")
            wr = Signal(range(depth), name=f"vc{c}_wr")
            count = Signal(range(depth + 1), name=f"vc{c}_count")
            arrive = Signal(name=f"vc{c}_arrive")
            m.d.comb += arrive.eq(self.i.valid & (self.i.vc == c))
            empty = count == 0
            m.d.comb += [
                self.valid[c].eq(~empty | (arrive if self._bypass else 0)),
                self.flit[c].eq(slots[rd]),
            ]
            if self._bypass:
                with m.If(empty):
                    m.d.comb += self.flit[c].eq(self.i.flit)
            pop = self.pop[c] & self.valid[c]
            write = arrive & ~(empty & pop)
            read = pop & ~empty
            with m.If(write):
                m.d.sync += slots[wr].eq(self.i.flit)
                m.d.sync += wr.eq(_next(wr, depth))
            with m.If(read):
                m.d.sync += rd.eq(_next(rd, depth))
            m.d.sync += count.eq(count + write - read)
        if p.vcs > 1:
            # The age order of waiting heads, for the in-order rule (all zero with one VC).
            order = m.submodules.head_order = HeadOrder(p)
            m.d.comb += [
                order.pop.eq(self.pop),
                self.pending.eq(order.pending),
                self.behind.eq(order.behind),
                self.older.eq(order.older),
            ]
            for c in range(p.vcs):
                m.d.comb += [
                    order.arrive_head[c].eq(self.i.valid & (self.i.vc == c) & self.i.flit.head),
                    order.front_head[c].eq(self.valid[c] & self.flit[c].head),
                ]
        return m

def _next(ptr, depth):
    """The FIFO pointer after ``ptr``, wrapping at ``depth``."""
    return 0 if depth == 1 else Mux(ptr == depth - 1, 0, ptr + 1)
