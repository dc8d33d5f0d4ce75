"""A round-robin arbiter: one grant among requesters, fair over time."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
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
        m.d.comb += high.eq(self.request & above)
        high_or, any_or = _prefix_or(high), _prefix_or(self.request)
        # The lowest set bit: set, and nothing set below it (prefix ORs of logarithmic depth rather
        # than the carry chain of x & -x).
        first_high = Cat(high[0], *(high[k] & ~high_or[k - 1] for k in range(1, w)))
        first_any = Cat(self.request[0], *(self.request[k] & ~any_or[k - 1] for k in range(1, w)))
        m.d.comb += self.grant.eq(Mux(high_or[-1], first_high, first_any))
        grant_or = _prefix_or(self.grant)
        with m.If(self.grant.any() & self.advance):
            # The bits above the (one-hot) grant.
            m.d.sync += above.eq(Cat(Const(0, 1), *grant_or[:-1]))
        return m


def _prefix_or(value):
    """``[value[0], value[0] | value[1], ...]``: the OR of each prefix, in log2(width) levels
    (Kogge and Stone's parallel prefix)."""
    bits = [value[k] for k in range(len(value))]
    step = 1
    while step < len(bits):
        bits = [bits[k] | bits[k - step] if k >= step else bits[k] for k in range(len(bits))]
        step *= 2
    return bits
