"""The mixed-precision GEMM engine: a weight-stationary systolic array behind streams.

The engine is its parts, each a component of its own module in this package, in the order data
flows through them:

- :class:`gen.gemm.command.CommandCheck`: is the command on ``cmd`` valid;
- :class:`gen.gemm.loader.WeightLoader`: takes commands and loads weight tiles into the array's
  idle bank (:class:`gen.gemm.banks.WeightBanks` keeps the banks' state);
- a queue of commands (:class:`gen.lib.fifo.Fifo`) from the loader to
  :class:`gen.gemm.feeder.ActivationFeeder`, which issues activation rows into the array as
  wavefronts, with their control words;
- :class:`gen.systolic.SystolicArray`, with the control words on delay lines beside it;
- :class:`gen.gemm.scaler.VsqScaler` (where VSQ is built);
- :class:`gen.gemm.accumulator.Accumulator`, with the binary32 conversion and post-processing lanes;
- :class:`gen.gemm.output.OutputQueue` in front of ``o``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..lib import hier
from ..lib.delay import delay
from ..lib.fifo import Fifo
from ..lib.formats import mode_by_name
from ..lib.hier import Reused
from ..systolic import SystolicArray
from .accumulator import Accumulator
from .banks import WeightBanks
from .command import CommandCheck
from .feeder import ActivationFeeder
from .layouts import act_layout, cmd_layout, out_layout, wgt_layout
from .loader import WeightLoader
from .output import OutputQueue
from .params import GemmParams
from .scaler import VsqScaler

__all__ = ["GemmEngine"]


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

    2:4 structured sparsity, built where ``sparse``: a command with ``sparse = 1`` (any mode, VSQ
    and post-processing included) takes compressed weights, for every group of 4 consecutive
    reduction elements of a column the 2 kept values on ``w.data`` (streamed as a dense matrix of
    ``ceil(K / 4) * 2`` rows) and their positions in the group on ``w.meta``; its ``a`` beats carry
    the 2R (dense) activations of a k tile twice as deep, and the engine retires twice the
    reduction elements per cycle on the same multipliers (:class:`gen.pe.MixedPE`,
    :class:`gen.gemm.loader.WeightLoader`, :class:`gen.gemm.feeder.ActivationFeeder`), bit-exact
    with :func:`sim.golden.sparsity.sparse_gemm`. ``a`` beats have 2R bytes in such a build; dense
    commands use the first R. VSQ vectors count dense reduction elements.

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
    sparse : bool
        Build 2:4 structured sparsity (R even).

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
    optional_parameters = ("sparse",)

    def __init__(self, *, rows, cols, modes, acc_width, max_m, max_n, max_k, out_fifo_depth,
                 vsq_vector_sizes=(), vsq_scale_bits=4, post_mult_bits=0, post_row_mult_bits=0,
                 sparse=False):
        self._p = p = GemmParams(
            rows=rows, cols=cols, modes=modes, acc_width=acc_width, max_m=max_m, max_n=max_n,
            max_k=max_k, out_fifo_depth=out_fifo_depth, vsq_vector_sizes=vsq_vector_sizes,
            vsq_scale_bits=vsq_scale_bits, post_mult_bits=post_mult_bits,
            post_row_mult_bits=post_row_mult_bits, sparse=sparse)
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(max_m=max_m, max_n=max_n, max_k=max_k,
                                                  vector_sizes=p.vsq_vector_sizes,
                                                  post=p.post, sparse=p.sparse))),
            "a": In(stream.Signature(act_layout(p.act_lanes, p.sbits, post_row_mult_bits))),
            "w": In(stream.Signature(wgt_layout(cols, p.sbits, post_mult_bits, p.meta_bits))),
            "o": Out(stream.Signature(out_layout(cols, p.out_width))),
            "errors": Out(16),
            "busy": Out(1),
            "cmd_ok": Out(1),
        })

    @property
    def params(self):
        """The engine's :class:`gen.gemm.params.GemmParams`."""
        return self._p

    @property
    def rows(self):
        return self._p.rows

    @property
    def cols(self):
        return self._p.cols

    @property
    def modes(self):
        return self._p.modes

    @property
    def act_buffer_depth(self):
        """Words of the activation buffer: ``max_m`` times the most k tiles of a command
        (:func:`gen.lib.formats.max_k_tiles`: ``ceil(max_k / rows)``, more where VSQ pads
        vectors)."""
        return self._p.act_buffer_depth

    @property
    def fp_acc_width(self):
        """Bits of the FP8 Kulisch accumulator (0 without FP8 modes)."""
        return self._p.fp_acc_width

    @property
    def psum_width(self):
        return self._p.psum_width

    @property
    def vsq_vector_sizes(self):
        return self._p.vsq_vector_sizes

    @property
    def vsq_scale_bits(self):
        """M, bits of the per-vector scales (0 without VSQ)."""
        return self._p.sbits

    @property
    def vsq_partial_width(self):
        """Bits of the per-column vector partial sums (0 without VSQ)."""
        return self._p.vsq_partial_width

    @property
    def vsq_term_width(self):
        """Bits of a scaled vector partial sum ``vpart * s_qw * s_qa`` (0 without VSQ)."""
        return self._p.vsq_term_width

    @property
    def pipeline_depth(self):
        """Cycles from taking the activation beat of row m in the last k tile to result row m on
        ``o``: the sum of the parts' latencies, the feeder's issue (1), the array (R + C - 1), the
        VSQ scaler (2, where built), the accumulator (1, plus 1 for the conversion to binary32 or
        post-processing) and the output queue (2)."""
        p = self._p
        return (ActivationFeeder.latency + p.array_latency
                + (VsqScaler.latency if p.vsq else 0)
                + Accumulator.latency_for(p) + OutputQueue.latency)

    latency = pipeline_depth

    def macs_per_cycle(self, mode, sparse=False):
        """Multiply-accumulates per cycle of the busy array in ``mode``; ``sparse``: effective
        MACs of 2:4 commands (reduction elements retired, pruned ones included: twice the
        dense)."""
        return self._p.rows * self._p.cols * mode_by_name(mode).macs_per_pe * (2 if sparse else 1)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        C = p.cols
        m.submodules.array = array = SystolicArray(rows=p.rows, cols=C, modes=p.modes,
                                                   sparse=p.sparse)
        m.submodules.check = check = CommandCheck(p)
        m.submodules.banks = banks = WeightBanks(drain=array.latency + 1)
        m.submodules.loader = loader = WeightLoader(p)
        m.submodules.feeder = feeder = ActivationFeeder(p)
        m.submodules.output = output = OutputQueue(p)
        queue = hier.add(m, "desc_fifo", Fifo(width=p.desc_layout.size, depth=2))

        # Commands: checked, taken by the loader, queued for the feeder.
        m.d.comb += [check.cmd.eq(self.cmd.payload), self.cmd_ok.eq(check.ok),
                     loader.cmd_valid.eq(self.cmd.valid), self.cmd.ready.eq(loader.cmd_ready),
                     loader.ok.eq(check.ok), loader.desc.eq(check.desc),
                     queue.w_data.eq(check.desc), queue.w_en.eq(loader.queue_push),
                     loader.queue_ready.eq(queue.w_rdy), self.errors.eq(loader.errors),
                     feeder.queue_valid.eq(queue.r_rdy), feeder.queue_data.eq(queue.r_data),
                     queue.r_en.eq(feeder.queue_pop)]
        # Weights into the array's banks.
        wiring.connect(m, wiring.flipped(self.w), loader.w)
        m.d.comb += [loader.bank_free.eq(banks.free), banks.set.eq(loader.bank_set),
                     banks.clr.eq(feeder.bank_clr), feeder.bank_full.eq(banks.full),
                     array.w_bank.eq(loader.w_bank), array.w_row_we.eq(loader.w_row_we)]
        m.d.comb += [array.w_data[c].eq(loader.w_data[c]) for c in range(C)]
        if p.fp:
            m.d.comb += [array.w_ok[c].eq(loader.w_ok[c]) for c in range(C)]
        if p.sparse:
            m.d.comb += [array.w_meta[c].eq(loader.w_meta[c]) for c in range(C)]
        # Activations into the array.
        wiring.connect(m, wiring.flipped(self.a), feeder.a)
        m.d.comb += [array.a[r].eq(feeder.array_a[r]) for r in range(p.rows)]
        m.d.comb += [array.bank.eq(feeder.array_bank), array.mode.eq(feeder.array_mode)]

        # Control words travel beside the array: the valid bit on a line with reset, the rest of
        # the word on one without.
        ctrl = p.ctrl_layout
        assert ctrl["valid"].offset == 0
        word = feeder.ctl.as_value()
        ctl = Signal(ctrl, name="ctl_out")
        m.d.comb += ctl.eq(Cat(delay(m, "ctl_valid", word[0], array.latency, reset=True),
                               delay(m, "ctl", word[1:], array.latency)))

        ps, ps_width = list(array.ps), array.psum_width
        fl = list(array.fl) if p.fp else []
        post = []
        if p.vsq:
            m.submodules.vsq = vsq = VsqScaler(p)
            m.d.comb += [vsq.ctl_i.eq(ctl), vsq.wscale[0].eq(loader.wscale[0]),
                         vsq.wscale[1].eq(loader.wscale[1])]
            m.d.comb += [vsq.ps[c].eq(ps[c]) for c in range(C)]
            if p.fp:
                m.d.comb += [vsq.fl_i[c].eq(fl[c]) for c in range(C)]
                fl = list(vsq.fl_o)
            if p.post:
                m.d.comb += [vsq.wmult[b].eq(loader.wmult[b]) for b in range(2)]
                m.d.comb += [vsq.wshift[b].eq(loader.wshift[b]) for b in range(2)]
                post = list(zip(vsq.mult, vsq.shift, strict=True))
            ctl, ps, ps_width = vsq.ctl_o, list(vsq.lanes), vsq.width
        elif p.post:
            # Without VSQ the post-processing parameters are read at the array's output (where
            # the VSQ unit reads them) and wait at stage B beside the sums.
            post = [(Mux(ctl.bank, loader.wmult[1][c], loader.wmult[0][c]),
                     Mux(ctl.bank, loader.wshift[1][c], loader.wshift[0][c])) for c in range(C)]

        m.submodules.acc = acc = Accumulator(p, ps_width=ps_width)
        m.d.comb += acc.ctl.eq(ctl)
        m.d.comb += [acc.ps[c].eq(ps[c]) for c in range(C)]
        if p.fp:
            m.d.comb += [acc.fl[c].eq(fl[c]) for c in range(C)]
        for c, (mult, shift) in enumerate(post):
            m.d.comb += [acc.mult[c].eq(mult), acc.shift[c].eq(shift)]

        m.d.comb += [output.w_data.eq(acc.w_data), output.w_en.eq(acc.w_en),
                     output.booked.eq(feeder.booked), feeder.room.eq(output.room)]
        wiring.connect(m, output.o, wiring.flipped(self.o))
        m.d.comb += self.busy.eq(loader.busy | feeder.busy | queue.r_rdy | output.pending)
        return m
