"""A weight-stationary systolic array of :class:`gen.pe.MixedPE`, with input skew and output deskew."""

from amaranth.hdl import Cat, Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .lib.delay import delay
from .lib.hier import Reused
from .pe import (FLAG_WIDTH, MixedPE, act_lane_width, fp_formats, meta_width, mode_index_width,
                 pe_max_product)

__all__ = ["SystolicArray", "PeRow", "psum_width"]


def psum_width(rows, modes):
    """Partial-sum width that holds the column sum of ``rows`` PEs in every mode, plus a sign bit."""
    return (rows * pe_max_product(modes)).bit_length() + 1


class SystolicArray(wiring.Component):
    """An R x C grid of PEs fed by a wavefront: all R activation lanes enter in the same cycle.

    Row ``r`` of the wavefront is delayed by ``r`` cycles before it enters PE(r, 0) (the skew); activations
    move one PE to the right per cycle, partial sums one PE down per cycle, and the bottom of column ``c``
    is delayed by ``C - 1 - c`` cycles (the deskew), so the C column sums of one wavefront leave together,
    :attr:`latency` cycles after it entered. PE(r, c) uses the weight of bank ``bank`` that row ``r`` of
    column ``c`` was loaded with.

    Parameters
    ----------
    rows, cols : int
        R and C.
    modes : tuple of str
        Modes built into the PEs.
    sparse : bool
        2:4 PEs (:class:`gen.pe.MixedPE`): a wider activation lane per row and the weights'
        positions on ``w_meta``.

    Members
    -------
    a : In(act_lane_width(modes, sparse)).array(rows)
        Activation lanes of one wavefront (a byte; 2:4: a group of 4 activations).
    bank : In(1)
        Weight bank the wavefront uses.
    mode : In(mode_index_width(modes))
        Mode of the wavefront (index into ``modes``).
    ps : Out(signed(psum_width(rows, modes))).array(cols)
        Column sums of the wavefront that entered :attr:`latency` cycles ago.
    w_data : In(8).array(cols)
        One weight byte per column.
    w_row_we : In(rows)
        Rows whose weight of bank ``w_bank`` take ``w_data`` at the next clock edge.
    w_bank : In(1)
        Bank written.
    fl : Out(3).array(cols)
        FP8 modes only: special-value flags (NaN, +inf, -inf) of the column sums at ``ps``.
    w_ok : In(1).array(cols)
        FP8 modes only: the weight written in column ``c`` is a real element, not padding.
    w_meta : In(meta_width(modes)).array(cols)
        2:4 only: the position(s) of the weight written in column ``c``.
    """

    def __init__(self, *, rows, cols, modes, sparse=False):
        self._rows = rows
        self._cols = cols
        self._modes = tuple(modes)
        self._sparse = bool(sparse)
        self._psum_width = psum_width(rows, modes)
        self._fp = bool(fp_formats(modes))
        fp_members = {"fl": Out(FLAG_WIDTH).array(cols), "w_ok": In(1).array(cols)} if self._fp else {}
        if self._sparse:
            fp_members["w_meta"] = In(meta_width(modes)).array(cols)
        super().__init__({
            **fp_members,
            "a": In(act_lane_width(modes, sparse)).array(rows),
            "bank": In(1),
            "mode": In(mode_index_width(modes)),
            "ps": Out(signed(self._psum_width)).array(cols),
            "w_data": In(8).array(cols),
            "w_row_we": In(rows),
            "w_bank": In(1),
        })

    @property
    def psum_width(self):
        return self._psum_width

    @property
    def latency(self):
        """Cycles from a wavefront at the inputs to its column sums at ``ps``: R + C - 1."""
        return self._rows + self._cols - 1

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        pe_rows = []
        for r in range(rows):
            row = hier.add(m, f"row_{r}", PeRow(modes=self._modes, psum_width=self._psum_width,
                                                cols=cols, sparse=self._sparse))
            pe_rows.append(row)
            # The skew: row r's activation, bank and mode, r cycles late.
            lane = delay(m, f"skew_{r}", Cat(self.a[r], self.bank, self.mode), r)
            aw = len(self.a[r])
            a, bank, mode = lane[:aw], lane[aw], lane[aw + 1:]
            m.d.comb += [row.a_i.eq(a), row.bank_i.eq(bank), row.mode_i.eq(mode),
                         row.w_we.eq(self.w_row_we[r].replicate(2) & Cat(~self.w_bank, self.w_bank))]
            for c in range(cols):
                m.d.comb += row.w_data[c].eq(self.w_data[c])
                if self._sparse:
                    m.d.comb += row.w_meta[c].eq(self.w_meta[c])
                # Row 0 starts every column sum from zero.
                if r > 0:
                    m.d.comb += row.ps_i[c].eq(pe_rows[r - 1].ps_o[c])
                if self._fp:
                    m.d.comb += row.w_ok[c].eq(self.w_ok[c])
                    if r > 0:
                        m.d.comb += row.fl_i[c].eq(pe_rows[r - 1].fl_o[c])

        # The deskew: column c's sum (and flags), C - 1 - c cycles late.
        pw = self._psum_width
        for c in range(cols):
            bottom = pe_rows[rows - 1]
            lane = Cat(bottom.ps_o[c], bottom.fl_o[c]) if self._fp else bottom.ps_o[c]
            lane = delay(m, f"deskew_{c}", lane, cols - 1 - c)
            m.d.comb += self.ps[c].eq(lane[:pw])
            if self._fp:
                m.d.comb += self.fl[c].eq(lane[pw:])
        return m


