"""Pass 1 of the softmax unit: the running maximum and the running sum of a row, beat by beat."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..lib.hier import Reused
from .arith import add_fast, exp2_entries, int_shape, sum_fast

__all__ = ["RunningSum", "beat_layout"]


def beat_layout(lanes, in_width):
    """A beat as the row buffer keeps it: ``data`` (signed scores), ``mask``, ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(signed(in_width), lanes), "mask": lanes,
                              "last": 1})


class RunningSum(Reused, wiring.Component):
    """The online normalizer (Milakov and Gimelshein, 2018) over the beats of a row: for every beat,
    ``m' = max(m, max ce(x))`` and ``d' = (d >> (m' - m)) + sum T[r(x)] >> (m' - fl(x))``, exactly
    as :func:`sim.golden.softmax.softmax_beats` writes it; at a row's last beat, ``(m, d)`` and
    whether every lane of the row was masked.

    Stages (no stalls: a beat in is a beat through):

    A. ``ce`` of every lane, the beat's maximum, ``m'`` (the loop of ``m``: small integers) and the
       shift of ``d``; registered.
    B. The table entries ``T[r]`` and the shifts ``m' - fl``; registered when ``table_reg``.
    C. The terms ``T[r] >> (m' - fl)`` (0 for masked lanes); registered when ``shift_reg``.
    D. Their sum (carry-save, then one carry-select adder); registered.
    E. The loop of ``d``: ``(d >> (m' - m)) + sum`` (0 for the shifted part before the row's first
       unmasked lane), registered in ``o``.

    Members
    -------
    i : In(valid, beat): a beat, valid for one cycle.
    o : Out(valid, m, d, empty): a row's result, valid for one cycle after its last beat.
    """

    module_suffix = "softmax_pass1"

    def __init__(self, *, lanes, in_width, in_frac, sum_frac, sum_width, table_reg, shift_reg):
        self._p = dict(lanes=lanes, in_width=in_width, in_frac=in_frac, sum_frac=sum_frac,
                       sum_width=sum_width, table_reg=bool(table_reg), shift_reg=bool(shift_reg))
        ish = int_shape(in_width, in_frac)
        super().__init__({
            "i": In(data.StructLayout({"valid": 1, "beat": beat_layout(lanes, in_width)})),
            "o": Out(data.StructLayout({"valid": 1, "m": ish, "d": sum_width, "empty": 1})),
        })

    @property
    def latency(self):
        """Cycles from the last beat of a row in ``i`` to its result in ``o``."""
        return 3 + self._p["table_reg"] + self._p["shift_reg"]

    def elaborate(self, platform):
        m = Module()
        p = self._p
        P, W, F, S, Wd = p["lanes"], p["in_width"], p["in_frac"], p["sum_frac"], p["sum_width"]
        ish = int_shape(W, F)
        cap = S + 2
        cap_bits = cap.bit_length()
        ce_min = -(1 << (W - 1 - F)) if W > F else -1
        beat = self.i.beat

        # --- A: the maximum (a loop on small integers) and the shift of d.
        run_m = Signal(ish)
        first = Signal(init=1)
        live = Signal(P)
        m.d.comb += live.eq(~beat.mask)
        any_live = Signal()
        m.d.comb += any_live.eq(live.any())
        ces = []
        for k in range(P):
            x = beat.data[k]
            ce = Signal(ish, name=f"ce{k}")
            frac = x[:F].any() if F else Const(0, 1)
            m.d.comb += ce.eq(Mux(live[k], (x >> F) + frac, ce_min))
            ces.append(ce)
        while len(ces) > 1:
            nxt = []
            for a, b in zip(ces[::2], ces[1::2], strict=False):
                mx = Signal(ish)
                m.d.comb += mx.eq(Mux(a > b, a, b))
                nxt.append(mx)
            if len(ces) % 2:
                nxt.append(ces[-1])
            ces = nxt
        beat_max = ces[0]
        m_new = Signal(ish)
        m.d.comb += m_new.eq(Mux(any_live & (first | (beat_max > run_m)), beat_max, run_m))
        grow = Signal(ish)
        m.d.comb += grow.eq(m_new - run_m)
        dsh_bits = Wd.bit_length()
        a_valid = Signal()
        a_last = Signal(reset_less=True)
        a_reset = Signal(reset_less=True)   # d's shifted part is 0 (no unmasked lane yet)
        a_empty = Signal(reset_less=True)
        a_m = Signal(ish, reset_less=True)
        a_dsh = Signal(dsh_bits, reset_less=True)
        a_x = Signal(data.ArrayLayout(signed(W), P), reset_less=True)
        a_live = Signal(P, reset_less=True)
        # A beat that is not valid goes on with no live lane, no shift and no reset, so that the
        # loop of d (stage E) keeps its value without an enable.
        v = self.i.valid
        m.d.sync += [a_valid.eq(v), a_last.eq(beat.last), a_reset.eq(v & first),
                     a_empty.eq(first & ~any_live), a_m.eq(m_new),
                     a_dsh.eq(Mux(v & (grow > 0), Mux(grow > Wd, Wd, grow[:dsh_bits]), 0)),
                     a_x.eq(beat.data), a_live.eq(Mux(v, live, 0))]
        with m.If(v):
            with m.If(beat.last):
                m.d.sync += first.eq(1)
            with m.Else():
                m.d.sync += run_m.eq(m_new)
                with m.If(any_live):
                    m.d.sync += first.eq(0)

        # Side information travels beside the lanes through B, C and D.
        side = data.StructLayout({"valid": 1, "last": 1, "reset": 1, "empty": 1, "m": ish,
                                  "dsh": dsh_bits})
        side_a = Signal(side)
        m.d.comb += [side_a.valid.eq(a_valid), side_a.last.eq(a_last), side_a.reset.eq(a_reset),
                     side_a.empty.eq(a_empty), side_a.m.eq(a_m), side_a.dsh.eq(a_dsh)]

        def stage(on, sig, name):
            """``sig`` registered when ``on``, else ``sig`` itself."""
            if not on:
                return sig
            reg = Signal.like(sig, name=name, reset_less=True)
            m.d.sync += reg.eq(sig)
            return reg

        def side_stage(on, sig, name):
            if not on:
                return sig
            reg = Signal(side, name=name)
            m.d.sync += reg.eq(sig)
            return reg

        # --- B: table entries and shift amounts.
        table = Array(Const(v, S + 1) for v in exp2_entries(F, S))
        ents, shs = [], []
        for k in range(P):
            x = a_x[k]
            ent = Signal(S + 1, name=f"ent{k}")
            sh = Signal(cap_bits, name=f"sh{k}")
            diff = Signal(ish, name=f"shd{k}")
            m.d.comb += [ent.eq(Mux(a_live[k], table[x[:F] if F else 0], 0)),
                         diff.eq(a_m - (x >> F)),
                         sh.eq(Mux(diff > cap, cap, diff[:cap_bits]))]
            ents.append(stage(p["table_reg"], ent, f"ent{k}_b"))
            shs.append(stage(p["table_reg"], sh, f"sh{k}_b"))
        side_b = side_stage(p["table_reg"], side_a, "side_b")

        # --- C: the terms.
        terms = []
        for k in range(P):
            term = Signal(S + 1, name=f"term{k}")
            m.d.comb += term.eq(ents[k] >> shs[k])
            terms.append(stage(p["shift_reg"], term, f"term{k}_c"))
        side_c = side_stage(p["shift_reg"], side_b, "side_c")

        # --- D: their sum.
        sum_bits = min(Wd, S + 1 + P.bit_length())
        beat_sum = sum_fast(m, terms, sum_bits, name="beat_sum")
        d_sum = Signal(sum_bits, reset_less=True)
        m.d.sync += d_sum.eq(beat_sum)
        side_d = side_stage(True, side_c, "side_d")

        # --- E: the loop of d.
        run_d = Signal(Wd, reset_less=True)
        shifted = Signal(Wd)
        m.d.comb += shifted.eq(Mux(side_d.reset, 0, run_d >> side_d.dsh))
        d_new = add_fast(m, shifted, d_sum, Wd, name="d_new")
        m.d.sync += [run_d.eq(d_new[:Wd]), self.o.valid.eq(side_d.valid & side_d.last),
                     self.o.m.eq(side_d.m), self.o.d.eq(d_new[:Wd]), self.o.empty.eq(side_d.empty)]
        return m
