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
