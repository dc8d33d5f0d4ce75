"""The weight loader of the GEMM engine: takes commands and writes weight tiles into the array."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..pe import meta_width
from .layouts import wgt_layout
from .params import SHIFT_BITS, per_mode, vsel_width

__all__ = ["WeightLoader"]


class WeightLoader(wiring.Component):
    """Accepts commands and, for each of a command's (n, k) tiles, writes the tile's weights into
    a free bank of the array, one PE row per beat (W4A8: two rows per beat).

    Idle, it takes the command on ``cmd`` when the command queue has room (``queue_ready``): a
    valid one (``ok``, from :class:`gen.gemm.command.CommandCheck`) goes into the queue
    (``queue_push``) and is loaded; an invalid one is dropped and counted in ``errors``
    (saturating). Loading, it waits for a free bank (``bank_free``), takes weight beats (R per
    tile), zeroes the lanes past N and past K (or past the end of a VSQ vector, where a vector's
    tiles end), and marks the bank full (``bank_set``) with the tile's last row. Per bank it keeps
    each column's VSQ weight scale and post-processing multiplier and shift from the tile's beats.

    A 2:4 command (``sparse``, where built) loads compressed weights: the beats are those of the
    dense matrix of kept values (R per tile, W4A8 R / 2), a tile covers twice the reduction
    elements (``2R`` in INT8, W4A8 and FP8, ``4R`` in INT4), and ``w.meta`` gives each kept
    value's position in its group of 4. PE row r holds kept value r of the tile (INT4: kept values
    2r and 2r + 1, one group), so its group starts at ``k0 + 4 * (r // 2)`` (INT4: ``k0 + 4r``); a
    kept value at or past the end of K (or of its VSQ vector) is written as 0 (FP8: as padding).
    The positions go to the PEs on ``w_meta``; a dense command writes the identity (0; INT4: 0 and
    1).

    Members
    -------
    cmd_valid : In(1); cmd_ready : Out(1)
        The engine's command handshake.
    ok : In(1); desc : In(params.desc_layout)
        The offered command checked.
    queue_push : Out(1); queue_ready : In(1)
        The command queue to the feeder.
    w : In(stream.Signature(wgt_layout(...)))
    bank_free : In(2); bank_set : Out(2)
    w_data : Out(8).array(cols); w_row_we : Out(rows); w_bank : Out(1)
        The array's weight write port.
    w_ok : Out(1).array(cols)
        FP8 modes only: the weight written in column c is a real element, not padding.
    w_meta : Out(meta_width(modes)).array(cols)
        2:4 only: the positions of the weights written in column c.
    wscale : Out(data.ArrayLayout(M, cols)).array(2)
        VSQ only: per bank, the columns' weight scales.
    wmult, wshift : Out(data.ArrayLayout(...)).array(2)
        Post-processing only: per bank, the columns' multiplier and shift.
    errors : Out(16)
    busy : Out(1)
        A command is being loaded.
    """

    latency = 1
    """Cycles from a weight beat taken to its row's weights in the bank."""

    def __init__(self, params):
        self._p = p = params
        R, C = p.rows, p.cols
        fp = {"w_ok": Out(1).array(C)} if p.fp else {}
        if p.sparse:
            fp["w_meta"] = Out(meta_width(p.modes)).array(C)
        vsq = {"wscale": Out(data.ArrayLayout(unsigned(p.sbits), C)).array(2)} if p.vsq else {}
        post = ({"wmult": Out(data.ArrayLayout(unsigned(p.post_mult_bits), C)).array(2),
                 "wshift": Out(data.ArrayLayout(unsigned(SHIFT_BITS), C)).array(2)}
                if p.post else {})
        super().__init__({
            "cmd_valid": In(1), "cmd_ready": Out(1), "ok": In(1), "desc": In(p.desc_layout),
            "queue_push": Out(1), "queue_ready": In(1),
            "w": In(stream.Signature(wgt_layout(C, p.sbits, p.post_mult_bits, p.meta_bits))),
            "bank_free": In(2), "bank_set": Out(2),
            "w_data": Out(8).array(C), "w_row_we": Out(R), "w_bank": Out(1),
            **fp, **vsq, **post,
            "errors": Out(16), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        R, C = p.rows, p.cols
        modes = p.mode_defs
        desc = self.desc
        k_width = p.k_width

        ld_n = Signal(p.max_n.bit_length())
        ld_k = Signal(p.max_k.bit_length())
        ld_mode = Signal(p.mode_bits)
        ld_n0 = Signal(p.n_width)
        ld_k0 = Signal(k_width)
        ld_row = Signal(range(max(R, 2)))
        ld_krow = Signal(k_width)     # reduction index of the row's (low) element
        ld_bank = Signal()
        ld_kdepth = per_mode(m, ld_mode, [R * md.k_per_row for md in modes], p.kd_width,
                             "ld_kdepth")
        ld_kstep = per_mode(m, ld_mode, [md.k_per_row for md in modes], 2, "ld_kstep")
        if p.sparse:
            # 2:4: twice the reduction elements per tile; `ld_krow` is the row's group start.
            ld_sparse = Signal()
            dense_kdepth, dense_kstep = ld_kdepth, ld_kstep
            ld_kdepth = Signal(p.kd_width, name="ld_kdepth_sp")
            ld_kstep = Signal(3, name="ld_kstep_sp")
        ld_is_w4a8 = per_mode(m, ld_mode, [int(md.name == "w4a8") for md in modes], 1, "ld_is_w4a8")
        ld_is_int4 = per_mode(m, ld_mode, [int(md.name == "int4") for md in modes], 1, "ld_is_int4")
        errors = Signal(16)
        m.d.comb += self.errors.eq(errors)

        bank_free = Signal()
        m.d.comb += bank_free.eq(self.bank_free.bit_select(ld_bank, 1))
        # In W4A8 a beat fills two rows, low nibbles first; it is taken with the second (or the last row).
        take_beat = Signal()
        m.d.comb += take_beat.eq(~ld_is_w4a8 | ld_row[0] | (ld_row == R - 1))
        if p.sparse:
            group_step = Mux(ld_is_int4 | ld_row[0], 4, 0)
            m.d.comb += [ld_kdepth.eq(Mux(ld_sparse, dense_kdepth << 1, dense_kdepth)),
                         ld_kstep.eq(Mux(ld_sparse, group_step, dense_kstep))]
        if p.vsq:
            # A VSQ command's k tiles never cross a vector's end: `ld_end` is the end of the
            # current vector (or K); lanes past it are ignored, and the next tile starts there.
            ld_vsq = Signal()
            ld_vsel = Signal(vsel_width(p.vsq_vector_sizes))
            ld_vbase = Signal(k_width)
            ld_vsize = per_mode(m, ld_vsel, list(p.vsq_vector_sizes), p.v_width, "ld_vsize")
            ld_vnext = Signal(k_width + 1)
            ld_end = Signal(k_width)
            m.d.comb += [ld_vnext.eq(ld_vbase + ld_vsize),
                         ld_end.eq(Mux(ld_vsq & (ld_vnext < ld_k), ld_vnext, ld_k))]
        else:
            ld_end = ld_k
        lo_ok = Signal()
        hi_ok = Signal()
        m.d.comb += [lo_ok.eq(ld_krow < ld_end), hi_ok.eq(ld_krow + 1 < ld_end)]
        if p.sparse:
            # 2:4: positions of the group below the end (0 to 4), shared by the columns.
            room = Signal(3, name="ld_room")
            left = Signal(signed(k_width + 1), name="ld_left")
            m.d.comb += left.eq(ld_end - ld_krow)
            m.d.comb += room.eq(Mux(left <= 0, 0, Mux(left >= 4, 4, left[:3])))
            ident = Const(0b0100 if "int4" in p.modes else 0, meta_width(p.modes))
        for c in range(C):
            byte = self.w.payload.data[c]
            col_ok = Signal(name=f"ld_col_ok_{c}")
            m.d.comb += col_ok.eq(ld_n0 + c < ld_n)
            lo = Mux(ld_is_w4a8 & ld_row[0], byte[4:8], byte[0:4])
            hi = Mux(ld_is_int4, byte[4:8], Mux(ld_is_w4a8, 0, byte[4:8]))
            lo_keep = col_ok & lo_ok
            hi_keep = col_ok & Mux(ld_is_int4, hi_ok, lo_ok)
            if p.sparse:
                meta = self.w.payload.meta[c]
                pos_lo = Mux(ld_is_w4a8 & ld_row[0], meta[2:4], meta[0:2]) if p.meta_bits == 4 \
                    else meta[0:2]
                pos_hi = meta[2:4] if p.meta_bits == 4 else pos_lo
                sp_lo = Signal(name=f"ld_sp_lo_{c}")
                sp_hi = Signal(name=f"ld_sp_hi_{c}")
                m.d.comb += [sp_lo.eq(pos_lo < room),
                             sp_hi.eq(Mux(ld_is_int4, pos_hi < room, pos_lo < room))]
                lo_keep = col_ok & Mux(ld_sparse, sp_lo, lo_ok)
                hi_keep = col_ok & Mux(ld_sparse, sp_hi,
                                       Mux(ld_is_int4, hi_ok, lo_ok))
                pe_meta = Cat(pos_lo, pos_hi) if "int4" in p.modes else pos_lo
                m.d.comb += self.w_meta[c].eq(Mux(ld_sparse, pe_meta, ident))
            m.d.comb += self.w_data[c].eq(Cat(Mux(lo_keep, lo, 0), Mux(hi_keep, hi, 0)))
            if p.fp:
                m.d.comb += self.w_ok[c].eq(lo_keep)
        m.d.comb += self.w_bank.eq(ld_bank)
        # VSQ: the weight scale of each column, per bank, written with every weight beat of a tile.
        # Post-processing: the multiplier and shift of each column, per bank.
        wscale = [Signal.like(self.wscale[b], name=f"wscale_{b}") for b in range(2)] if p.vsq else []
        wmult = [Signal.like(self.wmult[b], name=f"wmult_{b}") for b in range(2)] if p.post else []
        wshift = [Signal.like(self.wshift[b], name=f"wshift_{b}") for b in range(2)] if p.post else []
        for b in range(len(wscale)):
            m.d.comb += self.wscale[b].eq(wscale[b])
        for b in range(len(wmult)):
            m.d.comb += [self.wmult[b].eq(wmult[b]), self.wshift[b].eq(wshift[b])]

        with m.FSM(name="loader") as loader_fsm:
            with m.State("IDLE"):
                m.d.comb += self.cmd_ready.eq(self.queue_ready)
                with m.If(self.cmd_valid & self.queue_ready):
                    with m.If(self.ok):
                        m.d.comb += self.queue_push.eq(1)
                        m.d.sync += [ld_n.eq(desc.n), ld_k.eq(desc.k), ld_mode.eq(desc.mode),
                                     ld_n0.eq(0), ld_k0.eq(0), ld_row.eq(0), ld_krow.eq(0)]
                        if p.vsq:
                            m.d.sync += [ld_vsq.eq(desc.vsq), ld_vsel.eq(desc.vsel),
                                         ld_vbase.eq(0)]
                        if p.sparse:
                            m.d.sync += ld_sparse.eq(desc.sparse)
                        m.next = "LOAD"
                    with m.Elif(errors != 0xFFFF):
                        m.d.sync += errors.eq(errors + 1)
            with m.State("LOAD"):
                with m.If(bank_free & self.w.valid):
                    m.d.comb += [self.w.ready.eq(take_beat), self.w_row_we.eq(1 << ld_row)]
                    m.d.sync += [ld_row.eq(ld_row + 1), ld_krow.eq(ld_krow + ld_kstep)]
                    for b in range(len(wscale)):
                        with m.If(ld_bank == b):
                            m.d.sync += wscale[b].eq(self.w.payload.scale)
                    for b in range(len(wmult)):
                        with m.If(ld_bank == b):
                            m.d.sync += [wmult[b].eq(self.w.payload.mult),
                                         wshift[b].eq(self.w.payload.shift)]
                    with m.If(ld_row == R - 1):
                        m.d.comb += self.bank_set.eq(Mux(ld_bank, 0b10, 0b01))
                        m.d.sync += [ld_bank.eq(~ld_bank), ld_row.eq(0)]
                        if p.vsq:
                            with m.If((ld_k0 + ld_kdepth >= ld_end) & (ld_end < ld_k)):
                                # the vector's last tile: the next vector starts at its end
                                m.d.sync += [ld_k0.eq(ld_end), ld_krow.eq(ld_end),
                                             ld_vbase.eq(ld_end)]
                        last_tile = ld_k0 + ld_kdepth >= ld_k
                        if p.vsq:
                            last_tile = (ld_k0 + ld_kdepth >= ld_end) & (ld_end >= ld_k)
                        with m.If(last_tile):
                            m.d.sync += [ld_k0.eq(0), ld_krow.eq(0), ld_n0.eq(ld_n0 + C)]
                            if p.vsq:
                                m.d.sync += ld_vbase.eq(0)
                            with m.If(ld_n0 + C >= ld_n):
                                m.next = "IDLE"
                        with m.Elif(ld_k0 + ld_kdepth < ld_end) if p.vsq else m.Else():
                            m.d.sync += [ld_k0.eq(ld_k0 + ld_kdepth), ld_krow.eq(ld_k0 + ld_kdepth)]
        m.d.comb += self.busy.eq(~loader_fsm.ongoing("IDLE"))
        return m
