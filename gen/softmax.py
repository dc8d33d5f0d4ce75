"""Streaming base-2, online-normalized fixed-point softmax (Softermax).

References: Stevens et al., "Softermax: Hardware/Software Co-Design of an Efficient Softmax for
Transformers", DAC 2021 (base 2, integer running maximum, fixed point); Milakov and Gimelshein, "Online
normalizer calculation for softmax", 2018 (running maximum and sum in one pass).

The arithmetic is spelled out, rounding by rounding, in :mod:`sim.golden.softmax`, which is its
bit-exact model; this module is the hardware that does the same.

Block diagram::

    i --> [row counter] --+--> [S1 register] --> pass 1: max, 2**(x-m), d' = (d >> dm) + sum --> job
                          |                                                                      |
                          +--> row buffer (beats)                      normalize d, restoring divider
                                     |                                                           |
                                     +--> read <-- row info FIFO (m, R, shift, beats, empty) <---+
                                     |
                                     +--> pass 2: n = 2**(x-m), y = round(n * R >> t) --> [o register] --> o

While pass 2 of a row reads the buffer, pass 1 of the next row fills it: rows follow each other without
idle cycles when they have at least :attr:`Softmax.min_beats` beats.
"""

from math import isqrt

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.fifo import Fifo
from .lib.hier import Reused
from .lib.sram import Sram

__all__ = ["Softmax", "input_layout", "output_layout", "exp2_entries", "derive_widths"]


def _clog2(n):
    return max(0, (n - 1).bit_length())


def derive_widths(out_frac, max_len):
    """``(sum_frac, recip_bits)`` meeting a 0.51 LSB error bound (derivation in sim/golden/softmax.py):
    ``S = O + ceil(log2(2 L_max + 3)) + 8``, ``M = O + 8``."""
    return out_frac + _clog2(2 * max_len + 3) + 8, out_frac + 8


def exp2_entries(in_frac, sum_frac):
    """``round_half_up(2**(r / 2**F) * 2**S)`` for ``r < 2**F``, by ``F`` nested integer square roots of
    ``2**(r + (S + 1) * 2**F)`` (which give ``floor(2 * 2**(r/2**F + S))`` exactly)."""
    out = []
    for r in range(1 << in_frac):
        a = 1 << (r + (sum_frac + 1) * (1 << in_frac))
        for _ in range(in_frac):
            a = isqrt(a)
        out.append((a + 1) >> 1)
    return out


