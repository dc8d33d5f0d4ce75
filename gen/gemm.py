"""The mixed-precision GEMM engine: a weight-stationary systolic array behind streams."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .gemm_lanes import PostLane, ToBinary32
from .lib import hier
from .lib.delay import delay
from .lib.fifo import Fifo
from .lib.formats import (
    INT_MODE_NAMES,
    MODE_CODE_WIDTH,
    fp_acc_width,
    max_k_tiles,
    mode_by_name,
    vsq_partial_width,
)
from .lib.hier import Reused
from .lib.sram import Sram
from .pe import FLAG_WIDTH, fp_formats, mode_index_width
from .systolic import SystolicArray

__all__ = ["GemmEngine", "cmd_layout", "act_layout", "wgt_layout", "out_layout"]


def vsel_width(vector_sizes):
    """Bits of the command's vector-size select (index into ``vector_sizes``)."""
    return max(1, (len(vector_sizes) - 1).bit_length())


POST_OUTPUTS = ("acc", "int8", "int4", "fp32")   # values 0 to 3 of the command's `out` field
SHIFT_BITS = 6                            # post-processing right shifts (column, row), 0 to 63


def cmd_layout(*, max_m, max_n, max_k, vector_sizes=(), post=False):
    """A GEMM command: the sizes M, N, K (1 to the configured maxima) and the mode code; where VSQ
    is built (``vector_sizes`` not empty), ``vsq`` (1: per-vector scaled) and ``vsel`` (index of V
    in ``vector_sizes``)."""
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


def wgt_layout(cols, scale_bits=0, mult_bits=0):
    """One weight beat: C bytes, one per PE column; with VSQ built, an M-bit weight scale per
    column."""
    fields = {"data": data.ArrayLayout(unsigned(8), cols)}
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


