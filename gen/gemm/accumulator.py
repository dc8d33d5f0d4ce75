"""The accumulators of the GEMM engine: column sums of every k tile added per row, results out."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gemm_lanes import PostLane, ToBinary32
from ..lib import hier
from ..lib.hier import Reused
from ..lib.formats import mode_by_name
from ..lib.sram import Sram
from ..pe import FLAG_WIDTH
from .params import SHIFT_BITS

__all__ = ["Accumulator", "AccumulatorLane"]


class Accumulator(wiring.Component):
    """An accumulator memory of ``max_m`` rows of C lanes: stage A reads ``acc[m]`` for the
    wavefront at the inputs, stage B adds its column sums (to 0 on the first k tile) and writes
    them back, or, on the last k tile, hands the row on as a result (``w_en``, ``w_data``: C lanes
    of :attr:`gen.gemm.params.GemmParams.out_width` bits and ``last``).

    Integer sums use the low ``acc_width`` bits; FP8 sums the whole Kulisch width and, beside it,
    the special-value flags. Where FP8 modes or post-processing are built, a stage C registers the
    final sums and turns them into binary32 (FP8, :class:`gen.gemm_lanes.ToBinary32`) or
    post-processes them (:class:`gen.gemm_lanes.PostLane`, one per column); at stage A -> B the
    column's and the row's post-processing multipliers and shifts combine (``mult_w * mult_a``,
    ``shift_w + shift_a``) for the single rounding at C.

    Members
    -------
    ctl : In(params.ctrl_layout); ps : In(signed(ps_width)).array(cols)
        A wavefront's control word and column sums (after the VSQ scaler, where built).
    fl : In(3).array(cols)
        FP8 modes only: the sums' special-value flags.
    mult, shift : In(...).array(cols)
        Post-processing only: the column parameters of the wavefront's bank.
    w_data : Out(cols * out_width + 1); w_en : Out(1)
        A result row for the output queue.
    """

    def __init__(self, params, *, ps_width):
        self._p = p = params
        C = p.cols
        self._ps_width = ps_width
        fp = {"fl": In(FLAG_WIDTH).array(C)} if p.fp else {}
        post = ({"mult": In(p.post_mult_bits).array(C), "shift": In(SHIFT_BITS).array(C)}
                if p.post else {})
        super().__init__({
            "ctl": In(p.ctrl_layout), "ps": In(signed(ps_width)).array(C), **fp, **post,
            "w_data": Out(p.out_width * C + 1), "w_en": Out(1),
        })

    @staticmethod
    def latency_for(params):
        """Cycles from a last-k-tile wavefront at the inputs to its result at ``w_en``: 1, plus 1
        for stage C (FP8 modes or post-processing)."""
        return 1 + (1 if params.fp or params.post else 0)

    @property
    def latency(self):
        return self.latency_for(self._p)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        C, ctl = p.cols, self.ctl
        fw = FLAG_WIDTH if p.fp else 0
        lane_bits = p.acc_lane_width + fw
        acc_mem = Sram(shape=unsigned(lane_bits * C), depth=p.max_m, transparent=[(0,)])
        m.submodules.acc_mem = acc_mem
        acc_wr, acc_rd = acc_mem.w[0], acc_mem.r[0]
        m.d.comb += acc_rd.addr.eq(ctl.m)
        sb = Signal(p.ctrl_layout)
        m.d.sync += sb.eq(ctl)
        stage_c = p.fp or p.post
        if stage_c:
            sc = Signal(p.ctrl_layout)
            m.d.sync += sc.eq(sb)
        if p.fp:
            fp_names = [n for n in p.modes if mode_by_name(n).fp8 is not None]
            sc_fp = Signal()
            m.d.comb += sc_fp.eq(Cat(*(sc.mode == p.modes.index(n) for n in fp_names)).any())
            sc_e5 = Signal()
            m.d.comb += sc_e5.eq(sc.mode == p.modes.index("fp8_e5m2")
                                 if "fp8_e5m2" in p.modes else 0)
        sums, results = [], []
        for c in range(C):
            lane = hier.add(m, f"lane_{c}", AccumulatorLane(
                acc_width=p.acc_width, sum_width=p.acc_lane_width, ps_width=self._ps_width,
                formats=p.fp, mult_bits=p.post_mult_bits, row_mult_bits=p.post_row_mult_bits,
                out_width=p.out_width))
            m.d.comb += [lane.ps.eq(self.ps[c]), lane.prev.eq(acc_rd.data[lane_bits * c:
                                                                          lane_bits * (c + 1)]),
                         lane.first_k.eq(sb.first_k)]
            if p.fp:
                m.d.comb += [lane.fl.eq(self.fl[c]), lane.is_fp.eq(sc_fp), lane.e5.eq(sc_e5)]
            if p.post:
                m.d.comb += [lane.mult.eq(self.mult[c]), lane.shift.eq(self.shift[c]),
                             lane.out.eq(sc.out), lane.relu.eq(sc.relu)]
                if p.post_row_mult_bits:
                    m.d.comb += [lane.rmult.eq(ctl.rmult), lane.rshift.eq(ctl.rshift)]
            sums.append(lane.acc)
            results.append(lane.result)
        m.d.comb += [acc_wr.addr.eq(sb.m), acc_wr.data.eq(Cat(*sums)),
                     acc_wr.en.eq(sb.valid & ~sb.last_k)]
        last = sc if stage_c else sb
        m.d.comb += [self.w_data.eq(Cat(*results, last.last)), self.w_en.eq(last.valid & last.last_k)]
        return m


class AccumulatorLane(Reused, wiring.Component):
    """One column of :class:`Accumulator`, one module however many columns there are.

    Stage A -> B registers the column sum ``ps`` (and its FP8 flags); at stage B ``acc`` is the
    new accumulator word, ``ps`` plus ``prev`` (the word read at A) or plus 0 on the first k tile,
    with the flags OR-ed, and, without stage C, ``result`` is the sum. With FP8 formats or
    post-processing, stage C registers the sum and ``result`` is its binary32 pattern (``is_fp``,
    :class:`gen.gemm_lanes.ToBinary32`), the post-processed value
    (:class:`gen.gemm_lanes.PostLane`, output ``out``, ``relu``) or the sum. The column's
    multiplier and shift (``mult``, ``shift``) and the row's (``rmult``, ``rshift``), at stage A,
    combine into one multiplier and shift registered at B.

    Members
    -------
    ps : In(signed(ps_width)); fl : In(3) (FP8)
    prev : In(sum_width + flag bits); first_k : In(1)
    acc : Out(sum_width + flag bits)
    mult, shift, rmult, rshift, out, relu : In (post-processing)
    is_fp, e5 : In(1) (FP8)
    result : Out(signed(out_width))
    """

    module_suffix = "acc_lane"

    def __init__(self, *, acc_width, sum_width, ps_width, formats, mult_bits, row_mult_bits,
                 out_width):
        self._acc_width, self._sum_width, self._ps_width = acc_width, sum_width, ps_width
        self._formats, self._mb, self._rmb, self._ow = tuple(formats), mult_bits, row_mult_bits, \
            out_width
        fw = FLAG_WIDTH if formats else 0
        self._fw = fw
        members = {"ps": In(signed(ps_width)), "prev": In(sum_width + fw), "first_k": In(1),
                   "acc": Out(sum_width + fw), "result": Out(signed(out_width))}
        if formats:
            members.update({"fl": In(FLAG_WIDTH), "is_fp": In(1), "e5": In(1)})
        if mult_bits:
            members.update({"mult": In(mult_bits), "shift": In(SHIFT_BITS), "out": In(2),
                            "relu": In(1)})
            if row_mult_bits:
                members.update({"rmult": In(row_mult_bits), "rshift": In(SHIFT_BITS)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        aw, fw = self._sum_width, self._fw
        sb_ps = Signal(signed(self._ps_width))
        m.d.sync += sb_ps.eq(self.ps)
        total = Signal(signed(aw))
        m.d.comb += total.eq(Mux(self.first_k, 0, self.prev[:aw].as_signed()) + sb_ps)
        word = [total]
        if fw:
            sb_fl = Signal(fw)
            m.d.sync += sb_fl.eq(self.fl)
            flags = Signal(fw)
            m.d.comb += flags.eq(Mux(self.first_k, 0, self.prev[aw:]) | sb_fl)
            word.append(flags)
        m.d.comb += self.acc.eq(Cat(*word))
        if not (fw or self._mb):
            m.d.comb += self.result.eq(total)
            return m
        if self._mb:
            # Stage A -> B: the column's and the row's factors combine for the single rounding.
            sb_mult = Signal(self._mb + self._rmb)
            sb_shift = Signal(SHIFT_BITS + (1 if self._rmb else 0))
            mult, shift = self.mult, self.shift
            if self._rmb:
                mult, shift = mult * self.rmult, shift + self.rshift
            m.d.sync += [sb_mult.eq(mult), sb_shift.eq(shift)]
        sc_sum = Signal(signed(aw))
        m.d.sync += sc_sum.eq(total)
        as_int = sc_sum[:self._acc_width].as_signed()
        if self._mb:
            post = hier.add(m, "post", PostLane(acc_width=self._acc_width, mult_bits=len(sb_mult),
                                                shift_bits=len(sb_shift), out_width=self._ow))
            m.d.comb += [post.acc.eq(as_int), post.mult_in.eq(sb_mult),
                         post.shift_in.eq(sb_shift), post.out.eq(self.out),
                         post.relu.eq(self.relu)]
            as_int = post.result   # FP32 too
        if not fw:
            m.d.comb += self.result.eq(as_int)
            return m
        sc_fl = Signal(fw)
        m.d.sync += sc_fl.eq(flags)
        conv = hier.add(m, "to_binary32", ToBinary32(width=aw, formats=self._formats))
        m.d.comb += [conv.total.eq(sc_sum), conv.flags.eq(sc_fl), conv.e5.eq(self.e5),
                     self.result.eq(Mux(self.is_fp, conv.fp32, as_int))]
        return m
