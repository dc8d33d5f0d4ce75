"""Per-column lanes of the GEMM engine's output stage, one module each however many columns there are:
the conversion of an FP8 Kulisch sum to binary32 (:class:`ToBinary32`) and the post-processing unit
(:class:`PostLane`)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.formats import FP8_FORMATS
from .lib.hier import Reused

__all__ = ["ToBinary32", "PostLane", "round_to_24_bits"]


def round_to_24_bits(m, value, wm, prefix):
    """Sign, magnitude, leading-one position and 25-bit rounded significand of the signed ``value``
    (``|value| < 2**wm``, ``wm >= 26``), for a conversion to binary32; signals are named
    ``<prefix>_<what>``.

    The magnitude is normalized so that its leading one is bit ``wm - 1`` and cut to 24 bits, rounding
    to nearest, ties to even (guard bit, sticky OR of the rest). Bit 24 of the significand is set when
    rounding carries out (then its low 23 bits are 0); the caller adds it to the exponent.
    """
    neg = value[-1]
    mag = Signal(wm, name=f"{prefix}_mag")
    m.d.comb += mag.eq(Mux(neg, -value, value)[:wm])
    lead = Signal(range(wm), name=f"{prefix}_lead")
    lz = Signal(range(wm), name=f"{prefix}_lz")
    for i in range(wm):             # priority encoder: the highest set bit wins
        with m.If(mag[i]):
            m.d.comb += [lead.eq(i), lz.eq(wm - 1 - i)]
    norm = Signal(wm, name=f"{prefix}_norm")
    m.d.comb += norm.eq((mag << lz)[:wm])
    top = norm[wm - 24:wm]
    guard = norm[wm - 25]
    sticky = norm[:wm - 25].any()
    sig = Signal(25, name=f"{prefix}_sig")
    m.d.comb += sig.eq(top + (guard & (sticky | top[0])))
    return neg, mag, lead, sig


class ToBinary32(Reused, wiring.Component):
    """The binary32 bit pattern of an FP8 Kulisch sum, rounded to nearest, ties to even, with the
    special values of its flags. Combinational (latency 0).

    ``total`` counts units of ``2**lsb`` (lsb = -18 in E4M3, -32 in E5M2; ``e5`` selects). With the
    magnitude's leading one at bit ``p``, the result's biased exponent is ``p + lsb + 127``, plus one
    when rounding carries out of the 24-bit significand; the width rule keeps it within 1 to 254.

    Parameters
    ----------
    width : int
        Bits of the sum (``|total| < 2**(width - 1)``).
    formats : tuple of str
        FP8 formats built (``e4m3``, ``e5m2``).

    Members
    -------
    total : In(signed(width))
    flags : In(3)
        NaN, +inf, -inf.
    e5 : In(1)
        The sum is of E5M2 products.
    fp32 : Out(32)
    """

    module_suffix = "to_binary32"
    latency = 0

    def __init__(self, *, width, formats):
        self._width, self._formats = width, tuple(formats)
        wm = width - 1
        assert wm >= 26
        lsbs = {f: 2 * FP8_FORMATS[f].lsb_exp for f in self._formats}
        assert min(lsbs.values()) + 127 >= 1 and wm - 1 + max(lsbs.values()) + 127 + 1 <= 254
        super().__init__({"total": In(signed(width)), "flags": In(3), "e5": In(1),
                          "fp32": Out(32)})

    def elaborate(self, platform):
        m = Module()
        wm = self._width - 1
        lsbs = {f: 2 * FP8_FORMATS[f].lsb_exp for f in self._formats}
        neg, mag, p, sig = round_to_24_bits(m, self.total, wm, "cv")
        bias = {f: lsb + 127 for f, lsb in lsbs.items()}
        offset = (Mux(self.e5, bias["e5m2"], bias["e4m3"]) if len(bias) == 2
                  else Const(next(iter(bias.values())), 8))
        exp = Signal(8, name="cv_exp")
        m.d.comb += exp.eq(p + offset + sig[24])
        # On a carry the significand is 2**24 and its low 23 bits are 0, as the fraction must be.
        finite = Mux(mag == 0, 0, Cat(sig[:23], exp, neg))
        nan, pinf, ninf = self.flags[0], self.flags[1], self.flags[2]
        m.d.comb += self.fp32.eq(Mux(nan | (pinf & ninf), 0x7FC00000,
                                     Mux(pinf, 0x7F800000, Mux(ninf, 0xFF800000, finite))))
        return m


class PostLane(Reused, wiring.Component):
    """Post-processing of one output lane (as :func:`sim.golden.vsq.postprocess`).

    ``acc`` (the accumulator) times the unsigned multiplier, shifted right with rounding to nearest,
    ties to even, optional ReLU, saturated to INT8 or INT4 (``out`` = 1, 2); or the exact
    ``acc * mult * 2**-shift`` rounded once to binary32, ties to even (``out`` = 3; ReLU gives +0); or
    ``acc`` unchanged (``out`` = 0). The multiplier and shift are registered here (they arrive one
    cycle before ``acc``, with the stage before); the rest is combinational.

    Parameters
    ----------
    acc_width, mult_bits, shift_bits : int
        Widths of the accumulator, the multiplier and the shift.
    out_width : int
        Width of ``result``.

    Members
    -------
    acc : In(signed(acc_width)); mult_in : In(mult_bits); shift_in : In(shift_bits)
    out : In(2); relu : In(1)
    result : Out(signed(out_width))
    """

    module_suffix = "post_lane"

    def __init__(self, *, acc_width, mult_bits, shift_bits, out_width):
        self._aw, self._mb, self._sb, self._ow = acc_width, mult_bits, shift_bits, out_width
        super().__init__({"acc": In(signed(acc_width)), "mult_in": In(mult_bits),
                          "shift_in": In(shift_bits), "out": In(2), "relu": In(1),
                          "result": Out(signed(out_width))})

    def elaborate(self, platform):
        m = Module()
        acc = self.acc
        mult = Signal(self._mb, name="mult")
        sh = Signal(self._sb, name="shift")
        m.d.sync += [mult.eq(self.mult_in), sh.eq(self.shift_in)]
        width = len(acc) + len(mult) + 1
        p = Signal(signed(width), name="pp_prod")
        m.d.comb += p.eq(acc * mult)
        q = Signal(signed(width), name="pp_q")
        m.d.comb += q.eq(p >> sh)
        shm1 = Signal(len(sh), name="pp_shm1")
        m.d.comb += shm1.eq(sh - 1)
        pu = p.as_unsigned()
        guard = Signal(name="pp_guard")
        sticky = Signal(name="pp_sticky")
        below = Signal(width, name="pp_below")   # bits under the guard bit
        m.d.comb += [guard.eq((pu >> shm1)[0]),
                     below.eq(~(Const((1 << width) - 1, width) << shm1)[:width]),
                     sticky.eq((pu & below).any())]
        rounded = Signal(signed(width + 1), name="pp_round")
        # |p| < 2**(width - 1) <= 2**(sh - 1) for sh >= width: the exact quotient is within
        # [-1/2, 1/2) and rounds (half to even) to 0.
        m.d.comb += rounded.eq(Mux(sh == 0, p, Mux(sh >= width, 0,
                                                    q + (guard & (sticky | q[0])))))
        relu = Signal(signed(width + 1), name="pp_relu")
        m.d.comb += relu.eq(Mux(self.relu & rounded[-1], 0, rounded))
        lo = Mux(self.out == 2, -8, -128)
        hi = Mux(self.out == 2, 7, 127)
        sat = Signal(signed(8), name="pp_sat")
        m.d.comb += sat.eq(Mux(relu < lo, lo, Mux(relu > hi, hi, relu)))
        fp32 = self._binary32(m, p, sh, self.relu)
        m.d.comb += self.result.eq(Mux(self.out == 0, acc, Mux(self.out == 3, fp32, sat)))
        return m

    @staticmethod
    def _binary32(m, p, sh, relu):
        """The binary32 bit pattern (32 bits, unsigned) of ``p * 2**-sh``, rounded to nearest, ties
        to even, +0 for 0 or (``relu``) a negative ``p``.

        It is always a finite normal number: ``|p| < 2**127`` (``|acc| <= 2**63``, multipliers below
        ``2**64``) and ``sh <= 126`` (two 6-bit shifts) bound the exponent of the leading one to -126
        ... 126, and rounding adds at most 1 to it.
        """
        assert len(p) - 1 <= 127 and (1 << len(sh)) - 1 <= 127
        neg, mag, lead, sig = round_to_24_bits(m, p, max(len(p) - 1, 26), "pf")
        exp = Signal(8, name="pf_exp")
        m.d.comb += exp.eq((lead + 127 + sig[24] - sh)[:8])
        # On a carry the significand is 2**24 and its low 23 bits are 0, as the fraction must be.
        out = Signal(32, name="pf_fp32")
        m.d.comb += out.eq(Mux((mag == 0) | (relu & neg), 0, Cat(sig[:23], exp, neg)))
        return out
