"""The GEMM golden model on its own: against numpy, and its stream packing round trips."""

import numpy as np
import pytest

from gen.lib.formats import MODES as HW_MODES
from sim.golden import gemm as golden


def test_mode_table_matches_the_hardware():
    for mode in HW_MODES:
        code, k_per_row, weight_k, macs = golden.MODES[mode.name]
        assert (code, k_per_row, weight_k, macs) == (
            mode.code, mode.k_per_row, mode.weight_k_per_beat, mode.macs_per_pe)


@pytest.mark.parametrize("mode", list(golden.MODES))
def test_gemm_is_matmul(mode, seed):
    rng = np.random.default_rng(seed)
    for m, n, k in [(1, 1, 1), (3, 5, 7), (17, 4, 33)]:
        a, w = golden.random_operands(rng, m, n, k, mode)
        expected = a.astype(np.float64) @ w.astype(np.float64)
        assert np.array_equal(golden.gemm(a, w, mode), expected.astype(np.int64))


@pytest.mark.parametrize("mode", list(golden.MODES))
def test_operands_out_of_range_are_refused(mode):
    (alo, _), (wlo, _) = golden.RANGES[mode]
    with pytest.raises(ValueError, match=f"A has values outside \\[{alo}, "):
        golden.gemm(np.array([[alo - 1]]), np.array([[0]]), mode)
    with pytest.raises(ValueError, match=f"W has values outside \\[{wlo}, "):
        golden.gemm(np.array([[0]]), np.array([[wlo - 1]]), mode)


def test_unknown_mode_and_bad_shapes():
    with pytest.raises(ValueError, match="mode = 'int2': must be one of int8, int4, w4a8"):
        golden.gemm(np.zeros((1, 1)), np.zeros((1, 1)), "int2")
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(2, 3\)"):
        golden.gemm(np.zeros((2, 3)), np.zeros((2, 3)))


def test_int4_pairs_round_trip():
    values = np.arange(-8, 8)
    lo, hi = np.meshgrid(values, values)
    byte = golden.pack_int4_pairs(lo, hi)
    assert byte.min() >= 0 and byte.max() <= 255
    assert np.all((byte & 0xF) == (lo & 0xF))
    back_lo, back_hi = golden.unpack_int4_pairs(byte)
    assert np.array_equal(back_lo, lo) and np.array_equal(back_hi, hi)


def _dot_from_beats(a_beats, w_beats, mode, rows, cols, m, n, k):
    """Recompute Y from the packed beats alone, the way the PE array consumes them."""
    tk = golden.tile_k(mode, rows)
    k_tiles = -(-k // tk)
    per_tile = rows if mode != "w4a8" else -(-rows // 2)
    y = np.zeros((m, n), dtype=np.int64)
    for t, n0 in enumerate(range(0, n, cols)):
        for kt in range(k_tiles):
            wb = w_beats[(t * k_tiles + kt) * per_tile:(t * k_tiles + kt + 1) * per_tile]
            ab = a_beats[kt * m:(kt + 1) * m]
            # Unpack the weight tile to (tk x cols) values.
            if mode == "int8":
                wt = np.array(wb, dtype=np.int64)
                wt = np.where(wt >= 128, wt - 256, wt)
            else:
                lo, hi = golden.unpack_int4_pairs(np.array(wb))
                wt = np.empty((2 * len(wb), cols), dtype=np.int64)
                wt[0::2], wt[1::2] = lo, hi
                wt = wt[:tk]
            at = np.array(ab, dtype=np.int64)
            if mode == "int4":
                lo, hi = golden.unpack_int4_pairs(at)
                at = np.empty((m, 2 * rows), dtype=np.int64)
                at[:, 0::2], at[:, 1::2] = lo, hi
            else:
                at = np.where(at >= 128, at - 256, at)
            width = min(cols, n - n0)
            y[:, n0:n0 + width] += (at @ wt)[:, :width]
    return y


@pytest.mark.parametrize("mode", list(golden.MODES))
@pytest.mark.parametrize("rows, cols", [(3, 5), (4, 4), (1, 2)])
def test_stream_packing_reproduces_the_product(mode, rows, cols, seed):
    rng = np.random.default_rng(seed)
    m, n, k = 5, 7, 11
    a, w = golden.random_operands(rng, m, n, k, mode)
    a_beats = golden.act_beats(a, mode, rows)
    w_beats = golden.weight_beats(w, mode, rows, cols)
    assert all(0 <= v <= 255 for beat in a_beats + w_beats for v in beat)
    y = _dot_from_beats(a_beats, w_beats, mode, rows, cols, m, n, k)
    assert np.array_equal(y, golden.gemm(a, w, mode))
    beats = golden.output_beats(y, cols)
    assert [last for _, last in beats] == [0] * (len(beats) - 1) + [1]
    assert np.array_equal(golden.outputs_to_matrix([d for d, _ in beats], m, n, cols), y)


def test_wrap_and_width_rule():
    assert golden.wrap(np.array([2**31]), 32)[0] == -(2**31)
    assert golden.wrap(np.array([-5]), 8)[0] == -5
    for max_k in (1, 256, 1000):
        width = golden.acc_width_needed(max_k)
        extreme = golden.gemm(np.full((1, max_k), -128), np.full((max_k, 1), -128))
        assert golden.wrap(extreme, width)[0, 0] == extreme[0, 0]
        assert golden.wrap(extreme, width - 1)[0, 0] != extreme[0, 0]
