"""The accumulators of the GEMM engine: column sums of every k tile added per row, results out."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gemm_lanes import PostLane, ToBinary32
from ..lib import hier
from ..lib.formats import mode_by_name
from ..lib.sram import Sram
from ..pe import FLAG_WIDTH
from .params import SHIFT_BITS

__all__ = ["Accumulator"]


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
        C, ctl, rmb = p.cols, self.ctl, p.post_row_mult_bits
        aw = p.acc_lane_width
        fw = FLAG_WIDTH if p.fp else 0
        lane = aw + fw
        acc_mem = Sram(shape=unsigned(lane * C), depth=p.max_m, transparent=[(0,)])
        m.submodules.acc_mem = acc_mem
        acc_wr, acc_rd = acc_mem.w[0], acc_mem.r[0]
        if p.post:
            # Stage A -> B: with a per-row factor, the column's and the row's multipliers and
            # shifts combine (mult_w * mult_a, shift_w + shift_a) for the single rounding at C.
            sb_post = [(Signal(p.post_mult_bits + rmb, name=f"sb_mult_{c}"),
                        Signal(p.post_shift_bits, name=f"sb_shift_{c}")) for c in range(C)]
            for c in range(C):
                mult_in, shift_in = self.mult[c], self.shift[c]
                if rmb:
                    mult_in, shift_in = mult_in * ctl.rmult, shift_in + ctl.rshift
                m.d.sync += [sb_post[c][0].eq(mult_in), sb_post[c][1].eq(shift_in)]
        m.d.comb += acc_rd.addr.eq(ctl.m)
        sb = Signal(p.ctrl_layout)
        sb_ps = [Signal(signed(self._ps_width), name=f"sb_ps_{c}") for c in range(C)]
        m.d.sync += sb.eq(ctl)
        m.d.sync += [sb_ps[c].eq(self.ps[c]) for c in range(C)]
        sb_fl = [Signal(fw, name=f"sb_fl_{c}") for c in range(C)] if p.fp else []
        m.d.sync += [sb_fl[c].eq(self.fl[c]) for c in range(len(sb_fl))]

        sums, flags = [], []
        for c in range(C):
            prev = acc_rd.data[lane * c:lane * c + aw].as_signed()
            total = Signal(signed(aw), name=f"sum_{c}")
            m.d.comb += total.eq(Mux(sb.first_k, 0, prev) + sb_ps[c])
            sums.append(total)
            if p.fp:
                prev_fl = acc_rd.data[lane * c + aw:lane * (c + 1)]
                fl = Signal(fw, name=f"flags_{c}")
                m.d.comb += fl.eq(Mux(sb.first_k, 0, prev_fl) | sb_fl[c])
                flags.append(fl)
        m.d.comb += [
            acc_wr.addr.eq(sb.m),
            acc_wr.data.eq(Cat(*(Cat(sums[c], *flags[c:c + 1]) for c in range(C)))),
            acc_wr.en.eq(sb.valid & ~sb.last_k),
        ]
        if not p.fp and not p.post:
            m.d.comb += [self.w_data.eq(Cat(*sums, sb.last)), self.w_en.eq(sb.valid & sb.last_k)]
            return m

        # Stage C: the final sums, registered, become binary32 (FP8), are post-processed or
        # passed on.
        sc = Signal(p.ctrl_layout)
        m.d.sync += sc.eq(sb)
        if p.fp:
            fp_names = [n for n in p.modes if mode_by_name(n).fp8 is not None]
            sc_fp = Signal()
            m.d.comb += sc_fp.eq(Cat(*(sc.mode == p.modes.index(n) for n in fp_names)).any())
            sc_e5 = Signal()
            m.d.comb += sc_e5.eq(sc.mode == p.modes.index("fp8_e5m2")
                                 if "fp8_e5m2" in p.modes else 0)
        lanes = []
        for c in range(C):
            sc_sum = Signal(signed(aw), name=f"sc_sum_{c}")
            m.d.sync += sc_sum.eq(sums[c])
            as_int = sc_sum[:p.acc_width].as_signed()
            if p.post:
                as_int = self._post_lane(m, sc, as_int, sb_post[c], c)   # FP32 too
            if not p.fp:
                lanes.append(as_int)
                continue
            sc_fl = Signal(fw, name=f"sc_fl_{c}")
            m.d.sync += sc_fl.eq(flags[c])
            conv = hier.add(m, f"to_binary32_{c}", ToBinary32(width=aw, formats=p.fp))
            m.d.comb += [conv.total.eq(sc_sum), conv.flags.eq(sc_fl), conv.e5.eq(sc_e5)]
            out = Signal(signed(p.out_width), name=f"out_{c}")
            m.d.comb += out.eq(Mux(sc_fp, conv.fp32, as_int))
            lanes.append(out)
        m.d.comb += [self.w_data.eq(Cat(*lanes, sc.last)), self.w_en.eq(sc.valid & sc.last_k)]
        return m

    def _post_lane(self, m, sc, acc, post, c):
        """The post-processing lane of column ``c`` at stage C: ``post`` holds the multiplier and
        shift from stage B, registered in the lane beside ``sc``. Returns the lane's result, of
        the output width."""
        mult_sb, shift_sb = post
        lane = hier.add(m, f"post_lane_{c}", PostLane(acc_width=len(acc), mult_bits=len(mult_sb),
                                                      shift_bits=len(shift_sb),
                                                      out_width=self._p.out_width))
        m.d.comb += [lane.acc.eq(acc), lane.mult_in.eq(mult_sb), lane.shift_in.eq(shift_sb),
                     lane.out.eq(sc.out), lane.relu.eq(sc.relu)]
        return lane.result
