"""Bit-exact integer model of the VS-Quant GEMM (per-vector scaled GEMM), numpy only.

The computation follows VS-Quant (Dai et al., MLSys 2021, section 3.2 and figure 3; Keller et al.,
"A 17-95.6 TOPS/W Deep Learning Inference Accelerator with Per-Vector Scaled 4-bit Quantization",
VLSI 2022). For activation codes ``A`` (M x K), weight codes ``W`` (K x N), integer per-vector
activation scales ``s_qa`` (M x K/V) and weight scales ``s_qw`` (K/V x N)::

    p[m, v, n] = sum over i in vector v of A[m, i] * W[i, n]        (V-element integer dot product)
    acc[m, n]  = sum over v of p[m, v, n] * (s_qw[v, n] * s_qa[m, v]) (scaled, then accumulated)
    y[m, n]    = gamma_w[n] * gamma_a[m] * acc[m, n]                  (after accumulation)

:func:`vsq_gemm` gives ``acc`` exactly (int64). :func:`postprocess` applies the per-channel scale as
a fixed-point multiplier ``mult * 2**-shift`` (:func:`fixed_point_multiplier`), rounding to nearest,
ties to even, an optional ReLU, and either requantization to INT8 / INT4 with saturation or an FP32
result rounded once (to nearest even) from the exact product. :func:`reference` is the float
function all this approximates.

Choices, stated once:

* Codes are two's complement of the mode's widths; the whole range is accepted (INT4 -8..7),
  although :mod:`sim.golden.quant` only produces the symmetric range.
* Integer scales are M-bit unsigned, ``0 .. 2**M - 1`` (the quantizer gives ``1 .. 2**M - 1``).
* K need not be a multiple of V: the last vector is shorter, exactly as if A and W were padded with
  zeros to a multiple of V. ``s_qa`` and ``s_qw`` then have ``ceil(K / V)`` vectors.
* The accumulator width follows the VS-Quant rule (:func:`acc_width`); :func:`acc_bound` is the exact
  largest magnitude, which the rule always covers, so no sum can overflow.
* The per-channel scale is a fixed-point number (an unsigned ``mult_bits``-bit integer and a right
  shift), not an FP32 multiply: one integer multiplier and a rounding shifter per column, and the
  model stays exact. A per-row factor ``gamma_a[m]`` (``mult_a``, ``shift_a``) multiplies in
  before the single rounding. For FP32 output the exact product ``acc * mult`` is converted to
  binary32 with one round to nearest even and scaled by ``2**-shift`` (exact, since the result is
  always a normal number: values outside the binary32 normal range are refused with ValueError;
  the GEMM engine's limits keep them inside).
* ReLU acts on the rounded value, before saturation (the same as before rounding, since rounding
  keeps the sign); an FP32 ReLU gives +0.0 for negative values.
"""

import math

import numpy as np

__all__ = [
    "MODES", "code_range", "acc_width", "acc_bound", "partial_sum_width", "vsq_gemm",
    "fixed_point_multiplier", "rescale", "postprocess", "reference", "OUTPUTS",
]

# mode -> (activation bits, weight bits), as the GEMM engine names them (sim/golden/gemm.py)
MODES = {"int8": (8, 8), "int4": (4, 4), "w4a8": (8, 4)}
OUTPUTS = ("int8", "int4", "fp32")
VECTOR_SIZES = (16, 32, 64)


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: must be one of " + ", ".join(MODES))
    return MODES[mode]


