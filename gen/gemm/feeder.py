"""The activation feeder of the GEMM engine: activation rows into the array as wavefronts."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..lib.sram import Sram
from ..pe import act_lane_width
from .layouts import act_layout
from .params import SHIFT_BITS, per_mode

__all__ = ["ActivationFeeder"]


class ActivationFeeder(wiring.Component):
    """Runs the commands of the queue (``queue_*``) one after the other: for each n tile and each
    of its k tiles, issues M wavefronts (one activation row each) into the array, with their
    control words (``ctl``), once the tile's weight bank is full (``bank_full``).

    A command's activations arrive once, in its first n tile, on ``a``, and are kept in an
    activation buffer (an SRAM of :attr:`gen.gemm.params.GemmParams.act_buffer_depth` words)
    that replays them for the other n tiles; so do the rows' post-processing factors, in a memory
    of ``max_m`` words, where built. A wavefront of a command's last k tile needs room in the
    output queue (``room``): issuing it books a result row (``booked``). With the tile's last
    wavefront the feeder clears the bank (``bank_clr``).

    Where 2:4 sparsity is built, an activation beat has 2R bytes (dense commands use the first R)
    and the array's lanes are groups of 4 activations: a 2:4 command's k tile covers twice the
    reduction elements, and PE row r gets the group its kept weights belong to, bytes ``4 * (r //
    2)`` to ``4 * (r // 2) + 3`` of the beat (INT4: bytes 2r and 2r + 1, four INT4 values); a
    dense command puts byte r in the lane's low byte. So the activation bandwidth doubles: the
    beat is twice as wide, at the same rate of one beat per cycle.

    Members
    -------
    queue_valid : In(1); queue_data : In(params.desc_layout); queue_pop : Out(1)
        The command queue from the loader (a first-word-fall-through FIFO's read side).
    a : In(stream.Signature(act_layout(...)))
    bank_full : In(2); bank_clr : Out(2)
    room : In(1)
        The output queue can take one more result row.
    booked : Out(1)
        A wavefront of a command's last k tile was issued (one result row more to come).
    array_a : Out(act_lane_width(modes, sparse)).array(rows); array_bank : Out(1)
    array_mode : Out(mode bits)
        The wavefront at the array's inputs.
    ctl : Out(params.ctrl_layout)
        Its control word.
    busy : Out(1)
        A command is running.
    """

    latency = 1
    """Cycles from an activation beat taken (or replayed) to its wavefront at ``array_a``."""

    def __init__(self, params):
        self._p = p = params
        super().__init__({
            "queue_valid": In(1), "queue_data": In(p.desc_layout), "queue_pop": Out(1),
            "a": In(stream.Signature(act_layout(p.act_lanes, p.sbits, p.post_row_mult_bits))),
            "bank_full": In(2), "bank_clr": Out(2), "room": In(1), "booked": Out(1),
            "array_a": Out(act_lane_width(p.modes, p.sparse)).array(p.rows),
            "array_bank": Out(1), "array_mode": Out(p.mode_bits),
            "ctl": Out(p.ctrl_layout), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        R, C = p.rows, p.cols
        k_width, sb_bits, rmb = p.k_width, p.sbits, p.post_row_mult_bits
        depth_words = p.act_buffer_depth
        L = p.act_lanes
        act_mem = Sram(shape=unsigned(8 * L + sb_bits), depth=depth_words)
        m.submodules.act_mem = act_mem
        act_wr, act_rd = act_mem.w[0], act_mem.r[0]

        fd = Signal(p.desc_layout)
        fd_m = Signal(range(p.max_m + 1))
        fd_k0 = Signal(k_width)
        fd_n0 = Signal(p.n_width)
        fd_addr = Signal(range(depth_words + 1))
        fd_first_pass = Signal()
        fd_bank = Signal()
        fd_kdepth = per_mode(m, fd.mode, [R * md.k_per_row for md in p.mode_defs], p.kd_width,
                             "fd_kdepth")
        if p.sparse:
            dense_kdepth = fd_kdepth
            fd_kdepth = Signal(p.kd_width, name="fd_kdepth_sp")
            m.d.comb += fd_kdepth.eq(Mux(fd.sparse, dense_kdepth << 1, dense_kdepth))

        last_k = Signal()
        last_n = Signal()
        last_m = Signal()
        if p.vsq:
            # A VSQ command's vector v covers reduction elements v * V to min(v * V + V, K) - 1
            # (`fd_vbase` to `fd_end` - 1) in k tiles of its own: ceil(V / tile) of them, the last
            # one padded where the tile does not divide V. Plain commands: one "vector" of K.
            fd_vbase = Signal(k_width)
            fd_vsize = per_mode(m, fd.vsel, list(p.vsq_vector_sizes), p.v_width, "fd_vsize")
            fd_vnext = Signal(k_width + 1)
            fd_end = Signal(k_width)
            vsq_first_kv = Signal()
            vsq_last_kv = Signal()
            m.d.comb += [fd_vnext.eq(fd_vbase + fd_vsize),
                         fd_end.eq(Mux(fd.vsq & (fd_vnext < fd.k), fd_vnext, fd.k)),
                         vsq_first_kv.eq(fd_k0 == fd_vbase),
                         vsq_last_kv.eq(fd_k0 + fd_kdepth >= fd_end),
                         last_k.eq(vsq_last_kv & (fd_end >= fd.k))]
        else:
            m.d.comb += last_k.eq(fd_k0 + fd_kdepth >= fd.k)
        m.d.comb += [last_n.eq(fd_n0 + C >= fd.n), last_m.eq(fd_m + 1 == fd.m)]
        credit_ok = Signal()
        m.d.comb += credit_ok.eq(~last_k | self.room)
        issue = Signal()
        m.d.comb += self.booked.eq(issue & last_k)

        # Stage 1: the wavefront entering the array, and its control word.
        s1 = Signal(p.ctrl_layout)
        s1_from_stream = Signal()
        s1_data = Signal(8 * L)
        s1_bank = Signal()
        s1_mode = Signal(p.mode_bits)

        a_word = (Cat(self.a.payload.data.as_value(), self.a.payload.scale) if p.vsq
                  else self.a.payload.data.as_value())
        m.d.comb += [act_wr.addr.eq(fd_addr), act_wr.data.eq(a_word), act_rd.addr.eq(fd_addr)]
        if p.vsq:
            s1_sa = Signal(sb_bits)
        if p.sparse:
            s1_sparse = Signal()
        if rmb:
            # The row factors: taken from the beat of row m in the last k tile of the first n tile
            # and kept for the other n tiles in a memory of max_m words.
            rowp_bits = rmb + SHIFT_BITS
            rowp_mem = Sram(shape=unsigned(rowp_bits), depth=p.max_m)
            m.submodules.rowp_mem = rowp_mem
            rowp_wr, rowp_rd = rowp_mem.w[0], rowp_mem.r[0]
            s1_rowp = Signal(rowp_bits)
            a_rowp = Cat(self.a.payload.mult, self.a.payload.shift)
            m.d.comb += [rowp_wr.addr.eq(fd_m), rowp_wr.data.eq(a_rowp),
                         rowp_wr.en.eq(issue & fd_first_pass & last_k), rowp_rd.addr.eq(fd_m)]
        m.d.sync += s1.valid.eq(issue)
        with m.FSM(name="feeder") as feeder_fsm:
            with m.State("IDLE"):
                m.d.comb += self.queue_pop.eq(1)
                with m.If(self.queue_valid):
                    m.d.sync += [fd.eq(self.queue_data), fd_m.eq(0), fd_k0.eq(0), fd_n0.eq(0),
                                 fd_addr.eq(0), fd_first_pass.eq(1)]
                    if p.vsq:
                        m.d.sync += fd_vbase.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                ready = Signal()
                m.d.comb += ready.eq(self.bank_full.bit_select(fd_bank, 1) & credit_ok)
                m.d.comb += [
                    self.a.ready.eq(ready & fd_first_pass),
                    issue.eq(ready & (self.a.valid | ~fd_first_pass)),
                    act_wr.en.eq(issue & fd_first_pass),
                ]
                with m.If(issue):
                    if p.vsq:
                        m.d.sync += [
                            s1.vsq.eq(fd.vsq), s1.bank.eq(fd_bank), s1_sa.eq(self.a.payload.scale),
                            s1.first_kv.eq(~fd.vsq | vsq_first_kv),
                            s1.last_kv.eq(~fd.vsq | vsq_last_kv),
                        ]
                    if p.post:
                        m.d.sync += [s1.out.eq(fd.out), s1.relu.eq(fd.relu), s1.bank.eq(fd_bank)]
                    if rmb:
                        m.d.sync += s1_rowp.eq(a_rowp)
                    m.d.sync += [
                        s1.first_k.eq(Mux(fd.vsq, fd_vbase == 0, fd_k0 == 0) if p.vsq
                                      else fd_k0 == 0),
                        s1.last_k.eq(last_k),
                        s1.last.eq(last_k & last_n & last_m), s1.m.eq(fd_m),
                        s1_from_stream.eq(fd_first_pass), s1_data.eq(self.a.payload.data.as_value()),
                        s1_bank.eq(fd_bank), s1_mode.eq(fd.mode),
                        *([s1_sparse.eq(fd.sparse)] if p.sparse else []),
                        *([s1.mode.eq(fd.mode)] if p.fp else []),
                        fd_addr.eq(fd_addr + 1), fd_m.eq(fd_m + 1),
                    ]
                    with m.If(last_m):
                        m.d.comb += self.bank_clr.eq(Mux(fd_bank, 0b10, 0b01))
                        m.d.sync += [fd_m.eq(0), fd_bank.eq(~fd_bank), fd_k0.eq(fd_k0 + fd_kdepth)]
                        if p.vsq:
                            with m.If(vsq_last_kv):
                                # the next vector starts at this one's end (0 after the last)
                                m.d.sync += [fd_k0.eq(fd_end), fd_vbase.eq(fd_end)]
                        with m.If(last_k):
                            m.d.sync += [fd_k0.eq(0), fd_n0.eq(fd_n0 + C), fd_addr.eq(0),
                                         fd_first_pass.eq(0)]
                            if p.vsq:
                                m.d.sync += fd_vbase.eq(0)
                            with m.If(last_n):
                                m.next = "IDLE"
        m.d.comb += self.busy.eq(~feeder_fsm.ongoing("IDLE"))

        if p.sparse:
            self._sparse_lanes(m, Mux(s1_from_stream, s1_data, act_rd.data[:8 * L]), s1_sparse,
                               s1_mode)
        else:
            for r in range(R):
                m.d.comb += self.array_a[r].eq(Mux(s1_from_stream, s1_data[8 * r:8 * r + 8],
                                                   act_rd.data[8 * r:8 * r + 8]))
        m.d.comb += [self.array_bank.eq(s1_bank), self.array_mode.eq(s1_mode)]

        # The activation scale and the row factor come from the stream or, on later n tiles, the
        # activation buffer and the row memory.
        m.d.comb += self.ctl.eq(s1)
        if p.vsq:
            m.d.comb += self.ctl.sa.eq(Mux(s1_from_stream, s1_sa, act_rd.data[8 * L:]))
        if rmb:
            rowp = Mux(s1_from_stream, s1_rowp, rowp_rd.data)
            m.d.comb += [self.ctl.rmult.eq(rowp[:rmb]), self.ctl.rshift.eq(rowp[rmb:])]
        return m

    def _sparse_lanes(self, m, beat, sparse, mode):
        """The array's lanes of one 2R-byte beat: a dense wavefront's byte r in lane r's low byte;
        a 2:4 wavefront's group of row r (class docstring)."""
        p = self._p
        word = Signal(len(beat), name="fd_beat")
        m.d.comb += word.eq(beat)

        def byte(i):
            return word[8 * i:8 * i + 8]

        is_int4 = per_mode(m, mode, [int(md.name == "int4") for md in p.mode_defs], 1,
                           "fd_is_int4")
        for r in range(p.rows):
            g = 4 * (r // 2)
            if p.modes == ("int4",):
                lane = Cat(Mux(sparse, byte(2 * r), byte(r)), byte(2 * r + 1))
            elif "int4" in p.modes:
                lane = Cat(Mux(sparse, Mux(is_int4, byte(2 * r), byte(g)), byte(r)),
                           Mux(is_int4, byte(2 * r + 1), byte(g + 1)), byte(g + 2), byte(g + 3))
            else:
                lane = Cat(Mux(sparse, byte(g), byte(r)), byte(g + 1), byte(g + 2), byte(g + 3))
            m.d.comb += self.array_a[r].eq(lane)
