"""The 2:4 sparsity model: pruning, compression, the beats, and the sparse GEMM against the dense
GEMM of the pruned matrix."""

import numpy as np
import pytest

from sim.golden import gemm as G
from sim.golden import sparsity as S
from sim.golden import vsq as V

INT_MODES = ("int8", "int4", "w4a8")
MODES = INT_MODES + ("fp8_e4m3", "fp8_e5m2")


def _pruned_operands(rng, m, n, k, mode, kind="uniform"):
    a, w = G.random_operands(rng, m, n, k, mode, kind)
    return a, S.prune_codes(w, mode)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8, 13, 64])
def test_prune_keeps_two_largest_per_group(k, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(k, 5))
    mask = S.prune_mask(w)
    assert mask.shape == w.shape
    k4 = S.padded_k(k)
    padded = np.zeros((k4, 5), bool)
    padded[:k] = mask
    per_group = padded.reshape(k4 // 4, 4, 5).sum(axis=1)
    real = np.minimum(2, np.clip(k - 4 * np.arange(k4 // 4), 0, 4))[:, None]
    assert np.array_equal(per_group, np.broadcast_to(real, per_group.shape)), f"seed {seed}"
    for g in range(k4 // 4):
        rows = slice(4 * g, min(4 * g + 4, k))
        for c in range(5):
            col, keep = np.abs(w[rows, c]), mask[rows, c]
            if keep.any() and (~keep).any():
                assert col[keep].min() >= col[~keep].max()


def test_prune_ties_go_to_the_lower_position():
    w = np.array([[3], [-3], [3], [1]])
    assert S.prune_mask(w)[:, 0].tolist() == [True, True, False, False]
    assert S.prune(np.array([[0], [0], [0], [0]]))[:, 0].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("pattern", S.META_PATTERNS)
def test_every_metadata_pattern_round_trips(pattern):
    w = np.zeros((8, 3), np.int64)
    w[4 + pattern[0], 1], w[4 + pattern[1], 1] = 5, -7
    w[pattern[0], 2] = 9        # one nonzero: the other kept value is a zero
    values, meta = S.compress(w)
    assert meta[2:4, 1].tolist() == list(pattern) and values[2:4, 1].tolist() == [5, -7]
    assert np.array_equal(S.decompress(values, meta, 8), w)
    assert meta[0:2, 0].tolist() == [0, 1] and values[0:2, 0].tolist() == [0, 0]


@pytest.mark.parametrize("k", [4, 5, 6, 7, 16, 30])
def test_compress_decompress_round_trip(k, seed):
    rng = np.random.default_rng(seed)
    w = S.prune(rng.integers(-128, 128, size=(k, 6)))
    w[rng.random(w.shape) < 0.3] = 0           # kept zeros and empty groups
    values, meta = S.compress(w)
    assert values.shape == meta.shape == (S.padded_k(k) // 2, 6)
    assert (meta[0::2] < meta[1::2]).all()
    assert np.array_equal(S.decompress(values, meta, k), w), f"seed {seed}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [1, 3, 4, 6, 17, 40])
def test_sparse_gemm_is_the_dense_gemm_of_the_pruned_matrix(mode, k, seed):
    rng = np.random.default_rng(seed)
    a, w = _pruned_operands(rng, 5, 7, k, mode)
    values, meta = S.compress(w)
    got = S.sparse_gemm(a, values, meta, mode)
    assert np.array_equal(got, G.gemm(a, w, mode)), f"seed {seed}"


@pytest.mark.parametrize("mode", INT_MODES)
@pytest.mark.parametrize("kind", ["min", "max", "alternating", "zero"])
def test_sparse_gemm_extremes(mode, kind, seed):
    rng = np.random.default_rng(seed)
    a, w = _pruned_operands(rng, 3, 4, 24, mode, kind)
    values, meta = S.compress(w)
    assert np.array_equal(S.sparse_gemm(a, values, meta, mode), G.gemm(a, w, mode))


def test_fp8_specials_at_pruned_positions_do_not_reach_the_result():
    mode = "fp8_e5m2"
    one = G.FP8_ONE[mode]
    w = np.array([[one], [0], [0], [one]])
    a = np.array([[one, 0x7F, 0x7C, one]])      # NaN and +inf where W is pruned
    values, meta = S.compress(w)
    got = S.sparse_gemm(a, values, meta, mode)
    assert G.binary32_value(int(got[0, 0])) == 2.0
    assert G.gemm(a, w, mode)[0, 0] == G.NAN32   # the dense product 0 x NaN is NaN


def test_kept_values_past_k_add_nothing():
    values = np.array([[3], [4]])
    meta = np.array([[0], [2]])                  # position 2 is past K = 2
    assert S.sparse_gemm(np.array([[5, 6]]), values, meta, "int8")[0, 0] == 15


def _engine_from_beats(wbeats, mbeats, abeats, mode, rows, cols, m, n, k, vector_size=None):
    """What the array does with the sparse beats, written from the stream format alone: per k tile,
    PE row r holds kept values and positions, its activation lane is its group's 4 activations
    (from the 2R-byte beat), and it adds the products of the kept values below the end of K."""
    kpr = G.MODES[mode][1]
    tile_d = 2 * rows * kpr
    if vector_size is None:
        tiles = [(d0, min(d0 + tile_d, k)) for d0 in range(0, k, tile_d)]
    else:
        tiles = [(d0, min(d0 + tile_d, v0 + vector_size, k)) for v0 in range(0, k, vector_size)
                 for d0 in range(v0, min(v0 + vector_size, k), tile_d)]
    y = np.zeros((m, n), np.int64)
    wi = 0
    per_tile = rows if mode != "w4a8" else rows // 2
    for n0 in range(0, n, cols):
        for t, (d0, end) in enumerate(tiles):
            wt, mt = wbeats[wi:wi + per_tile], mbeats[wi:wi + per_tile]
            wi += per_tile
            at = abeats[t * m:(t + 1) * m]
            for r in range(rows):
                for c in range(min(cols, n - n0)):
                    if mode == "int4":
                        byte, mm = wt[r][c], mt[r][c]
                        kept = [(G.unpack_int4_pairs(byte)[0], mm & 3),
                                (G.unpack_int4_pairs(byte)[1], mm >> 2)]
                        base = d0 + 4 * r
                    elif mode == "w4a8":
                        byte, mm = wt[r // 2][c], mt[r // 2][c]
                        lo, hi = G.unpack_int4_pairs(byte)
                        kept = [(lo, mm & 3) if r % 2 == 0 else (hi, mm >> 2)]
                        base = d0 + 4 * (r // 2)
                    else:
                        byte = wt[r][c]
                        kept = [(byte - 256 if byte > 127 else byte, mt[r][c] & 3)]
                        base = d0 + 4 * (r // 2)
                    for value, pos in kept:
                        if base + pos >= end:
                            continue
                        for i in range(m):
                            if mode == "int4":
                                lanes = G.unpack_int4_pairs(np.array(at[i]))
                                nib = np.stack(lanes, axis=1).reshape(-1)
                                act = nib[(base - d0) + pos]
                            else:
                                act = at[i][(base - d0) + pos]
                                act = act - 256 if act > 127 else act
                            y[i, n0 + c] += int(value) * int(act)
    assert wi == len(wbeats)
    return y


@pytest.mark.parametrize("mode", INT_MODES)
@pytest.mark.parametrize("rows, cols, m, n, k",
                         [(2, 3, 3, 4, 5), (4, 2, 2, 5, 13), (4, 4, 2, 3, 40)])
def test_beats_carry_the_sparse_gemm(mode, rows, cols, m, n, k, seed):
    rng = np.random.default_rng(seed)
    a, w = _pruned_operands(rng, m, n, k, mode)
    values, meta = S.compress(w)
    wb = S.weight_beats(values, mode, rows, cols, pad=0)
    mb = S.meta_beats(meta, mode, rows, cols)
    ab = S.act_beats(a, mode, rows, pad=0)
    assert len(wb) == len(mb) and all(len(b) == 2 * rows for b in ab)
    assert len(ab) == m * S.k_tile_count(k, mode, rows)
    got = _engine_from_beats(wb, mb, ab, mode, rows, cols, m, n, k)
    assert np.array_equal(got, G.gemm(a, w, mode)), f"seed {seed}"


@pytest.mark.parametrize("mode", INT_MODES)
@pytest.mark.parametrize("v, k", [(16, 40), (32, 64), (16, 13)])
def test_vsq_follows_the_dense_k_index(mode, v, k, seed):
    rng = np.random.default_rng(seed)
    a, w = _pruned_operands(rng, 3, 5, k, mode)
    values, meta = S.compress(w)
    nvec = -(-k // v)
    sa, sw = rng.integers(0, 16, (3, nvec)), rng.integers(0, 16, (nvec, 5))
    got = S.sparse_vsq_gemm(a, values, meta, sa, sw, mode=mode, vector_size=v, scale_bits=4)
    assert np.array_equal(got, V.vsq_gemm(a, w, sa, sw, mode=mode, vector_size=v, scale_bits=4))
    rows, cols = 4, 3
    wb = S.weight_beats(values, mode, rows, cols, vector_size=v)
    ws = S.weight_scale_beats(sw, mode, rows, cols, k, v)
    ab = S.act_beats(a, mode, rows, vector_size=v)
    asc = S.act_scale_beats(sa, mode, rows, k, v)
    assert len(ws) == len(wb) == len(S.meta_beats(meta, mode, rows, cols, vector_size=v))
    assert len(asc) == len(ab) == 3 * S.k_tile_count(k, mode, rows, v)
    # Unit scales: the beats are those of the plain sparse GEMM tiled by vectors.
    got = _engine_from_beats(wb, S.meta_beats(meta, mode, rows, cols, vector_size=v), ab, mode,
                             rows, cols, 3, 5, k, vector_size=v)
    assert np.array_equal(got, G.gemm(a, w, mode)), f"seed {seed}"


def test_ideal_cycles_are_half_the_dense_ones():
    assert S.ideal_cycles(256, 256, 256, "int8", 16, 16) == G.ideal_cycles(256, 256, 256, "int8",
                                                                            16, 16) / 2


def test_messages():
    with pytest.raises(ValueError, match="3 nonzeros in rows 0 to 3 of column 0"):
        S.compress(np.array([[1], [2], [3], [0]]))
    with pytest.raises(ValueError, match="share a position"):
        S.decompress(np.array([[1], [2]]), np.array([[1], [1]]), 4)
    with pytest.raises(ValueError, match="rows = 3: 2:4 needs an even number of PE rows"):
        S.weight_beats(np.zeros((2, 1)), "int8", 3, 1)
    with pytest.raises(ValueError, match="vector_size = 6: must be a multiple of 4"):
        S.act_beats(np.zeros((1, 4)), "int8", 2, vector_size=6)
    with pytest.raises(ValueError, match="meta"):
        S.sparse_gemm(np.zeros((1, 4)), np.zeros((2, 1)), np.array([[0], [4]]))
