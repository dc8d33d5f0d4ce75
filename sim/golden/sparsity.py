"""2:4 structured sparsity along the reduction dimension: pruning, the compressed weight format the
GEMM engine takes, and the sparse GEMM it computes, numpy only.

Fine-grained structured sparsity (Mishra et al., "Accelerating Sparse Deep Neural Networks",
arXiv:2104.08378, 2021; NVIDIA Ampere sparse tensor cores) keeps 2 of every 4 consecutive weights
along K. A K x N weight matrix is cut, per column, into groups of 4 consecutive K elements (K is
padded with zeros to a multiple of 4, ``K4``); each group keeps 2 values. The compressed matrix has
``K4 / 2`` rows: row ``2g + j`` (j = 0, 1) of column n holds kept value j of group g, and the
metadata matrix, of the same shape, its position in the group (0 to 3, ``pos[2g] < pos[2g + 1]``).
A kept value may be zero (a group with fewer than two nonzeros keeps zeros in its lowest free
positions), and positions past K are legal (their values must be zero).

The engine computes, for every kept value, the product with the activation at its position, and
sums them: ``Y[m, n] = sum_kk Wc[kk, n] * A[m, 4 * (kk // 2) + pos[kk, n]]`` over the positions
below K (:func:`sparse_gemm`). With distinct positions per group this is the dense GEMM of the
decompressed matrix (:func:`decompress`); in FP8 modes the products of pruned positions do not
exist, so a NaN or an infinity in an activation at a pruned position does not reach the result.

Stream format (the engine's ``sparse = 1`` commands; :func:`weight_beats`, :func:`act_beats`): the
compressed matrix travels on ``w.data`` exactly as a dense matrix of ``K4 / 2`` rows would
(:func:`sim.golden.gemm.weight_beats`, so the weight bandwidth and storage per kept value are the
dense ones), with the positions on ``w.meta``: one lane per column, the position of the beat's
kept value in bits 1:0 (INT8, FP8), or of its low and high INT4 kept values in bits 1:0 and 3:2
(INT4, W4A8). The activations are not compressed: a beat carries 2R bytes, the dense activation
beat of an array of 2R rows (:func:`sim.golden.gemm.act_beats` with ``rows = 2R``), so a k tile
covers twice the reduction elements of a dense one. VS-Quant vectors are counted on the dense K
index (V a multiple of 4, so no group straddles two vectors); a vector of V dense elements is V / 2
kept values.
"""

import numpy as np

from . import gemm as golden
from . import vsq as golden_vsq
from .checks import as_array, int_array

__all__ = ["GROUP", "KEPT", "META_PATTERNS", "padded_k", "prune_mask", "prune", "prune_codes",
           "compress", "decompress", "sparse_gemm", "sparse_vsq_gemm", "weight_beats",
           "meta_beats", "act_beats", "weight_scale_beats", "column_param_beats", "act_scale_beats",
           "act_row_beats", "tile_k", "k_tile_count", "ideal_cycles", "meta_width"]

GROUP = 4
KEPT = 2
# Every legal pair of positions of a group's two kept values, in increasing order.
META_PATTERNS = tuple((p0, p1) for p0 in range(GROUP) for p1 in range(p0 + 1, GROUP))


