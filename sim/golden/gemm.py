"""Bit-exact model of the GEMM engine (:class:`gen.gemm.GemmEngine`), numpy only.

Integer modes compute ``Y = A @ W`` exactly: the engine's accumulator is wide enough, by the configuration
rule, that no sum can overflow (:func:`acc_width_needed`); :func:`wrap` states what a too-narrow
accumulator would do (two's complement wrap-around) so that the rule can be tested.

The stream packing functions give, beat for beat, what the engine takes on ``w`` and ``a`` and gives on
``o`` (see the engine's docstring and the README): a user can drive the Verilog with them directly.
Packed INT4 pairs hold element k in bits 3:0 and k+1 in bits 7:4 (DESIGN.md, number formats).
"""

import numpy as np

__all__ = [
    "MODES", "MODE_CODES", "RANGES", "gemm", "wrap", "acc_width_needed", "random_operands",
    "pack_int4_pairs", "unpack_int4_pairs", "weight_beats", "act_beats", "output_beats",
    "outputs_to_matrix", "tile_k", "ideal_cycles",
]

# mode -> (code on the command stream, reduction elements per PE row, weight rows per beat, MACs per PE)
MODES = {
    "int8": (0, 1, 1, 1),
    "int4": (1, 2, 2, 2),
    "w4a8": (2, 1, 2, 1),
}
MODE_CODES = {name: spec[0] for name, spec in MODES.items()}

# mode -> ((activation min, max), (weight min, max))
RANGES = {
    "int8": ((-128, 127), (-128, 127)),
    "int4": ((-8, 7), (-8, 7)),
    "w4a8": ((-128, 127), (-8, 7)),
}


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: must be one of " + ", ".join(MODES))


def _check_operands(a, w, mode):
    _check_mode(mode)
    a = np.asarray(a)
    w = np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"shapes {a.shape} and {w.shape}: need A (M x K) and W (K x N)")
    (alo, ahi), (wlo, whi) = RANGES[mode]
    if a.size and (a.min() < alo or a.max() > ahi):
        raise ValueError(f"A has values outside [{alo}, {ahi}] allowed in mode {mode}")
    if w.size and (w.min() < wlo or w.max() > whi):
        raise ValueError(f"W has values outside [{wlo}, {whi}] allowed in mode {mode}")
    return a.astype(np.int64), w.astype(np.int64)


def gemm(a, w, mode="int8"):
    """``A @ W`` as the engine computes it (exact, int64), after checking the operands fit ``mode``."""
    a, w = _check_operands(a, w, mode)
    return a @ w


def wrap(x, width):
    """Two's complement wrap-around of ``x`` to ``width`` bits (what an overflowing accumulator does)."""
    x = np.asarray(x, dtype=object)
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    return np.vectorize(lambda v: ((int(v) + half) & mask) - half, otypes=[object])(x)


def acc_width_needed(max_k):
    """Accumulator bits that hold ``max_k`` products of (-128) x (-128), with the sign."""
    return (max_k * 2**14).bit_length() + 1


def random_operands(rng, m, n, k, mode, kind="uniform"):
    """Random or directed operands for ``mode``.

    ``kind`` is ``uniform`` (the whole range), ``min`` (every element the most negative value), ``max``,
    ``alternating`` (min and max alternating along K, with opposite phase in W), or ``zero``.
    """
    _check_mode(mode)
    (alo, ahi), (wlo, whi) = RANGES[mode]
    if kind == "uniform":
        return (rng.integers(alo, ahi + 1, size=(m, k)), rng.integers(wlo, whi + 1, size=(k, n)))
    if kind == "min":
        return np.full((m, k), alo), np.full((k, n), wlo)
    if kind == "max":
        return np.full((m, k), ahi), np.full((k, n), whi)
    if kind == "alternating":
        ka = np.where(np.arange(k) % 2 == 0, alo, ahi)
        kw = np.where(np.arange(k) % 2 == 0, whi, wlo)
        return np.tile(ka, (m, 1)), np.tile(kw[:, None], (1, n))
    if kind == "zero":
        return np.zeros((m, k), dtype=np.int64), np.zeros((k, n), dtype=np.int64)
    raise ValueError(f"kind = {kind!r}: must be uniform, min, max, alternating or zero")


