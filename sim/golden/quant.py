"""Symmetric uniform quantization, per-vector scaling (VS-Quant) and calibration, numpy only.

What this module computes, for a tensor ``x`` and ``bits`` = N:

* **Codes** ``q = clip(round(x / s), -qmax, qmax)`` with ``qmax = 2**(N-1) - 1`` (the symmetric,
  "narrow" range: INT4 codes are -7..7, INT8 codes -127..127) and ``round`` = round half to even
  (``np.rint``).
  The scale ``s = clip_value / qmax``, where the clip value of each group comes from a calibration.
  A group whose scale is 0 (all its elements are 0) gets codes 0.
* **Granularity**, i.e. which elements share one scale:

  ``tensor``
      one scale for the whole tensor;
  ``channel``
      one scale per index along ``channel_axis``;
  ``vector``
      one real-valued scale per V consecutive elements along ``vector_axis`` (the reduction
      dimension K of a GEMM), for every index of the other axes;
  ``two_level``
      VS-Quant two-level scaling (Dai et al., "VS-Quant: Per-vector Scaled Quantization for Accurate
      Low-Precision Neural Network Inference", MLSys 2021, section 3.2; Keller et al., VLSI 2022):
      the per-vector scale ``s(v) = clip(v) / qmax`` is itself quantized against a second-level
      scale ``gamma = max_v s(v) / (2**M - 1)`` (one per index of ``channel_axis``, or one for the
      whole tensor when ``channel_axis`` is None) to an M-bit unsigned integer
      ``s_q(v) = clip(round(s(v) / gamma), 1, 2**M - 1)`` (round half to even). Elements are then
      quantized with the effective scale ``s_q(v) * gamma``; since ``s_q(v) * gamma`` may be below
      ``s(v)``, the code clip to ``[-qmax, qmax]`` matters. ``x ~ gamma * s_q(v) * q``.

* **Calibration**, i.e. how the clip value of a group is chosen: ``max`` (largest magnitude),
  ``percentile`` (that percentile of the magnitudes, ``np.percentile`` with linear interpolation) or
  ``octav`` (:func:`octav_clip`, the MSE-optimal clip of Sakr et al., ICML 2022).

:func:`fake_quantize` (quantize, then dequantize) works for every granularity and is meant for
users' own tensors; :func:`quantize_tensor` returns the integer codes and scales the hardware
consumes (:mod:`sim.golden.vsq`).
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GRANULARITIES", "CALIBRATIONS", "qmax", "round_half_even", "quantize", "dequantize",
    "clip_values", "octav_clip", "octav_noise_coefficient", "integer_scales", "QuantizedTensor",
    "quantize_tensor", "fake_quantize", "sqnr_db",
]

GRANULARITIES = ("tensor", "channel", "vector", "two_level")
CALIBRATIONS = ("max", "percentile", "octav")

MIN_BITS, MAX_BITS = 2, 16
MIN_SCALE_BITS, MAX_SCALE_BITS = 3, 8


# -- argument checks: one clear line each, pinned by tests/test_quant.py ---------------------------

def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _show(value):
    """``value`` as a plain Python scalar for messages (``4``, not ``np.int64(4)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_int(name, value, lo, hi):
    if not _is_int(value) or not lo <= value <= hi:
        raise ValueError(f"{name} = {_show(value)!r}: must be an integer from {lo} to {hi}")
    return int(value)


def _check_bits(bits):
    return _check_int("bits", bits, MIN_BITS, MAX_BITS)


def _check_scale_bits(scale_bits):
    return _check_int("scale_bits", scale_bits, MIN_SCALE_BITS, MAX_SCALE_BITS)


def _check_x(x):
    x = np.asarray(x)
    if x.dtype.kind not in "iuf" or x.dtype == np.bool_:
        raise ValueError(f"x has dtype {x.dtype}: must be a real integer or floating array")
    x = x.astype(np.float64)
    if x.size == 0:
        raise ValueError(f"x has shape {x.shape}: must have at least one element")
    if not np.all(np.isfinite(x)):
        raise ValueError("x has NaN or infinite values: only finite values can be quantized")
    return x


def _check_axis(name, axis, ndim):
    if not _is_int(axis) or not -ndim <= axis < ndim:
        raise ValueError(f"{name} = {_show(axis)!r}: out of range for a {ndim}-d tensor")
    return int(axis) % ndim


def _check_calibration(calibration, percentile, iterations):
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration = {_show(calibration)!r}: must be one of "
                         + ", ".join(CALIBRATIONS))
    if (isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number))
            or not 0 < percentile <= 100):
        raise ValueError(f"percentile = {_show(percentile)!r}: must be a number in (0, 100]")
    _check_int("iterations", iterations, 1, 100)


# -- elementary operations -------------------------------------------------------------------------

