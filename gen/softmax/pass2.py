"""Pass 2 of the softmax unit: every element of a row, read back, times the row's reciprocal."""

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..lib.hier import Reused
from .arith import add_fast, compress, exp2_entries, int_shape
from .pass1 import beat_layout

__all__ = ["Scale", "info_layout", "MULT_CHUNK"]

MULT_CHUNK = 6
"""Bits of the reciprocal per partial product when the multiply takes two stages."""


def info_layout(in_width, in_frac, sum_width, sum_frac, recip_bits, beats_bits):
    """A row's information for pass 2: ``m``, ``r`` (the reciprocal R), ``ks`` (``k - S``, where
    ``k`` is the bit length of the row's sum), ``empty`` and ``beats``."""
    return data.StructLayout({"m": int_shape(in_width, in_frac), "r": recip_bits + 2,
                              "ks": max(1, (sum_width - sum_frac).bit_length()), "empty": 1,
                              "beats": beats_bits})


class Scale(Reused, wiring.Component):
    """``y = min(round_half_up(n * R / 2**t), 2**O)`` for every lane of a beat, with
    ``n = T[r(x)] >> (m - fl(x))`` (0 for masked lanes) and ``t = M + k - O``, exactly as
    :func:`sim.golden.softmax.softmax_beats`.

    The shift ``t - 1`` is ``(S + M - O - 1) + (k - S)``: ``k >= S`` for every row with an unmasked
    lane (its maximum's term is at least ``2**(S-1)``), so only ``k - S`` is variable, and the
    product shifted by the constant part has ``O + 3`` bits.

    Stages (no stalls): the table entries and shifts (registered when ``table_reg``), the shifted
    entries ``n`` (registered when ``shift_reg``), the product ``n * R`` (one stage, or with
    ``mult_stages = 2`` partial products of :data:`MULT_CHUNK` bits of ``R`` registered, then
    reduced and added), registered; the rounding and saturation after that register feed ``o``.

    Members
    -------
    i : In(valid, beat, info): a beat read back and its row's information.
    o : Out(valid, data, last, all_masked), :attr:`latency` cycles later.
    """

    module_suffix = "softmax_pass2"

    def __init__(self, *, lanes, in_width, in_frac, out_frac, sum_frac, sum_width, recip_bits,
                 beats_bits, table_reg, shift_reg, mult_stages):
        if mult_stages not in (1, 2):
            raise ValueError(f"mult_stages = {mult_stages}: must be 1 or 2")
        self._p = dict(lanes=lanes, in_width=in_width, in_frac=in_frac, out_frac=out_frac,
                       sum_frac=sum_frac, sum_width=sum_width, recip_bits=recip_bits,
                       table_reg=bool(table_reg), shift_reg=bool(shift_reg),
                       mult_stages=mult_stages)
        info = info_layout(in_width, in_frac, sum_width, sum_frac, recip_bits, beats_bits)
        super().__init__({
            "i": In(data.StructLayout({"valid": 1, "beat": beat_layout(lanes, in_width),
                                       "info": info})),
            "o": Out(data.StructLayout({"valid": 1,
                                        "data": data.ArrayLayout(out_frac + 1, lanes),
                                        "last": 1, "all_masked": 1})),
        })

    @property
    def latency(self):
        """Cycles from ``i`` to ``o``."""
        p = self._p
        return p["table_reg"] + p["shift_reg"] + p["mult_stages"]

    def elaborate(self, platform):
        m = Module()
        p = self._p
        P, W, F, O = p["lanes"], p["in_width"], p["in_frac"], p["out_frac"]
        S, M = p["sum_frac"], p["recip_bits"]
        ish = int_shape(W, F)
        cap = S + 2
        cap_bits = cap.bit_length()
        beat, info = self.i.beat, self.i.info
        side = data.StructLayout({"valid": 1, "last": 1, "empty": 1, "r": M + 2,
                                  "ks": len(info.ks)})
        side0 = Signal(side)
        m.d.comb += [side0.valid.eq(self.i.valid), side0.last.eq(beat.last),
                     side0.empty.eq(info.empty), side0.r.eq(info.r), side0.ks.eq(info.ks)]

        def stage(on, sig, name, reset=False):
            if not on:
                return sig
            reg = Signal.like(sig, name=name, reset_less=not reset)
            m.d.sync += reg.eq(sig)
            return reg

        # Table entries and shifts.
        table = Array(Const(v, S + 1) for v in exp2_entries(F, S))
        ents, shs = [], []
        for k in range(P):
            x = beat.data[k]
            ent = Signal(S + 1, name=f"ent{k}")
            diff = Signal(ish, name=f"shd{k}")
            sh = Signal(cap_bits, name=f"sh{k}")
            m.d.comb += [ent.eq(Mux(beat.mask[k], 0, table[x[:F] if F else 0])),
                         diff.eq(info.m - (x >> F)),
                         sh.eq(Mux(diff > cap, cap, diff[:cap_bits]))]
            ents.append(stage(p["table_reg"], ent, f"ent{k}_t"))
            shs.append(stage(p["table_reg"], sh, f"sh{k}_t"))
        side1 = stage(p["table_reg"], side0, "side_t", reset=True)

        # n = T[r] >> (m - fl).
        ns = []
        for k in range(P):
            n = Signal(S + 1, name=f"n{k}")
            m.d.comb += n.eq(ents[k] >> shs[k])
            ns.append(stage(p["shift_reg"], n, f"n{k}_s"))
        side2 = stage(p["shift_reg"], side1, "side_s", reset=True)

        # The product n * R, registered.
        pw = S + M + 3
        prods = []
        if p["mult_stages"] == 1:
            for k in range(P):
                prod = Signal(pw, name=f"prod{k}", reset_less=True)
                m.d.sync += prod.eq(ns[k] * side2.r)
                prods.append(prod)
            side3 = stage(True, side2, "side_p", reset=True)
        else:
            chunks = range(0, M + 2, MULT_CHUNK)
            parts = []
            for k in range(P):
                row = []
                for c in chunks:
                    w = min(MULT_CHUNK, M + 2 - c)
                    pp = Signal(S + 1 + w, name=f"pp{k}_{c}", reset_less=True)
                    m.d.sync += pp.eq(ns[k] * side2.r[c:c + w])
                    row.append((c, pp))
                parts.append(row)
            side_pp = stage(True, side2, "side_pp", reset=True)
            for k in range(P):
                a, b = compress(m, [pp << c for c, pp in parts[k]], pw, name=f"prod{k}")
                total = add_fast(m, a, b, pw, name=f"prod{k}_sum")
                prod = Signal(pw, name=f"prod{k}", reset_less=True)
                m.d.sync += prod.eq(total[:pw])
                prods.append(prod)
            side3 = stage(True, side_pp, "side_p", reset=True)

        # Rounding and saturation: half = n R >> (t - 1), y = min((half + 1) >> 1, 2**O).
        base = S + M - O - 1
        for k in range(P):
            top = Signal(O + 3, name=f"top{k}")
            half = Signal(O + 3, name=f"half{k}")
            y = Signal(O + 2, name=f"y{k}")
            sat = Signal(name=f"sat{k}")
            m.d.comb += [
                top.eq(prods[k][base:]),
                half.eq(top >> side3.ks),
                sat.eq(half[O + 2] | (half[O + 1] & half[:O + 1].any())),
                y.eq((half[:O + 2] + 1) >> 1),
                self.o.data[k].eq(Mux(sat, 1 << O, y[:O + 1])),
            ]
        m.d.comb += [self.o.valid.eq(side3.valid), self.o.last.eq(side3.last),
                     self.o.all_masked.eq(side3.empty)]
        return m
