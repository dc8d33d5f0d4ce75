"""A weight-stationary systolic array of :class:`gen.pe.MixedPE`, with input skew and output deskew."""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib import hier
from .pe import FLAG_WIDTH, MixedPE, fp_formats, mode_index_width, pe_max_product

__all__ = ["SystolicArray", "psum_width"]


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

    Members
    -------
    a : In(8).array(rows)
        Activation bytes of one wavefront.
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
    """

    def __init__(self, *, rows, cols, modes):
        self._rows = rows
        self._cols = cols
        self._modes = tuple(modes)
        self._psum_width = psum_width(rows, modes)
        self._fp = bool(fp_formats(modes))
        fp_members = {"fl": Out(FLAG_WIDTH).array(cols), "w_ok": In(1).array(cols)} if self._fp else {}
        super().__init__({
            **fp_members,
            "a": In(8).array(rows),
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
        pes = [[MixedPE(modes=self._modes, psum_width=self._psum_width) for _ in range(cols)]
               for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                hier.add(m, f"pe_{r}_{c}", pes[r][c])

        for r in range(rows):
            a, bank, mode = self.a[r], self.bank, self.mode
            for i in range(r):
                a_d = Signal(8, name=f"skew_a_{r}_{i}")
                bank_d = Signal(name=f"skew_bank_{r}_{i}")
                mode_d = Signal.like(self.mode, name=f"skew_mode_{r}_{i}")
                m.d.sync += [a_d.eq(a), bank_d.eq(bank), mode_d.eq(mode)]
                a, bank, mode = a_d, bank_d, mode_d
            for c in range(cols):
                pe = pes[r][c]
                m.d.comb += [pe.a_i.eq(a), pe.bank_i.eq(bank), pe.mode_i.eq(mode)]
                a, bank, mode = pe.a_o, pe.bank_o, pe.mode_o
                m.d.comb += [
                    pe.w_data.eq(self.w_data[c]),
                    pe.w_we.eq(self.w_row_we[r].replicate(2) & Cat(~self.w_bank, self.w_bank)),
                ]
                # Row 0 starts every column sum from zero.
                m.d.comb += pe.ps_i.eq(pes[r - 1][c].ps_o if r > 0 else 0)
                if self._fp:
                    m.d.comb += [pe.fl_i.eq(pes[r - 1][c].fl_o if r > 0 else 0),
                                 pe.w_ok.eq(self.w_ok[c])]

        for c in range(cols):
            ps = pes[rows - 1][c].ps_o
            fl = pes[rows - 1][c].fl_o if self._fp else None
            for i in range(cols - 1 - c):
                ps_d = Signal(signed(self._psum_width), name=f"deskew_{c}_{i}")
                m.d.sync += ps_d.eq(ps)
                ps = ps_d
                if self._fp:
                    fl_d = Signal(FLAG_WIDTH, name=f"deskew_fl_{c}_{i}")
                    m.d.sync += fl_d.eq(fl)
                    fl = fl_d
            m.d.comb += self.ps[c].eq(ps)
            if self._fp:
                m.d.comb += self.fl[c].eq(fl)
        return m
