"""The GEMM engine's parameters, the widths derived from them, and the words its parts exchange."""

from dataclasses import dataclass

from amaranth.hdl import Const, Mux, Signal, unsigned
from amaranth.lib import data

from ..lib.formats import INT_MODE_NAMES, fp_acc_width, max_k_tiles, mode_by_name, vsq_partial_width
from ..pe import fp_formats, mode_index_width
from ..systolic import psum_width

__all__ = ["GemmParams", "SHIFT_BITS", "POST_OUTPUTS", "vsel_width", "per_mode"]

POST_OUTPUTS = ("acc", "int8", "int4", "fp32")   # values 0 to 3 of the command's `out` field
SHIFT_BITS = 6                            # post-processing right shifts (column, row), 0 to 63


def vsel_width(vector_sizes):
    """Bits of the command's vector-size select (index into ``vector_sizes``)."""
    return max(1, (len(vector_sizes) - 1).bit_length())


def per_mode(m, idx, values, shape, name):
    """A signal that is ``values[idx]``: per-mode (or per-V) constants selected by an index.

    A chain of multiplexers, not a ``Switch``: it becomes continuous assignments, which Icarus
    evaluates at time 0 even when the index never changes (an ``always @*`` it would not)."""
    out = Signal(shape, name=name)
    value = Const(values[0], shape)
    for i, v in enumerate(values[1:], start=1):
        value = Mux(idx == i, v, value)
    m.d.comb += out.eq(value)
    return out


