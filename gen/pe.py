"""A mixed-precision, weight-stationary processing element."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lib.formats import MODES, mode_by_name

__all__ = ["MixedPE", "pe_max_product", "mode_index_width"]


def pe_max_product(modes):
    """Largest magnitude one PE adds to the partial sum in one cycle, over ``modes``."""
    table = {"int8": 128 * 128, "int4": 2 * 8 * 8, "w4a8": 128 * 8}
    return max(table[name] for name in modes)


def mode_index_width(modes):
    """Bits of the internal mode index (position in the configured ``modes`` tuple)."""
    return max(1, (len(modes) - 1).bit_length())


class MixedPE(wiring.Component):
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

    With more than one mode the multiplier is built, as in Bit Fusion (Sharma et al., ISCA 2018), from four
    5 x 5 signed multipliers of nibbles: each nibble is extended by a sign bit that is the nibble's top bit
    where the nibble is signed (high nibbles always, low nibbles in INT4, and the weight's low nibble in
    W4A8) and zero otherwise; the mode selects which nibble products are summed and how far each is
    shifted. An FP8 mode adds its own product term here (sign, exponent sum and the 4 x 4 significand
    product are nibble products as well) and widens ``psum_width``; nothing else in the array changes.

    Parameters
    ----------
    modes : tuple of str
        Modes built into the PE; the ``mode`` input is an index into this tuple.
    psum_width : int
        Width of the partial sums passed down the column.

    Members
    -------
    a_i : In(8), bank_i : In(1), mode_i : In(mode_index_width(modes))
        Activation byte, weight bank and mode, from the left.
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
    """

    def __init__(self, *, modes, psum_width):
        for name in modes:
            mode_by_name(name)
        self._modes = tuple(modes)
        self._psum_width = psum_width
        mw = mode_index_width(modes)
        super().__init__({
            "a_i": In(8), "bank_i": In(1), "mode_i": In(mw),
            "a_o": Out(8), "bank_o": Out(1), "mode_o": Out(mw),
            "ps_i": In(signed(psum_width)), "ps_o": Out(signed(psum_width)),
            "w_data": In(8), "w_we": In(2),
        })

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
        w0 = Signal(8)
        w1 = Signal(8)
        with m.If(self.w_we[0]):
            m.d.sync += w0.eq(self.w_data)
        with m.If(self.w_we[1]):
            m.d.sync += w1.eq(self.w_data)
        w = Signal(8)
        m.d.comb += w.eq(Mux(self.bank_i, w1, w0))

        product = Signal(signed(17))
        if self._modes == ("int8",):
            m.d.comb += product.eq(self.a_i.as_signed() * w.as_signed())
        else:
            self._fused_product(m, self.a_i, w, product)

        m.d.sync += [
            self.a_o.eq(self.a_i),
            self.bank_o.eq(self.bank_i),
            self.mode_o.eq(self.mode_i),
            self.ps_o.eq(self.ps_i + product),
        ]
        return m

    def _fused_product(self, m, a, w, product):
        is_mode = {name: Signal(name=f"is_{name}") for name in MODES_BY_NAME}
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


MODES_BY_NAME = tuple(mode.name for mode in MODES)

# The product is at most 2**14 in magnitude (INT8); 17 signed bits hold every mode's sum of terms.
assert pe_max_product(MODES_BY_NAME) < 2**16
