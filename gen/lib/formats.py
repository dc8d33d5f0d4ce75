"""Run-time operand modes of the PE array, their packing, and the FP8 formats.

The mode codes are part of the command interface of the GEMM engine; they are fixed here once so the
hardware, the golden model (:mod:`sim.golden.gemm`, which keeps its own copy and is tested against this
table) and the manifest agree.
"""

from dataclasses import dataclass

__all__ = ["Mode", "MODES", "mode_by_name", "Fp8Format", "FP8_FORMATS", "fp_acc_width",
           "VSQ_VECTOR_SIZES", "VSQ_OPERAND_BITS", "vsq_acc_width", "vsq_partial_width",
           "k_tile_count", "max_k_tiles"]


@dataclass(frozen=True)
class Mode:
    """One run-time operand mode.

    Members
    -------
    name : str
        Name used in configurations and manifests.
    code : int
        Value of the ``mode`` field of a GEMM command.
    k_per_row : int
        Reduction elements one PE row covers per activation beat (2 for packed INT4 pairs).
    weight_k_per_beat : int
        Reduction rows a weight beat carries (2 where weights are packed INT4 pairs).
    macs_per_pe : int
        Multiply-accumulates one PE performs per cycle.
    fp8 : str or None
        Name of the FP8 format of both operands (a key of :data:`FP8_FORMATS`), or ``None`` for an
        integer mode.
    """

    name: str
    code: int
    k_per_row: int
    weight_k_per_beat: int
    macs_per_pe: int
    fp8: str | None = None


MODES = (
    Mode("int8", 0, k_per_row=1, weight_k_per_beat=1, macs_per_pe=1),
    Mode("int4", 1, k_per_row=2, weight_k_per_beat=2, macs_per_pe=2),
    Mode("w4a8", 2, k_per_row=1, weight_k_per_beat=2, macs_per_pe=1),
    Mode("fp8_e4m3", 3, k_per_row=1, weight_k_per_beat=1, macs_per_pe=1, fp8="e4m3"),
    Mode("fp8_e5m2", 4, k_per_row=1, weight_k_per_beat=1, macs_per_pe=1, fp8="e5m2"),
)

INT_MODE_NAMES = tuple(m.name for m in MODES if m.fp8 is None)

MODE_CODE_WIDTH = 3


def mode_by_name(name):
    for mode in MODES:
        if mode.name == name:
            return mode
    raise KeyError(name)