def pack_int4_pairs(lo, hi):
    """Byte holding INT4 ``lo`` in bits 3:0 and ``hi`` in bits 7:4."""
    return (np.asarray(lo) & 0xF) | ((np.asarray(hi) & 0xF) << 4)


def unpack_int4_pairs(byte):
    """Inverse of :func:`pack_int4_pairs`: the two signed nibbles of ``byte``."""
    byte = np.asarray(byte, dtype=np.int64)
    lo = byte & 0xF
    hi = (byte >> 4) & 0xF
    return np.where(lo >= 8, lo - 16, lo), np.where(hi >= 8, hi - 16, hi)


def tile_k(mode, rows):
    """Reduction elements one k tile covers: R times the elements per PE row."""
    _check_mode(mode)
    return rows * MODES[mode][1]


def _pad(x, rows, cols):
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def weight_beats(w, mode, rows, cols):
    """The beats of the ``w`` stream for one command, each a list of C bytes (0 to 255)."""
    _check_mode(mode)
    w = np.asarray(w, dtype=np.int64)
    k, n = w.shape
    tk = tile_k(mode, rows)
    beats = []
    for n0 in range(0, n, cols):
        for k0 in range(0, k, tk):
            tile = _pad(w[k0:k0 + tk, n0:n0 + cols], tk, cols)
            if mode == "int8":
                beats.extend((tile[r] & 0xFF).tolist() for r in range(rows))
            else:  # int4 and w4a8: rows of INT4 pairs along K
                if tile.shape[0] % 2:
                    tile = _pad(tile, tile.shape[0] + 1, cols)
                pairs = pack_int4_pairs(tile[0::2], tile[1::2])
                nbeats = rows if mode == "int4" else -(-rows // 2)
                beats.extend(pairs[j].tolist() for j in range(nbeats))
    return beats


def act_beats(a, mode, rows):
    """The beats of the ``a`` stream for one command, each a list of R bytes."""
    _check_mode(mode)
    a = np.asarray(a, dtype=np.int64)
    m, k = a.shape
    tk = tile_k(mode, rows)
    beats = []
    for k0 in range(0, k, tk):
        tile = _pad(a[:, k0:k0 + tk], m, tk)
        if mode == "int4":
            tile = pack_int4_pairs(tile[:, 0::2], tile[:, 1::2])
        else:
            tile = tile & 0xFF
        beats.extend(tile[i].tolist() for i in range(m))
    return beats


def output_beats(y, cols):
    """The beats the engine gives on ``o`` for result ``y``: (list of C values, last) per beat."""
    y = np.asarray(y)
    m, n = y.shape
    beats = []
    for n0 in range(0, n, cols):
        tile = _pad(y[:, n0:n0 + cols], m, cols)
        for i in range(m):
            beats.append((tile[i].tolist(), int(n0 + cols >= n and i == m - 1)))
    return beats


def outputs_to_matrix(beats, m, n, cols):
    """Reassemble ``o`` beats (lists of C values) into the M x N result."""
    y = np.zeros((m, n), dtype=np.int64)
    for idx, lanes in enumerate(beats):
        t, i = divmod(idx, m)
        n0 = t * cols
        width = min(cols, n - n0)
        y[i, n0:n0 + width] = lanes[:width]
    return y


def ideal_cycles(m, n, k, mode, rows, cols):
    """``M * N * K / (R * C * MACs per PE per cycle)``: the cycles of a perfectly busy array."""
    _check_mode(mode)
    return m * n * k / (rows * cols * MODES[mode][3])
