"""The golden quantization library: granularities, two-level scales, calibration, messages."""

import numpy as np
import pytest

from sim.golden import quant as Q


def _rng(seed=0):
    return np.random.default_rng(seed)


# -- elementary operations -------------------------------------------------------------------------

def test_qmax_is_symmetric_range():
    assert [Q.qmax(b) for b in (2, 3, 4, 8, 16)] == [1, 3, 7, 127, 32767]


def test_round_half_even_ties():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 2.51])
    assert Q.round_half_even(x).tolist() == [0, 2, 2, 0, -2, -2, 0, 3]


def test_quantize_rounds_half_to_even_and_clips():
    # scale 1: ties go to even; beyond qmax = 7 saturate to +-7 (symmetric range, never -8)
    codes = Q.quantize([0.5, 1.5, 2.5, -3.5, 7.4, 9.0, -100.0], 1.0, 4)
    assert codes.tolist() == [0, 2, 2, -4, 7, 7, -7]
    assert codes.dtype == np.int64


def test_quantize_zero_scale_gives_zero_codes():
    assert Q.quantize([0.0, 0.0], np.array([0.0, 0.0]), 8).tolist() == [0, 0]


def test_sqnr_db():
    x = np.array([3.0, 4.0])
    assert Q.sqnr_db(x, x) == float("inf")
    assert Q.sqnr_db(x, x - np.array([0.3, 0.4])) == pytest.approx(20.0)


# -- granularities against independent loop implementations ----------------------------------------

def _loop_fake(x, clip, bits):
    q = 2 ** (bits - 1) - 1
    s = clip / q
    return np.clip(np.rint(x / s), -q, q) * s if s > 0 else np.zeros_like(x)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_per_tensor_matches_loop(bits):
    x = _rng(1).standard_normal((6, 10))
    assert np.array_equal(Q.fake_quantize(x, bits), _loop_fake(x, np.abs(x).max(), bits))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_matches_loop(axis):
    x = _rng(2).standard_normal((6, 10)) * np.arange(1, 11)
    got = Q.fake_quantize(x, 4, "channel", channel_axis=axis)
    xm = np.moveaxis(x, axis, 0)
    want = np.stack([_loop_fake(c, np.abs(c).max(), 4) for c in xm])
    assert np.array_equal(got, np.moveaxis(want, 0, axis))


def test_per_channel_of_a_vector_scales_each_element():
    x = np.array([0.3, -2.0, 0.0])
    assert np.array_equal(Q.fake_quantize(x, 4, "channel", channel_axis=0), x)


