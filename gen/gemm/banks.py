"""The bookkeeping of the array's two weight banks."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WeightBanks"]


class WeightBanks(wiring.Component):
    """Which of the two weight banks hold a tile, and which are free to load.

    The loader sets ``full[b]`` (``set``) when bank b holds a tile; the feeder clears it (``clr``)
    when the tile's last wavefront has entered the array. The bank is free again ``drain`` cycles
    later, when that wavefront has passed every PE (``drain`` = the array's latency + 1).

    Members
    -------
    set, clr : In(2)
        Per bank: set or clear ``full`` at the next clock edge.
    full : Out(2)
    free : Out(2)
        Per bank: neither full nor draining.
    """

    latency = 1
    """Cycles from ``set`` or ``clr`` to ``full``."""

    def __init__(self, *, drain):
        self._drain = drain
        super().__init__({"set": In(2), "clr": In(2), "full": Out(2), "free": Out(2)})

    def elaborate(self, platform):
        m = Module()
        full = Signal(2)
        m.d.sync += full.eq((full | self.set) & ~self.clr)
        m.d.comb += self.full.eq(full)
        for b in range(2):
            drain = Signal(range(self._drain + 1), name=f"drain_{b}")
            with m.If(self.clr[b]):
                m.d.sync += drain.eq(self._drain)
            with m.Elif(drain != 0):
                m.d.sync += drain.eq(drain - 1)
            m.d.comb += self.free[b].eq(~full[b] & (drain == 0))
        return m