@dataclass(frozen=True)
class Fp8Format:
    """An OCP 8-bit floating-point format (OCP "OFP8" specification, v1.0, 2023).

    A code ``S.E.M`` with ``E`` of :attr:`exp_bits` and ``M`` of :attr:`man_bits` bits is worth
    ``(-1)**S * sig * 2**(e - bias - man_bits)`` where, for ``E != 0``, ``sig = 2**man_bits + M`` and
    ``e = E`` (normal) and, for ``E == 0``, ``sig = M`` and ``e = 1`` (subnormal). In units of the
    smallest subnormal, ``2**(1 - bias - man_bits)``, the magnitude is the integer ``sig << (e - 1)``.

    E4M3 has no infinities and one NaN pattern per sign (``S.1111.111``); its largest value is 448.
    E5M2 follows IEEE 754: ``E = 31`` is infinity (``M = 0``) or NaN; its largest value is 57344.

    Members
    -------
    name : str
    exp_bits, man_bits, bias : int
    ieee_specials : bool
        True where the all-ones exponent is reserved for infinities and NaNs (E5M2).
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    ieee_specials: bool

    @property
    def max_exp(self):
        """Largest exponent field of a finite value."""
        return (1 << self.exp_bits) - (2 if self.ieee_specials else 1)

    @property
    def max_sig(self):
        """Significand of the largest finite value."""
        full = (2 << self.man_bits) - 1
        return full if self.ieee_specials else full - 1

    @property
    def lsb_exp(self):
        """Exponent of the smallest subnormal: ``1 - bias - man_bits``."""
        return 1 - self.bias - self.man_bits

    @property
    def max_units(self):
        """The largest finite magnitude in units of the smallest subnormal."""
        return self.max_sig << (self.max_exp - 1)

    @property
    def product_shift_max(self):
        """Largest left shift of a significand product: ``2 * (max_exp - 1)``."""
        return 2 * (self.max_exp - 1)


FP8_FORMATS = {
    "e4m3": Fp8Format("e4m3", exp_bits=4, man_bits=3, bias=7, ieee_specials=False),
    "e5m2": Fp8Format("e5m2", exp_bits=5, man_bits=2, bias=15, ieee_specials=True),
}


def fp_product_max(fmt_names):
    """Largest magnitude of one FP8 product over the formats named, in units of the product LSB
    (the square of the format's smallest subnormal)."""
    return max(FP8_FORMATS[f].max_units ** 2 for f in fmt_names)


def fp_acc_width(fmt_names, max_k):
    """Bits of a two's complement fixed-point accumulator that holds ``max_k`` FP8 products of the
    largest magnitude exactly (Kulisch), for the formats named: the magnitude bits plus a sign bit.

    E4M3: one product is at most ``(14 * 2**14)**2 = 196 * 2**28 < 2**36`` LSBs of ``2**-18``;
    E5M2: ``(7 * 2**29)**2 = 49 * 2**58 < 2**64`` LSBs of ``2**-32``.
    """
    return (max_k * fp_product_max(fmt_names)).bit_length() + 1


# VS-Quant (per-vector scaled) operation of the integer modes (Dai et al., MLSys 2021).
VSQ_VECTOR_SIZES = (16, 32, 64)

# mode -> (activation bits Na, weight bits Nw) of the integer modes
VSQ_OPERAND_BITS = {"int8": (8, 8), "int4": (4, 4), "w4a8": (8, 4)}


def _clog2(n):
    return (n - 1).bit_length()


def vsq_acc_width(mode, vector_size, scale_bits, max_k):
    """Accumulator bits of VSQ commands in ``mode``: ``Na + Nw + log2 V + 2M + log2(max_k / V) + 1``
    (logarithms rounded up; the final 1 is the sign), the rule of VS-Quant and of
    :func:`sim.golden.vsq.acc_width`, which a test holds this copy to."""
    na, nw = VSQ_OPERAND_BITS[mode]
    return na + nw + _clog2(vector_size) + 2 * scale_bits + _clog2(-(-max_k // vector_size)) + 1


def vsq_partial_width(modes, vector_sizes):
    """Signed bits of a V-element partial dot product over the integer ``modes`` and V's: the
    largest product magnitude (``2**(Na + Nw - 2)``) times V, plus a sign bit."""
    return max((v << (VSQ_OPERAND_BITS[n][0] + VSQ_OPERAND_BITS[n][1] - 2)).bit_length() + 1
               for n in modes if n in VSQ_OPERAND_BITS for v in vector_sizes)


def k_tile_count(k, tile, vector_size=None):
    """k tiles of a command of reduction length ``k`` with ``tile`` elements per tile: ``ceil(k /
    tile)``; for a VSQ command with vectors of ``vector_size`` = V, each vector has its own
    ``ceil(V / tile)`` tiles (the last vector ``ceil((k mod V) / tile)``), as
    :func:`sim.golden.gemm.k_tiles` lays them out."""
    if vector_size is None:
        return -(-k // tile)
    return (k // vector_size) * -(-vector_size // tile) + -(-(k % vector_size) // tile)


def max_k_tiles(rows, modes, vector_sizes, max_k):
    """The most k tiles any command can take (it grows with K): over the ``modes`` and, for the
    integer ones, the VSQ ``vector_sizes``; at least ``ceil(max_k / rows)``."""
    most = -(-max_k // rows)
    for name in modes:
        tile = rows * mode_by_name(name).k_per_row
        if name in VSQ_OPERAND_BITS:
            most = max([most] + [k_tile_count(max_k, tile, v) for v in vector_sizes])
    return most
