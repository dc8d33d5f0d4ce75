"""The in-order rule of the mesh router: a head may not overtake an older head of its input."""

from amaranth.hdl import Cat, Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.noc import PORTS, can_turn

__all__ = ["InOrderRule"]


class InOrderRule(wiring.Component):
    """Which outputs each input VC's waiting head may not be given yet, so that packets of one
    (source, destination) pair stay in order across virtual channels (the argument is in
    :class:`gen.router.Router`).

    ``blocked[i][a]`` has bit ``o`` set when an older waiting head of input port ``i``, on another VC
    ``b``, still has to be sent on ``o`` (it wants ``o`` and ``sent[i][b]`` lacks ``o``) or has no
    known route yet because it waits behind the body of the packet before it (``behind``); the age
    order is the input buffer's (``older``, ``pending``, ``behind`` of
    :class:`gen.vc_buffer.VcBuffer`). Only a router with more than one VC has this part: with one VC
    every input is a single first-in first-out queue.

    Pipelined router (``params.pipelined``: a head is switched in the cycle after its allocation).
    An older head that already holds its VCs (``routed``) no longer holds back the allocation of
    a younger one; instead it holds back the younger one's switch requests: ``sw_blocked[i][a]``
    has bit ``o`` set while an older waiting head of input ``i`` holds its VCs, has ``o`` in its
    ``route`` and has not been sent on ``o``. The younger head is then sent on ``o`` at least a
    cycle after the older one (``sent`` is registered), so it still reaches the next input later;
    and it waits only for a head that holds its VCs and so waits only for the switch.

    Combinational (:attr:`latency` = 0).

    Parameters
    ----------
    params : :class:`gen.lib.noc.NocParams`
        With ``vcs`` > 1.

    Members
    -------
    older : In(vcs * vcs).array(5)
    pending, behind : In(vcs).array(5)
        The head order of each input port's buffer.
    want, sent : In(5).array(5, vcs)
        The outputs each input VC's front head needs, and those it has been sent on.
    blocked : Out(5).array(5, vcs)
    routed : In(1).array(5, vcs)
        Pipelined only: the input VC's packet holds its VCs (registered).
    route : In(5).array(5, vcs)
        Pipelined only: its outputs (registered).
    sw_blocked : Out(5).array(5, vcs)
        Pipelined only: the outputs the input VC may not request at the switch yet.
    """

    def __init__(self, params):
        self._p = params
        n, V = len(PORTS), params.vcs
        super().__init__({
            "older": In(V * V).array(n),
            "pending": In(V).array(n),
            "behind": In(V).array(n),
            "want": In(n).array(n, V),
            "sent": In(n).array(n, V),
            "blocked": Out(n).array(n, V),
            "routed": In(1).array(n, V),
            "route": In(n).array(n, V),
            "sw_blocked": Out(n).array(n, V),
        })

    latency = 0
    """Combinational."""

    def elaborate(self, platform):
        m = Module()
        p = self._p
        V = p.vcs
        ports = range(len(PORTS))
        for i in ports:
            for a in range(V):
                bits, sw_bits = [], []
                for o in ports:
                    if not can_turn(p.routing, i, o):
                        bits.append(Const(0, 1))
                        sw_bits.append(Const(0, 1))
                        continue
                    terms, sw_terms = [], []
                    for b in range(V):
                        if b == a:
                            continue
                        older = self.older[i][b * V + a] & self.pending[i][b]
                        unsent = self.want[i][b][o] & ~self.sent[i][b][o]
                        if p.pipelined:
                            unsent = unsent & ~self.routed[i][b]
                            sw_terms.append(older & ~self.behind[i][b] & self.routed[i][b]
                                            & self.route[i][b][o] & ~self.sent[i][b][o])
                        terms.append(older & (self.behind[i][b] | unsent))
                    bits.append(Cat(terms).any())
                    sw_bits.append(Cat(sw_terms).any() if sw_terms else Const(0, 1))
                m.d.comb += [self.blocked[i][a].eq(Cat(bits)),
                             self.sw_blocked[i][a].eq(Cat(sw_bits))]
        return m