def qmax(bits):
    """Largest code of the symmetric ``bits``-bit range ``[-qmax, qmax]``: ``2**(bits-1) - 1``."""
    return 2 ** (_check_bits(bits) - 1) - 1


def round_half_even(x):
    """Round to the nearest integer, ties to even (IEEE 754 default; ``np.rint``)."""
    return np.rint(x)


def _safe_div(x, s):
    """``x / s``, with 0 where ``s`` is 0 (an all-zero group)."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, np.asarray(x, dtype=np.float64) / np.where(s > 0, s, 1.0), 0.0)


def quantize(x, scale, bits):
    """Integer codes (int64) ``clip(round_half_even(x / scale), -qmax, qmax)``, ``scale`` broadcast.

    Elements whose scale is 0 get code 0. Negative scales are refused.
    """
    q = qmax(bits)
    scale = np.asarray(scale, dtype=np.float64)
    if np.any(scale < 0) or not np.all(np.isfinite(scale)):
        raise ValueError("scale has negative, NaN or infinite values: scales must be finite "
                         "and >= 0")
    return np.clip(round_half_even(_safe_div(x, scale)), -q, q).astype(np.int64)


def dequantize(codes, scale):
    """Real values ``codes * scale`` (float64)."""
    return np.asarray(codes, dtype=np.float64) * np.asarray(scale, dtype=np.float64)


def sqnr_db(x, x_hat):
    """Signal-to-quantization-noise ratio in dB: ``10 log10(sum x**2 / sum (x - x_hat)**2)``.

    Summed over the whole tensor; ``inf`` when the error is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    err = np.sum((x - np.asarray(x_hat, dtype=np.float64)) ** 2)
    sig = np.sum(x ** 2)
    if err == 0:
        return float("inf")
    return float(10 * np.log10(sig / err))


# -- calibration -----------------------------------------------------------------------------------

def octav_noise_coefficient(bits):
    """Quantization-noise coefficient of the OCTAV recursion for the symmetric ``bits``-bit grid.

    Sakr et al. (ICML 2022) write the noise of clipping at ``s`` as
    ``(4**-B / 3) s**2``, i.e. ``Delta**2 / 12`` for a step ``Delta = 2 s / 2**B``. The grid used
    here has step ``Delta = s / qmax = 2 s / (2**B - 2)``, so the same ``Delta**2 / 12`` gives
    ``1 / (12 qmax**2)``.
    With it, OCTAV's clip gives an MSE within 0.2 % of the brute-force optimum for B = 3 to 8 on
    Gaussian and Laplace data (1.4 % at B = 2; 1.2 % for uniform data at B = 3); with the paper's
    ``4**-B / 3`` the excess on our grid is 38 % at B = 2 and 0.8 % at B = 4 on Gaussian data (that
    coefficient suits the paper's 2**B-level grid).
    """
    return 1.0 / (12.0 * qmax(bits) ** 2)


def _group_octav(a, bits, iterations):
    """OCTAV clip of each row of ``a`` (magnitudes, shape G x n); shape (G,)."""
    c = octav_noise_coefficient(bits)
    n = a.shape[1]
    # Start from the mean magnitude: started from the maximum, 10 steps are not enough at B = 8
    # (measured: 9 % above the grid-search MSE on Gaussian data, 0.05 % from the mean).
    s = a.mean(axis=1)
    for _ in range(iterations):
        out = a > s[:, None]
        n_out = out.sum(axis=1)
        num = np.where(out, a, 0.0).sum(axis=1)
        new = num / (c * (n - n_out) + n_out)
        if np.array_equal(new, s):
            break
        s = new
    return s


def octav_clip(x, bits, *, iterations=10):
    """OCTAV: the clip value of ``x`` that minimizes the quantization MSE (Sakr et al., ICML 2022).

    Newton-Raphson recursion on the clipping scalar ``s`` (as the paper states it)::

        s_{n+1} = E[|X| 1{|X| > s_n}] / (c E[1{|X| <= s_n}] + E[1{|X| > s_n}])

    with ``c`` from :func:`octav_noise_coefficient`, started from ``E|X|``, at most ``iterations``
    steps (it stops early at a fixed point). Returns a float; 0 for an all-zero ``x``.
    """
    _check_int("iterations", iterations, 1, 100)
    x = _check_x(x)
    return float(_group_octav(np.abs(x).reshape(1, -1), _check_bits(bits), iterations)[0])


def _group_clip(a, calibration, bits, percentile, iterations):
    """Clip value of each row of the magnitudes ``a`` (G x n) by ``calibration``; shape (G,)."""
    if calibration == "max":
        return a.max(axis=1)
    if calibration == "percentile":
        return np.percentile(a, percentile, axis=1)
    return _group_octav(a, bits, iterations)


