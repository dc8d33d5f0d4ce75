"""The GEMM engine's streams: command, activation, weight and result beats."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from ..lib.formats import MODE_CODE_WIDTH
from ..pe import fp_formats
from .params import SHIFT_BITS, vsel_width

__all__ = ["cmd_layout", "act_layout", "wgt_layout", "out_layout", "out_width"]


def cmd_layout(*, max_m, max_n, max_k, vector_sizes=(), post=False, sparse=False):
    """A GEMM command: the sizes M, N, K (1 to the configured maxima) and the mode code; where VSQ
    is built (``vector_sizes`` not empty), ``vsq`` (1: per-vector scaled) and ``vsel`` (index of V
    in ``vector_sizes``); where 2:4 sparsity is built, ``sparse`` (1: compressed 2:4 weights)."""
    fields = {
        "m": unsigned(max_m.bit_length()),
        "n": unsigned(max_n.bit_length()),
        "k": unsigned(max_k.bit_length()),
        "mode": unsigned(MODE_CODE_WIDTH),
    }
    if vector_sizes:
        fields.update({"vsq": unsigned(1), "vsel": unsigned(vsel_width(vector_sizes))})
    if post:
        fields.update({"out": unsigned(2), "relu": unsigned(1)})
    if sparse:
        fields["sparse"] = unsigned(1)
    return data.StructLayout(fields)


def act_layout(rows, scale_bits=0, row_mult_bits=0):
    """One activation beat: R bytes, one per PE row; with VSQ built (``scale_bits`` = M > 0), the
    M-bit activation scale of the beat's vector; with a per-row post-processing factor
    (``row_mult_bits`` > 0), its multiplier ``mult`` and right shift ``shift`` for the beat's row."""
    fields = {"data": data.ArrayLayout(unsigned(8), rows)}
    if scale_bits:
        fields["scale"] = unsigned(scale_bits)
    if row_mult_bits:
        fields["mult"] = unsigned(row_mult_bits)
        fields["shift"] = unsigned(SHIFT_BITS)
    return data.StructLayout(fields)


def wgt_layout(cols, scale_bits=0, mult_bits=0, meta_bits=0):
    """One weight beat: C bytes, one per PE column; with VSQ built, an M-bit weight scale per
    column; with 2:4 sparsity built (``meta_bits`` > 0), the positions of the kept weights of each
    column's byte (``meta``)."""
    fields = {"data": data.ArrayLayout(unsigned(8), cols)}
    if meta_bits:
        fields["meta"] = data.ArrayLayout(unsigned(meta_bits), cols)
    if scale_bits:
        fields["scale"] = data.ArrayLayout(unsigned(scale_bits), cols)
    if mult_bits:
        fields["mult"] = data.ArrayLayout(unsigned(mult_bits), cols)
        fields["shift"] = data.ArrayLayout(unsigned(SHIFT_BITS), cols)
    return data.StructLayout(fields)


def out_width(modes, acc_width, post=False):
    """Bits of one result lane: ``acc_width``, or at least 32 when FP8 modes or the post-processing
    unit (``post``; its FP32 output) give binary32 results."""
    return max(acc_width, 32) if fp_formats(modes) or post else acc_width


def out_layout(cols, width):
    """One result beat: C lanes of one row of the result, and ``last`` on a command's final beat."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(width), cols),
        "last": unsigned(1),
    })