@dataclass(frozen=True)
class GemmParams:
    """Everything the engine's hardware depends on (the keyword arguments of
    :class:`gen.gemm.GemmEngine`), checked on construction, and what follows from it."""

    rows: int
    cols: int
    modes: tuple
    acc_width: int
    max_m: int
    max_n: int
    max_k: int
    out_fifo_depth: int
    vsq_vector_sizes: tuple = ()
    vsq_scale_bits: int = 4
    post_mult_bits: int = 0
    post_row_mult_bits: int = 0
    sparse: bool = False

    def __post_init__(self):
        object.__setattr__(self, "modes", tuple(self.modes))
        object.__setattr__(self, "vsq_vector_sizes", tuple(self.vsq_vector_sizes))
        if self.post_mult_bits and not self.int_modes:
            raise ValueError("post_mult_bits needs an integer mode")
        if self.post_row_mult_bits and not self.post_mult_bits:
            raise ValueError("post_row_mult_bits needs post_mult_bits")
        if self.vsq_vector_sizes and not self.int_modes:
            raise ValueError("vsq_vector_sizes needs an integer mode")
        for v in self.vsq_vector_sizes:
            if v < 1:
                raise ValueError(f"V = {v}: must be at least 1")
            if self.sparse and v % 4:
                raise ValueError(f"V = {v}: must be a multiple of 4 with 2:4 sparsity")
        if self.sparse and self.rows % 2:
            raise ValueError(f"rows = {self.rows}: must be even with 2:4 sparsity")

    # ---- built features ------------------------------------------------------------------------
    @property
    def int_modes(self):
        """The integer modes, where post-processing (and VSQ) commands may run."""
        return tuple(n for n in self.modes if n in INT_MODE_NAMES)

    @property
    def vsq(self):
        return bool(self.vsq_vector_sizes)

    @property
    def vsq_modes(self):
        return self.int_modes if self.vsq else ()

    @property
    def sbits(self):
        """M, bits of the per-vector scales (0 without VSQ)."""
        return self.vsq_scale_bits if self.vsq else 0

    @property
    def post(self):
        return bool(self.post_mult_bits)

    @property
    def fp(self):
        """The FP8 formats built."""
        return fp_formats(self.modes)

    @property
    def act_lanes(self):
        """Bytes of an activation beat: R, or 2R where 2:4 sparsity is built (a sparse k tile
        covers twice the reduction elements)."""
        return 2 * self.rows if self.sparse else self.rows

    @property
    def meta_bits(self):
        """Bits of a ``w.meta`` lane (2:4): the positions of the kept weights of a weight byte, 4
        where a byte holds two INT4 weights (``int4``, ``w4a8``), else 2; 0 without 2:4."""
        if not self.sparse:
            return 0
        return 4 if any(n in ("int4", "w4a8") for n in self.modes) else 2

    @property
    def post_shift_bits(self):
        """The post unit's shift: the column's, plus the row's where a per-row factor is built."""
        return SHIFT_BITS + (1 if self.post_row_mult_bits else 0)

    # ---- widths --------------------------------------------------------------------------------
    @property
    def mode_bits(self):
        return mode_index_width(self.modes)

    @property
    def k_width(self):
        return self.max_k.bit_length() + 2

    @property
    def kd_width(self):
        """Bits of a k tile's depth."""
        return max(self.k_width, ((4 if self.sparse else 2) * self.rows).bit_length())

    @property
    def v_width(self):
        return max(self.vsq_vector_sizes, default=1).bit_length()

    @property
    def n_width(self):
        return self.max_n.bit_length() + 1

    @property
    def psum_width(self):
        return psum_width(self.rows, self.modes)

    @property
    def array_latency(self):
        return self.rows + self.cols - 1

    @property
    def fp_acc_width(self):
        """Bits of the FP8 Kulisch accumulator (0 without FP8 modes)."""
        return fp_acc_width(self.fp, self.max_k) if self.fp else 0

    @property
    def acc_lane_width(self):
        """Bits of an accumulator lane's sum: ``acc_width``, or the Kulisch width if wider."""
        return max(self.acc_width, self.fp_acc_width)

    @property
    def out_width(self):
        """Bits of one result lane: ``acc_width``, or at least 32 when FP8 modes or the
        post-processing unit give binary32 results."""
        return max(self.acc_width, 32) if self.fp or self.post else self.acc_width

    @property
    def act_buffer_depth(self):
        return self.max_m * max_k_tiles(self.rows, self.modes, self.vsq_vector_sizes, self.max_k)

    @property
    def vsq_partial_width(self):
        return vsq_partial_width(self.vsq_modes, self.vsq_vector_sizes) if self.vsq else 0

    @property
    def vsq_term_width(self):
        return self.vsq_partial_width + 2 * self.sbits if self.vsq else 0

    @property
    def mode_defs(self):
        return [mode_by_name(name) for name in self.modes]

    # ---- words between the parts ---------------------------------------------------------------
    @property
    def desc_layout(self):
        """A checked command, as the loader hands it to the feeder: sizes, mode index (into
        ``modes``), and the VSQ and post-processing fields where built."""
        return data.StructLayout({
            "m": unsigned(self.max_m.bit_length()),
            "n": unsigned(self.max_n.bit_length()),
            "k": unsigned(self.max_k.bit_length()),
            "mode": unsigned(self.mode_bits),
            **({"vsq": unsigned(1), "vsel": unsigned(vsel_width(self.vsq_vector_sizes))}
               if self.vsq else {}),
            **({"out": unsigned(2), "relu": unsigned(1)} if self.post else {}),
            **({"sparse": unsigned(1)} if self.sparse else {}),
        })

    @property
    def ctrl_layout(self):
        """The control word of a wavefront, issued beside it and delayed with it through the array.

        ``first_k`` / ``last_k``: first and last k tile of the accumulator (for a VSQ wavefront,
        ``first_k`` marks vector 0, and ``first_kv`` / ``last_kv`` the first and last k tile of the
        wavefront's vector); ``last``: the command's final row; ``m``: the row. ``bank`` (VSQ or
        post-processing): the weight bank, whose column parameters are read at the array's
        output."""
        fields = {
            "valid": 1, "first_k": 1, "last_k": 1, "last": 1,
            "m": unsigned(max(1, (self.max_m - 1).bit_length())),
        }
        if self.fp:
            fields["mode"] = unsigned(self.mode_bits)   # the output conversion needs it
        if self.vsq or self.post:
            fields["bank"] = 1
        if self.vsq:
            fields.update({"vsq": 1, "first_kv": 1, "last_kv": 1, "sa": unsigned(self.sbits)})
        if self.post:
            fields.update({"out": 2, "relu": 1})
        if self.post_row_mult_bits:
            # the row's post-processing factor rides with the wavefront (it changes every row)
            fields.update({"rmult": unsigned(self.post_row_mult_bits),
                           "rshift": unsigned(SHIFT_BITS)})
        return data.StructLayout(fields)
