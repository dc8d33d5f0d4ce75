"""The bit-exact VSQ GEMM model: accumulation, widths, fixed-point post-processing, messages."""

import math
from fractions import Fraction

import numpy as np
import pytest

from sim.golden import gemm as G
from sim.golden import quant as Q
from sim.golden import vsq as S


def _loop_vsq(a, w, s_qa, s_qw, v):
    m, k = a.shape
    n = w.shape[1]
    acc = [[0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            for vec, k0 in enumerate(range(0, k, v)):
                p = sum(int(a[i, kk]) * int(w[kk, j]) for kk in range(k0, min(k0 + v, k)))
                acc[i][j] += p * int(s_qw[vec, j]) * int(s_qa[i, vec])
    return np.array(acc, dtype=np.int64)


def _random_case(rng, mode, m, n, k, v, mb):
    na, nw = S.MODES[mode]
    alo, ahi = S.code_range(na)
    wlo, whi = S.code_range(nw)
    nvec = -(-k // v)
    return (rng.integers(alo, ahi + 1, (m, k)), rng.integers(wlo, whi + 1, (k, n)),
            rng.integers(0, 2 ** mb, (m, nvec)), rng.integers(0, 2 ** mb, (nvec, n)))


@pytest.mark.parametrize("mode", list(S.MODES))
@pytest.mark.parametrize("v, k", [(16, 64), (32, 64), (64, 128), (16, 40), (4, 7)])
def test_vsq_gemm_matches_loop(mode, v, k, seed):
    rng = np.random.default_rng(seed)
    mb = int(rng.integers(3, 9))
    a, w, sa, sw = _random_case(rng, mode, 3, 4, k, v, mb)
    got = S.vsq_gemm(a, w, sa, sw, mode=mode, vector_size=v, scale_bits=mb)
    assert got.dtype == np.int64
    assert np.array_equal(got, _loop_vsq(a, w, sa, sw, v)), f"seed {seed}"


@pytest.mark.parametrize("mode", list(S.MODES))
def test_unit_scales_and_one_vector_is_the_plain_gemm(mode, seed):
    rng = np.random.default_rng(seed)
    a, w = G.random_operands(rng, 5, 6, 48, mode)
    got = S.vsq_gemm(a, w, np.ones((5, 1)), np.ones((1, 6)), mode=mode, vector_size=48,
                     scale_bits=3)
    assert np.array_equal(got, G.gemm(a, w, mode))
    # unit scales with several vectors: still the plain GEMM
    got = S.vsq_gemm(a, w, np.ones((5, 3)), np.ones((3, 6)), mode=mode, vector_size=16,
                     scale_bits=8)
    assert np.array_equal(got, G.gemm(a, w, mode))


def test_short_last_vector_is_zero_padding():
    rng = np.random.default_rng(1)
    a, w, sa, sw = _random_case(rng, "int4", 2, 3, 20, 16, 4)
    ap = np.pad(a, ((0, 0), (0, 12)))
    wp = np.pad(w, ((0, 12), (0, 0)))
    assert np.array_equal(S.vsq_gemm(a, w, sa, sw, mode="int4", vector_size=16, scale_bits=4),
                          S.vsq_gemm(ap, wp, sa, sw, mode="int4", vector_size=16, scale_bits=4))


# -- accumulator width -----------------------------------------------------------------------------

def test_acc_width_rule_values():
    # 2N + log2 V + 2M + log2(K/V) + sign
    assert S.acc_width("int4", 16, 4, 256) == 8 + 4 + 8 + 4 + 1
    assert S.acc_width("int8", 64, 8, 4096) == 16 + 6 + 16 + 6 + 1
    assert S.acc_width("w4a8", 32, 6, 1024) == 12 + 5 + 12 + 5 + 1
    assert S.acc_width("int4", 16, 4, 100) == 8 + 4 + 8 + 3 + 1  # ceil(100 / 16) = 7 vectors
    assert S.partial_sum_width("int4", 16) == 12  # 16 * 64 = 1024 -> 11 bits + sign
    assert S.partial_sum_width("int8", 64) == 22


@pytest.mark.parametrize("mode", list(S.MODES))
@pytest.mark.parametrize("v", S.VECTOR_SIZES)
def test_extreme_operands_cannot_overflow_the_rule_width(mode, v):
    """Codes at their extremes, all scales at 2**M - 1, for every M: the sum fits the rule."""
    na, nw = S.MODES[mode]
    (alo, ahi), (wlo, whi) = S.code_range(na), S.code_range(nw)
    for mb in range(3, 9):
        k = 4 * v
        top = 2 ** mb - 1
        sa, sw = np.full((1, 4), top), np.full((4, 1), top)
        width = S.acc_width(mode, v, mb, k)
        cases = [(alo, wlo), (ahi, whi), (alo, whi), (ahi, wlo)]
        accs = [int(S.vsq_gemm(np.full((1, k), x), np.full((k, 1), y), sa, sw, mode=mode,
                               vector_size=v, scale_bits=mb)[0, 0]) for x, y in cases]
        assert accs[0] == S.acc_bound(mode, v, mb, k)  # the largest magnitude there is
        for acc in accs:
            assert -(1 << (width - 1)) <= acc < (1 << (width - 1))
        # and the rule's 2 spare bits: the exact bound needs width - 2 bits
        assert S.acc_bound(mode, v, mb, k).bit_length() + 1 == width - 2
        assert G.wrap(np.array([accs[0]]), width)[0] == accs[0]


def test_acc_bound_grows_with_k():
    for k in (1, 16, 17, 100, 4096):
        assert S.acc_bound("int8", 16, 8, k).bit_length() + 1 <= S.acc_width("int8", 16, 8, k)


# -- fixed-point per-channel scale -----------------------------------------------------------------

def test_fixed_point_multiplier_normalized_and_accurate():
    rng = np.random.default_rng(2)
    scale = np.exp(rng.uniform(-20, 5, 200))
    mult, shift = S.fixed_point_multiplier(scale, mult_bits=16)
    assert mult.min() >= 2 ** 15 and mult.max() < 2 ** 16
    err = np.abs(mult * np.exp2(-shift.astype(float)) - scale) / scale
    assert err.max() <= 2.0 ** -16


def test_fixed_point_multiplier_edges():
    mult, shift = S.fixed_point_multiplier(np.array([0.0, 1 - 2.0 ** -18, 1.0, 3.0]), mult_bits=16)
    assert mult.tolist() == [0, 2 ** 15, 2 ** 15, 3 * 2 ** 14]
    assert shift.tolist() == [0, 15, 15, 14]
    # a tiny scale is limited by max_shift: fewer mantissa bits, not an error
    m, s = S.fixed_point_multiplier(2.0 ** -70, mult_bits=16, max_shift=63)
    assert (int(m), int(s)) == (0, 63)
    with pytest.raises(ValueError, match=r"^scale = 70000\.0: too large for a 16-bit multiplier "
                                         r"\(at most 2\*\*mult_bits - 1\)$"):
        S.fixed_point_multiplier(70000.0)


def test_rescale_rounds_half_to_even():
    acc = np.array([1, 3, 5, -1, -3, -5, 2, 6, 7, -7])
    assert S.rescale(acc, 1, 1).tolist() == [0, 2, 2, 0, -2, -2, 1, 3, 4, -4]
    assert S.rescale(acc, 3, 0).tolist() == (3 * acc).tolist()


def test_rescale_matches_float_rounding(seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2 ** 20, 2 ** 20, 2000)
    mult = rng.integers(0, 2 ** 16, 2000)
    shift = rng.integers(0, 30, 2000)
    want = np.rint(acc * mult / np.exp2(shift))  # exact in float64: |acc * mult| < 2**36
    assert np.array_equal(S.rescale(acc, mult, shift).astype(np.int64), want.astype(np.int64))


def test_rescale_is_exact_beyond_64_bits():
    acc = np.array([(1 << 50) + 3])
    got = S.rescale(acc, (1 << 20) - 1, 40)[0]
    assert got == round(Fraction(((1 << 50) + 3) * ((1 << 20) - 1), 1 << 40))


@pytest.mark.parametrize("output, lo, hi", [("int8", -128, 127), ("int4", -8, 7)])
def test_postprocess_saturates_and_relu(output, lo, hi):
    acc = np.array([[-100000, -3, -1, 0, 1, 5, 100000]])
    y = S.postprocess(acc, 1, 1, output=output)
    assert y.tolist() == [[lo, -2, 0, 0, 0, 2, hi]]
    assert y.dtype == np.int64
    y = S.postprocess(acc, 1, 1, relu=True, output=output)
    assert y.tolist() == [[0, 0, 0, 0, 0, 2, hi]]


def test_postprocess_per_row_and_column_multipliers():
    acc = np.arange(6).reshape(2, 3) * 10  # 160 and 300 saturate at 127
    mult = np.array([[1], [2]]) * np.array([[1, 2, 3]])  # gamma_a[m] * gamma_w[n]
    assert S.postprocess(acc, mult, 0).tolist() == [[0, 20, 60], [60, 127, 127]]


def test_postprocess_fp32_single_rounding(seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2 ** 36, 2 ** 36, 3000)
    mult = rng.integers(1, 2 ** 16, 3000)
    shift = rng.integers(0, 64, 3000)
    got = S.postprocess(acc, mult, shift, output="fp32")
    assert got.dtype == np.float32
    # independent reference: acc * mult < 2**52 is exact in float64, then one rounding to float32
    want = (np.float64(acc) * np.float64(mult)).astype(np.float32) * np.exp2(-shift).astype(
        np.float32)
    assert np.array_equal(got, want)


def test_postprocess_fp32_ties_and_wide_products():
    tie = ((1 << 23) + 1) * 2 + 1  # 25 bits: drops one bit exactly at half, odd mantissa -> up
    assert S.postprocess(np.array([tie]), 1, 0, output="fp32")[0] == np.float32(2 ** 24 + 4)
    even = (1 << 24) * 2 + 1        # half, even mantissa -> down
    assert S.postprocess(np.array([even]), 1, 0, output="fp32")[0] == np.float32(2 ** 25)
    # 61 bits: the 37 dropped bits are just above half -> up. Through float64 the +1 would be lost
    # first and the tie then rounded to even (down): the model must not round twice.
    big = (1 << 60) + (1 << 36) + 1
    got = S.postprocess(np.array([big]), 1, 20, output="fp32")[0]
    assert got == np.float32(math.ldexp((1 << 23) + 1, 37 - 20))
    assert got != np.float32(float(big) * 2.0 ** -20)
    assert S.postprocess(np.array([-5, 5]), 1, 0, relu=True, output="fp32").tolist() == [0.0, 5.0]


# -- against the float reference -------------------------------------------------------------------

@pytest.mark.parametrize("mode, nbits", [("int4", (4, 4)), ("int8", (8, 8)), ("w4a8", (8, 4))])
def test_quantized_pipeline_matches_float_reference(mode, nbits, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((8, 64))
    w = rng.standard_normal((64, 10))
    qa = Q.quantize_tensor(a, nbits[0], "two_level", vector_axis=1, channel_axis=0, vector_size=16,
                           scale_bits=6)
    qw = Q.quantize_tensor(w, nbits[1], "two_level", vector_axis=0, channel_axis=1, vector_size=16,
                           scale_bits=6)
    acc = S.vsq_gemm(qa.codes, qw.codes, qa.vector_scale, qw.vector_scale, mode=mode,
                     vector_size=16, scale_bits=6)
    ref = S.reference(qa.codes, qw.codes, qa.scale, qw.scale)
    assert np.allclose(acc * qa.gamma * qw.gamma, ref, rtol=1e-12, atol=1e-12)
    mult, shift = S.fixed_point_multiplier(qa.gamma * qw.gamma, mult_bits=24)
    y = S.postprocess(acc, mult, shift, output="fp32")
    assert np.abs(y - ref).max() <= 2.0 ** -22 * np.abs(ref).max()
    # and the whole thing approximates the float GEMM as the bit widths allow
    sq = Q.sqnr_db(a @ w, y)
    assert sq > (11 if mode == "int4" else 14 if mode == "w4a8" else 35)
    # int8 requantization with the output scale folded in: within one step of the reference
    out_scale = np.abs(ref).max() / 127
    mult, shift = S.fixed_point_multiplier(qa.gamma * qw.gamma / out_scale, mult_bits=16)
    y8 = S.postprocess(acc, mult, shift, output="int8")
    assert np.abs(y8 - ref / out_scale).max() <= 0.51


def test_per_channel_int8_post_processing_without_vsq(seed):
    """Plain per-channel INT8 (no VSQ): the engine's integer GEMM, then the post-processing unit
    with gamma_w[n] * gamma_a / out_scale as a fixed-point multiplier per column, gives the
    requantized float GEMM within half a step plus the multiplier's relative error."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 48))
    w = rng.standard_normal((48, 7)) * rng.uniform(0.1, 3.0, size=7)
    qa = Q.quantize_tensor(a, 8, "tensor")
    qw = Q.quantize_tensor(w, 8, "channel", channel_axis=1)
    acc = G.gemm(qa.codes, qw.codes, "int8")
    ref = (qa.codes * qa.scale) @ (qw.codes * qw.scale)
    out_scale = np.abs(ref).max() / 127
    gamma = (qa.scale.reshape(-1)[0] * qw.scale.reshape(-1)) / out_scale
    mult, shift = S.fixed_point_multiplier(gamma, mult_bits=16)
    for relu in (False, True):
        y = S.postprocess(acc, mult, shift, relu=relu, output="int8")
        want = ref / out_scale
        want = np.maximum(want, 0) if relu else want
        assert np.abs(y - want).max() <= 0.5 + 2.0 ** -15 * 127
    # exactly round_half_even(acc * mult / 2**shift), saturated: the definition, in Fractions
    y = S.postprocess(acc, mult, shift, output="int4")
    for (i, j), got in np.ndenumerate(y):
        exact = Fraction(int(acc[i, j]) * int(mult[j]), 2 ** int(shift[j]))
        assert got == min(max(round(exact), -8), 7)


# -- argument checks -------------------------------------------------------------------------------

def _call(**over):
    args = {"a": np.zeros((2, 32), int), "w": np.zeros((32, 3), int), "s_qa": np.ones((2, 2), int),
            "s_qw": np.ones((2, 3), int), "mode": "int4", "vector_size": 16, "scale_bits": 4}
    args.update(over)
    return S.vsq_gemm(args.pop("a"), args.pop("w"), args.pop("s_qa"), args.pop("s_qw"), **args)


@pytest.mark.parametrize("over, message", [
    ({"mode": "int2"}, "mode = 'int2': must be one of int8, int4, w4a8"),
    ({"vector_size": 0}, "vector_size = 0: must be an integer from 1 to 65536"),
    ({"scale_bits": 9}, "scale_bits = 9: must be an integer from 3 to 8"),
    ({"a": np.full((2, 32), 8)}, "a has values outside [-8, 7]: must be 4-bit codes"),
    ({"w": np.full((32, 3), 0.5)}, "w has non-integer values: must hold integer codes"),
    ({"a": np.zeros(32, int)}, "a has shape (32,): must be a matrix (M x K)"),
    ({"w": np.zeros((31, 3), int)}, "shapes (2, 32) and (31, 3): need A (M x K) and W (K x N)"),
    ({"s_qa": np.ones((2, 3), int)}, "s_qa has shape (2, 3): must be (2, 2)"),
    ({"s_qw": np.full((2, 3), 16)}, "s_qw has values outside [0, 15]: must be 4-bit unsigned "
                                    "integers"),
])
def test_vsq_gemm_messages(over, message):
    with pytest.raises(ValueError) as exc:
        _call(**over)
    assert str(exc.value) == message


def test_postprocess_messages():
    with pytest.raises(ValueError, match="^output = 'int16': must be one of int8, int4, fp32$"):
        S.postprocess(np.zeros(2, int), 1, 0, output="int16")
    with pytest.raises(ValueError, match=r"^shift has values outside \[0, 63\]$"):
        S.postprocess(np.zeros(2, int), 1, 64)
    with pytest.raises(ValueError, match="^acc has dtype float64: must hold integers "
                                         r"\(the accumulator\)$"):
        S.postprocess(np.zeros(2), 1, 0)
    with pytest.raises(ValueError, match="^mult_bits = 40: must be an integer from 2 to 32$"):
        S.fixed_point_multiplier(1.0, mult_bits=40)