def padded_k(k):
    """``K4``: K rounded up to a multiple of 4."""
    return -(-int(k) // GROUP) * GROUP


def _pad_rows(x, rows):
    out = np.zeros((rows,) + x.shape[1:], dtype=x.dtype)
    out[:x.shape[0]] = x
    return out


def prune_mask(w):
    """The 2:4 magnitude-pruning mask of a K x N matrix along K (axis 0): per group of 4
    consecutive rows and per column, True at the 2 entries of largest magnitude (ties to the lower
    index). K not a multiple of 4: the last group is padded with zeros, which are never kept over
    a real entry of equal magnitude. Returns a boolean K x N array."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"shape {w.shape}: need a K x N matrix")
    k, n = w.shape
    k4 = padded_k(k)
    mag = _pad_rows(np.abs(w.astype(np.float64)), k4)
    # Padded rows rank below every real row.
    mag[k:] = -1.0
    groups = mag.reshape(k4 // GROUP, GROUP, n)
    # Stable descending order: ties keep the lower position first.
    order = np.argsort(-groups, axis=1, kind="stable")
    mask = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(mask, order[:, :KEPT], True, axis=1)
    return mask.reshape(k4, n)[:k]


def prune(w):
    """``w`` with all but the 2 largest-magnitude entries of every group of 4 along K zeroed."""
    w = np.asarray(w)
    return np.where(prune_mask(w), w, np.zeros_like(w))


def prune_codes(codes, mode):
    """2:4 magnitude pruning of a K x N matrix of ``mode`` operands as the engine takes them
    (integers, or FP8 codes, pruned by the magnitude of their values; NaN counts as largest);
    pruned entries become 0 (the code +0 in FP8 modes)."""
    codes = np.asarray(codes, dtype=np.int64)
    if mode in golden.FP_MODES:
        mag = np.vectorize(lambda c: abs(golden.fp8_value(c, mode)), otypes=[float])(codes)
        mag = np.where(np.isnan(mag), np.inf, mag)
    else:
        mag = codes
    return np.where(prune_mask(mag), codes, 0)


def compress(w):
    """The compressed form ``(values, meta)`` of a K x N matrix with at most 2 nonzeros in every
    group of 4 along K (module docstring): two ``K4 / 2`` x N int64 arrays. A group's kept
    positions are its nonzero ones, completed by its lowest zero positions, in increasing order."""
    w = as_array("W", w)
    if w.ndim != 2:
        raise ValueError(f"shape {w.shape}: need a K x N matrix")
    k, n = w.shape
    k4 = padded_k(k)
    groups = _pad_rows(w, k4).reshape(k4 // GROUP, GROUP, n)
    nonzero = groups != 0
    counts = nonzero.sum(axis=1)
    if (counts > KEPT).any():
        g, c = np.argwhere(counts > KEPT)[0]
        raise ValueError(f"W has {counts[g, c]} nonzeros in rows {GROUP * g} to {GROUP * g + 3} "
                         f"of column {c}: 2:4 allows at most 2 (prune it first)")
    # Rank nonzeros first, then lower positions; keep the first two, in increasing position.
    rank = np.where(nonzero, 0, GROUP) + np.arange(GROUP)[None, :, None]
    pos = np.sort(np.argsort(rank, axis=1, kind="stable")[:, :KEPT], axis=1)
    values = np.take_along_axis(groups, pos, axis=1)
    return (values.reshape(k4 // 2, n).astype(groups.dtype),
            pos.reshape(k4 // 2, n).astype(np.int64))


def _check_compressed(values, meta):
    values, meta = as_array("values", values), as_array("meta", meta)
    if values.ndim != 2 or values.shape != meta.shape or values.shape[0] % 2:
        raise ValueError(f"shapes {values.shape} and {meta.shape}: need values and meta of the "
                         "same shape, K4 / 2 x N (an even number of rows)")
    meta = int_array("meta", meta, 0, GROUP - 1, allowed="allowed (positions 0 to 3)")
    return values, meta


def _dense_index(meta):
    """Dense K index of every kept value: ``4 * (kk // 2) + pos``."""
    return GROUP * (np.arange(meta.shape[0])[:, None] // 2) + meta


def decompress(values, meta, k):
    """The K x N matrix a compressed ``(values, meta)`` stands for (positions past K dropped). The
    two positions of a group must differ."""
    values, meta = _check_compressed(values, meta)
    if (meta[0::2] == meta[1::2]).any():
        raise ValueError("meta: a group's two kept values share a position; decompression needs "
                         "distinct positions")
    k4, n = 2 * values.shape[0], values.shape[1]
    if not padded_k(k) == k4:
        raise ValueError(f"k = {k}: values has {values.shape[0]} rows, for K4 = {k4}")
    out = np.zeros((k4, n), dtype=values.dtype)
    np.put_along_axis(out, _dense_index(meta), values, axis=0)
    return out[:k]


def sparse_gemm(a, values, meta, mode="int8"):
    """``Y = A x W`` for a compressed W as the engine computes it (module docstring): every kept
    value times the activation at its position, summed (integer modes: exactly, int64; FP8 modes:
    exactly, rounded once to binary32, bit patterns as :func:`sim.golden.gemm.gemm`). Kept values
    at positions past K contribute nothing."""
    values, meta = _check_compressed(values, meta)
    a = as_array("A", a)
    if a.ndim != 2:
        raise ValueError(f"shape {a.shape}: need an M x K matrix")
    m, k = a.shape
    if padded_k(k) != 2 * values.shape[0]:
        raise ValueError(f"A has K = {k} columns; values has {values.shape[0]} rows, "
                         f"for K4 = {2 * values.shape[0]}")
    n = values.shape[1]
    idx = _dense_index(meta)
    inside = idx < k
    a4 = np.zeros((m, padded_k(k)), dtype=np.int64)
    a4[:, :k] = a
    w = np.where(inside, values, 0)
    # golden.gemm checks the operand ranges of the mode.
    if mode not in golden.FP_MODES:
        golden.gemm(a4, np.zeros((a4.shape[1], 1), np.int64), mode)
        golden.gemm(np.zeros((1, w.shape[0]), np.int64), w, mode)
        gathered = a4[:, idx]                         # M x K4/2 x N
        return np.einsum("mkn,kn->mn", gathered, w.astype(np.int64))
    out = np.zeros((m, n), dtype=np.int64)
    for c in range(n):
        # A kept value past K meets the code +0, so it adds nothing and raises no flag.
        act = np.where(inside[None, :, c], a4[:, idx[:, c]], 0)
        out[:, c] = golden.gemm(act, w[:, c:c + 1], mode)[:, 0]
    return out


def sparse_vsq_gemm(a, values, meta, s_qa, s_qw, *, mode, vector_size, scale_bits):
    """Per-vector scaled (VS-Quant) GEMM of a compressed W: :func:`sim.golden.vsq.vsq_gemm` of the
    decompressed matrix, the vectors counted on the dense K index (``vector_size`` a multiple of
    4)."""
    if vector_size % GROUP:
        raise ValueError(f"vector_size = {vector_size}: must be a multiple of {GROUP} for 2:4")
    k = np.asarray(a).shape[1]
    w = decompress(values, meta, k)
    return golden_vsq.vsq_gemm(a, w, s_qa, s_qw, mode=mode, vector_size=vector_size,
                               scale_bits=scale_bits)


def meta_width(modes):
    """Bits of a ``w.meta`` lane: 4 where a mode packs two INT4 weights in a byte (``int4``,
    ``w4a8``), else 2."""
    return 4 if any(mo in ("int4", "w4a8") for mo in modes) else 2


def tile_k(mode, rows):
    """Dense reduction elements one sparse k tile covers: twice the dense tile."""
    return 2 * golden.tile_k(mode, rows)


def _kept_vector(vector_size):
    if vector_size is None:
        return None
    if vector_size % GROUP:
        raise ValueError(f"vector_size = {vector_size}: must be a multiple of {GROUP} for 2:4")
    return vector_size // 2


def _check_rows(rows):
    if rows % 2:
        raise ValueError(f"rows = {rows}: 2:4 needs an even number of PE rows")


def k_tile_count(k, mode, rows, vector_size=None):
    """k tiles of a sparse command of dense reduction length K."""
    return golden.k_tile_count(padded_k(k) // 2, mode, rows, _kept_vector(vector_size))


def weight_beats(values, mode, rows, cols, pad=0, vector_size=None):
    """The ``w.data`` beats of a sparse command: :func:`sim.golden.gemm.weight_beats` of the
    compressed ``values`` (``K4 / 2`` x N), the VSQ vectors V / 2 kept values long."""
    _check_rows(rows)
    return golden.weight_beats(values, mode, rows, cols, pad=pad,
                               vector_size=_kept_vector(vector_size))


def meta_beats(meta, mode, rows, cols, vector_size=None):
    """The ``w.meta`` lanes of the beats of :func:`weight_beats`, beat for beat (C values each):
    the position of the kept value in a byte's bits 3:0 in bits 1:0, of the one in bits 7:4 (INT4,
    W4A8) in bits 3:2; lanes past N or past the kept values hold 0."""
    _check_rows(rows)
    meta = np.asarray(meta, dtype=np.int64)
    # The positions packed like INT4 pairs: pos[2j] | pos[2j + 1] << 2 over 2-bit "nibbles".
    if golden.MODES[mode][2] == 1:
        return golden.weight_beats(meta, mode, rows, cols, vector_size=_kept_vector(vector_size))
    beats = golden.weight_beats(meta, mode, rows, cols, vector_size=_kept_vector(vector_size))
    return [[(b & 0x3) | ((b >> 4) & 0x3) << 2 for b in beat] for beat in beats]


def act_beats(a, mode, rows, pad=0, vector_size=None):
    """The ``a.data`` beats of a sparse command, 2R bytes each: the dense beats of an array of 2R
    rows (:func:`sim.golden.gemm.act_beats`); lanes past K hold ``pad``."""
    _check_rows(rows)
    if vector_size is not None:
        _kept_vector(vector_size)
    return golden.act_beats(a, mode, 2 * rows, pad=pad, vector_size=vector_size)


def weight_scale_beats(s_qw, mode, rows, cols, k, vector_size):
    """VSQ: the ``w.scale`` lanes of the beats of :func:`weight_beats` (``s_qw[v, n0 + c]`` on
    every beat of a k tile of vector v)."""
    kv = _kept_vector(vector_size)
    return golden.weight_scale_beats(s_qw, mode, rows, cols, padded_k(k) // 2, kv)


def column_param_beats(values, mode, rows, cols, k, vector_size=None):
    """Per-column parameters (``w.mult``, ``w.shift``) as lanes of the beats of
    :func:`weight_beats`."""
    return golden.column_param_beats(values, mode, rows, cols, padded_k(k) // 2,
                                     _kept_vector(vector_size))


def act_scale_beats(s_qa, mode, rows, k, vector_size):
    """VSQ: the ``a.scale`` field of the beats of :func:`act_beats`."""
    _kept_vector(vector_size)
    return golden.act_scale_beats(s_qa, mode, 2 * rows, k, vector_size)


def act_row_beats(values, mode, rows, k, vector_size=None):
    """Per-row parameters (``a.mult``, ``a.shift``) as fields of the beats of :func:`act_beats`."""
    return golden.act_row_beats(values, mode, 2 * rows, k, vector_size)


def ideal_cycles(m, n, k, mode, rows, cols):
    """``M * N * K4 / (2 * R * C * MACs per PE per cycle)``: the cycles of a perfectly busy array
    retiring 4 dense reduction elements per 2 multiplies."""
    return golden.ideal_cycles(m, n, padded_k(k), mode, rows, cols) / 2