class PeRow(Reused, wiring.Component):
    """One row of the array: ``cols`` PEs (:class:`gen.pe.MixedPE`) passing the activation, bank and
    mode from left to right; the partial sums enter from above and leave below, one per column. A
    module of its own, so that an R x C array instantiates R rows of C PEs.

    Members
    -------
    a_i, bank_i, mode_i : In
        Activation byte, weight bank and mode entering PE 0 of the row.
    w_we : In(2)
        Write enables of weight banks 0 and 1 of every PE of the row.
    w_data : In(data.ArrayLayout(8, cols))
    ps_i, ps_o : In, Out(data.ArrayLayout(signed(psum_width), cols))
    fl_i, fl_o : In, Out(data.ArrayLayout(3, cols)); w_ok : In(cols)
        FP8 modes only, per column (see :class:`gen.pe.MixedPE`).
    w_meta : In(data.ArrayLayout(meta_width(modes), cols))
        2:4 only (``sparse``): the positions of the weights written, per column.
    """

    module_suffix = "pe_row"
    optional_parameters = ("sparse",)

    def __init__(self, *, modes, psum_width, cols, sparse=False):
        self._modes, self._psum_width, self._cols = tuple(modes), psum_width, cols
        self._sparse = bool(sparse)
        self._fp = bool(fp_formats(modes))
        # Per-column lanes are one packed port each, so that an instance has a few connections,
        # not a few per column.
        flags = data.ArrayLayout(FLAG_WIDTH, cols)
        psums = data.ArrayLayout(signed(psum_width), cols)
        fp_members = ({"fl_i": In(flags), "fl_o": Out(flags), "w_ok": In(cols)} if self._fp
                      else {})
        if self._sparse:
            fp_members["w_meta"] = In(data.ArrayLayout(meta_width(modes), cols))
        super().__init__({
            **fp_members,
            "a_i": In(act_lane_width(modes, sparse)), "bank_i": In(1),
            "mode_i": In(mode_index_width(modes)),
            "w_we": In(2), "w_data": In(data.ArrayLayout(8, cols)),
            "ps_i": In(psums), "ps_o": Out(psums),
        })

    def elaborate(self, platform):
        m = Module()
        a, bank, mode = self.a_i, self.bank_i, self.mode_i
        for c in range(self._cols):
            pe = hier.add(m, f"pe_{c}", MixedPE(modes=self._modes, psum_width=self._psum_width,
                                                sparse=self._sparse))
            m.d.comb += [pe.a_i.eq(a), pe.bank_i.eq(bank), pe.mode_i.eq(mode),
                         pe.w_data.eq(self.w_data[c]), pe.w_we.eq(self.w_we),
                         pe.ps_i.eq(self.ps_i[c]), self.ps_o[c].eq(pe.ps_o)]
            a, bank, mode = pe.a_o, pe.bank_o, pe.mode_o
            if self._sparse:
                m.d.comb += pe.w_meta.eq(self.w_meta[c])
            if self._fp:
                m.d.comb += [pe.fl_i.eq(self.fl_i[c]), pe.w_ok.eq(self.w_ok[c]),
                             self.fl_o[c].eq(pe.fl_o)]
        return m
