"""A synchronous FIFO as a module of its own: Amaranth's ``SyncFIFO`` (or ``SyncFIFOBuffered``) behind
a plain interface, emitted once per width, depth and kind (``<top>_fifo_w<width>_d<depth>``)."""

from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .hier import Reused

__all__ = ["Fifo"]


class Fifo(Reused, wiring.Component):
    """First-in first-out queue of ``depth`` words of ``width`` bits.

    The interface is that of :class:`amaranth.lib.fifo.SyncFIFO`: ``w_data``, ``w_en``, ``w_rdy`` on
    the write side, ``r_data``, ``r_en``, ``r_rdy`` on the read side, a word moving when ``en`` and
    ``rdy`` are both high. ``buffered``: :class:`amaranth.lib.fifo.SyncFIFOBuffered` (the read data
    comes from a register, one more cycle from write to read). The storage has no initial contents
    (no word is read before it was written); the read data of an empty queue is undefined.
    """

    module_suffix = "fifo"
    memory_init = False

    def __init__(self, *, width, depth, buffered=False):
        if width < 1 or depth < 1:
            raise ValueError(f"FIFO of width {width} and depth {depth}: both must be at least 1")
        self._width, self._depth, self._buffered = width, depth, buffered
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
        })

    def module_suffix_for(self, parameters):
        kind = "fifo_buffered" if self._buffered else "fifo"
        return f"{kind}_w{self._width}_d{self._depth}"

    def elaborate(self, platform):
        m = Module()
        kind = fifo.SyncFIFOBuffered if self._buffered else fifo.SyncFIFO
        m.submodules.queue = q = kind(width=self._width, depth=self._depth)
        m.d.comb += [
            q.w_data.eq(self.w_data), q.w_en.eq(self.w_en), self.w_rdy.eq(q.w_rdy),
            self.r_data.eq(q.r_data), q.r_en.eq(self.r_en), self.r_rdy.eq(q.r_rdy),
        ]
        return m
