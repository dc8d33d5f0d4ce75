"""Streaming base-2, online-normalized fixed-point softmax (Softermax).

References: Stevens et al., "Softermax: Hardware/Software Co-Design of an Efficient Softmax for
Transformers", DAC 2021 (base 2, integer running maximum, fixed point); Milakov and Gimelshein, "Online
normalizer calculation for softmax", 2018 (running maximum and sum in one pass).

The arithmetic is spelled out, rounding by rounding, in :mod:`sim.golden.softmax`, which is its
bit-exact model; this module is the hardware that does the same.

Block diagram::

    i --> [cut] --+--> [s1] --> RunningSum (pass 1: m, d) --+--> Reciprocal (pipelined divider) --+
                  |                                         |                                     |
                  |                              row info (m, k, beats)              R            |
                  |                                         v                                     v
                  +--> row buffer (beats)        row information queue (two RAMs, one per writer)
                             |                                         |
                             +--> read <-- issue (a beat per cycle) <--+
                             |
                             +--> Scale (pass 2: y = round(2**(x-m) * R >> t)) --> output queue --> o

Nothing between the input and the output queue stalls. The row buffer takes every beat until it is
full; the row information queue has as many entries as the buffer has beats (a row of at least one
beat in the buffer for each), so the divider never waits for it; pass 2 issues a beat only when the
output queue has room for every beat in flight. Rows of any length follow each other at one beat per
cycle, and the input waits only when the buffer is full: when the output is stalled, or while a row
longer than the buffer's slack (:attr:`Softmax.buffer_depth` minus the row's beats) waits for its
reciprocal.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..lib import hier
from ..lib.fifo import Fifo
from ..lib.hier import Reused
from ..lib.sram import Sram
from .arith import derive_widths
from .pass1 import RunningSum, beat_layout
from .pass2 import Scale, info_layout
from .recip import Reciprocal

__all__ = ["Softmax", "input_layout", "output_layout", "PIPELINE_DEFAULTS"]

PIPELINE_DEFAULTS = {"table_reg": False, "shift_reg": True, "recip_step_bits": 1,
                     "mult_stages": 2}
"""The pipelining a chip wants (see :class:`Softmax`): on OSU 0.18 um cells every stage then fits
about 4.8 ns, as the INT8 PE's 5.6 ns; a register after the table lookups would only add area and
latency, two quotient bits per stage would set the clock (about 7.9 ns)."""


def input_layout(lanes, in_width):
    """Input beat: ``data`` (``lanes`` signed scores), ``mask`` (bit k masks lane k), ``last``."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(in_width), lanes),
        "mask": lanes,
        "last": 1,
    })


def output_layout(lanes, out_frac):
    """Output beat: ``data`` (``lanes`` probabilities, ``out_frac`` fraction bits, 1.0 included),
    ``last`` (as the input's) and ``all_masked`` (the row had no unmasked element; data all 0)."""
    return data.StructLayout({
        "data": data.ArrayLayout(out_frac + 1, lanes),
        "last": 1,
        "all_masked": 1,
    })


