"""A round-robin arbiter: one grant among requesters, fair over time."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.hier import Reused

__all__ = ["RoundRobinArbiter"]


class RoundRobinArbiter(Reused, wiring.Component):
    """Grants one of ``width`` requesters per cycle, round robin.

    ``grant`` is the one-hot lowest set bit of ``request`` at or above the position just past the
    previous used grant, or, when none is there, the lowest set bit of ``request`` (zero when nothing
    is requested). The position is a register of the bits above the last grant (all ones after reset),
    updated in a cycle where ``grant`` is not zero and ``advance`` is high; with ``advance`` low the
    same requester keeps priority. A requester that keeps requesting waits at most ``width - 1`` used
    grants (Dally and Towles, *Principles and Practices of Interconnection Networks*, 2004, 18.4).

    The grant is combinational (:attr:`latency` = 0): it depends on ``request`` of the same cycle.

    Parameters
    ----------
    width : int
        Number of requesters (at least 1).

    Members
    -------
    request : In(width)
    advance : In(1)
        The grant of this cycle is used: the next search starts above it.
    grant : Out(width)
        One-hot (or zero).
    """

    module_suffix = "rr_arbiter"

    def __init__(self, width):
        self._width = width
        super().__init__({"request": In(width), "advance": In(1), "grant": Out(width)})

    def module_suffix_for(self, parameters):
        return f"rr_arbiter{self._width}"

    @property
    def width(self):
        return self._width

    latency = 0
    """Cycles from a request to its grant: 0 (combinational)."""

    def elaborate(self, platform):
        m = Module()
        w = self._width
        above = Signal(w, init=(1 << w) - 1)
        high = Signal(w)
        first_high = Signal(w)
        first_any = Signal(w)
        m.d.comb += [
            high.eq(self.request & above),
            first_high.eq((high & (~high + 1))[:w]),
            first_any.eq((self.request & (~self.request + 1))[:w]),
            self.grant.eq(first_any),
        ]
        with m.If(high.any()):
            m.d.comb += self.grant.eq(first_high)
        with m.If(self.grant.any() & self.advance):
            m.d.sync += above.eq(~(self.grant | (self.grant - 1))[:w])
        return m
