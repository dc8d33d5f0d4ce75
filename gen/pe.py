"""A mixed-precision, weight-stationary processing element."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.formats import FP8_FORMATS, INT_MODE_NAMES, MODES, fp_product_max, mode_by_name
from .lib.hier import Reused

__all__ = ["MixedPE", "pe_max_product", "mode_index_width", "fp_formats", "FLAG_WIDTH",
           "act_lane_width", "meta_width"]

# Special-value flags that travel with an FP8 partial sum: bit 0 NaN, bit 1 +inf, bit 2 -inf.
FLAG_WIDTH = 3


def fp_formats(modes):
    """FP8 format names (``e4m3``, ``e5m2``) of the FP8 modes among ``modes``, in table order."""
    names = [mode_by_name(name).fp8 for name in modes]
    return tuple(f for f in FP8_FORMATS if f in names)


def pe_max_product(modes):
    """Largest magnitude one PE adds to the partial sum in one cycle, over ``modes``: integer products,
    or FP8 products in units of the square of the format's smallest subnormal."""
    table = {"int8": 128 * 128, "int4": 2 * 8 * 8, "w4a8": 128 * 8}
    ints = [table[name] for name in modes if name in table]
    fmts = fp_formats(modes)
    return max(ints + ([fp_product_max(fmts)] if fmts else []))


def act_lane_width(modes, sparse):
    """Bits of the activation lane a PE takes: one byte; with 2:4 sparsity, a group of 4
    activations (32 bits, 16 where INT4 is the only mode)."""
    if not sparse:
        return 8
    return 16 if tuple(modes) == ("int4",) else 32


def meta_width(modes):
    """Bits of a PE's 2:4 metadata per bank: the positions of its kept values in their group (two
    where a byte holds two INT4 weights, ``int4``; else one)."""
    return 4 if "int4" in modes else 2


def mode_index_width(modes):
    """Bits of the internal mode index (position in the configured ``modes`` tuple)."""
    return max(1, (len(modes) - 1).bit_length())


