"""The output queue of the GEMM engine: result rows, and the credits that keep it from overflowing."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..lib import hier
from ..lib.fifo import Fifo
from .layouts import out_layout

__all__ = ["OutputQueue"]


class OutputQueue(wiring.Component):
    """A FIFO of ``out_fifo_depth`` result rows in front of ``o``, and the count of rows booked
    (a last-k-tile wavefront issued, ``booked``) and not yet taken from ``o``: the feeder issues
    such a wavefront only while the count is below the depth (``room``), so a result never finds
    the FIFO full, however long ``o`` stalls.

    Members
    -------
    w_data : In(cols * out_width + 1); w_en : In(1)
        A result row from the accumulator.
    booked : In(1)
    room : Out(1)
    pending : Out(1)
        Rows are booked or waiting.
    o : Out(stream.Signature(out_layout(cols, out_width)))
    """

    latency = 2
    """Cycles from ``w_en`` to the row on ``o`` (into the FIFO's storage, then its output
    register), when the FIFO is empty."""

    def __init__(self, params):
        self._p = p = params
        super().__init__({
            "w_data": In(p.out_width * p.cols + 1), "w_en": In(1), "booked": In(1),
            "room": Out(1), "pending": Out(1),
            "o": Out(stream.Signature(out_layout(p.cols, p.out_width))),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._p.out_fifo_depth
        fifo = hier.add(m, "fifo", Fifo(width=len(self.w_data), depth=depth, buffered=True))
        m.d.comb += [fifo.w_data.eq(self.w_data), fifo.w_en.eq(self.w_en),
                     self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.o.ready)]
        outstanding = Signal(range(depth + 1))
        taken = Signal()
        m.d.comb += taken.eq(self.o.valid & self.o.ready)
        with m.If(self.booked & ~taken):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(taken & ~self.booked):
            m.d.sync += outstanding.eq(outstanding - 1)
        m.d.comb += [self.room.eq(outstanding < depth), self.pending.eq(outstanding != 0)]
        return m