def clip_values(x, bits, *, calibration="max", axis=None, percentile=99.99, iterations=10):
    """Clip value per group of ``x``: reduced over ``axis`` (None: all), kept with size 1.

    ``calibration`` is ``max``, ``percentile`` (of the magnitudes) or ``octav``
    (:func:`octav_clip`).
    """
    x = _check_x(x)
    bits = _check_bits(bits)
    _check_calibration(calibration, percentile, iterations)
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        _check_axis("axis", ax, x.ndim) for ax in np.atleast_1d(axis).tolist())
    keep = [ax for ax in range(x.ndim) if ax not in axes]
    moved = np.transpose(np.abs(x), keep + list(axes))
    kept_shape = moved.shape[:len(keep)]
    clip = _group_clip(moved.reshape(int(np.prod(kept_shape)), -1), calibration, bits, percentile,
                       iterations)
    out_shape = [1 if ax in axes else x.shape[ax] for ax in range(x.ndim)]
    return clip.reshape(kept_shape).reshape(out_shape)


def integer_scales(s, gamma, scale_bits):
    """VS-Quant second level: ``clip(round_half_even(s / gamma), 1, 2**M - 1)`` as int64.

    ``s`` are per-vector real scales, ``gamma`` (broadcasting against ``s``) the second-level
    scales; where ``gamma`` is 0 (an all-zero channel) the integer scale is 1.
    """
    m = _check_scale_bits(scale_bits)
    return np.clip(round_half_even(_safe_div(s, gamma)), 1, 2 ** m - 1).astype(np.int64)


# -- quantizing a tensor at a granularity ----------------------------------------------------------

@dataclass(frozen=True)
class QuantizedTensor:
    """A quantized tensor: ``codes * scale`` approximates the input.

    Attributes
    ----------
    codes : int64 array, the shape of the input, in ``[-qmax(bits), qmax(bits)]``.
    scale : float64 array broadcasting against ``codes``: the effective scale of every element.
    bits, granularity, channel_axis, vector_axis, vector_size, scale_bits : the settings used.
    vector_scale : for ``vector`` the real per-vector scales, for ``two_level`` the integer scales
        ``s_q`` (int64, in ``[1, 2**scale_bits - 1]``); shape of the input with ``vector_axis``
        shortened to ``K / vector_size``. None for ``tensor`` and ``channel``.
    gamma : for ``two_level``, the second-level scales (float64, size 1 along every axis but
        ``channel_axis``); None otherwise.
    """

    codes: np.ndarray
    scale: np.ndarray
    bits: int
    granularity: str
    channel_axis: int | None = None
    vector_axis: int | None = None
    vector_size: int | None = None
    scale_bits: int | None = None
    vector_scale: np.ndarray | None = None
    gamma: np.ndarray | None = None

    def dequantize(self):
        """The real values ``codes * scale`` (float64)."""
        return dequantize(self.codes, self.scale)


def _check_granularity_args(x, granularity, channel_axis, vector_axis, vector_size, scale_bits):
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity = {_show(granularity)!r}: must be one of "
                         + ", ".join(GRANULARITIES))
    uses_channel = granularity in ("channel", "two_level")
    uses_vector = granularity in ("vector", "two_level")
    if channel_axis is not None and not uses_channel:
        raise ValueError(f"channel_axis = {_show(channel_axis)!r}: only granularities channel and "
                         f"two_level use a channel axis, not {granularity}")
    if granularity == "channel" and channel_axis is None:
        raise ValueError("channel_axis = None: granularity channel needs a channel axis")
    if vector_size is not None and not uses_vector:
        raise ValueError(f"vector_size = {_show(vector_size)!r}: only granularities vector and "
                         f"two_level use a vector size, not {granularity}")
    if scale_bits is not None and granularity != "two_level":
        raise ValueError(f"scale_bits = {_show(scale_bits)!r}: only granularity two_level uses "
                         f"integer scales, not {granularity}")
    if channel_axis is not None:
        channel_axis = _check_axis("channel_axis", channel_axis, x.ndim)
    if not uses_vector:
        return channel_axis, None, None, None
    vector_axis = _check_axis("vector_axis", vector_axis, x.ndim)
    if vector_size is None:
        raise ValueError(f"vector_size = None: granularity {granularity} needs a vector size")
    if not _is_int(vector_size) or vector_size < 1:
        raise ValueError(f"vector_size = {_show(vector_size)!r}: must be a positive integer")
    if x.shape[vector_axis] % vector_size:
        raise ValueError(f"vector_size = {vector_size}: must divide the length "
                         f"{x.shape[vector_axis]} of vector_axis = {vector_axis}")
    if granularity == "two_level":
        if scale_bits is None:
            raise ValueError("scale_bits = None: granularity two_level needs the bits M of the "
                             "integer per-vector scales")
        scale_bits = _check_scale_bits(scale_bits)
        if channel_axis == vector_axis:
            raise ValueError(f"channel_axis = {channel_axis}: must differ from vector_axis = "
                             f"{vector_axis}")
    return channel_axis, vector_axis, int(vector_size), scale_bits