class GemmEngine(Reused, wiring.Component):
    """Computes ``Y = A x W`` for integer or FP8 matrices in a run-time mode, on an R x C systolic array.

    A command on ``cmd`` names M, N, K and the mode. The engine walks the output in tiles of C columns
    (``n0 = 0, C, 2C, ...``) and, for each, the reduction in tiles of ``R * k_per_row`` elements (R in INT8
    and W4A8, 2R in INT4). Every (n, k) tile loads its weights into the PEs' idle weight bank while the
    previous tile computes (double buffering), then streams all M activation rows through the array; the
    column sums are added into an accumulator memory of M rows, and after the last k tile each row leaves
    on ``o``. Commands follow each other without draining the array.

    Streams, in the order the engine consumes them (lanes past K or N are don't-care and ignored):

    - ``cmd``: one beat per GEMM. A command with a size of 0 or above its maximum, or a mode that was not
      built, is dropped and counted in ``errors``; its data must not be sent.
    - ``w``: for each n tile, for each k tile, the weight beats of the tile. INT8: R beats, beat r holds
      ``W[k0 + r, n0 + c]`` in byte c. INT4: R beats, byte c of beat r is the INT4 pair
      ``W[k0 + 2r, n0 + c]`` (bits 3:0) and ``W[k0 + 2r + 1, n0 + c]`` (bits 7:4). W4A8: ceil(R / 2)
      beats packed like INT4, so weights load with half the bandwidth.
    - ``a``: for each k tile, for each row m, one beat: byte r holds ``A[m, k0 + r]`` (INT8, W4A8) or the
      INT4 pair ``A[m, k0 + 2r]``, ``A[m, k0 + 2r + 1]`` (INT4). A is sent once per command; the engine
      keeps it in an activation buffer and replays it for the other n tiles.
    - ``o``: for each n tile, for each row m, one beat with ``Y[m, n0 + c]`` in lane c (lanes past N read
      0); ``last`` marks the command's final beat.

    Accumulators are ``acc_width``-bit two's complement. The configuration is rejected unless
    ``acc_width`` holds ``max_k`` products of -128 x -128, so no command can overflow; were one to, the
    sum would wrap modulo ``2**acc_width``.

    FP8 modes (``fp8_e4m3``, ``fp8_e5m2``; OCP 8-bit floating point v1.0) stream FP8 codes like INT8
    bytes (same beats, same MACs per cycle). Each product is exact and is added, as a two's complement
    fixed-point number in units of the square of the format's smallest subnormal (2**-18 in E4M3, 2**-32
    in E5M2), into a Kulisch accumulator of :attr:`fp_acc_width` bits (sized by
    :func:`gen.lib.formats.fp_acc_width` for ``max_k`` products of the largest finite magnitude: 45 bits
    for E4M3 and 73 for E5M2 at ``max_k = 256``), so the sum is exact and independent of the order of
    additions. Special-value flags (NaN, +inf, -inf) travel with the sums. After the last k tile the sum
    is rounded once to IEEE binary32, to nearest, ties to even, and leaves in bits 31:0 of the lane
    (upper bits 0; lanes are ``max(acc_width, 32)`` bits wide). An exact zero gives +0. A NaN operand or
    0 x inf in any product gives the quiet NaN 0x7FC00000, as do infinite products of both signs (E5M2:
    inf - inf); infinite products of one sign give that infinity. A finite sum cannot overflow binary32
    (below 2**48 for ``max_k`` up to 2**16), and every nonzero sum is a binary32 normal number.

    Per-vector scaled (VS-Quant) operation (Dai et al., MLSys 2021; Keller et al., VLSI 2022), built
    where ``vsq_vector_sizes`` is not empty: a command with ``vsq = 1`` in an integer mode computes
    ``acc[m, n] = sum_v s_qw[v, n] * s_qa[m, v] * sum_(i in v) A[m, i] * W[i, n]`` for vectors of V = ``vsq_vector_sizes[vsel]`` consecutive reduction elements (the last one
    shorter when V does not divide K), bit-exact with :func:`sim.golden.vsq.vsq_gemm`. Any V
    works on any array height: a VSQ command walks each vector in k tiles of its own, ``ceil(V /
    tile)`` of them (tile = R in INT8 and W4A8, 2R in INT4), so every k tile lies inside one vector
    and each column sum leaving the array belongs to one vector. Where the tile divides V this is
    the plain tiling; where it does not, the vector's last tile is padded: lanes past the vector's
    end (like lanes past K) are don't-care, the loader zeroes those weights, and the vector costs
    ``ceil(V / tile) * tile`` reduction slots instead of V (utilization ``V / (ceil(V / tile) *
    tile)``: R = 3, V = 16: 16 of 18, 89 %; R = 16 in INT4, V = 16: 16 of 32, 50 %). The streams
    follow :func:`sim.golden.gemm.k_tiles` (``weight_beats`` / ``act_beats`` with
    ``vector_size``), and the activation buffer holds ``max_m`` times the most tiles
    (:func:`gen.lib.formats.max_k_tiles`). A scaling unit per column keeps a vector partial sum
    per row m (a memory beside the accumulator): the k tiles of a vector add into ``vpart[m]``; on the vector's last k tile the
    completed sum is multiplied by the M-bit unsigned scales ``s_qw[v, n] * s_qa[m, v]`` and added
    to ``acc[m]`` (2 more pipeline stages). The scales travel with the data: lane c of ``w.scale``
    on every weight beat of a k tile holds ``s_qw[v, n0 + c]`` (the engine keeps the tile's last
    beat's), and ``a.scale`` on the beat of row m in a k tile holds ``s_qa[m, v]`` (read on the
    vector's last k tile, and kept in the activation buffer for the other n tiles);
    :func:`sim.golden.gemm.weight_scale_beats` and :func:`sim.golden.gemm.act_scale_beats` pack
    them. The accumulator width must follow :func:`gen.lib.formats.vsq_acc_width` (``Na + Nw + log2 V
    + 2M + log2(max_k / V) + 1``), so no VSQ command can overflow. A VSQ command in an FP8 mode or
    with a ``vsel`` not built is dropped and counted in ``errors``. Plain commands run as without
    VSQ.

    Post-processing, built where ``post_mult_bits`` > 0, with or without VSQ (without it, an
    integer engine with plain per-channel scaling): a unit per column (stage C) applies the scale
    ``gamma_w[n] * gamma_a[m]`` (VS-Quant's ``y = gamma_w[n] * gamma_a[m] * acc[m, n]``) as the
    fixed-point number ``mult * 2**-shift`` with ``mult = mult_w[n] * mult_a[m]`` and ``shift =
    shift_w[n] + shift_a[m]``: the command's ``out`` = 1, 2 gives ``round_half_even(acc * mult /
    2**shift)``, optional ReLU, saturated to INT8 or INT4; ``out`` = 3 gives the exact ``acc *
    mult * 2**-shift`` rounded once to IEEE binary32, to nearest, ties to even (ReLU: +0 for a
    negative value; 0 gives +0); 0 keeps the accumulator. As :func:`sim.golden.vsq.postprocess`.
    The FP32 result is always a finite normal number: ``|acc * mult| < 2**127`` (``acc_width`` <=
    64, ``post_mult_bits`` and ``post_row_mult_bits`` <= 32) and ``shift <= 126``, so no overflow,
    underflow or subnormal can occur; it leaves in bits 31:0 of the lane, upper bits 0, and the
    lanes are at least 32 bits wide when post-processing is built. The column's ``mult_w``,
    ``shift_w`` arrive as ``w.mult`` and ``w.shift`` lanes of every weight beat of the column tile
    (:func:`sim.golden.gemm.column_param_beats`), are read from the wavefront's weight bank at the
    array's output and ride beside the sums. The row's ``mult_a`` (``post_row_mult_bits`` bits; 0
    builds no per-row factor: ``mult_a = 1, shift_a = 0``) and ``shift_a`` (6 bits) arrive as
    ``a.mult`` and ``a.shift`` on the beat of row m in the command's last k tile
    (:func:`sim.golden.gemm.act_row_beats`; other beats' are ignored), travel with the wavefront
    (and are kept in a memory of ``max_m`` words for the other n tiles), and meet the column's at
    stage A -> B, where ``mult_w * mult_a`` and ``shift_w + shift_a`` are registered, so the
    rounding stays single. A post-processed command (``out`` != 0) in an FP8 mode is dropped and
    counted in ``errors``.

    Parameters
    ----------
    rows, cols : int
        R and C of the PE array.
    modes : tuple of str
        Modes built in (``int8``, ``int4``, ``w4a8``, ``fp8_e4m3``, ``fp8_e5m2``).
    acc_width : int
        Accumulator width.
    max_m, max_n, max_k : int
        Largest sizes a command may ask for; they size the activation and accumulator memories.
    out_fifo_depth : int
        Result rows buffered at the output. At least :attr:`pipeline_depth` keeps full throughput when
        ``o`` is never stalled.
    vsq_vector_sizes : tuple of int
        Vector sizes V (16, 32, 64) of VSQ commands; empty (the default) builds no VSQ hardware.
    vsq_scale_bits : int
        M, bits of the unsigned per-vector scales.
    post_mult_bits : int
        Bits of the per-column post-processing multiplier; 0 (the default) builds none.
    post_row_mult_bits : int
        Bits of the post unit's per-row multiplier (with a 6-bit per-row shift); 0 builds none.

    Members
    -------
    cmd : In(stream.Signature(cmd_layout(..., vector_sizes=vsq_vector_sizes)))
    a : In(stream.Signature(act_layout(rows, M, post_row_mult_bits)))
    w : In(stream.Signature(wgt_layout(cols, M)))
    o : Out(stream.Signature(out_layout(cols, out_width(modes, acc_width, post))))
    errors : Out(16)
        Commands dropped as invalid, saturating.
    busy : Out(1)
        A command is in progress or results are waiting.
    cmd_ok : Out(1)
        1 when the command offered on ``cmd`` is valid (taken, it runs), 0 when it would be dropped
        and counted in ``errors``; a function of ``cmd.payload`` alone. A parent that must know the
        fate of a command it hands over (:class:`gen.tile.Tile`) reads it in the cycle of the
        handshake.
    """

    module_suffix = "gemm"

    def __init__(self, *, rows, cols, modes, acc_width, max_m, max_n, max_k, out_fifo_depth,
                 vsq_vector_sizes=(), vsq_scale_bits=4, post_mult_bits=0, post_row_mult_bits=0):
        self._vsizes = tuple(vsq_vector_sizes)
        self._pmb = post_mult_bits
        # The integer modes, where post-processing (and VSQ) commands may run.
        self._int_modes = tuple(n for n in modes if n in INT_MODE_NAMES)
        if post_mult_bits and not self._int_modes:
            raise ValueError("post_mult_bits needs an integer mode")
        if post_row_mult_bits and not post_mult_bits:
            raise ValueError("post_row_mult_bits needs post_mult_bits")
        self._rmb = post_row_mult_bits
        # The post unit's shift: the column's, plus the row's where a per-row factor is built.
        self._shw = SHIFT_BITS + (1 if post_row_mult_bits else 0)
        self._sbits = vsq_scale_bits if self._vsizes else 0
        self._vsq_modes = tuple(n for n in modes if n in INT_MODE_NAMES) if self._vsizes else ()
        if self._vsizes and not self._vsq_modes:
            raise ValueError("vsq_vector_sizes needs an integer mode")
        for v in self._vsizes:
            if v < 1:
                raise ValueError(f"V = {v}: must be at least 1")
        self._rows = rows
        self._cols = cols
        self._modes = tuple(modes)
        self._acc_width = acc_width
        self._max_m = max_m
        self._max_n = max_n
        self._max_k = max_k
        self._out_fifo_depth = out_fifo_depth
        self._array = SystolicArray(rows=rows, cols=cols, modes=self._modes)
        self._fp = fp_formats(self._modes)
        self._out_width = out_width(self._modes, acc_width, post=bool(post_mult_bits))
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(max_m=max_m, max_n=max_n, max_k=max_k,
                                                  vector_sizes=self._vsizes,
                                                  post=bool(self._pmb)))),
            "a": In(stream.Signature(act_layout(rows, self._sbits, self._rmb))),
            "w": In(stream.Signature(wgt_layout(cols, self._sbits, self._pmb))),
            "o": Out(stream.Signature(out_layout(cols, self._out_width))),
            "errors": Out(16),
            "busy": Out(1),
            "cmd_ok": Out(1),
        })

    @property
    def rows(self):
        return self._rows

    @property
    def cols(self):
        return self._cols

    @property
    def modes(self):
        return self._modes

    @property
    def act_buffer_depth(self):
        """Words of the activation buffer: ``max_m`` times the most k tiles of a command
        (:func:`gen.lib.formats.max_k_tiles`: ``ceil(max_k / rows)``, more where VSQ pads
        vectors)."""
        return self._max_m * max_k_tiles(self._rows, self._modes, self._vsizes, self._max_k)

    @property
    def fp_acc_width(self):
        """Bits of the FP8 Kulisch accumulator (0 without FP8 modes)."""
        return fp_acc_width(self._fp, self._max_k) if self._fp else 0

    @property
    def psum_width(self):
        return self._array.psum_width

    @property
    def vsq_vector_sizes(self):
        return self._vsizes

    @property
    def vsq_scale_bits(self):
        """M, bits of the per-vector scales (0 without VSQ)."""
        return self._sbits

    @property
    def vsq_partial_width(self):
        """Bits of the per-column vector partial sums (0 without VSQ)."""
        return vsq_partial_width(self._vsq_modes, self._vsizes) if self._vsizes else 0

    @property
    def vsq_term_width(self):
        """Bits of a scaled vector partial sum ``vpart * s_qw * s_qa`` (0 without VSQ)."""
        return self.vsq_partial_width + 2 * self._sbits if self._vsizes else 0

    @property
    def pipeline_depth(self):
        """Cycles from taking the activation beat of row m in the last k tile to result row m on ``o``:
        1 (issue) + R + C - 1 (array) + 2 (accumulate) + 1 (output FIFO), plus 1 (conversion to binary32)
        where FP8 modes or post-processing are built and 2 (vector partial sum, scaling) where VSQ
        is built."""
        return (1 + self._array.latency + 2 + 1 + (1 if self._fp or self._pmb else 0)
                + (2 if self._vsizes else 0))

    latency = pipeline_depth

    def macs_per_cycle(self, mode):
        return self._rows * self._cols * mode_by_name(mode).macs_per_pe

    def elaborate(self, platform):
        m = Module()
        R, C = self._rows, self._cols
        m.submodules.array = array = self._array
        depth_words = self.act_buffer_depth
        mw = mode_index_width(self._modes)
        modes = [mode_by_name(name) for name in self._modes]
        drain_init = array.latency + 1

        # Per-mode constants selected by a mode index.
        def per_mode(idx, values, shape, name):
            # A chain of multiplexers, not a `Switch`: it becomes continuous assignments, which Icarus
            # evaluates at time 0 even when the index never changes (an `always @*` it would not).
            out = Signal(shape, name=name)
            value = Const(values[0], shape)
            for i, v in enumerate(values[1:], start=1):
                value = Mux(idx == i, v, value)
            m.d.comb += out.eq(value)
            return out

        k_width = self._max_k.bit_length() + 2
        kd_width = max(k_width, (2 * R).bit_length())      # a k tile's depth
        v_width = max(self._vsizes, default=1).bit_length()  # V
        n_width = self._max_n.bit_length() + 1

        # Weight banks: `full` is set by the loader when a bank holds a tile, cleared by the feeder when
        # the tile's last wavefront has entered the array; the bank is free again `drain_init` cycles later,
        # when that wavefront has passed every PE.
        full = Signal(2)
        drain = [Signal(range(drain_init + 1), name=f"drain_{b}") for b in range(2)]
        for b in range(2):
            with m.If(drain[b] != 0):
                m.d.sync += drain[b].eq(drain[b] - 1)
        full_set = Signal(2)
        full_clr = Signal(2)
        m.d.sync += full.eq((full | full_set) & ~full_clr)

        # Commands pass from the loader, which accepts them, to the feeder.
        desc = data.StructLayout({
            "m": unsigned(self._max_m.bit_length()),
            "n": unsigned(self._max_n.bit_length()),
            "k": unsigned(self._max_k.bit_length()),
            "mode": unsigned(mw),
            **({"vsq": unsigned(1), "vsel": unsigned(vsel_width(self._vsizes))}
               if self._vsizes else {}),
            **({"out": unsigned(2), "relu": unsigned(1)} if self._pmb else {}),
        })
        desc_fifo = hier.add(m, "desc_fifo", Fifo(width=desc.size, depth=2))

        # ---- command intake and weight loader ------------------------------------------------------
        cmd = self.cmd.payload
        cmd_mode_ok = Signal()
        cmd_mode_idx = Signal(mw)
        with m.Switch(cmd.mode):
            for i, mode in enumerate(modes):
                with m.Case(mode.code):
                    m.d.comb += [cmd_mode_ok.eq(1), cmd_mode_idx.eq(i)]
        # `cmd_ok` (the attribute :attr:`cmd_ok`): the command on `cmd` is valid; taken, it runs,
        # else it is dropped.
        cmd_ok = self.cmd_ok
        ok = (cmd_mode_ok
              & (cmd.m != 0) & (cmd.m <= self._max_m)
              & (cmd.n != 0) & (cmd.n <= self._max_n)
              & (cmd.k != 0) & (cmd.k <= self._max_k))
        cmd_desc = Signal(desc)
        m.d.comb += [cmd_desc.m.eq(cmd.m), cmd_desc.n.eq(cmd.n), cmd_desc.k.eq(cmd.k),
                     cmd_desc.mode.eq(cmd_mode_idx), desc_fifo.w_data.eq(cmd_desc)]
        if self._vsizes:
            # A VSQ command needs an integer mode and a built V.
            vsq_ok = Signal()
            m.d.comb += vsq_ok.eq(Cat(*(cmd.mode == mode_by_name(n).code
                                        for n in self._vsq_modes)).any()
                                  & (cmd.vsel < len(self._vsizes)))
            m.d.comb += [cmd_desc.vsq.eq(cmd.vsq), cmd_desc.vsel.eq(cmd.vsel)]
            ok = ok & (~cmd.vsq | vsq_ok)
        if self._pmb:
            # Post-processing needs an integer mode and a known output.
            post_ok = Signal()
            int_mode = Cat(*(cmd.mode == mode_by_name(n).code for n in self._int_modes)).any()
            m.d.comb += post_ok.eq((cmd.out == 0) | (int_mode & (cmd.out < len(POST_OUTPUTS))))
            m.d.comb += [cmd_desc.out.eq(cmd.out), cmd_desc.relu.eq(cmd.relu)]
            ok = ok & post_ok
        m.d.comb += cmd_ok.eq(ok)

        ld_n = Signal(self._max_n.bit_length())
        ld_k = Signal(self._max_k.bit_length())
        ld_mode = Signal(mw)
        ld_n0 = Signal(n_width)
        ld_k0 = Signal(k_width)
        ld_row = Signal(range(max(R, 2)))
        ld_krow = Signal(k_width)     # reduction index of the row's (low) element
        ld_bank = Signal()
        ld_kdepth = per_mode(ld_mode, [R * md.k_per_row for md in modes], kd_width, "ld_kdepth")
        ld_kstep = per_mode(ld_mode, [md.k_per_row for md in modes], 2, "ld_kstep")
        ld_is_w4a8 = per_mode(ld_mode, [int(md.name == "w4a8") for md in modes], 1, "ld_is_w4a8")
        ld_is_int4 = per_mode(ld_mode, [int(md.name == "int4") for md in modes], 1, "ld_is_int4")
        errors = Signal(16)
        m.d.comb += self.errors.eq(errors)

        bank_free = Signal()
        m.d.comb += bank_free.eq(~full.bit_select(ld_bank, 1)
                                 & (Mux(ld_bank, drain[1], drain[0]) == 0))
        # In W4A8 a beat fills two rows, low nibbles first; it is taken with the second (or the last row).
        take_beat = Signal()
        m.d.comb += take_beat.eq(~ld_is_w4a8 | ld_row[0] | (ld_row == R - 1))
        if self._vsizes:
            # A VSQ command's k tiles never cross a vector's end: `ld_end` is the end of the
            # current vector (or K); lanes past it are ignored, and the next tile starts there.
            ld_vsq = Signal()
            ld_vsel = Signal(vsel_width(self._vsizes))
            ld_vbase = Signal(k_width)
            ld_vsize = per_mode(ld_vsel, list(self._vsizes), v_width, "ld_vsize")
            ld_vnext = Signal(k_width + 1)
            ld_end = Signal(k_width)
            m.d.comb += [ld_vnext.eq(ld_vbase + ld_vsize),
                         ld_end.eq(Mux(ld_vsq & (ld_vnext < ld_k), ld_vnext, ld_k))]
        else:
            ld_end = ld_k
        lo_ok = Signal()
        hi_ok = Signal()
        m.d.comb += [lo_ok.eq(ld_krow < ld_end), hi_ok.eq(ld_krow + 1 < ld_end)]
        for c in range(C):
            byte = self.w.payload.data[c]
            col_ok = Signal(name=f"ld_col_ok_{c}")
            m.d.comb += col_ok.eq(ld_n0 + c < ld_n)
            lo = Mux(ld_is_w4a8 & ld_row[0], byte[4:8], byte[0:4])
            hi = Mux(ld_is_int4, byte[4:8], Mux(ld_is_w4a8, 0, byte[4:8]))
            lo_keep = col_ok & lo_ok
            hi_keep = col_ok & Mux(ld_is_int4, hi_ok, lo_ok)
            m.d.comb += array.w_data[c].eq(Cat(Mux(lo_keep, lo, 0), Mux(hi_keep, hi, 0)))
            if self._fp:
                m.d.comb += array.w_ok[c].eq(lo_keep)
        m.d.comb += array.w_bank.eq(ld_bank)
        # VSQ: the weight scale of each column, per bank, written with every weight beat of a tile.
        wscale = [[Signal(self._sbits, name=f"wscale_{b}_{c}") for c in range(C)]
                  for b in range(2)] if self._vsizes else []
        # Post-processing: the multiplier and shift of each column, per bank.
        wmult = [[Signal(self._pmb, name=f"wmult_{b}_{c}") for c in range(C)]
                 for b in range(2)] if self._pmb else []
        wshift = [[Signal(SHIFT_BITS, name=f"wshift_{b}_{c}") for c in range(C)]
                  for b in range(2)] if self._pmb else []

        with m.FSM(name="loader") as loader_fsm:
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(desc_fifo.w_rdy)
                with m.If(self.cmd.valid & desc_fifo.w_rdy):
                    with m.If(cmd_ok):
                        m.d.comb += desc_fifo.w_en.eq(1)
                        m.d.sync += [ld_n.eq(cmd.n), ld_k.eq(cmd.k), ld_mode.eq(cmd_mode_idx),
                                     ld_n0.eq(0), ld_k0.eq(0), ld_row.eq(0), ld_krow.eq(0)]
                        if self._vsizes:
                            m.d.sync += [ld_vsq.eq(cmd.vsq), ld_vsel.eq(cmd.vsel),
                                         ld_vbase.eq(0)]
                        m.next = "LOAD"
                    with m.Elif(errors != 0xFFFF):
                        m.d.sync += errors.eq(errors + 1)
            with m.State("LOAD"):
                with m.If(bank_free & self.w.valid):
                    m.d.comb += [self.w.ready.eq(take_beat), array.w_row_we.eq(1 << ld_row)]
                    m.d.sync += [ld_row.eq(ld_row + 1), ld_krow.eq(ld_krow + ld_kstep)]
                    for b in range(len(wscale)):
                        with m.If(ld_bank == b):
                            m.d.sync += [wscale[b][c].eq(self.w.payload.scale[c]) for c in range(C)]
                    for b in range(len(wmult)):
                        with m.If(ld_bank == b):
                            m.d.sync += [wmult[b][c].eq(self.w.payload.mult[c]) for c in range(C)]
                            m.d.sync += [wshift[b][c].eq(self.w.payload.shift[c])
                                         for c in range(C)]
                    with m.If(ld_row == R - 1):
                        m.d.comb += full_set.eq(Mux(ld_bank, 0b10, 0b01))
                        m.d.sync += [ld_bank.eq(~ld_bank), ld_row.eq(0)]
                        if self._vsizes:
                            with m.If((ld_k0 + ld_kdepth >= ld_end) & (ld_end < ld_k)):
                                # the vector's last tile: the next vector starts at its end
                                m.d.sync += [ld_k0.eq(ld_end), ld_krow.eq(ld_end),
                                             ld_vbase.eq(ld_end)]
                        last_tile = ld_k0 + ld_kdepth >= ld_k
                        if self._vsizes:
                            last_tile = (ld_k0 + ld_kdepth >= ld_end) & (ld_end >= ld_k)
                        with m.If(last_tile):
                            m.d.sync += [ld_k0.eq(0), ld_krow.eq(0), ld_n0.eq(ld_n0 + C)]
                            if self._vsizes:
                                m.d.sync += ld_vbase.eq(0)
                            with m.If(ld_n0 + C >= ld_n):
                                m.next = "IDLE"
                        with m.Elif(ld_k0 + ld_kdepth < ld_end) if self._vsizes else m.Else():
                            m.d.sync += [ld_k0.eq(ld_k0 + ld_kdepth), ld_krow.eq(ld_k0 + ld_kdepth)]

        # ---- feeder: activation rows into the array --------------------------------------------------
        sb_bits = self._sbits
        act_mem = Sram(shape=unsigned(8 * R + sb_bits), depth=depth_words)
        m.submodules.act_mem = act_mem
        act_wr, act_rd = act_mem.w[0], act_mem.r[0]

        fd = Signal(desc)
        fd_m = Signal(range(self._max_m + 1))
        fd_k0 = Signal(k_width)
        fd_n0 = Signal(n_width)
        fd_addr = Signal(range(depth_words + 1))
        fd_first_pass = Signal()
        fd_bank = Signal()
        fd_kdepth = per_mode(fd.mode, [R * md.k_per_row for md in modes], kd_width, "fd_kdepth")
        outstanding = Signal(range(self._out_fifo_depth + 1))

        last_k = Signal()
        last_n = Signal()
        last_m = Signal()
        if self._vsizes:
            # A VSQ command's vector v covers reduction elements v * V to min(v * V + V, K) - 1
            # (`fd_vbase` to `fd_end` - 1) in k tiles of its own: ceil(V / tile) of them, the last
            # one padded where the tile does not divide V. Plain commands: one "vector" of K.
            fd_vbase = Signal(k_width)
            fd_vsize = per_mode(fd.vsel, list(self._vsizes), v_width, "fd_vsize")
            fd_vnext = Signal(k_width + 1)
            fd_end = Signal(k_width)
            vsq_first_kv = Signal()
            vsq_last_kv = Signal()
            m.d.comb += [fd_vnext.eq(fd_vbase + fd_vsize),
                         fd_end.eq(Mux(fd.vsq & (fd_vnext < fd.k), fd_vnext, fd.k)),
                         vsq_first_kv.eq(fd_k0 == fd_vbase),
                         vsq_last_kv.eq(fd_k0 + fd_kdepth >= fd_end),
                         last_k.eq(vsq_last_kv & (fd_end >= fd.k))]
        else:
            m.d.comb += last_k.eq(fd_k0 + fd_kdepth >= fd.k)
        m.d.comb += [last_n.eq(fd_n0 + C >= fd.n), last_m.eq(fd_m + 1 == fd.m)]
        credit_ok = Signal()
        m.d.comb += credit_ok.eq(~last_k | (outstanding < self._out_fifo_depth))
        issue = Signal()

        # Stage 1: the wavefront entering the array, and its control word.
        ctrl_fields = {
            "valid": 1, "first_k": 1, "last_k": 1, "last": 1,
            "m": unsigned(max(1, (self._max_m - 1).bit_length())),
        }
        if self._fp:
            ctrl_fields["mode"] = unsigned(mw)   # the output conversion needs it
        if self._vsizes or self._pmb:
            # The weight bank of the wavefront: its column parameters (scales, post-processing
            # multipliers) are read from the bank's registers at the array's output.
            ctrl_fields["bank"] = 1
        if self._vsizes:
            # first_k / last_k of a VSQ wavefront refer to the accumulator: first_k marks vector 0;
            # first_kv / last_kv mark the first and last k tile of the wavefront's vector.
            ctrl_fields.update({"vsq": 1, "first_kv": 1, "last_kv": 1,
                                "sa": unsigned(sb_bits)})
        if self._pmb:
            ctrl_fields.update({"out": 2, "relu": 1})
        if self._rmb:
            # the row's post-processing factor rides with the wavefront (it changes every row)
            ctrl_fields.update({"rmult": unsigned(self._rmb), "rshift": unsigned(SHIFT_BITS)})
        ctrl = data.StructLayout(ctrl_fields)
        s1 = Signal(ctrl)
        s1_from_stream = Signal()
        s1_data = Signal(8 * R)
        s1_bank = Signal()
        s1_mode = Signal(mw)

        a_word = (Cat(self.a.payload.data.as_value(), self.a.payload.scale) if self._vsizes
                  else self.a.payload.data.as_value())
        m.d.comb += [act_wr.addr.eq(fd_addr), act_wr.data.eq(a_word), act_rd.addr.eq(fd_addr)]
        if self._vsizes:
            s1_sa = Signal(sb_bits)
        if self._rmb:
            # The row factors: taken from the beat of row m in the last k tile of the first n tile
            # and kept for the other n tiles in a memory of max_m words.
            rowp_bits = self._rmb + SHIFT_BITS
            rowp_mem = Sram(shape=unsigned(rowp_bits), depth=self._max_m)
            m.submodules.rowp_mem = rowp_mem
            rowp_wr, rowp_rd = rowp_mem.w[0], rowp_mem.r[0]
            s1_rowp = Signal(rowp_bits)
            a_rowp = Cat(self.a.payload.mult, self.a.payload.shift)
            m.d.comb += [rowp_wr.addr.eq(fd_m), rowp_wr.data.eq(a_rowp),
                         rowp_wr.en.eq(issue & fd_first_pass & last_k), rowp_rd.addr.eq(fd_m)]
        m.d.sync += s1.valid.eq(issue)
        with m.FSM(name="feeder") as feeder_fsm:
            with m.State("IDLE"):
                m.d.comb += desc_fifo.r_en.eq(1)
                with m.If(desc_fifo.r_rdy):
                    m.d.sync += [fd.eq(desc_fifo.r_data), fd_m.eq(0), fd_k0.eq(0), fd_n0.eq(0),
                                 fd_addr.eq(0), fd_first_pass.eq(1)]
                    if self._vsizes:
                        m.d.sync += fd_vbase.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                ready = Signal()
                m.d.comb += ready.eq(full.bit_select(fd_bank, 1) & credit_ok)
                m.d.comb += [
                    self.a.ready.eq(ready & fd_first_pass),
                    issue.eq(ready & (self.a.valid | ~fd_first_pass)),
                    act_wr.en.eq(issue & fd_first_pass),
                ]
                with m.If(issue):
                    if self._vsizes:
                        m.d.sync += [
                            s1.vsq.eq(fd.vsq), s1.bank.eq(fd_bank), s1_sa.eq(self.a.payload.scale),
                            s1.first_kv.eq(~fd.vsq | vsq_first_kv),
                            s1.last_kv.eq(~fd.vsq | vsq_last_kv),
                        ]
                    if self._pmb:
                        m.d.sync += [s1.out.eq(fd.out), s1.relu.eq(fd.relu), s1.bank.eq(fd_bank)]
                    if self._rmb:
                        m.d.sync += s1_rowp.eq(a_rowp)
                    m.d.sync += [
                        s1.first_k.eq(Mux(fd.vsq, fd_vbase == 0, fd_k0 == 0) if self._vsizes
                                      else fd_k0 == 0),
                        s1.last_k.eq(last_k),
                        s1.last.eq(last_k & last_n & last_m), s1.m.eq(fd_m),
                        s1_from_stream.eq(fd_first_pass), s1_data.eq(self.a.payload.data.as_value()),
                        s1_bank.eq(fd_bank), s1_mode.eq(fd.mode),
                        *([s1.mode.eq(fd.mode)] if self._fp else []),
                        fd_addr.eq(fd_addr + 1), fd_m.eq(fd_m + 1),
                    ]
                    with m.If(last_m):
                        m.d.comb += full_clr.eq(Mux(fd_bank, 0b10, 0b01))
                        for b in range(2):
                            with m.If(fd_bank == b):
                                m.d.sync += drain[b].eq(drain_init)
                        m.d.sync += [fd_m.eq(0), fd_bank.eq(~fd_bank), fd_k0.eq(fd_k0 + fd_kdepth)]
                        if self._vsizes:
                            with m.If(vsq_last_kv):
                                # the next vector starts at this one's end (0 after the last)
                                m.d.sync += [fd_k0.eq(fd_end), fd_vbase.eq(fd_end)]
                        with m.If(last_k):
                            m.d.sync += [fd_k0.eq(0), fd_n0.eq(fd_n0 + C), fd_addr.eq(0),
                                         fd_first_pass.eq(0)]
                            if self._vsizes:
                                m.d.sync += fd_vbase.eq(0)
                            with m.If(last_n):
                                m.next = "IDLE"

        for r in range(R):
            m.d.comb += array.a[r].eq(Mux(s1_from_stream, s1_data[8 * r:8 * r + 8],
                                          act_rd.data[8 * r:8 * r + 8]))
        m.d.comb += [array.bank.eq(s1_bank), array.mode.eq(s1_mode)]

        # Control words travel beside the array.
        ctl = s1
        if self._vsizes or self._rmb:
            # The activation scale and the row factor come from the stream or, on later n tiles,
            # the activation buffer and the row memory.
            s1x = Signal(ctrl)
            m.d.comb += s1x.eq(s1)
            if self._vsizes:
                m.d.comb += s1x.sa.eq(Mux(s1_from_stream, s1_sa, act_rd.data[8 * R:]))
            if self._rmb:
                rowp = Mux(s1_from_stream, s1_rowp, rowp_rd.data)
                m.d.comb += [s1x.rmult.eq(rowp[:self._rmb]), s1x.rshift.eq(rowp[self._rmb:])]
            ctl = s1x
        # The valid bit rides on a line with reset, the rest of the word on one without.
        assert ctrl["valid"].offset == 0
        word = ctl.as_value()
        nxt = Signal(ctrl, name="ctl_out")
        m.d.comb += nxt.eq(Cat(delay(m, "ctl_valid", word[0], array.latency, reset=True),
                               delay(m, "ctl", word[1:], array.latency)))
        ctl = nxt

        # ---- accumulation: stage A reads acc[m], stage B adds and writes or emits -------------------
        # Integer sums use the low `acc_width` bits; FP8 sums the whole Kulisch width and, beside it,
        # the special-value flags.
        aw = max(self._acc_width, self.fp_acc_width)
        fw = FLAG_WIDTH if self._fp else 0
        lane = aw + fw
        acc_mem = Sram(shape=unsigned(lane * C), depth=self._max_m, transparent=[(0,)])
        m.submodules.acc_mem = acc_mem
        acc_wr, acc_rd = acc_mem.w[0], acc_mem.r[0]
        ps_in, ps_width = list(array.ps), array.psum_width
        if self._vsizes:
            ctl, ps_in, ps_width, post_in = self._vsq_scaling(m, ctl, array.ps, wscale, wmult,
                                                              wshift, ctrl)
        elif self._pmb:
            # Without VSQ the post-processing parameters are read at the array's output (where
            # the VSQ unit reads them, see _vsq_scaling) and wait at stage B beside the sums.
            post_in = [(Mux(ctl.bank, wmult[1][c], wmult[0][c]),
                        Mux(ctl.bank, wshift[1][c], wshift[0][c])) for c in range(C)]
        if self._pmb:
            # Stage A -> B: with a per-row factor, the column's and the row's multipliers and
            # shifts combine (mult_w * mult_a, shift_w + shift_a) for the single rounding at C.
            sb_post = [(Signal(self._pmb + self._rmb, name=f"sb_mult_{c}"),
                        Signal(self._shw, name=f"sb_shift_{c}")) for c in range(C)]
            for c in range(C):
                mult_in, shift_in = post_in[c]
                if self._rmb:
                    mult_in, shift_in = mult_in * ctl.rmult, shift_in + ctl.rshift
                m.d.sync += [sb_post[c][0].eq(mult_in), sb_post[c][1].eq(shift_in)]
        m.d.comb += acc_rd.addr.eq(ctl.m)
        sb = Signal(ctrl)
        sb_ps = [Signal(signed(ps_width), name=f"sb_ps_{c}") for c in range(C)]
        m.d.sync += sb.eq(ctl)
        m.d.sync += [sb_ps[c].eq(ps_in[c]) for c in range(C)]
        sb_fl = [Signal(fw, name=f"sb_fl_{c}") for c in range(C)] if self._fp else []
        fl_in = list(array.fl) if self._fp else []
        if self._fp and self._vsizes:
            # FP8 flags wait beside the VSQ scaling stages (P1, P2), which FP8 sums pass through.
            for stage in ("p1", "p2"):
                nxt = [Signal(fw, name=f"vsq_{stage}_fl_{c}") for c in range(C)]
                m.d.sync += [nxt[c].eq(fl_in[c]) for c in range(C)]
                fl_in = nxt
        m.d.sync += [sb_fl[c].eq(fl_in[c]) for c in range(len(sb_fl))]

        sums, flags = [], []
        for c in range(C):
            prev = acc_rd.data[lane * c:lane * c + aw].as_signed()
            total = Signal(signed(aw), name=f"sum_{c}")
            m.d.comb += total.eq(Mux(sb.first_k, 0, prev) + sb_ps[c])
            sums.append(total)
            if self._fp:
                prev_fl = acc_rd.data[lane * c + aw:lane * (c + 1)]
                fl = Signal(fw, name=f"flags_{c}")
                m.d.comb += fl.eq(Mux(sb.first_k, 0, prev_fl) | sb_fl[c])
                flags.append(fl)
        ow = self._out_width
        out_fifo = hier.add(m, "out_fifo", Fifo(width=ow * C + 1, depth=self._out_fifo_depth,
                                                buffered=True))
        m.d.comb += [
            acc_wr.addr.eq(sb.m),
            acc_wr.data.eq(Cat(*(Cat(sums[c], *flags[c:c + 1]) for c in range(C)))),
            acc_wr.en.eq(sb.valid & ~sb.last_k),
        ]
        if not self._fp and self._pmb:
            # Stage C: the final sums, registered, are post-processed or passed on.
            sc = Signal(ctrl)
            m.d.sync += sc.eq(sb)
            lanes = []
            for c in range(C):
                sc_sum = Signal(signed(aw), name=f"sc_sum_{c}")
                m.d.sync += sc_sum.eq(sums[c])
                lanes.append(self._post_lane(m, sc, sc_sum[:self._acc_width].as_signed(),
                                             sb_post[c], c))
            m.d.comb += [out_fifo.w_data.eq(Cat(*lanes, sc.last)),
                         out_fifo.w_en.eq(sc.valid & sc.last_k)]
        elif not self._fp:
            m.d.comb += [out_fifo.w_data.eq(Cat(*sums, sb.last)),
                         out_fifo.w_en.eq(sb.valid & sb.last_k)]
        else:
            # Stage C: the final sums, registered, become binary32 (FP8) or the integer result.
            sc = Signal(ctrl)
            m.d.sync += sc.eq(sb)
            lanes = []
            fp_names = [n for n in self._modes if mode_by_name(n).fp8 is not None]
            sc_fp = Signal()
            m.d.comb += sc_fp.eq(Cat(*(sc.mode == self._modes.index(n) for n in fp_names)).any())
            sc_e5 = Signal()
            m.d.comb += sc_e5.eq(sc.mode == self._modes.index("fp8_e5m2")
                                 if "fp8_e5m2" in self._modes else 0)
            for c in range(C):
                sc_sum = Signal(signed(aw), name=f"sc_sum_{c}")
                sc_fl = Signal(fw, name=f"sc_fl_{c}")
                m.d.sync += [sc_sum.eq(sums[c]), sc_fl.eq(flags[c])]
                conv = hier.add(m, f"to_binary32_{c}", ToBinary32(width=aw, formats=self._fp))
                m.d.comb += [conv.total.eq(sc_sum), conv.flags.eq(sc_fl), conv.e5.eq(sc_e5)]
                fp32 = conv.fp32
                as_int = sc_sum[:self._acc_width].as_signed()
                if self._pmb:
                    as_int = self._post_lane(m, sc, as_int, sb_post[c], c)   # FP32 too
                out = Signal(signed(ow), name=f"out_{c}")
                m.d.comb += out.eq(Mux(sc_fp, fp32, as_int))
                lanes.append(out)
            m.d.comb += [out_fifo.w_data.eq(Cat(*lanes, sc.last)),
                         out_fifo.w_en.eq(sc.valid & sc.last_k)]
        m.d.comb += [
            self.o.payload.eq(out_fifo.r_data),
            self.o.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.o.ready),
        ]

        taken = Signal()
        m.d.comb += taken.eq(self.o.valid & self.o.ready)
        booked = Signal()
        m.d.comb += booked.eq(issue & last_k)
        with m.If(booked & ~taken):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(taken & ~booked):
            m.d.sync += outstanding.eq(outstanding - 1)

        m.d.comb += self.busy.eq(~loader_fsm.ongoing("IDLE") | ~feeder_fsm.ongoing("IDLE")
                                 | desc_fifo.r_rdy | (outstanding != 0))
        return m

    def _vsq_scaling(self, m, ctl, ps, wscale, wmult, wshift, ctrl):
        """The VSQ scaling unit between the array and the accumulator, one lane per column.

        Stage P0 (the array's output) reads ``vpart[m]`` and the weight scales of the wavefront's
        bank; stage P1 adds the column sum to the vector partial sum (from 0 on a vector's first k
        tile) and writes it back unless the tile is the vector's last; stage P2 multiplies the
        completed vector sum by ``s_qw * s_qa`` (registered in P1) and hands the product to the
        accumulator, only on a vector's last k tile. Non-VSQ wavefronts pass their column sums
        through unchanged. Returns the control word, the lanes and their width as the accumulator
        sees them.

        The weight scales of a bank are read at P0 before the loader can overwrite them: the last
        wavefront of a tile, issued in cycle t, is at P0 in cycle t + R + C, while the loader writes
        the bank (``drain``) at the earliest at the end of cycle t + R + C + 1.
        """
        C = self._cols
        vpw = self.vsq_partial_width
        tw = self.vsq_term_width + 1
        vpart_mem = Sram(shape=unsigned(vpw * C), depth=self._max_m, transparent=[(0,)])
        m.submodules.vpart_mem = vpart_mem
        vp_wr, vp_rd = vpart_mem.w[0], vpart_mem.r[0]
        m.d.comb += vp_rd.addr.eq(ctl.m)

        p1 = Signal(ctrl, name="vsq_p1")
        m.d.sync += p1.eq(ctl)
        p1_ps = [Signal(signed(len(ps[c])), name=f"vsq_p1_ps_{c}") for c in range(C)]
        p1_sw = [Signal(self._sbits, name=f"vsq_p1_sw_{c}") for c in range(C)]
        post = []
        for c in range(C if wmult else 0):
            # The post-processing multiplier and shift ride beside the wavefront to stage C.
            cur = (Mux(ctl.bank, wmult[1][c], wmult[0][c]),
                   Mux(ctl.bank, wshift[1][c], wshift[0][c]))
            for stage in ("p1", "p2"):
                nxt = (Signal(self._pmb, name=f"vsq_{stage}_mult_{c}"),
                       Signal(SHIFT_BITS, name=f"vsq_{stage}_shift_{c}"))
                m.d.sync += [nxt[0].eq(cur[0]), nxt[1].eq(cur[1])]
                cur = nxt
            post.append(cur)
        m.d.sync += [p1_ps[c].eq(ps[c]) for c in range(C)]
        m.d.sync += [p1_sw[c].eq(Mux(ctl.bank, wscale[1][c], wscale[0][c])) for c in range(C)]

        p2 = Signal(ctrl, name="vsq_p2")
        m.d.sync += p2.eq(p1)
        vsums = []
        p2_vsum = [Signal(signed(vpw), name=f"vsq_p2_vsum_{c}") for c in range(C)]
        p2_ps = [Signal(signed(len(ps[c])), name=f"vsq_p2_ps_{c}") for c in range(C)]
        p2_scale = [Signal(2 * self._sbits, name=f"vsq_p2_scale_{c}") for c in range(C)]
        for c in range(C):
            prev = vp_rd.data[vpw * c:vpw * (c + 1)].as_signed()
            vsum = Signal(signed(vpw), name=f"vsq_vsum_{c}")
            m.d.comb += vsum.eq(Mux(p1.first_kv, 0, prev) + p1_ps[c][:vpw].as_signed())
            vsums.append(vsum)
            m.d.sync += [p2_vsum[c].eq(vsum), p2_ps[c].eq(p1_ps[c]),
                         p2_scale[c].eq(p1_sw[c] * p1.sa)]
        m.d.comb += [vp_wr.addr.eq(p1.m), vp_wr.data.eq(Cat(*vsums)),
                     vp_wr.en.eq(p1.valid & p1.vsq & ~p1.last_kv)]

        out_ctl = Signal(ctrl, name="vsq_out")
        m.d.comb += [out_ctl.eq(p2), out_ctl.valid.eq(p2.valid & p2.last_kv)]
        width = max(tw, len(ps[0]))
        lanes = []
        for c in range(C):
            term = Signal(signed(width), name=f"vsq_term_{c}")
            m.d.comb += term.eq(Mux(p2.vsq, p2_vsum[c] * p2_scale[c], p2_ps[c]))
            lanes.append(term)
        return out_ctl, lanes, width, post

    def _post_lane(self, m, sc, acc, post, c):
        """The post-processing lane of column ``c`` (:class:`gen.gemm_lanes.PostLane`) at stage C:
        ``post`` holds the multiplier and shift from ``sb_post``, registered in the lane beside
        ``sc``. Returns the lane's result, of the output width."""
        mult_sb, shift_sb = post
        lane = hier.add(m, f"post_lane_{c}", PostLane(acc_width=len(acc), mult_bits=len(mult_sb),
                                                      shift_bits=len(shift_sb),
                                                      out_width=self._out_width))
        m.d.comb += [lane.acc.eq(acc), lane.mult_in.eq(mult_sb), lane.shift_in.eq(shift_sb),
                     lane.out.eq(sc.out), lane.relu.eq(sc.relu)]
        return lane.result