class Softmax(Reused, wiring.Component):
    """Softmax over rows of scores arriving ``lanes`` per beat.

    A row is a run of beats ending with ``last``; a row of L elements takes ``ceil(L / P)`` beats, the
    lanes past its end masked. Masked lanes take no part and get probability 0; a row whose every lane is
    masked gets all zeros and ``all_masked``. The output has one beat per input beat, same lanes, same
    ``last``. A row longer than ``ceil(max_len / P)`` beats is cut there: the beat gets ``last`` on the
    output, the rest is a new row, and ``cut_rows`` counts it.

    Parameters
    ----------
    lanes : int
        P, elements per beat.
    in_width, in_frac : int
        Input format: signed, ``in_width`` bits, ``in_frac`` of them fraction.
    out_frac : int
        Output format: unsigned, ``out_frac + 1`` bits, ``out_frac`` fraction.
    max_len : int
        Longest row L_max, in elements.
    sum_frac, recip_bits : int
        S and M (see :mod:`sim.golden.softmax`); 0 derives them from the error target.
    table_reg, shift_reg : bool
        A register after the exp2 table lookups, and after the shifts of the table entries, in
        both passes (one cycle of latency each).
    recip_step_bits : int
        Division steps (quotient bits) per pipeline stage of the reciprocal, 1 to ``M + 2``: the
        reciprocal takes ``1 + ceil((M + 2) / recip_step_bits)`` cycles.
    mult_stages : int
        1: the output multiply in one stage; 2: partial products first (one more cycle).

    Members
    -------
    i : In(stream.Signature(input_layout(...)))
    o : Out(stream.Signature(output_layout(...)))
    cut_rows : Out(16)
        Rows cut at the maximum length (saturating).
    """

    module_suffix = "softmax"

    def __init__(self, *, lanes, in_width, in_frac, out_frac, max_len, sum_frac=0, recip_bits=0,
                 table_reg=False, shift_reg=True, recip_step_bits=1, mult_stages=2):
        if not 0 <= in_frac <= in_width:
            raise ValueError(f"in_frac = {in_frac}: must be from 0 to in_width = {in_width}")
        s, m = derive_widths(out_frac, max_len)
        self._lanes = lanes
        self._in_width = in_width
        self._in_frac = in_frac
        self._out_frac = out_frac
        self._max_len = max_len
        self._sum_frac = sum_frac or s
        self._recip_bits = recip_bits or m
        self._max_beats = -(-max_len // lanes)
        self._sum_width = self._sum_frac + (self._max_beats * lanes).bit_length()
        self._beats_bits = self._max_beats.bit_length()
        self._pass1 = RunningSum(lanes=lanes, in_width=in_width, in_frac=in_frac,
                                 sum_frac=self._sum_frac, sum_width=self._sum_width,
                                 table_reg=table_reg, shift_reg=shift_reg)
        self._info = info_layout(in_width, in_frac, self._sum_width, self._sum_frac,
                                 self._recip_bits, self._beats_bits)
        self._recip = Reciprocal(sum_width=self._sum_width, recip_bits=self._recip_bits,
                                 step_bits=recip_step_bits)
        self._pass2 = Scale(lanes=lanes, in_width=in_width, in_frac=in_frac, out_frac=out_frac,
                            sum_frac=self._sum_frac, sum_width=self._sum_width,
                            recip_bits=self._recip_bits, beats_bits=self._beats_bits,
                            table_reg=table_reg, shift_reg=shift_reg, mult_stages=mult_stages)
        self._pipeline = {"table_reg": bool(table_reg), "shift_reg": bool(shift_reg),
                          "recip_step_bits": recip_step_bits, "mult_stages": mult_stages}
        self._depth = self._max_beats + self.latency_constant + 2
        self._out_depth = self._pass2.latency + 4
        super().__init__({
            "i": In(stream.Signature(input_layout(lanes, in_width))),
            "o": Out(stream.Signature(output_layout(lanes, out_frac))),
            "cut_rows": Out(16),
        })

    lanes = property(lambda self: self._lanes)
    in_width = property(lambda self: self._in_width)
    in_frac = property(lambda self: self._in_frac)
    out_frac = property(lambda self: self._out_frac)
    max_len = property(lambda self: self._max_len)
    sum_frac = property(lambda self: self._sum_frac)
    recip_bits = property(lambda self: self._recip_bits)
    max_beats = property(lambda self: self._max_beats)
    sum_width = property(lambda self: self._sum_width)
    pipeline = property(lambda self: dict(self._pipeline), doc="the pipelining knobs")
    buffer_depth = property(lambda self: self._depth, doc="row buffer depth in beats")
    info_depth = property(lambda self: self._depth, doc="row information queue depth in rows")
    out_depth = property(lambda self: self._out_depth, doc="output queue depth in beats")

    def _row_layout(self):
        """The row information known when pass 1 ends (all but R)."""
        return data.StructLayout({name: self._info[name].shape
                                  for name in ("m", "ks", "empty", "beats")})

    @property
    def divider_cycles(self):
        """Cycles the reciprocal takes for one row (it takes a new row every cycle)."""
        return self._recip.latency

    @property
    def min_beats(self):
        """Rows of at least this many beats follow each other without idle cycles: every row."""
        return 1

    @property
    def latency_parts(self):
        """The cycles of :attr:`latency_constant`, part by part."""
        return {"input_register": 1, "pass1": self._pass1.latency,
                "reciprocal": self._recip.latency, "row_info_queue": 1, "issue_and_read": 2,
                "pass2": self._pass2.latency, "output_queue": 1}

    @property
    def latency_constant(self):
        """Cycles from a row's first input handshake to its first output beat, minus its beats:
        the sum of :attr:`latency_parts`."""
        return sum(self.latency_parts.values())

    def latency(self, length):
        """First input to first output, in cycles, for a row of ``length`` elements (no stalls)."""
        return -(-length // self._lanes) + self.latency_constant

    def elaborate(self, platform):
        m = Module()
        P, W = self._lanes, self._in_width
        Bm, depth = self._max_beats, self._depth
        bl = beat_layout(P, W)

        # --- Row buffer: every accepted beat, read back by pass 2.
        m.submodules.buf = buf = Sram(shape=bl, depth=depth)
        wr, rd = buf.w[0], buf.r[0]
        wr_ptr = Signal(range(depth))
        rd_ptr = Signal(range(depth))
        count = Signal(range(depth + 1))

        def wrap_inc(ptr, size):
            return Mux(ptr == size - 1, 0, ptr + 1)

        # --- Input: cut overlong rows, fill the buffer and the pass-1 register.
        in_beat = Signal(range(Bm))
        cut = Signal()
        take = Signal()
        issue = Signal()
        m.d.comb += [
            cut.eq(in_beat == Bm - 1),
            self.i.ready.eq(count != depth),
            take.eq(self.i.valid & self.i.ready),
            wr.addr.eq(wr_ptr),
            wr.data.data.eq(self.i.payload.data),
            wr.data.mask.eq(self.i.payload.mask),
            wr.data.last.eq(self.i.payload.last | cut),
            wr.en.eq(take),
        ]
        s1_valid = Signal()
        s1 = Signal(bl, reset_less=True)
        m.d.sync += s1_valid.eq(take)
        with m.If(take):
            m.d.sync += [wr_ptr.eq(wrap_inc(wr_ptr, depth)), s1.eq(wr.data),
                         in_beat.eq(Mux(wr.data.last, 0, in_beat + 1))]
            with m.If(cut & ~self.i.payload.last & (self.cut_rows != 0xFFFF)):
                m.d.sync += self.cut_rows.eq(self.cut_rows + 1)
        # count + take - issue, with the input's take choosing between two precomputed values.
        m.d.sync += count.eq(Mux(take, count + 1 - issue, count - issue))

        # --- Pass 1 and the reciprocal.
        p1 = hier.add(m, "pass1", self._pass1)
        m.d.comb += [p1.i.valid.eq(s1_valid), p1.i.beat.eq(s1)]
        in_row_beats = Signal(self._beats_bits)
        row_beats = Signal(self._beats_bits)
        with m.If(take):
            m.d.sync += in_row_beats.eq(Mux(wr.data.last, 0, in_row_beats + 1))
            with m.If(wr.data.last):
                m.d.sync += row_beats.eq(in_row_beats + 1)
        # The row's beat count reaches pass 1's output in step with it: the count of the last
        # row taken is held until the next row ends, at least one beat (pass 1's latency) later.
        beats_at = Signal(self._beats_bits)
        beats_pipe = row_beats
        for n in range(self._pass1.latency):
            reg = Signal(self._beats_bits, name=f"row_beats_d{n}", reset_less=True)
            m.d.sync += reg.eq(beats_pipe)
            beats_pipe = reg
        m.d.comb += beats_at.eq(beats_pipe)
        rc = hier.add(m, "recip", self._recip)
        m.d.comb += [rc.i.valid.eq(p1.o.valid), rc.i.d.eq(p1.o.d)]

        # --- Row information queue: one entry per row in the buffer, never full. What pass 1
        # knows is written when it ends, R when the reciprocal has it (rows stay in order).
        m.submodules.info_row = info_row = Sram(shape=self._row_layout(), depth=depth)
        m.submodules.info_r = info_r = Sram(shape=self._recip_bits + 2, depth=depth)
        jw, rw = info_row.w[0], info_r.w[0]
        q_job = Signal(range(depth))
        q_wr = Signal(range(depth))
        q_rd = Signal(range(depth))
        q_count = Signal(range(depth + 1))
        m.d.comb += [jw.addr.eq(q_job), jw.en.eq(p1.o.valid), jw.data.m.eq(p1.o.m),
                     jw.data.ks.eq(rc.k - self._sum_frac), jw.data.empty.eq(p1.o.empty),
                     jw.data.beats.eq(beats_at),
                     rw.addr.eq(q_wr), rw.en.eq(rc.o.valid), rw.data.eq(rc.o.r)]
        with m.If(p1.o.valid):
            m.d.sync += q_job.eq(wrap_inc(q_job, depth))
        with m.If(rc.o.valid):
            m.d.sync += q_wr.eq(wrap_inc(q_wr, depth))
        ir_data = Signal(self._info)
        m.d.comb += [ir_data.m.eq(info_row.r[0].data.m), ir_data.ks.eq(info_row.r[0].data.ks),
                     ir_data.empty.eq(info_row.r[0].data.empty),
                     ir_data.beats.eq(info_row.r[0].data.beats), ir_data.r.eq(info_r.r[0].data)]

        # --- Issue: one beat per cycle of the row at the head, while the output queue has room.
        cur = Signal(self._info, reset_less=True)
        cur_valid = Signal()
        cur_left = Signal(self._beats_bits)
        pend = Signal()             # the queue's read data is on its port this cycle
        outstanding = Signal(range(self._out_depth + 1))
        head = Signal(self._info)
        left = Signal(self._beats_bits)
        have = Signal()
        finishing = Signal()
        q_read = Signal()
        m.d.comb += [
            head.eq(Mux(pend, ir_data, cur)),
            left.eq(Mux(pend, ir_data.beats, cur_left)),
            have.eq(pend | cur_valid),
            issue.eq(have & (outstanding != self._out_depth)),
            finishing.eq(issue & (left == 1)),
            q_read.eq((q_count != 0) & (~have | finishing)),
            info_row.r[0].addr.eq(q_rd), info_row.r[0].en.eq(q_read),
            info_r.r[0].addr.eq(q_rd), info_r.r[0].en.eq(q_read),
            rd.addr.eq(rd_ptr),
            rd.en.eq(issue),
        ]
        m.d.sync += [pend.eq(q_read), q_count.eq(q_count + rc.o.valid - q_read)]
        with m.If(q_read):
            m.d.sync += q_rd.eq(wrap_inc(q_rd, depth))
        with m.If(issue):
            m.d.sync += [cur.eq(head), cur_left.eq(left - 1), cur_valid.eq(~finishing),
                         rd_ptr.eq(wrap_inc(rd_ptr, depth))]
        with m.Elif(pend):
            m.d.sync += [cur.eq(head), cur_left.eq(left), cur_valid.eq(1)]

        # --- Pass 2, and the output queue.
        p_valid = Signal()
        p_info = Signal(self._info, reset_less=True)
        m.d.sync += [p_valid.eq(issue), p_info.eq(head)]
        p2 = hier.add(m, "pass2", self._pass2)
        m.d.comb += [p2.i.valid.eq(p_valid), p2.i.beat.eq(rd.data), p2.i.info.eq(p_info)]
        ol = output_layout(P, self._out_frac)
        oq = hier.add(m, "out_queue", Fifo(width=ol.size, depth=self._out_depth, buffered=True))
        ow = data.View(ol, oq.w_data)
        m.d.comb += [oq.w_en.eq(p2.o.valid), ow.data.eq(p2.o.data), ow.last.eq(p2.o.last),
                     ow.all_masked.eq(p2.o.all_masked),
                     self.o.valid.eq(oq.r_rdy), self.o.payload.eq(oq.r_data),
                     oq.r_en.eq(self.o.ready)]
        pop = Signal()
        m.d.comb += pop.eq(oq.r_rdy & self.o.ready)
        m.d.sync += outstanding.eq(Mux(pop, outstanding + issue - 1, outstanding + issue))
        return m