def input_layout(lanes, in_width):
    """Input beat: ``data`` (``lanes`` signed scores), ``mask`` (bit k masks lane k), ``last``."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(in_width), lanes),
        "mask": unsigned(lanes),
        "last": unsigned(1),
    })


def output_layout(lanes, out_frac):
    """Output beat: ``data`` (``lanes`` probabilities, ``out_frac`` fraction bits, 1.0 included),
    ``last`` (as the input's) and ``all_masked`` (the row had no unmasked element; data all 0)."""
    return data.StructLayout({
        "data": data.ArrayLayout(unsigned(out_frac + 1), lanes),
        "last": unsigned(1),
        "all_masked": unsigned(1),
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

    Members
    -------
    i : In(stream.Signature(input_layout(...)))
    o : Out(stream.Signature(output_layout(...)))
    cut_rows : Out(16)
        Rows cut at the maximum length (saturating).
    """

    module_suffix = "softmax"

    def __init__(self, *, lanes, in_width, in_frac, out_frac, max_len, sum_frac=0, recip_bits=0):
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
        self._depth = self._max_beats + self._recip_bits + 8
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
    buffer_depth = property(lambda self: self._depth, doc="row buffer depth in beats")

    @property
    def divider_cycles(self):
        """Cycles the reciprocal unit spends on one row: take, ``M + 2`` quotient bits, hand over."""
        return self._recip_bits + 3

    @property
    def min_beats(self):
        """Rows of at least this many beats follow each other without idle cycles."""
        return self.divider_cycles

    @property
    def latency_constant(self):
        """Cycles from a row's first input handshake to its first output beat, minus its beats."""
        return self._recip_bits + 8

    def latency(self, length):
        """First input to first output, in cycles, for a row of ``length`` elements (no stalls)."""
        return -(-length // self._lanes) + self.latency_constant

    def elaborate(self, platform):
        m = Module()
        P, W, F = self._lanes, self._in_width, self._in_frac
        S, M, Of = self._sum_frac, self._recip_bits, self._out_frac
        Wd, cap, Bm = self._sum_width, self._sum_frac + 2, self._max_beats
        table = Array(Const(v, S + 1) for v in exp2_entries(F, S))
        int_shape = signed(W - F + 2)          # fl, ce and m
        ce_min = -(1 << (W - 1 - F)) if W > F else -1
        beats_shape = unsigned(Bm.bit_length())

        # --- Row buffer: every accepted beat, read back by pass 2.
        buf_layout = data.StructLayout({"data": data.ArrayLayout(signed(W), P), "mask": P,
                                        "last": 1})
        m.submodules.buf = buf = Sram(shape=buf_layout, depth=self._depth)
        wr, rd = buf.w[0], buf.r[0]
        wr_ptr = Signal(range(self._depth))
        rd_ptr = Signal(range(self._depth))
        count = Signal(range(self._depth + 1))

        def wrap_inc(ptr):
            return Mux(ptr == self._depth - 1, 0, ptr + 1)

        # --- Input: cut overlong rows, fill the buffer and the pass-1 register.
        in_beat = Signal(range(Bm))
        s1 = Signal(buf_layout)
        s1_valid = Signal()
        s1_adv = Signal()
        job_valid = Signal()
        div_take = Signal()
        cut = Signal()
        take = Signal()
        m.d.comb += [
            cut.eq(in_beat == Bm - 1),
            self.i.ready.eq((count < self._depth) & (~s1_valid | s1_adv)),
            take.eq(self.i.valid & self.i.ready),
            wr.addr.eq(wr_ptr),
            wr.data.data.eq(self.i.payload.data),
            wr.data.mask.eq(self.i.payload.mask),
            wr.data.last.eq(self.i.payload.last | cut),
            wr.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += [wr_ptr.eq(wrap_inc(wr_ptr)), s1.eq(wr.data), s1_valid.eq(1)]
            m.d.sync += in_beat.eq(Mux(wr.data.last, 0, in_beat + 1))
            with m.If(cut & ~self.i.payload.last & (self.cut_rows != 0xFFFF)):
                m.d.sync += self.cut_rows.eq(self.cut_rows + 1)
        with m.Elif(s1_adv):
            m.d.sync += s1_valid.eq(0)

        def lane_terms(x, live, m_ref):
            """``2**(x - m_ref)`` with S fraction bits, truncated, 0 for dead lanes; and fl, ce."""
            fl = Signal(int_shape)
            ce = Signal(int_shape)
            sh = Signal(int_shape)
            term = Signal(S + 1)
            m.d.comb += [
                fl.eq(x >> F),
                ce.eq(-((-x) >> F)),
                sh.eq(m_ref - fl),
                term.eq(Mux(live, table[x[:F] if F else 0] >> Mux(sh > cap, cap, sh[:cap.bit_length()]),
                            0)),
            ]
            return fl, ce, term

        # --- Pass 1: running maximum and sum.
        run_m = Signal(int_shape)
        run_d = Signal(Wd)
        first = Signal(init=1)
        row_beats = Signal(beats_shape)
        live = [Signal(name=f"live{k}") for k in range(P)]
        m.d.comb += [live[k].eq(~s1.mask[k]) for k in range(P)]
        any_live = Signal()
        m.d.comb += any_live.eq(~s1.mask.all())
        ces = []
        for k in range(P):
            ce = Signal(int_shape, name=f"ce{k}")
            m.d.comb += ce.eq(Mux(live[k], -((-s1.data[k]) >> F), ce_min))
            ces.append(ce)
        while len(ces) > 1:
            nxt = []
            for a, b in zip(ces[::2], ces[1::2], strict=False):
                mx = Signal(int_shape)
                m.d.comb += mx.eq(Mux(a > b, a, b))
                nxt.append(mx)
            if len(ces) % 2:
                nxt.append(ces[-1])
            ces = nxt
        beat_max = ces[0]
        m_new = Signal(int_shape)
        m.d.comb += m_new.eq(Mux(any_live, Mux(first | (beat_max > run_m), beat_max, run_m), run_m))
        terms = [lane_terms(s1.data[k], live[k], m_new)[2] for k in range(P)]
        dshift = Signal(int_shape)
        d_shifted = Signal(Wd)
        d_new = Signal(Wd)
        m.d.comb += [
            dshift.eq(m_new - run_m),
            d_shifted.eq(Mux(first, 0, run_d >> Mux(dshift > Wd, Wd, dshift[:Wd.bit_length()]))),
            d_new.eq(d_shifted + sum(terms)),
        ]
        job_m = Signal(int_shape)
        job_d = Signal(Wd)
        job_empty = Signal()
        job_beats = Signal(beats_shape)
        m.d.comb += s1_adv.eq(s1_valid & (~s1.last | ~job_valid | div_take))
        with m.If(div_take):
            m.d.sync += job_valid.eq(0)
        with m.If(s1_adv):
            with m.If(s1.last):
                m.d.sync += [job_valid.eq(1), job_m.eq(m_new), job_d.eq(d_new),
                             job_empty.eq(first & ~any_live), job_beats.eq(row_beats + 1),
                             first.eq(1), run_d.eq(0), row_beats.eq(0)]
            with m.Else():
                m.d.sync += [run_m.eq(m_new), run_d.eq(d_new), row_beats.eq(row_beats + 1)]
                with m.If(any_live):
                    m.d.sync += first.eq(0)

        # --- Reciprocal: normalize d, then a restoring divider, one quotient bit per cycle.
        t_shape = unsigned((M + Wd).bit_length())
        info_layout = data.StructLayout({"m": int_shape, "r": M + 2, "tm1": t_shape, "empty": 1,
                                         "beats": beats_shape})
        info = hier.add(m, "info", Fifo(width=info_layout.size, depth=2))
        info_w = data.View(info_layout, info.w_data)
        info_r = data.View(info_layout, info.r_data)
        k = Signal(range(Wd + 1))
        for bit in range(Wd):
            with m.If(job_d[bit]):
                m.d.comb += k.eq(bit + 1)
        lz = Signal(range(Wd + 1))
        m.d.comb += lz.eq(Wd - k)
        dn = Signal(Wd)
        rem = Signal(Wd + 1)
        quo = Signal(M + 2)
        steps = Signal(range(M + 3))
        dv_m = Signal(int_shape)
        dv_tm1 = Signal(t_shape)
        dv_empty = Signal()
        dv_beats = Signal(beats_shape)
        ge = Signal()
        m.d.comb += [
            ge.eq(rem >= dn),
            info_w.m.eq(dv_m), info_w.r.eq(quo), info_w.tm1.eq(dv_tm1), info_w.empty.eq(dv_empty),
            info_w.beats.eq(dv_beats),
        ]
        def start_job():
            m.d.sync += [
                dn.eq((job_d << lz)[:Wd]), rem.eq(1 << (Wd - 1)), quo.eq(0),
                steps.eq(M + 2), dv_m.eq(job_m), dv_tm1.eq(M + k - Of - 1),
                dv_empty.eq(job_empty), dv_beats.eq(job_beats),
            ]
            with m.If(job_empty):
                m.next = "PUSH"
            with m.Else():
                m.next = "DIV"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += div_take.eq(job_valid)
                with m.If(job_valid):
                    start_job()
            with m.State("DIV"):
                m.d.sync += [rem.eq((rem - Mux(ge, dn, 0)) << 1), quo.eq(Cat(ge, quo[:M + 1])),
                             steps.eq(steps - 1)]
                with m.If(steps == 1):
                    m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += [info.w_en.eq(1), div_take.eq(job_valid & info.w_rdy)]
                with m.If(info.w_rdy):
                    with m.If(job_valid):
                        start_job()
                    with m.Else():
                        m.next = "IDLE"

        # --- Pass 2: read the row back, y = round(n * R / 2**t), saturated at 1.0.
        cur = Signal(info_layout)
        cur_valid = Signal()
        cur_left = Signal(beats_shape)
        p_valid = Signal()
        p_info = Signal(info_layout)
        o_valid = Signal()
        o_free = Signal()
        p_move = Signal()
        issue = Signal()
        finishing = Signal()
        m.d.comb += [
            o_free.eq(~o_valid | self.o.ready),
            p_move.eq(p_valid & o_free),
            issue.eq(cur_valid & (~p_valid | p_move)),
            finishing.eq(issue & (cur_left == 1)),
            info.r_en.eq(~cur_valid | finishing),
            rd.addr.eq(rd_ptr),
            rd.en.eq(issue),
        ]
        with m.If(info.r_en & info.r_rdy):
            m.d.sync += [cur.eq(info_r), cur_left.eq(info_r.beats), cur_valid.eq(1)]
        with m.Elif(finishing):
            m.d.sync += cur_valid.eq(0)
        with m.If(issue):
            m.d.sync += [rd_ptr.eq(wrap_inc(rd_ptr)), p_info.eq(cur), p_valid.eq(1)]
            with m.If(~finishing):
                m.d.sync += cur_left.eq(cur_left - 1)
        with m.Elif(p_move):
            m.d.sync += p_valid.eq(0)
        m.d.sync += count.eq(count + take - issue)

        ys = []
        for lane in range(P):
            _, _, n = lane_terms(rd.data.data[lane], ~rd.data.mask[lane], p_info.m)
            prod = Signal(S + M + 3, name=f"prod{lane}")
            half = Signal(S + M + 3, name=f"half{lane}")
            y = Signal(Of + 2, name=f"y{lane}")
            m.d.comb += [
                prod.eq(n * p_info.r),
                half.eq(prod >> p_info.tm1),
                y.eq((half + 1) >> 1),
            ]
            ys.append(Mux(y > (1 << Of), 1 << Of, y))
        with m.If(p_move):
            m.d.sync += [self.o.payload.data[lane].eq(ys[lane]) for lane in range(P)]
            m.d.sync += [self.o.payload.last.eq(rd.data.last),
                         self.o.payload.all_masked.eq(p_info.empty)]
        with m.If(p_move):
            m.d.sync += o_valid.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += o_valid.eq(0)
        m.d.comb += self.o.valid.eq(o_valid)
        return m