@pytest.mark.parametrize("v", [1, 4, 16])
def test_per_vector_matches_loop(v):
    x = _rng(3).laplace(size=(3, 5, 32))
    got = Q.quantize_tensor(x, 4, "vector", vector_axis=2, vector_size=v)
    want = np.empty_like(x)
    for i in range(3):
        for j in range(5):
            for k0 in range(0, 32, v):
                seg = x[i, j, k0:k0 + v]
                want[i, j, k0:k0 + v] = _loop_fake(seg, np.abs(seg).max(), 4)
    assert np.array_equal(got.dequantize(), want)
    assert got.vector_scale.shape == (3, 5, 32 // v)


def test_per_vector_along_first_axis_is_per_vector_of_transpose():
    w = _rng(4).standard_normal((64, 6))  # a weight K x N: vectors along K
    a = Q.fake_quantize(w, 4, "vector", vector_axis=0, vector_size=16)
    b = Q.fake_quantize(w.T, 4, "vector", vector_axis=1, vector_size=16).T
    assert np.array_equal(a, b)


def test_two_level_integer_scales_round_half_even_and_clip_to_one():
    # vector maxima 14, 1, 3, 5, 0 with N = 4 and M = 3: s_q = rint(7 * c / 14)
    # = rint(7, 0.5, 1.5, 2.5, 0) = 7, 0, 2, 2, 0 -> clipped to at least 1: 7, 1, 2, 2, 1
    maxima = [14.0, 1.0, 3.0, 5.0, 0.0]
    x = np.zeros((1, 20))
    for i, c in enumerate(maxima):
        x[0, 4 * i] = c
        x[0, 4 * i + 1] = -c / 2
    t = Q.quantize_tensor(x, 4, "two_level", vector_axis=1, vector_size=4, scale_bits=3,
                          channel_axis=0)
    assert t.vector_scale.tolist() == [[7, 1, 2, 2, 1]]
    gamma = 14.0 / 7 / 7
    assert t.gamma.tolist() == [[gamma]]
    assert np.array_equal(t.scale, np.repeat([[7, 1, 2, 2, 1]], 4, axis=1) * gamma)
    # the vector with max 5 gets scale 2 * gamma = 4/7 < 5/7: its max saturates at code 7
    assert t.codes[0, 12] == 7 and t.codes[0, 13] == -4  # -2.5 / (4/7) = -4.375


@pytest.mark.parametrize("m", range(3, 9))
def test_two_level_scales_in_range_and_approach_per_vector(m):
    x = _rng(5).laplace(size=(8, 256))
    t = Q.quantize_tensor(x, 4, "two_level", channel_axis=0, vector_size=16, scale_bits=m)
    assert t.vector_scale.dtype == np.int64
    assert t.vector_scale.min() >= 1 and t.vector_scale.max() == 2 ** m - 1
    assert np.abs(t.codes).max() <= 7
    sq_two = Q.sqnr_db(x, t.dequantize())
    sq_vec = Q.sqnr_db(x, Q.fake_quantize(x, 4, "vector", vector_size=16))
    # the loss against real-valued per-vector scales roughly halves per extra scale bit (measured:
    # 0.68 dB at M = 3, 0.21 at M = 4, 0.03 at M = 6); rounding scales down can even gain a little
    assert -0.1 < sq_vec - sq_two < 1.5 * 2.0 ** (3 - m) + 0.05


def test_two_level_per_tensor_gamma():
    x = _rng(6).standard_normal((4, 32)) * np.array([[1], [2], [4], [8]])
    t = Q.quantize_tensor(x, 4, "two_level", vector_size=16, scale_bits=4)
    assert t.gamma.shape == (1, 1)
    assert t.gamma[0, 0] == pytest.approx(np.abs(x).max() / 7 / 15)


def test_two_level_weight_layout():
    w = _rng(7).standard_normal((64, 5))
    t = Q.quantize_tensor(w, 4, "two_level", vector_axis=0, channel_axis=1, vector_size=16,
                          scale_bits=6)
    assert t.vector_scale.shape == (4, 5) and t.gamma.shape == (1, 5)
    assert np.array_equal(t.scale, np.repeat(t.vector_scale, 16, axis=0) * t.gamma)
    assert np.array_equal(t.vector_scale.max(axis=0), [63] * 5)


def test_fake_quantize_three_d_tensor_keeps_shape():
    x = _rng(8).standard_normal((2, 3, 32))
    for g, kw in [("tensor", {}), ("channel", {"channel_axis": 1}),
                  ("vector", {"vector_size": 8}),
                  ("two_level", {"vector_size": 8, "scale_bits": 5, "channel_axis": 1})]:
        y = Q.fake_quantize(x, 6, g, **kw)
        assert y.shape == x.shape and y.dtype == np.float64
        assert Q.sqnr_db(x, y) > 25


@pytest.mark.parametrize("g, kw", [("tensor", {}), ("channel", {"channel_axis": 0}),
                                    ("vector", {"vector_size": 16})])
def test_max_calibration_error_at_most_half_a_step(g, kw):
    x = _rng(9).standard_normal((4, 64))
    t = Q.quantize_tensor(x, 4, g, **kw)
    assert np.all(np.abs(x - t.dequantize()) <= t.scale / 2 * (1 + 1e-12))
    # the largest magnitude of each group is represented exactly (code +-qmax)
    assert np.abs(t.codes).max() == 7


def test_fake_quantize_is_idempotent_with_max_calibration():
    x = _rng(10).standard_normal((4, 64))
    for g, kw in [("tensor", {}), ("channel", {"channel_axis": 0}),
                  ("vector", {"vector_size": 16})]:
        y = Q.fake_quantize(x, 4, g, **kw)
        assert np.allclose(Q.fake_quantize(y, 4, g, **kw), y, rtol=0, atol=1e-12)


def test_all_zero_tensor():
    for g, kw in [("tensor", {}), ("channel", {"channel_axis": 0}), ("vector", {"vector_size": 4}),
                  ("two_level", {"vector_size": 4, "scale_bits": 4, "channel_axis": 0})]:
        for cal in Q.CALIBRATIONS:
            t = Q.quantize_tensor(np.zeros((2, 8)), 4, g, calibration=cal, **kw)
            assert not t.codes.any() and not t.dequantize().any()


def test_integer_input_is_accepted():
    assert Q.fake_quantize(np.array([7, -14, 3]), 4).tolist() == [8.0, -14.0, 4.0]


# -- calibration -----------------------------------------------------------------------------------

def test_percentile_calibration():
    x = _rng(11).standard_normal((3, 1000))
    assert np.array_equal(Q.clip_values(x, 4, calibration="percentile", percentile=100, axis=1),
                          np.abs(x).max(axis=1, keepdims=True))
    c = Q.clip_values(x, 4, calibration="percentile", percentile=99, axis=1)
    assert c.shape == (3, 1)
    assert np.allclose(c[:, 0], [np.percentile(np.abs(r), 99) for r in x])
    t = Q.quantize_tensor(x, 4, "channel", channel_axis=0, calibration="percentile", percentile=99)
    assert np.allclose(t.scale[:, 0], c[:, 0] / 7)


def _mse(x, clip, bits):
    return np.mean((x - _loop_fake(x, clip, bits)) ** 2)


# uniform data at 3 bits is left out: there OCTAV's noise model misses the optimum by 1.2 %
@pytest.mark.parametrize("dist, bits", [(d, b) for d in ("gaussian", "laplace", "uniform")
                                        for b in (3, 4, 5, 6, 8) if (d, b) != ("uniform", 3)])
def test_octav_within_one_percent_of_grid_search(dist, bits):
    rng = _rng(12)
    x = {"gaussian": rng.standard_normal(20000), "laplace": rng.laplace(size=20000),
         "uniform": rng.uniform(-1, 1, 20000)}[dist]
    clip = Q.octav_clip(x, bits, iterations=10)
    top = np.abs(x).max()
    grid = np.linspace(top / 500, top, 1500)
    best = min(_mse(x, c, bits) for c in grid)
    assert _mse(x, clip, bits) <= 1.01 * best
    # and it is a real improvement over max calibration where clipping pays
    if dist != "uniform":
        assert _mse(x, clip, bits) < _mse(x, top, bits)


def test_octav_fixed_point_of_the_recursion():
    x = _rng(13).laplace(size=5000)
    s = Q.octav_clip(x, 4, iterations=100)
    a = np.abs(x)
    c = Q.octav_noise_coefficient(4)
    nxt = a[a > s].sum() / (c * (a <= s).sum() + (a > s).sum())
    assert nxt == pytest.approx(s, rel=1e-9)
    assert c == 1 / (12 * 49)


def test_octav_per_group_equals_per_tensor_on_each_group():
    x = _rng(14).standard_normal((4, 300)) * np.array([[1], [3], [0.1], [10]])
    per = Q.clip_values(x, 4, calibration="octav", axis=1)[:, 0]
    assert np.allclose(per, [Q.octav_clip(r, 4) for r in x], rtol=1e-12)
    t = Q.quantize_tensor(x, 4, "channel", channel_axis=0, calibration="octav")
    assert np.allclose(t.scale[:, 0], per / 7)


def test_octav_improves_sqnr_for_every_granularity():
    x = _rng(15).laplace(size=(16, 1024))
    for g, kw in [("tensor", {}), ("channel", {"channel_axis": 0})]:
        mx = Q.sqnr_db(x, Q.fake_quantize(x, 4, g, **kw))
        oc = Q.sqnr_db(x, Q.fake_quantize(x, 4, g, calibration="octav", **kw))
        assert oc > mx + 1.0


# -- the SQNR figures of an independent model -------------------------------------------------------

def test_reference_sqnr_figures():
    """Gaussian / Laplace, 64 x 4096, 4-bit, max calibration, mean of seeds 0-2, within 0.3 dB."""
    want = {("gaussian", "channel"): 16.0, ("laplace", "channel"): 11.9,
            ("gaussian", "vector"): 21.4, ("laplace", "vector"): 19.9,
            ("gaussian", "two_level"): 21.2, ("laplace", "two_level"): 19.6}
    got = {}
    for dist in ("gaussian", "laplace"):
        for seed in range(3):
            rng = np.random.default_rng(seed)
            x = rng.standard_normal((64, 4096)) if dist == "gaussian" else rng.laplace(
                size=(64, 4096))
            for g, kw in [("channel", {"channel_axis": 0}), ("vector", {"vector_size": 16}),
                          ("two_level", {"vector_size": 16, "scale_bits": 4, "channel_axis": 0})]:
                got.setdefault((dist, g), []).append(Q.sqnr_db(x, Q.fake_quantize(x, 4, g, **kw)))
    for key, value in want.items():
        assert np.mean(got[key]) == pytest.approx(value, abs=0.3), key


# -- argument checks -------------------------------------------------------------------------------

X = np.ones((4, 32))


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 1}, "bits = 1: must be an integer from 2 to 16"),
    ({"bits": 4.0}, "bits = 4.0: must be an integer from 2 to 16"),
    ({"granularity": "row"},
     "granularity = 'row': must be one of tensor, channel, vector, two_level"),
    ({"calibration": "mse"}, "calibration = 'mse': must be one of max, percentile, octav"),
    ({"calibration": "percentile", "percentile": 0},
     "percentile = 0: must be a number in (0, 100]"),
    ({"iterations": 0}, "iterations = 0: must be an integer from 1 to 100"),
    ({"granularity": "channel"}, "channel_axis = None: granularity channel needs a channel axis"),
    ({"granularity": "channel", "channel_axis": 2},
     "channel_axis = 2: out of range for a 2-d tensor"),
    ({"channel_axis": 0},
     "channel_axis = 0: only granularities channel and two_level use a channel axis, not tensor"),
    ({"vector_size": 16},
     "vector_size = 16: only granularities vector and two_level use a vector size, not tensor"),
    ({"scale_bits": 4, "granularity": "vector", "vector_size": 16},
     "scale_bits = 4: only granularity two_level uses integer scales, not vector"),
    ({"granularity": "vector"}, "vector_size = None: granularity vector needs a vector size"),
    ({"granularity": "vector", "vector_size": 0}, "vector_size = 0: must be a positive integer"),
    ({"granularity": "vector", "vector_size": 5},
     "vector_size = 5: must divide the length 32 of vector_axis = 1"),
    ({"granularity": "vector", "vector_size": 4, "vector_axis": -3},
     "vector_axis = -3: out of range for a 2-d tensor"),
    ({"granularity": "two_level", "vector_size": 16},
     "scale_bits = None: granularity two_level needs the bits M of the integer per-vector scales"),
    ({"granularity": "two_level", "vector_size": 16, "scale_bits": 9},
     "scale_bits = 9: must be an integer from 3 to 8"),
    ({"granularity": "two_level", "vector_size": 16, "scale_bits": 2},
     "scale_bits = 2: must be an integer from 3 to 8"),
    ({"granularity": "two_level", "vector_size": 16, "scale_bits": 4, "channel_axis": -1},
     "channel_axis = 1: must differ from vector_axis = 1"),
])
def test_argument_messages(kwargs, message):
    kwargs = {"bits": 4, **kwargs}
    bits = kwargs.pop("bits")
    with pytest.raises(ValueError) as exc:
        Q.quantize_tensor(X, bits, **kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("x, message", [
    (np.array([1.0, np.nan]), "x has NaN or infinite values: only finite values can be quantized"),
    (np.array([1.0, np.inf]), "x has NaN or infinite values: only finite values can be quantized"),
    (np.zeros((0, 3)), "x has shape (0, 3): must have at least one element"),
    (np.array(["a"]), "x has dtype <U1: must be a real integer or floating array"),
    (np.array([True]), "x has dtype bool: must be a real integer or floating array"),
])
def test_bad_tensors(x, message):
    with pytest.raises(ValueError) as exc:
        Q.fake_quantize(x, 4)
    assert str(exc.value) == message


def test_negative_scale_is_refused():
    with pytest.raises(ValueError, match="^scale has negative, NaN or infinite values: scales must "
                                         "be finite and >= 0$"):
        Q.quantize([1.0], -1.0, 4)


def test_random_shapes_and_axes_keep_the_invariants(seed):
    """Random tensors, axes, V, N, M and calibrations: the structural promises hold."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        ndim = int(rng.integers(1, 4))
        shape = [int(rng.integers(1, 5)) for _ in range(ndim)]
        vaxis = int(rng.integers(0, ndim))
        v = int(rng.choice([1, 2, 4, 8]))
        shape[vaxis] = v * int(rng.integers(1, 4))
        x = rng.standard_normal(shape) * np.exp(rng.uniform(-5, 5))
        bits, m = int(rng.integers(2, 9)), int(rng.integers(3, 9))
        cal = str(rng.choice(Q.CALIBRATIONS))
        caxis = None
        if ndim > 1 and rng.random() < 0.7:
            caxis = int(rng.choice([ax for ax in range(ndim) if ax != vaxis]))
        t = Q.quantize_tensor(x, bits, "two_level", vector_axis=vaxis, channel_axis=caxis,
                              vector_size=v, scale_bits=m, calibration=cal)
        where = f"seed {seed}: shape {shape}, V {v}, axes {vaxis}/{caxis}, N {bits}, M {m}, {cal}"
        assert t.codes.shape == x.shape and np.abs(t.codes).max() <= Q.qmax(bits), where
        assert 1 <= t.vector_scale.min() and t.vector_scale.max() <= 2 ** m - 1, where
        expanded = np.repeat(t.vector_scale, v, axis=vaxis) * t.gamma
        assert np.array_equal(np.broadcast_to(t.scale, x.shape),
                              np.broadcast_to(expanded, x.shape)), where
        if cal == "max":
            assert t.vector_scale.max() == 2 ** m - 1, where  # the largest vector of each channel
        # dequantized values stay within half a step of x wherever x is not clipped
        step = np.broadcast_to(t.scale, x.shape)
        inside = np.abs(x) <= Q.qmax(bits) * step
        assert np.all(np.abs(x - t.dequantize())[inside] <= step[inside] / 2 * (1 + 1e-9)), where