def _check_int(name, value, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        shown = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{name} = {shown!r}: must be an integer from {lo} to {hi}")
    return int(value)


def code_range(bits):
    """Two's complement range ``(-2**(bits-1), 2**(bits-1) - 1)``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _clog2(n):
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def acc_width(mode, vector_size, scale_bits, max_k):
    """Accumulator bits by the rule ``Na + Nw + log2 V + 2M + log2(K / V) + 1`` (logs rounded up).

    ``Na + Nw`` is ``2N`` for INT8 and INT4 and ``12`` for W4A8; the final 1 is the sign. The rule
    has 2 bits to spare: a product of codes is at most ``2**(Na+Nw-2)`` in magnitude
    (:func:`acc_bound`).
    """
    na, nw = _check_mode(mode)
    v = _check_int("vector_size", vector_size, 1, 1 << 16)
    m = _check_int("scale_bits", scale_bits, 1, 16)
    k = _check_int("max_k", max_k, 1, 1 << 24)
    return na + nw + _clog2(v) + 2 * m + _clog2(-(-k // v)) + 1


def acc_bound(mode, vector_size, scale_bits, max_k):
    """The largest ``|acc|`` any operands can give: ``K * 2**(Na+Nw-2) * (2**M - 1)**2``.

    Reached by all codes at their most negative value and all scales at ``2**M - 1``.
    """
    na, nw = _check_mode(mode)
    _check_int("vector_size", vector_size, 1, 1 << 16)
    m = _check_int("scale_bits", scale_bits, 1, 16)
    k = _check_int("max_k", max_k, 1, 1 << 24)
    return k * (1 << (na + nw - 2)) * ((1 << m) - 1) ** 2


def partial_sum_width(mode, vector_size):
    """Signed bits of a V-element partial dot product (before the scale product): exact minimum."""
    na, nw = _check_mode(mode)
    v = _check_int("vector_size", vector_size, 1, 1 << 16)
    return (v * (1 << (na + nw - 2))).bit_length() + 1


def _check_codes(name, x, bits, shape_text):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} has shape {x.shape}: must be a matrix ({shape_text})")
    if x.dtype.kind not in "iu" and not (x.dtype.kind == "f" and np.all(x == np.rint(x))):
        raise ValueError(f"{name} has non-integer values: must hold integer codes")
    lo, hi = code_range(bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name} has values outside [{lo}, {hi}]: must be {bits}-bit codes")
    return x.astype(np.int64)


def _check_scales(name, s, shape, scale_bits):
    s = np.asarray(s)
    if s.shape != shape:
        raise ValueError(f"{name} has shape {s.shape}: must be {shape}")
    if s.dtype.kind not in "iu" and not (s.dtype.kind == "f" and np.all(s == np.rint(s))):
        raise ValueError(f"{name} has non-integer values: must hold integer scales")
    top = (1 << scale_bits) - 1
    if s.size and (s.min() < 0 or s.max() > top):
        raise ValueError(f"{name} has values outside [0, {top}]: must be {scale_bits}-bit "
                         "unsigned integers")
    return s.astype(np.int64)


def vsq_gemm(a, w, s_qa, s_qw, *, mode, vector_size, scale_bits):
    """The accumulator of the VSQ GEMM (int64, M x N), exact.

    Parameters
    ----------
    a : integer codes, M x K, of the mode's activation width.
    w : integer codes, K x N, of the mode's weight width.
    s_qa : integer per-vector activation scales, M x ceil(K / V), ``0 .. 2**M - 1``.
    s_qw : integer per-vector weight scales, ceil(K / V) x N.
    mode : ``int8``, ``int4`` or ``w4a8``.
    vector_size : V, 1 to 65536 (the hardware supports 16, 32, 64).
    scale_bits : M, 3 to 8.
    """
    na, nw = _check_mode(mode)
    v = _check_int("vector_size", vector_size, 1, 1 << 16)
    m_bits = _check_int("scale_bits", scale_bits, 3, 8)
    a = _check_codes("a", a, na, "M x K")
    w = _check_codes("w", w, nw, "K x N")
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"shapes {a.shape} and {w.shape}: need A (M x K) and W (K x N)")
    (m, k), n = a.shape, w.shape[1]
    nvec = -(-k // v)
    s_qa = _check_scales("s_qa", s_qa, (m, nvec), m_bits)
    s_qw = _check_scales("s_qw", s_qw, (nvec, n), m_bits)
    if acc_bound(mode, v, m_bits, max(k, 1)).bit_length() + 1 > 63:
        raise ValueError(f"K = {k}: too long for a 64-bit model of this mode, V and M")
    pad = nvec * v - k
    a = np.pad(a, ((0, 0), (0, pad)))
    w = np.pad(w, ((0, pad), (0, 0)))
    # p[m, v, n]: one V-element partial dot product per vector.
    p = np.einsum("mvi,vin->mvn", a.reshape(m, nvec, v), w.reshape(nvec, v, n))
    return np.einsum("mvn,mv,vn->mn", p, s_qa, s_qw)


def fixed_point_multiplier(scale, *, mult_bits=16, max_shift=63):
    """Represent real ``scale`` (>= 0, broadcastable array) as ``mult * 2**-shift``; int64 arrays.

    ``mult`` is an unsigned ``mult_bits``-bit integer, normalized to ``[2**(mult_bits-1),
    2**mult_bits - 1]`` when possible: ``shift = mult_bits - 1 - floor(log2 scale)``, clipped to
    ``[0, max_shift]``, and ``mult = round_half_even(scale * 2**shift)`` (when the rounding gives
    ``2**mult_bits``, the shift goes down by one). A scale of 0 gives ``mult = 0, shift = 0``.

    Raises
    ------
    ValueError
        if a scale is negative, not finite, or too large for ``mult_bits`` bits with a shift of 0.
    """
    mb = _check_int("mult_bits", mult_bits, 2, 32)
    ms = _check_int("max_shift", max_shift, 0, 63)
    scale = np.asarray(scale, dtype=np.float64)
    if np.any(scale < 0) or not np.all(np.isfinite(scale)):
        raise ValueError("scale has negative, NaN or infinite values: must be finite and >= 0")
    mult = np.zeros(scale.shape, dtype=np.int64)
    shift = np.zeros(scale.shape, dtype=np.int64)
    for idx, s in np.ndenumerate(scale):
        if s == 0:
            continue
        sh = min(max(mb - 1 - math.floor(math.log2(s)), 0), ms)
        mu = int(np.rint(math.ldexp(s, sh)))
        if mu >= 1 << mb and sh > 0:
            sh -= 1
            mu = int(np.rint(math.ldexp(s, sh)))
        if mu >= 1 << mb:
            raise ValueError(f"scale = {float(s)!r}: too large for a {mb}-bit multiplier "
                             "(at most 2**mult_bits - 1)")
        mult[idx], shift[idx] = mu, sh
    return mult, shift


def _as_python_ints(x):
    return np.vectorize(int, otypes=[object])(np.asarray(x))


def rescale(acc, mult, shift):
    """``round_half_even(acc * mult / 2**shift)``, exact (object array of Python ints)."""
    acc, mult, shift = np.broadcast_arrays(_as_python_ints(acc), _as_python_ints(mult),
                                           _as_python_ints(shift))
    out = np.empty(acc.shape, dtype=object)
    for idx in np.ndindex(acc.shape):
        p, sh = acc[idx] * mult[idx], shift[idx]
        if sh == 0:
            out[idx] = p
            continue
        q = p >> sh  # floor
        r = p - (q << sh)
        half = 1 << (sh - 1)
        out[idx] = q + 1 if r > half or (r == half and q & 1) else q
    return out


def _to_float32(p, sh):
    """The exact value ``p * 2**-sh`` (Python ints) rounded once to binary32, ties to even."""
    if p == 0:
        return 0.0
    mag = abs(p)
    drop = max(mag.bit_length() - 24, 0)
    m = mag >> drop
    r = mag - (m << drop)
    if drop and (r > 1 << (drop - 1) or (r == 1 << (drop - 1) and m & 1)):
        m += 1
    v = math.ldexp(m, drop - sh)  # exact in binary64; m <= 2**24
    return -v if p < 0 else v


def postprocess(acc, mult, shift, *, relu=False, output="int8", mult_a=None, shift_a=None):
    """Per-channel scaling, optional ReLU and requantization of the accumulator ``acc``.

    ``mult`` and ``shift`` (from :func:`fixed_point_multiplier`) broadcast against ``acc``: per
    column (shape N) for ``gamma_w[n]`` alone, or M x N for ``gamma_w[n] * gamma_a[m]``; they may
    fold in the inverse of the output scale. ``mult_a`` and ``shift_a`` (length M, for an M x N
    ``acc``) give a per-row factor as the GEMM engine's post unit takes it: the scale is then
    ``mult[n] * mult_a[m] * 2**-(shift[n] + shift_a[m])``, applied with one rounding. ``output``
    is ``int8`` or ``int4`` (round half to even, then saturate to the two's complement range;
    int64 result) or ``fp32`` (float32 result: the exact value ``acc * mult * 2**-shift``
    rounded once to binary32, ties to even; ReLU gives +0.0 for negative values).
    """
    if output not in OUTPUTS:
        raise ValueError(f"output = {output!r}: must be one of " + ", ".join(OUTPUTS))
    acc_a = np.asarray(acc)
    if acc_a.dtype.kind not in "iuO":
        raise ValueError(f"acc has dtype {acc_a.dtype}: must hold integers (the accumulator)")
    mult_w = np.asarray(mult)
    shift_w = np.asarray(shift)
    if mult_w.size and (mult_w.min() < 0 or mult_w.max() >= 1 << 32):
        raise ValueError("mult has values outside [0, 2**32 - 1]: must be unsigned 32-bit at most")
    if shift_w.size and (shift_w.min() < 0 or shift_w.max() > 63):
        raise ValueError("shift has values outside [0, 63]")
    if (mult_a is None) != (shift_a is None):
        raise ValueError("mult_a and shift_a: give both (the per-row factor) or neither")
    if mult_a is not None:
        mult_r, shift_r = np.asarray(mult_a), np.asarray(shift_a)
        if acc_a.ndim != 2 or mult_r.shape != (acc_a.shape[0],) or shift_r.shape != mult_r.shape:
            raise ValueError(f"mult_a and shift_a have shapes {mult_r.shape} and {shift_r.shape}: "
                             f"must be (M,) for acc of shape M x N")
        if mult_r.size and (mult_r.min() < 0 or mult_r.max() >= 1 << 32):
            raise ValueError("mult_a has values outside [0, 2**32 - 1]")
        if shift_r.size and (shift_r.min() < 0 or shift_r.max() > 63):
            raise ValueError("shift_a has values outside [0, 63]")
        mult_w = _as_python_ints(mult_w) * _as_python_ints(mult_r)[:, None]
        shift_w = _as_python_ints(shift_w) + _as_python_ints(shift_r)[:, None]
    if output == "fp32":
        acc_o, mult_o, shift_o = np.broadcast_arrays(
            _as_python_ints(acc), _as_python_ints(mult_w), _as_python_ints(shift_w))
        out = np.empty(acc_o.shape, dtype=np.float32)
        for idx in np.ndindex(acc_o.shape):
            p = acc_o[idx] * mult_o[idx]
            if p.bit_length() - shift_o[idx] > 127:
                raise ValueError("acc * mult / 2**shift exceeds the FP32 range")
            if p and p.bit_length() - 1 - shift_o[idx] < -126:
                raise ValueError("acc * mult / 2**shift is below the FP32 normal range")
            val = _to_float32(p, shift_o[idx])
            out[idx] = max(val, 0.0) if relu else val
        return out
    y = rescale(acc, mult_w, shift_w)
    if relu:
        y = np.where(y > 0, y, 0)
    lo, hi = code_range(8 if output == "int8" else 4)
    return np.clip(y, lo, hi).astype(np.int64)


def reference(a, w, scale_a, scale_w):
    """Float reference of the VSQ GEMM: ``(a * scale_a) @ (w * scale_w)`` in float64.

    ``scale_a`` and ``scale_w`` are the effective per-element scales (e.g.
    :attr:`sim.golden.quant.QuantizedTensor.scale`, i.e. ``gamma * s_q`` repeated over each vector).
    Up to float64 rounding it equals ``gamma_a[m] * gamma_w[n] * vsq_gemm(...)``.
    """
    return (np.asarray(a, np.float64) * scale_a) @ (np.asarray(w, np.float64) * scale_w)