class MixedPE(Reused, wiring.Component):
    """Weight-stationary PE with two weight banks and run-time operand modes.

    Every cycle the PE multiplies the activation byte arriving from the left by the weight byte of the bank
    the activation names, adds the product to the partial sum arriving from above, and registers the
    activation (to the right) and the sum (downwards). The mode travels with the activation, so tiles of
    different modes can be in the array at once.

    One activation byte and one weight byte per cycle are read in every mode:

    ========  ==========================================  =================  ============
    mode      activation byte                             weight byte        MACs/cycle
    ========  ==========================================  =================  ============
    ``int8``  one INT8                                    one INT8           1
    ``int4``  INT4 pair (k in bits 3:0, k+1 in 7:4)       INT4 pair, same    2
    ``w4a8``  one INT8                                    INT4 in bits 3:0   1
    ========  ==========================================  =================  ============

    A PE built for one integer mode has only that mode's multipliers: INT8 one 8 x 8, INT4 two 4 x 4
    (and W4A8 one 8 x 4, with 4-bit weight registers).

    With more than one mode the multiplier is built, as in Bit Fusion (Sharma et al., ISCA 2018), from four
    5 x 5 signed multipliers of nibbles: each nibble is extended by a sign bit that is the nibble's top bit
    where the nibble is signed (high nibbles always, low nibbles in INT4, and the weight's low nibble in
    W4A8) and zero otherwise; the mode selects which nibble products are summed and how far each is
    shifted.

    FP8 modes (``fp8_e4m3``, ``fp8_e5m2``; OCP 8-bit floating point v1.0) read one FP8 code from each
    byte. Each operand is split into sign, significand (``1.M`` or ``0.M`` for subnormals, 4 bits in E4M3,
    3 in E5M2) and effective exponent ``e`` (1 for subnormals); NaN and infinity codes give a zero
    significand and raise flags instead. The exact product is ``sig_a * sig_w`` (at most 8 bits) shifted
    left by ``e_a + e_w - 2`` (0 to 28 in E4M3, 0 to 58 in E5M2): a two's complement fixed-point number
    in units of the square of the smallest subnormal (2**-18 in E4M3, 2**-32 in E5M2), added exactly to
    the partial sum like an integer product (Kulisch accumulation: no rounding, order-independent). The
    flags NaN (a NaN operand, or 0 x inf), +inf and -inf of the product are ORed into the flags that
    travel with the partial sum. A weight slot written as padding (``w_ok`` low: past K or N) raises
    no flag, so don't-care activation lanes cannot turn a result into NaN.

    2:4 structured sparsity (``sparse``; Mishra et al., arXiv:2104.08378, 2021): the PE also keeps,
    per bank, the position in its group of 4 reduction elements of each weight it holds (2 bits:
    one weight, 4: two INT4 weights), and the activation lane carries the group's 4 activations
    (32 bits; 16 in an INT4-only PE). Before the multiplier the PE selects the activation at each
    weight's position: the byte ``a_i[8p + 7 : 8p]`` (INT8, W4A8, FP8) or the nibbles at the two
    positions (INT4). So the multipliers and the weight registers are those of the dense PE, and a
    row of PEs holding a group's 2 kept values retires the group's 4 reduction elements in one
    cycle. A dense weight is written with the position 0 (INT4: 0 and 1) and its activation in the
    lane's low byte, so dense operation is the special case of the identity selection.

    Parameters
    ----------
    modes : tuple of str
        Modes built into the PE; the ``mode`` input is an index into this tuple.
    psum_width : int
        Width of the partial sums passed down the column.
    sparse : bool
        Build the 2:4 selection (``w_meta`` and a wide activation lane).

    Members
    -------
    a_i : In(act_lane_width(modes, sparse)), bank_i : In(1), mode_i : In(mode_index_width(modes))
        Activation lane, weight bank and mode, from the left.
    a_o, bank_o, mode_o : Out
        The same, registered, to the right.
    ps_i : In(signed(psum_width))
        Partial sum from above.
    ps_o : Out(signed(psum_width))
        ``ps_i + product``, registered.
    w_data : In(8)
        Weight byte to store.
    w_we : In(2)
        Write enables of weight banks 0 and 1.
    fl_i, fl_o : In(3), Out(3)
        FP8 modes only: special-value flags of the partial sum (NaN, +inf, -inf), from above and
        ``fl_i | product flags``, registered.
    w_ok : In(1)
        FP8 modes only: the weight being written is a real element (not padding).
    w_meta : In(meta_width(modes))
        2:4 only: the position(s) of the weight(s) being written, bits 1:0 for the weight (or INT4
        weight) in bits 3:0 of ``w_data``, bits 3:2 for the INT4 weight in bits 7:4.
    """

    module_suffix = "pe"
    optional_parameters = ("sparse",)

    def __init__(self, *, modes, psum_width, sparse=False):
        for name in modes:
            mode_by_name(name)
        self._modes = tuple(modes)
        self._psum_width = psum_width
        self._fp = fp_formats(modes)
        self._sparse = bool(sparse)
        mw = mode_index_width(modes)
        aw = act_lane_width(modes, sparse)
        members = {
            "a_i": In(aw), "bank_i": In(1), "mode_i": In(mw),
            "a_o": Out(aw), "bank_o": Out(1), "mode_o": Out(mw),
            "ps_i": In(signed(psum_width)), "ps_o": Out(signed(psum_width)),
            "w_data": In(8), "w_we": In(2),
        }
        if self._fp:
            members.update({"fl_i": In(FLAG_WIDTH), "fl_o": Out(FLAG_WIDTH), "w_ok": In(1)})
        if self._sparse:
            members["w_meta"] = In(meta_width(modes))
        super().__init__(members)

    @property
    def modes(self):
        return self._modes

    @property
    def psum_width(self):
        return self._psum_width

    @property
    def latency(self):
        """Cycles from an input to the registered outputs."""
        return 1

    def elaborate(self, platform):
        m = Module()
        int_modes = tuple(name for name in self._modes if name in INT_MODE_NAMES)
        # W4A8 alone keeps only the weight's low nibble (the loader writes 0 into the high one).
        w_bits = 4 if self._modes == ("w4a8",) else 8
        w0 = Signal(w_bits)
        w1 = Signal(w_bits)
        with m.If(self.w_we[0]):
            m.d.sync += w0.eq(self.w_data[:w_bits])
        with m.If(self.w_we[1]):
            m.d.sync += w1.eq(self.w_data[:w_bits])
        w = Signal(8)
        m.d.comb += w.eq(Mux(self.bank_i, w1, w0))
        a = self._select(m) if self._sparse else self.a_i

        product = Signal(signed(17))
        if int_modes == ("int8",):
            m.d.comb += product.eq(a.as_signed() * w.as_signed())
        elif int_modes == ("int4",):
            # INT4 alone: two 4 x 4 signed multipliers, no INT8 product (Keller et al., VLSI 2022).
            m.d.comb += product.eq(a[0:4].as_signed() * w[0:4].as_signed()
                                   + a[4:8].as_signed() * w[4:8].as_signed())
        elif int_modes == ("w4a8",):
            # W4A8 alone: one 8 x 4 signed multiplier (the weight's high nibble is never used).
            m.d.comb += product.eq(a.as_signed() * w[0:4].as_signed())
        elif int_modes:
            self._fused_product(m, a, w, product)

        if self._fp:
            ok0, ok1 = Signal(), Signal()
            with m.If(self.w_we[0]):
                m.d.sync += ok0.eq(self.w_ok)
            with m.If(self.w_we[1]):
                m.d.sync += ok1.eq(self.w_ok)
            fp_term, flags = self._fp_product(m, a, w, Mux(self.bank_i, ok1, ok0))
            is_fp = Signal()
            m.d.comb += is_fp.eq(self._mode_is(m, [n for n in self._modes if n not in INT_MODE_NAMES]))
            m.d.sync += self.fl_o.eq(self.fl_i | Mux(is_fp, flags, 0))
            term = Mux(is_fp, fp_term, product) if int_modes else fp_term
        else:
            term = product

        m.d.sync += [
            self.a_o.eq(self.a_i),
            self.bank_o.eq(self.bank_i),
            self.mode_o.eq(self.mode_i),
            self.ps_o.eq(self.ps_i + _sign_extend(term, self._psum_width)),
        ]
        return m

    def _select(self, m):
        """2:4: the activation byte the weights of the wavefront's bank need, from the group's
        lane: the byte at the weight's position, or (INT4) the nibbles at the two positions."""
        mb = meta_width(self._modes)
        meta0, meta1 = Signal(mb, name="meta0"), Signal(mb, name="meta1")
        with m.If(self.w_we[0]):
            m.d.sync += meta0.eq(self.w_meta)
        with m.If(self.w_we[1]):
            m.d.sync += meta1.eq(self.w_meta)
        meta = Signal(mb, name="meta")
        m.d.comb += meta.eq(Mux(self.bank_i, meta1, meta0))
        a = Signal(8, name="a_sel")
        nibbles = self.a_i[0:16]
        pick4 = Cat(nibbles.word_select(meta[0:2], 4), nibbles.word_select(meta[2:4], 4)) \
            if "int4" in self._modes else None
        if self._modes == ("int4",):
            m.d.comb += a.eq(pick4)
        elif pick4 is None:
            m.d.comb += a.eq(self.a_i.word_select(meta[0:2], 8))
        else:
            is_int4 = self._mode_is(m, ["int4"])
            m.d.comb += a.eq(Mux(is_int4, pick4, self.a_i.word_select(meta[0:2], 8)))
        return a

    def _mode_is(self, m, names):
        """1 when ``mode_i`` is one of ``names`` (constant where that is all or none of the modes)."""
        if not names:
            return Const(0, 1)
        if len(names) == len(self._modes):
            return Const(1, 1)
        hit = Signal(name="is_" + "_".join(names))
        m.d.comb += hit.eq(Cat(*(self.mode_i == self._modes.index(n) for n in names)).any())
        return hit

    def _fp_decode(self, m, x, e5, prefix):
        """Sign, 4-bit significand, 5-bit effective exponent, NaN, infinity and zero of FP8 code ``x``;
        ``e5`` selects E5M2 over E4M3."""
        sign = x[7]
        sig = Signal(4, name=f"{prefix}_sig")
        exp = Signal(5, name=f"{prefix}_exp")
        nan = Signal(name=f"{prefix}_nan")
        inf = Signal(name=f"{prefix}_inf")
        cands = {}
        if "e4m3" in self._fp:
            e, f = x[3:7], x[0:3]
            cands["e4m3"] = (Cat(f, e != 0), Mux(e == 0, 1, e), (e == 0xF) & (f == 0x7), Const(0, 1))
        if "e5m2" in self._fp:
            e, f = x[2:7], x[0:2]
            special = e == 0x1F
            cands["e5m2"] = (Mux(special, 0, Cat(f, e != 0)), Mux(e == 0, 1, e),
                             special & (f != 0), special & (f == 0))
        if len(cands) == 2:
            pick = [Mux(e5, b, a) for a, b in zip(cands["e4m3"], cands["e5m2"], strict=True)]
        else:
            (pick,) = cands.values()
        m.d.comb += [sig.eq(Mux(pick[2], 0, pick[0])), exp.eq(pick[1]), nan.eq(pick[2]),
                     inf.eq(pick[3])]
        zero = Signal(name=f"{prefix}_zero")
        m.d.comb += zero.eq((sig == 0) & ~nan & ~inf)
        return sign, sig, exp, nan, inf, zero

    def _fp_product(self, m, a, w, w_ok):
        e5 = self._mode_is(m, ["fp8_e5m2"] if "e5m2" in self._fp else [])
        sa, siga, ea, nana, infa, zeroa = self._fp_decode(m, a, e5, "fa")
        sw, sigw, ew, nanw, infw, zerow = self._fp_decode(m, w, e5, "fw")
        shift_max = max(FP8_FORMATS[f].product_shift_max for f in self._fp)
        mag_width = fp_product_max(self._fp).bit_length()
        sig_p = Signal(8, name="fp_sig_p")
        shift = Signal(range(shift_max + 1), name="fp_shift")
        mag = Signal(mag_width, name="fp_mag")
        m.d.comb += [sig_p.eq(siga * sigw), shift.eq(ea + ew - 2), mag.eq((sig_p << shift)[:mag_width])]
        neg = Signal(name="fp_neg")
        m.d.comb += neg.eq(sa ^ sw)
        term = Signal(signed(mag_width + 1), name="fp_term")
        m.d.comb += term.eq(Mux(neg, -mag, mag))
        nan = Signal(name="fp_nan")
        inf = Signal(name="fp_inf")
        m.d.comb += [nan.eq(nana | nanw | (infa & zerow) | (zeroa & infw)),
                     inf.eq((infa | infw) & ~nan)]
        flags = Signal(FLAG_WIDTH, name="fp_flags")
        m.d.comb += flags.eq(Mux(w_ok, Cat(nan, inf & ~neg, inf & neg), 0))
        return term, flags

    def _fused_product(self, m, a, w, product):
        is_mode = {name: Signal(name=f"is_{name}") for name in INT_MODE_NAMES}
        for name, sig in is_mode.items():
            if name in self._modes:
                m.d.comb += sig.eq(self.mode_i == self._modes.index(name))
        a_lo_signed = is_mode["int4"]
        w_lo_signed = is_mode["int4"] | is_mode["w4a8"]

        def nibble(value, hi, signed_):
            bits = value[4:8] if hi else value[0:4]
            top = bits[3] if hi else (bits[3] & signed_)
            return Cat(bits, top).as_signed()

        a_l, a_h = nibble(a, False, a_lo_signed), nibble(a, True, None)
        w_l, w_h = nibble(w, False, w_lo_signed), nibble(w, True, None)
        p_ll, p_hh = Signal(signed(10)), Signal(signed(10))
        p_hl, p_lh = Signal(signed(10)), Signal(signed(10))
        m.d.comb += [p_ll.eq(a_l * w_l), p_hh.eq(a_h * w_h), p_hl.eq(a_h * w_l), p_lh.eq(a_l * w_h)]

        with m.Switch(Cat(is_mode["int4"], is_mode["w4a8"])):
            with m.Case(0b01):  # int4: two independent pairs
                m.d.comb += product.eq(p_ll + p_hh)
            with m.Case(0b10):  # w4a8: INT8 activation times the signed low weight nibble
                m.d.comb += product.eq(p_ll + (p_hl << 4))
            with m.Default():   # int8: the four partial products of an 8 x 8 multiply
                m.d.comb += product.eq(p_ll + ((p_hl + p_lh) << 4) + (p_hh << 8))


def _sign_extend(value, width):
    """``value`` (signed) sign-extended to ``width`` bits, its upper bits written as a multiplexer of
    all ones and zeros. Amaranth would turn a replicated sign bit back into a narrow signed operand,
    and Yosys would then merge a multiplier feeding the adder into one multiply-accumulate whose
    partial products are all as wide as the sum; this form keeps the product at its own width."""
    n = len(value)
    if n >= width:
        return value
    return Cat(value, Mux(value[n - 1], Const(-1, width - n), Const(0, width - n))).as_signed()


MODES_BY_NAME = tuple(mode.name for mode in MODES)

# An integer product is at most 2**14 in magnitude (INT8); 17 signed bits hold every mode's sum of terms.
assert pe_max_product(INT_MODE_NAMES) < 2**16
