"""The virtual channels of one router output: which are held, their credits, which are free."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.hier import Reused

__all__ = ["OutputVcState", "vc_free"]


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


class OutputVcState(Reused, wiring.Component):
    """Per virtual channel of one output port: held by a packet (from its allocation until its tail
    has been sent), credits (free slots of the next router's input buffer for that VC) and the flits
    sent since the VC's last head; from these, the VCs a new packet may be given (:func:`vc_free`)
    and the lowest of them.

    A head given a VC (``alloc``) takes ``low``; a one-flit packet allocated and sent in the same cycle
    leaves the VC free. Credits count down by the flit sent (``send``, on ``send_vc``) and up by the
    ``credit`` bits of the link.

    :attr:`latency` = 1: a send, an allocation or a credit shows in ``free`` one cycle later.

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`

    Members
    -------
    credit : In(vcs)
        The link's credit lines (a slot of that VC freed at the receiver).
    alloc : In(1)
        A head is given VC ``low`` this cycle.
    send, send_vc, send_head, send_tail : In(1), In(vc_bits), In(1), In(1)
        A flit leaves on this output this cycle, on that VC, with those flags.
    free : Out(vcs)
        VC c can be given to a new packet.
    any_free : Out(1)
    low : Out(vc_bits)
        The lowest free VC (0 when none is).
    """

    module_suffix = "output_vcs"

    def __init__(self, params):
        self._p = params
        super().__init__({
            "credit": In(params.vcs),
            "alloc": In(1),
            "send": In(1), "send_vc": In(params.vc_bits), "send_head": In(1), "send_tail": In(1),
            "free": Out(params.vcs),
            "any_free": Out(1),
            "low": Out(params.vc_bits),
        })

    latency = 1
    """Cycles from a send, allocation or credit to its effect on ``free``."""

    def elaborate(self, platform):
        m = Module()
        p = self._p
        free = []
        for c in range(p.vcs):
            owned = Signal(name=f"owned{c}")
            credits = Signal(range(p.vc_depth + 1), init=p.vc_depth, name=f"credits{c}")
            since_head = Signal(range(p.max_packet_flits + 1), init=1, name=f"since_head{c}")
            f = Signal(name=f"free{c}")
            m.d.comb += f.eq(vc_free(p, owned, credits, since_head))
            free.append(f)
            used = Signal(name=f"used{c}")
            m.d.comb += used.eq(self.send & (self.send_vc == c))
            with m.If(self.alloc & (self.low == c)):
                m.d.sync += owned.eq(1)
            m.d.sync += credits.eq(credits + self.credit[c] - used)
            with m.If(used):
                m.d.sync += since_head.eq(Mux(self.send_head, 1, since_head + 1))
                with m.If(self.send_tail):
                    m.d.sync += owned.eq(0)
        m.d.comb += [self.free.eq(Cat(free)), self.any_free.eq(self.free.any())]
        for c in reversed(range(p.vcs)):
            with m.If(self.free[c]):
                m.d.comb += self.low.eq(c)
        return m
