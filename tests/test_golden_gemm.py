"""The GEMM golden model on its own: against numpy, and its stream packing round trips."""

import numpy as np
import pytest

from gen.lib.formats import FP8_FORMATS, fp_acc_width
from gen.lib.formats import MODES as HW_MODES
from sim.golden import gemm as golden

INT_MODES = [m for m in golden.MODES if m not in golden.FP8]


def test_mode_table_matches_the_hardware():
    for mode in HW_MODES:
        code, k_per_row, weight_k, macs = golden.MODES[mode.name]
        assert (code, k_per_row, weight_k, macs) == (
            mode.code, mode.k_per_row, mode.weight_k_per_beat, mode.macs_per_pe)


@pytest.mark.parametrize("mode", INT_MODES)
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
    with pytest.raises(ValueError,
                       match="mode = 'int2': must be one of int8, int4, w4a8, fp8_e4m3, fp8_e5m2"):
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
            if mode != "int4" and mode != "w4a8":
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


@pytest.mark.parametrize("mode", INT_MODES)
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


# ---- FP8 -------------------------------------------------------------------------------------------

ML_DTYPES = {"fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}


def _fp8_float(codes, mode):
    """Decode FP8 codes with ml_dtypes, the independent reference (DESIGN.md)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return np.asarray(codes, dtype=np.uint8).view(getattr(ml_dtypes, ML_DTYPES[mode])).astype(
        np.float64)


def _f32(bits):
    return np.asarray(bits, dtype=np.int64).astype(np.uint32).view(np.float32).astype(np.float64)


@pytest.mark.parametrize("mode", golden.FP_MODES)
def test_fp8_decoding_matches_ml_dtypes(mode):
    codes = np.arange(256)
    ours = np.array([golden.fp8_value(c, mode) for c in codes])
    assert np.array_equal(ours, _fp8_float(codes, mode), equal_nan=True)
    finite = ~np.isnan(ours) & ~np.isinf(ours)
    units = [golden.fp8_units(c, mode) for c in codes[finite]]
    assert np.array_equal(np.array(units) * 2.0 ** golden.fp8_lsb_exp(mode), ours[finite])


def test_fp8_format_table_matches_the_hardware():
    for mode, fmt in (("fp8_e4m3", "e4m3"), ("fp8_e5m2", "e5m2")):
        f = FP8_FORMATS[fmt]
        assert golden.FP8[mode] == (f.exp_bits, f.man_bits, f.bias, f.ieee_specials)
        assert golden.fp8_lsb_exp(mode) == f.lsb_exp
        largest = max(golden.fp8_value(c, mode) for c in range(128)
                      if not np.isnan(golden.fp8_value(c, mode)))
        finite_max = 448.0 if fmt == "e4m3" else float("inf")
        assert largest == finite_max
        assert f.max_units * 2.0 ** f.lsb_exp == (448.0 if fmt == "e4m3" else 57344.0)
        for max_k in (1, 7, 256, 65536):
            assert golden.fp_acc_width(mode, max_k) == fp_acc_width([fmt], max_k)
    assert golden.fp_acc_width("fp8_e4m3", 256) == 45
    assert golden.fp_acc_width("fp8_e5m2", 256) == 73


def test_round_to_binary32_against_numpy(seed):
    """Integers times powers of two that float64 holds exactly, rounded by numpy (RNE) to float32;
    including ties, subnormals, overflow."""
    rng = np.random.default_rng(seed)
    cases = [(1, 0), (3, -150), (1, -149), (1, -150), (3, -151), (2**24 + 1, 0), (2**24 + 3, 0),
             (2**25 + 2, 0), (-(2**24 + 1), 0), ((2**24 - 1) * 2, 103), (2**24 - 1, 104), (1, 128)]
    for _ in range(20000):
        n = int(rng.integers(-(2**52), 2**52)) >> int(rng.integers(0, 52))
        cases.append((n, int(rng.integers(-190, 120))))
    for n, e in cases:
        exact = np.ldexp(np.float64(n), e)      # exact: |n| < 2**53 and far from double's limits
        with np.errstate(over="ignore"):
            bits = int(np.array([exact], dtype=np.float32).view(np.uint32)[0])
        assert golden.round_to_binary32(n, e) == bits, (n, e)


@pytest.mark.parametrize("mode", golden.FP_MODES)
def test_fp8_gemm_against_float64(mode, seed):
    """Random codes over every exponent: within half a binary32 ulp plus float64's own summation error
    of the float64 matmul of the ml_dtypes-decoded operands."""
    rng = np.random.default_rng(seed)
    for m, n, k in [(1, 1, 1), (3, 5, 7), (6, 4, 64), (2, 3, 300)]:
        a, w = golden.random_operands(rng, m, n, k, mode)
        af, wf = _fp8_float(a, mode), _fp8_float(w, mode)
        ref = af @ wf
        bound64 = k * 2.0**-52 * (np.abs(af) @ np.abs(wf))
        got = _f32(golden.gemm(a, w, mode))
        assert np.all(np.abs(got - ref) <= 2.0**-24 * np.abs(ref) + bound64 + 1e-300)


@pytest.mark.parametrize("mode", golden.FP_MODES)
def test_fp8_gemm_is_exact_before_one_rounding(mode, seed):
    """Against a Fraction sum of the ml_dtypes values, rounded once by the integer rounding, and the
    order of the products does not matter."""
    from fractions import Fraction
    rng = np.random.default_rng(seed)
    a, w = golden.random_operands(rng, 4, 3, 40, mode)
    af, wf = _fp8_float(a, mode), _fp8_float(w, mode)
    lsb = 2 * golden.fp8_lsb_exp(mode)
    y = golden.gemm(a, w, mode)
    for i in range(4):
        for j in range(3):
            exact = sum(Fraction(x) * Fraction(v) for x, v in zip(af[i], wf[:, j], strict=True))
            units = exact / Fraction(2) ** lsb
            assert units.denominator == 1
            assert y[i, j] == golden.round_to_binary32(int(units), lsb)
    perm = rng.permutation(40)
    assert np.array_equal(golden.gemm(a[:, perm], w[perm], mode), y)


@pytest.mark.parametrize("mode", golden.FP_MODES)
def test_fp8_special_values(mode):
    nan, one, zero, negzero = 0x7F, golden.FP8_ONE[mode], 0x00, 0x80
    g = golden.gemm
    assert g([[nan, one]], [[one], [one]], mode)[0, 0] == golden.NAN32
    assert g([[one, one]], [[one], [0xFF]], mode)[0, 0] == golden.NAN32      # negative NaN code
    assert g([[zero, negzero]], [[one], [one]], mode)[0, 0] == 0           # exact zero is +0
    assert g([[negzero]], [[one]], mode)[0, 0] == 0
    assert g([[one]], [[one]], mode)[0, 0] == 0x3F800000
    tiny = golden.round_to_binary32(1, 2 * golden.fp8_lsb_exp(mode))
    assert g([[0x01]], [[0x01]], mode)[0, 0] == tiny
    assert g([[0x81]], [[0x01]], mode)[0, 0] == tiny | 0x80000000
    if mode == "fp8_e5m2":
        inf, ninf = 0x7C, 0xFC
        assert g([[inf, one]], [[one], [one]], mode)[0, 0] == 0x7F800000
        assert g([[inf]], [[0x80 | one]], mode)[0, 0] == 0xFF800000
        assert g([[inf, inf]], [[one], [0x80 | one]], mode)[0, 0] == golden.NAN32  # inf - inf
        assert g([[inf, ninf]], [[one], [one]], mode)[0, 0] == golden.NAN32
        assert g([[inf]], [[zero]], mode)[0, 0] == golden.NAN32                 # 0 x inf
        assert g([[ninf]], [[ninf]], mode)[0, 0] == 0x7F800000
    else:
        assert g([[0x7E]], [[0x7E]], mode)[0, 0] == 0x48440000                  # 448 * 448
    with pytest.raises(ValueError, match=r"A has values outside \[0, 255\]"):
        g([[256]], [[0]], mode)


@pytest.mark.parametrize("mode", golden.FP_MODES)
def test_fp8_cancellation_keeps_the_tiny_product(mode, seed):
    """x + (-x) + tiny: an exact accumulator returns the tiny product; float32 summation in order
    would not (the check shows the case is a real test)."""
    rng = np.random.default_rng(seed)
    a, w = golden.random_operands(rng, 3, 4, 33, mode, "cancel")
    tiny = golden.round_to_binary32(1, 2 * golden.fp8_lsb_exp(mode))
    assert np.all(golden.gemm(a, w, mode) == tiny)
    big = golden.gemm(np.array([[0x7B, 0x7B, 0x01]]), np.array([[0x7B], [0xFB], [0x01]]), mode)
    assert big[0, 0] == tiny


@pytest.mark.parametrize("mode", golden.FP_MODES)
def test_fp8_kinds_and_packing(mode, seed):
    rng = np.random.default_rng(seed)
    for kind in golden.FP8_KINDS:
        if kind == "inf" and mode == "fp8_e4m3":
            with pytest.raises(ValueError, match="has no infinities"):
                golden.random_operands(rng, 2, 2, 2, mode, kind)
            continue
        a, w = golden.random_operands(rng, 5, 7, 11, mode, kind)
        assert a.shape == (5, 11) and w.shape == (11, 7)
        y = golden.gemm(a, w, mode)
        assert y.min() >= 0 and y.max() < 2**32
    a, w = golden.random_operands(rng, 5, 7, 11, mode)
    a_beats = golden.act_beats(a, mode, 3)
    w_beats = golden.weight_beats(w, mode, 3, 5)
    y = _dot_from_beats(a_beats, w_beats, "int8", 3, 5, 5, 7, 11)  # bytes travel as in INT8
    assert np.array_equal(y, golden.gemm(np.where(a >= 128, a - 256, a),
                                         np.where(w >= 128, w - 256, w), "int8"))


@pytest.mark.parametrize("a, w, mode, message", [
    ([[1.5, 2]], [[1], [2]], "int8",
     "A has non-integer values (first: 1.5 at [0, 0]): must hold integers (integral floats are "
     "accepted)"),
    ([[1, 2]], [[1], [np.nan]], "int8", "W has NaN values (first at [1, 0]): must hold integers"),
    ([[1, 2]], [[1], [np.inf]], "int8", "W has infinite values (first at [1, 0]): must hold integers"),
    ([[1, 300]], [[1], [2]], "int8",
     "A has values outside [-128, 127] allowed in mode int8 (first: 300 at [0, 1])"),
    ([[1, 2]], [[1], [8]], "w4a8", "W has values outside [-8, 7] allowed in mode w4a8 (first: 8 at "
                                   "[1, 0])"),
    ([[1, 2], [3]], [[1], [2]], "int8", "A is not a rectangular array of numbers"),
    ([["1", "2"]], [[1], [2]], "int8", "A has dtype <U1: must hold integers"),
    ([[2**70, 1]], [[1], [2]], "int8",
     "A has values outside [-128, 127] allowed in mode int8 (first: 1180591620717411303424 at "
     "[0, 0])"),
    ([[1, 256]], [[1], [2]], "fp8_e4m3",
     "A has values outside [0, 255] allowed in mode fp8_e4m3 (first: 256 at [0, 1])"),
])
def test_bad_operands_are_named(a, w, mode, message):
    """No truncation of fractions, no NaN cast warnings: every bad operand gets a message."""
    with pytest.raises(ValueError) as info:
        golden.gemm(a, w, mode)
    assert str(info.value) == message


def test_integral_operands_of_any_dtype_are_taken():
    a, w = [[1, -2, 3]], [[4], [5], [-6]]
    want = golden.gemm(a, w)
    for dtype in (np.int8, np.int16, np.float32, np.float64, object):
        assert np.array_equal(golden.gemm(np.array(a, dtype=dtype), np.array(w, dtype=dtype)), want)