def _vector_clips(x, v, vector_axis, calibration, bits, percentile, iterations):
    """Clip value per vector: the shape of ``x`` with ``vector_axis`` shortened to K / v."""
    moved = np.moveaxis(np.abs(x), vector_axis, -1)
    lead = moved.shape[:-1]
    nvec = moved.shape[-1] // v
    clip = _group_clip(moved.reshape(-1, v), calibration, bits, percentile, iterations)
    return np.moveaxis(clip.reshape(*lead, nvec), -1, vector_axis)


def quantize_tensor(x, bits, granularity="tensor", *, channel_axis=None, vector_axis=-1,
                    vector_size=None, scale_bits=None, calibration="max", percentile=99.99,
                    iterations=10):
    """Quantize ``x`` to ``bits``-bit symmetric codes at ``granularity``: a QuantizedTensor.

    Parameters
    ----------
    x : real array of any shape (at least 1 element, finite).
    bits : int, 2 to 16: the code width N.
    granularity : ``tensor``, ``channel``, ``vector`` or ``two_level`` (see the module docstring).
    channel_axis : int, the axis of channels (needed by ``channel``; optional for ``two_level``,
        where None means one second-level scale for the whole tensor). For a GEMM weight W (K x N)
        it is 1, for activations A (M x K) it is 0.
    vector_axis : int, the axis cut into vectors (``vector``, ``two_level``); default the last.
    vector_size : int V, must divide the length of ``vector_axis``.
    scale_bits : int M, 3 to 8: bits of the integer per-vector scales of ``two_level``.
    calibration : ``max``, ``percentile`` or ``octav``: how the clip value of every group (tensor,
        channel or vector) is chosen. For ``two_level`` it sets the per-vector ``s(v)``.
    percentile : float in (0, 100], for ``calibration="percentile"``.
    iterations : int, 1 to 100: the most OCTAV steps.

    Raises
    ------
    ValueError
        naming the argument, its value and what is allowed.
    """
    x = _check_x(x)
    bits = _check_bits(bits)
    _check_calibration(calibration, percentile, iterations)
    channel_axis, vector_axis, v, m = _check_granularity_args(
        x, granularity, channel_axis, vector_axis, vector_size, scale_bits)
    q = qmax(bits)
    common = {"bits": bits, "granularity": granularity, "channel_axis": channel_axis,
              "vector_axis": vector_axis, "vector_size": v, "scale_bits": m}
    if granularity == "tensor":
        scale = clip_values(x, bits, calibration=calibration, percentile=percentile,
                            iterations=iterations) / q
        return QuantizedTensor(quantize(x, scale, bits), scale, **common)
    if granularity == "channel":
        others = tuple(ax for ax in range(x.ndim) if ax != channel_axis)
        if others:
            scale = clip_values(x, bits, calibration=calibration, axis=others,
                                percentile=percentile, iterations=iterations) / q
        else:  # a 1-d tensor of channels: every element is its own channel
            scale = clip_values(x[:, None], bits, calibration=calibration, axis=1,
                                percentile=percentile, iterations=iterations)[:, 0] / q
        return QuantizedTensor(quantize(x, scale, bits), scale, **common)
    s = _vector_clips(x, v, vector_axis, calibration, bits, percentile, iterations) / q
    if granularity == "vector":
        scale = np.repeat(s, v, axis=vector_axis)
        return QuantizedTensor(quantize(x, scale, bits), scale, vector_scale=s, **common)
    if channel_axis is None:
        gamma = np.full((1,) * x.ndim, s.max()) / (2 ** m - 1)
    else:
        others = tuple(ax for ax in range(x.ndim) if ax != channel_axis)
        gamma = s.max(axis=others, keepdims=True) / (2 ** m - 1)
    s_q = integer_scales(s, gamma, m)
    scale = np.repeat(s_q, v, axis=vector_axis) * gamma
    return QuantizedTensor(quantize(x, scale, bits), scale, vector_scale=s_q, gamma=gamma, **common)


def fake_quantize(x, bits, granularity="tensor", **kwargs):
    """Quantize then dequantize ``x`` (float64, shape of ``x``); arguments as quantize_tensor.

    >>> fake_quantize([0.1, -0.5, 1.0], 4).tolist()  # scale 1/7: codes 1, -4 (3.5 to even), 7
    [0.14285714285714285, -0.5714285714285714, 1.0]
    """
    return quantize_tensor(x, bits, granularity, **kwargs).dequantize()
