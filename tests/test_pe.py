"""The PE's product in every integer mode, exhaustively over all operand bytes (Amaranth simulator),
for single-mode PEs (which build only their own multipliers) and the fused multi-mode PE."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.pe import MixedPE
from gen.systolic import psum_width
from sim.golden.gemm import gemm, unpack_int4_pairs

BYTES = np.arange(256)
# Weight bytes: every low nibble and every high nibble (paired differently), and the corners.
WEIGHTS = sorted({lo | (((lo * 7 + 3) % 16) << 4) for lo in range(16)}
                 | {0x00, 0x77, 0x7F, 0x80, 0x88, 0xF7, 0x8F, 0xFF})


def _int8(x):
    return np.where(x >= 128, x - 256, x)


def expected(mode):
    """Table ``[a_byte, w_byte]`` of the PE's product in ``mode``, from the golden GEMM of the
    operands the bytes pack (one activation row per byte, one weight column per byte)."""
    if mode == "int4":
        a = np.stack(unpack_int4_pairs(BYTES), axis=-1)
        w = np.stack(unpack_int4_pairs(BYTES), axis=0)
    elif mode == "w4a8":
        a, w = _int8(BYTES)[:, None], unpack_int4_pairs(BYTES)[0][None, :]
    else:
        a, w = _int8(BYTES)[:, None], _int8(BYTES)[None, :]
    return gemm(a, w, mode)


@pytest.mark.parametrize("modes", [("int8",), ("int4",), ("w4a8",), ("int8", "int4", "w4a8")],
                         ids=lambda m: "+".join(m))
def test_product_every_activation_byte(modes):
    """ps_o = ps_i + product for all 256 activation bytes against weight bytes holding every nibble
    value, in every mode of the PE (ps_i = 0 and bank 1 for the even activation bytes, ps_i = -1 and
    bank 0 for the odd ones)."""
    pe = MixedPE(modes=modes, psum_width=psum_width(2, modes))
    want = {mode: expected(mode) for mode in modes}
    mismatches = []

    async def bench(ctx):
        for w in WEIGHTS:
            w_lo = w & 0xF if modes == ("w4a8",) else w   # the loader's W4A8 weights
            ctx.set(pe.w_data, w_lo)
            ctx.set(pe.w_we, 0b11)
            await ctx.tick()
            ctx.set(pe.w_we, 0)
            for idx, mode in enumerate(modes):
                ctx.set(pe.mode_i, idx)
                for a in BYTES:
                    ctx.set(pe.a_i, int(a))
                    ctx.set(pe.bank_i, int(a) & 1 ^ 1)
                    ctx.set(pe.ps_i, -(int(a) & 1))
                    await ctx.tick()
                    got = ctx.get(pe.ps_o)
                    ref = int(want[mode][a, w]) - (int(a) & 1)
                    if got != ref and len(mismatches) < 5:
                        mismatches.append((mode, int(a), w, got, ref))

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert mismatches == []


def _selected(lane, meta, mode):
    """The activation byte a 2:4 PE should multiply: the byte at the weight's position, or (INT4)
    the nibbles at the two positions."""
    if mode == "int4":
        nib = [(lane >> (4 * i)) & 0xF for i in range(4)]
        return nib[meta & 3] | nib[(meta >> 2) & 3] << 4
    return (lane >> (8 * (meta & 3))) & 0xFF


@pytest.mark.parametrize("modes", [("int8",), ("int4",), ("w4a8",), ("int8", "int4", "w4a8"),
                                   ("fp8_e4m3",),
                                   ("int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2")],
                         ids=lambda m: "+".join(m))
def test_sparse_pe_selects_the_activation_of_each_weight(modes, seed):
    """A 2:4 PE (``sparse``) gives, for random group lanes, weights and positions in both banks,
    the sums and flags of a dense PE fed the activation at the weights' positions."""
    from amaranth.hdl import Module

    from gen.pe import act_lane_width, meta_width
    rng = np.random.default_rng(seed)
    pw = psum_width(2, modes)
    sp = MixedPE(modes=modes, psum_width=pw, sparse=True)
    dn = MixedPE(modes=modes, psum_width=pw)
    top = Module()
    top.submodules.sp, top.submodules.dn = sp, dn
    lane_bits, mb = act_lane_width(modes, True), meta_width(modes)
    fp = hasattr(sp, "fl_o")
    mismatches = []

    async def bench(ctx):
        for _ in range(60):
            metas = []
            for bank in (0, 1):
                w = int(rng.integers(0, 256))
                w = w & 0xF if modes == ("w4a8",) else w
                meta = int(rng.integers(0, 1 << mb))
                metas.append(meta)
                for pe in (sp, dn):
                    ctx.set(pe.w_data, w)
                    ctx.set(pe.w_we, 1 << bank)
                    if fp:
                        ctx.set(pe.w_ok, 1)
                ctx.set(sp.w_meta, meta)
                await ctx.tick()
            for pe in (sp, dn):
                ctx.set(pe.w_we, 0)
            for _ in range(20):
                idx = int(rng.integers(0, len(modes)))
                bank = int(rng.integers(0, 2))
                lane = int(rng.integers(0, 1 << lane_bits))
                ps = int(rng.integers(-100, 100))
                for pe in (sp, dn):
                    ctx.set(pe.mode_i, idx)
                    ctx.set(pe.bank_i, bank)
                    ctx.set(pe.ps_i, ps)
                    if fp:
                        ctx.set(pe.fl_i, 0)
                ctx.set(sp.a_i, lane)
                ctx.set(dn.a_i, _selected(lane, metas[bank], modes[idx]))
                await ctx.tick()
                got = (ctx.get(sp.ps_o), ctx.get(sp.fl_o) if fp else 0, ctx.get(sp.a_o))
                ref = (ctx.get(dn.ps_o), ctx.get(dn.fl_o) if fp else 0, lane)
                if got != ref and len(mismatches) < 5:
                    mismatches.append((modes[idx], lane, metas[bank], got, ref))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert mismatches == [], f"seed {seed}"


def test_dense_pe_has_no_sparse_ports():
    pe = MixedPE(modes=("int8",), psum_width=16)
    sp = MixedPE(modes=("int8",), psum_width=16, sparse=True)
    pe._MustUse__silence = sp._MustUse__silence = True   # only their signatures are read here
    assert not hasattr(pe, "w_meta") and len(pe.a_i) == 8
    assert "sparse" not in pe.module_parameters
    assert sp.module_parameters["sparse"] is True and len(sp.a_i) == 32
