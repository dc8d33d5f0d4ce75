"""The per-vector (VS-Quant) scaling unit of the GEMM engine, between the array and the accumulator."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..lib.sram import Sram
from ..pe import FLAG_WIDTH
from .params import SHIFT_BITS

__all__ = ["VsqScaler"]


class VsqScaler(wiring.Component):
    """One lane per column, built where VSQ is: the column sums of a VSQ wavefront add into a
    vector partial sum per row m (``vpart[m]``, a memory beside the accumulator); on the vector's
    last k tile the completed sum times ``s_qw * s_qa`` goes on to the accumulator.

    Stage P0 (the array's output, the inputs here) reads ``vpart[m]`` and the weight scales of the
    wavefront's bank; stage P1 adds the column sum to the vector partial sum (from 0 on a vector's
    first k tile) and writes it back unless the tile is the vector's last; stage P2 multiplies the
    completed vector sum by ``s_qw * s_qa`` (registered in P1) and hands the product on, only on
    a vector's last k tile (``ctl_o.valid``). Non-VSQ wavefronts pass their column sums through
    unchanged. FP8 flags and the post-processing multipliers and shifts of the wavefront's bank
    ride beside.

    The weight scales of a bank are read at P0 before the loader can overwrite them: the last
    wavefront of a tile, issued in cycle t, is at P0 in cycle t + R + C, while the loader writes
    the bank (the banks' drain) at the earliest at the end of cycle t + R + C + 1.

    Members
    -------
    ctl_i : In(params.ctrl_layout); ps : In(signed(psum width)).array(cols)
    wscale : In(data.ArrayLayout(M, cols)).array(2)
    fl_i : In(3).array(cols); fl_o : Out(3).array(cols)
        FP8 modes only.
    wmult, wshift : In(...).array(2); mult, shift : Out(...).array(cols)
        Post-processing only: the bank's column parameters in, the wavefront's out.
    ctl_o : Out(params.ctrl_layout); lanes : Out(signed(:attr:`width`)).array(cols)
    """

    latency = 2
    """Cycles from ``ctl_i`` and ``ps`` to ``ctl_o`` and ``lanes``."""

    def __init__(self, params):
        self._p = p = params
        C = p.cols
        self._width = max(p.vsq_term_width + 1, p.psum_width)
        fp = {"fl_i": In(FLAG_WIDTH).array(C), "fl_o": Out(FLAG_WIDTH).array(C)} if p.fp else {}
        post = ({"wmult": In(data.ArrayLayout(unsigned(p.post_mult_bits), C)).array(2),
                 "wshift": In(data.ArrayLayout(unsigned(SHIFT_BITS), C)).array(2),
                 "mult": Out(p.post_mult_bits).array(C), "shift": Out(SHIFT_BITS).array(C)}
                if p.post else {})
        super().__init__({
            "ctl_i": In(p.ctrl_layout), "ps": In(signed(p.psum_width)).array(C),
            "wscale": In(data.ArrayLayout(unsigned(p.sbits), C)).array(2),
            **fp, **post,
            "ctl_o": Out(p.ctrl_layout), "lanes": Out(signed(self._width)).array(C),
        })

    @property
    def width(self):
        """Bits of the lanes handed to the accumulator."""
        return self._width

    def elaborate(self, platform):
        m = Module()
        p, C = self._p, self._p.cols
        ctl, ps = self.ctl_i, self.ps
        vpw = p.vsq_partial_width
        vpart_mem = Sram(shape=unsigned(vpw * C), depth=p.max_m, transparent=[(0,)])
        m.submodules.vpart_mem = vpart_mem
        vp_wr, vp_rd = vpart_mem.w[0], vpart_mem.r[0]
        m.d.comb += vp_rd.addr.eq(ctl.m)

        p1 = Signal(p.ctrl_layout, name="p1")
        m.d.sync += p1.eq(ctl)
        p1_ps = [Signal(signed(p.psum_width), name=f"p1_ps_{c}") for c in range(C)]
        p1_sw = [Signal(p.sbits, name=f"p1_sw_{c}") for c in range(C)]
        for c in range(C if p.post else 0):
            # The post-processing multiplier and shift ride beside the wavefront.
            cur = (Mux(ctl.bank, self.wmult[1][c], self.wmult[0][c]),
                   Mux(ctl.bank, self.wshift[1][c], self.wshift[0][c]))
            for stage in ("p1", "p2"):
                nxt = (Signal(p.post_mult_bits, name=f"{stage}_mult_{c}"),
                       Signal(SHIFT_BITS, name=f"{stage}_shift_{c}"))
                m.d.sync += [nxt[0].eq(cur[0]), nxt[1].eq(cur[1])]
                cur = nxt
            m.d.comb += [self.mult[c].eq(cur[0]), self.shift[c].eq(cur[1])]
        if p.fp:
            # FP8 flags wait beside the stages, which FP8 sums pass through.
            for c in range(C):
                cur = self.fl_i[c]
                for stage in ("p1", "p2"):
                    nxt = Signal(FLAG_WIDTH, name=f"{stage}_fl_{c}")
                    m.d.sync += nxt.eq(cur)
                    cur = nxt
                m.d.comb += self.fl_o[c].eq(cur)
        m.d.sync += [p1_ps[c].eq(ps[c]) for c in range(C)]
        m.d.sync += [p1_sw[c].eq(Mux(ctl.bank, self.wscale[1][c], self.wscale[0][c]))
                     for c in range(C)]

        p2 = Signal(p.ctrl_layout, name="p2")
        m.d.sync += p2.eq(p1)
        vsums = []
        p2_vsum = [Signal(signed(vpw), name=f"p2_vsum_{c}") for c in range(C)]
        p2_ps = [Signal(signed(p.psum_width), name=f"p2_ps_{c}") for c in range(C)]
        p2_scale = [Signal(2 * p.sbits, name=f"p2_scale_{c}") for c in range(C)]
        for c in range(C):
            prev = vp_rd.data[vpw * c:vpw * (c + 1)].as_signed()
            vsum = Signal(signed(vpw), name=f"vsum_{c}")
            m.d.comb += vsum.eq(Mux(p1.first_kv, 0, prev) + p1_ps[c][:vpw].as_signed())
            vsums.append(vsum)
            m.d.sync += [p2_vsum[c].eq(vsum), p2_ps[c].eq(p1_ps[c]),
                         p2_scale[c].eq(p1_sw[c] * p1.sa)]
        m.d.comb += [vp_wr.addr.eq(p1.m), vp_wr.data.eq(Cat(*vsums)),
                     vp_wr.en.eq(p1.valid & p1.vsq & ~p1.last_kv)]

        m.d.comb += [self.ctl_o.eq(p2), self.ctl_o.valid.eq(p2.valid & p2.last_kv)]
        for c in range(C):
            m.d.comb += self.lanes[c].eq(Mux(p2.vsq, p2_vsum[c] * p2_scale[c], p2_ps[c]))
        return m
