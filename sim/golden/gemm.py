"""Bit-exact model of the GEMM engine (:class:`gen.gemm.GemmEngine`), numpy only.

Integer modes compute ``Y = A @ W`` exactly: the engine's accumulator is wide enough, by the configuration
rule, that no sum can overflow (:func:`acc_width_needed`); :func:`wrap` states what a too-narrow
accumulator would do (two's complement wrap-around) so that the rule can be tested.

The stream packing functions give, beat for beat, what the engine takes on ``w`` and ``a`` and gives on
``o`` (see the engine's docstring and the README): a user can drive the Verilog with them directly.
Packed INT4 pairs hold element k in bits 3:0 and k+1 in bits 7:4 (DESIGN.md, number formats).

FP8 modes (``fp8_e4m3``, ``fp8_e5m2``) take operands as 8-bit codes of the OCP 8-bit floating-point
formats (OCP "OFP8" specification v1.0, 2023; E4M3: bias 7, no infinities, NaN = S.1111.111, largest
448; E5M2: bias 15, IEEE 754 infinities and NaNs, largest 57344). Every product is exact, the sum of the
K products is exact (Python integers in units of the smallest product), and the sum is rounded once to
IEEE 754 binary32, to nearest, ties to even; the result is the binary32 bit pattern. An exact sum of zero
gives +0 (the exact sum has no sign). Special values: any NaN product (a NaN operand, or 0 x inf) makes
the result the quiet NaN 0x7FC00000; otherwise an infinite product of each sign present gives NaN
(inf - inf), of one sign gives that infinity. Finite sums cannot overflow binary32 for K up to 2**16
(the largest, E5M2, is below 2**48); :func:`round_to_binary32` would return infinity if they did.
"""

from fractions import Fraction

import numpy as np

from .checks import as_array, int_array

__all__ = [
    "MODES", "MODE_CODES", "RANGES", "gemm", "wrap", "acc_width_needed", "random_operands",
    "pack_int4_pairs", "unpack_int4_pairs", "weight_beats", "act_beats", "output_beats",
    "outputs_to_matrix", "tile_k", "k_tiles", "k_tile_count", "weight_scale_beats", "act_scale_beats",
    "column_param_beats", "act_row_beats", "ideal_cycles", "FP8",
    "FP_MODES", "fp8_decode", "fp8_value",
    "fp8_units", "round_to_binary32", "binary32_value", "fp_acc_width", "NAN32", "FP8_KINDS", "FP8_ONE", "fp8_lsb_exp",
]

# mode -> (code on the command stream, reduction elements per PE row, weight rows per beat, MACs per PE)
MODES = {
    "int8": (0, 1, 1, 1),
    "int4": (1, 2, 2, 2),
    "w4a8": (2, 1, 2, 1),
    "fp8_e4m3": (3, 1, 1, 1),
    "fp8_e5m2": (4, 1, 1, 1),
}
MODE_CODES = {name: spec[0] for name, spec in MODES.items()}

# mode -> ((activation min, max), (weight min, max))
RANGES = {
    "int8": ((-128, 127), (-128, 127)),
    "int4": ((-8, 7), (-8, 7)),
    "w4a8": ((-128, 127), (-8, 7)),
    "fp8_e4m3": ((0, 255), (0, 255)),
    "fp8_e5m2": ((0, 255), (0, 255)),
}

# FP8 format of each FP mode: (exponent bits, mantissa bits, bias, IEEE infinities and NaNs)
FP8 = {"fp8_e4m3": (4, 3, 7, False), "fp8_e5m2": (5, 2, 15, True)}
FP_MODES = tuple(FP8)
NAN32 = 0x7FC00000
FP8_ONE = {"fp8_e4m3": 0x38, "fp8_e5m2": 0x3C}
INF32 = 0x7F800000
# Operand kinds of random_operands for FP8 modes (besides uniform, min, max, alternating and zero).
FP8_KINDS = ("uniform", "min", "max", "alternating", "zero", "nan", "inf", "cancel")


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: must be one of " + ", ".join(MODES))


def _check_operands(a, w, mode):
    """``a`` and ``w`` as int64 matrices of codes that fit ``mode`` (:mod:`sim.golden.checks`:
    integer dtype or exactly integral values, no NaN, in range)."""
    _check_mode(mode)
    a, w = as_array("A", a), as_array("W", w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"shapes {a.shape} and {w.shape}: need A (M x K) and W (K x N)")
    (alo, ahi), (wlo, whi) = RANGES[mode]
    return (int_array("A", a, alo, ahi, allowed=f"allowed in mode {mode}"),
            int_array("W", w, wlo, whi, allowed=f"allowed in mode {mode}"))


def gemm(a, w, mode="int8"):
    """``A @ W`` as the engine computes it, after checking the operands fit ``mode``.

    Integer modes: the exact product, int64. FP8 modes: ``a`` and ``w`` hold FP8 codes (0 to 255); the
    result holds binary32 bit patterns (int64, 0 to 2**32 - 1) of the exactly summed, once-rounded
    products (module docstring).
    """
    a, w = _check_operands(a, w, mode)
    if mode in FP8:
        return _fp8_gemm(a, w, mode)
    return a @ w


def fp8_decode(code, mode):
    """``(sign, significand, exponent, kind)`` of an FP8 code, where the magnitude of a finite value is
    ``significand << (exponent - 1)`` units of the smallest subnormal and ``kind`` is ``"finite"``,
    ``"inf"`` or ``"nan"`` (significand and exponent are 0 for the last two)."""
    ebits, mbits, _, ieee = FP8[mode]
    code = int(code)
    sign = code >> 7
    e = (code >> mbits) & ((1 << ebits) - 1)
    frac = code & ((1 << mbits) - 1)
    top = (1 << ebits) - 1
    if ieee and e == top:
        return sign, 0, 0, ("inf" if frac == 0 else "nan")
    if not ieee and e == top and frac == (1 << mbits) - 1:
        return sign, 0, 0, "nan"
    if e == 0:
        return sign, frac, 1, "finite"
    return sign, (1 << mbits) | frac, e, "finite"


def fp8_units(code, mode):
    """Signed integer value of a finite FP8 code in units of the smallest subnormal (``2**lsb_exp``)."""
    sign, sig, e, kind = fp8_decode(code, mode)
    if kind != "finite":
        raise ValueError(f"code {code:#04x} is {kind} in mode {mode}")
    return -(sig << (e - 1)) if sign else sig << (e - 1)


def fp8_lsb_exp(mode):
    """Exponent of the smallest subnormal of ``mode``'s format: ``1 - bias - mantissa bits``."""
    _, mbits, bias, _ = FP8[mode]
    return 1 - bias - mbits


def fp8_value(code, mode):
    """The value of an FP8 code as a Python float (NaN, +-inf included)."""
    sign, sig, e, kind = fp8_decode(code, mode)
    if kind == "nan":
        return float("nan")
    if kind == "inf":
        return float("-inf") if sign else float("inf")
    return float(Fraction(fp8_units(code, mode)) * Fraction(2) ** fp8_lsb_exp(mode))


def fp_acc_width(mode, max_k):
    """Accumulator bits that hold ``max_k`` products of the largest finite magnitude of ``mode``."""
    ebits, mbits, _, ieee = FP8[mode]
    max_exp = (1 << ebits) - (2 if ieee else 1)
    max_sig = (2 << mbits) - (1 if ieee else 2)
    return (max_k * (max_sig << (max_exp - 1)) ** 2).bit_length() + 1


def round_to_binary32(n, lsb_exp):
    """The binary32 bit pattern of ``n * 2**lsb_exp`` (``n`` a Python int), rounded to nearest, ties to
    even; +0 for 0; overflow to infinity; subnormal results rounded the same way."""
    if n == 0:
        return 0
    sign = 0x80000000 if n < 0 else 0
    mag = abs(n)
    p = mag.bit_length() - 1          # mag is in [2**p, 2**(p + 1))
    exp = p + lsb_exp                 # unbiased exponent of the leading bit
    keep = 24 if exp >= -126 else 24 - (-126 - exp)   # significand bits that survive
    shift = p + 1 - keep
    if shift > 0:
        q, rem = mag >> shift, mag & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and q & 1):
            q += 1
    else:
        q = mag << -shift
    # q * 2**(shift + lsb_exp) is the rounded magnitude; rebuild exponent and fraction from it.
    scale = shift + lsb_exp
    if q == 0:
        return sign
    qp = q.bit_length() - 1
    e = qp + scale
    if e > 127:
        return sign | INF32
    if e < -126:                       # subnormal: fraction in units of 2**-149
        return sign | (q << (scale + 149))
    frac = (q << (23 - qp)) & 0x7FFFFF if qp <= 23 else (q >> (qp - 23)) & 0x7FFFFF
    return sign | ((e + 127) << 23) | frac


def binary32_value(bits):
    """The value of a binary32 bit pattern, as a Python float."""
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def _fp8_gemm(a, w, mode):
    m, k = a.shape
    n = w.shape[1]
    dec_a = [[fp8_decode(c, mode) for c in row] for row in a.tolist()]
    dec_w = [[fp8_decode(c, mode) for c in row] for row in w.tolist()]

    def masks(dec):
        kind = np.array([[d[3] for d in row] for row in dec], dtype=object).reshape(len(dec), -1)
        sign = np.array([[d[0] for d in row] for row in dec], dtype=np.int64).reshape(kind.shape)
        mag = np.array([[d[1] for d in row] for row in dec], dtype=np.int64).reshape(kind.shape)
        nan = kind == "nan"
        inf = kind == "inf"
        fin_nz = (kind == "finite") & (mag != 0)
        zero = (kind == "finite") & (mag == 0)
        units = np.array([[(-(d[1] << (d[2] - 1)) if d[0] else d[1] << (d[2] - 1))
                           if d[3] == "finite" else 0 for d in row] for row in dec],
                         dtype=object).reshape(kind.shape)
        pos, neg = sign == 0, sign == 1
        return dict(nan=nan, zero=zero, pinf=inf & pos, ninf=inf & neg,
                    pfin=fin_nz & pos, nfin=fin_nz & neg, inf=inf, units=units)

    A = masks(dec_a)
    W = masks(dec_w)

    def any_of(x, y):
        return (x.astype(np.int64) @ y.astype(np.int64)) > 0

    nan = (np.repeat(A["nan"].any(axis=1)[:, None], n, axis=1)
           | np.repeat(W["nan"].any(axis=0)[None, :], m, axis=0)
           | any_of(A["inf"], W["zero"]) | any_of(A["zero"], W["inf"]))
    pinf = (any_of(A["pinf"], W["pinf"] | W["pfin"]) | any_of(A["ninf"], W["ninf"] | W["nfin"])
            | any_of(A["pfin"], W["pinf"]) | any_of(A["nfin"], W["ninf"]))
    ninf = (any_of(A["pinf"], W["ninf"] | W["nfin"]) | any_of(A["ninf"], W["pinf"] | W["pfin"])
            | any_of(A["pfin"], W["ninf"]) | any_of(A["nfin"], W["pinf"]))
    sums = A["units"].dot(W["units"]) if k else np.zeros((m, n), dtype=object)
    lsb = 2 * fp8_lsb_exp(mode)
    out = np.zeros((m, n), dtype=np.int64)
    for i in range(m):
        for j in range(n):
            if nan[i, j] or (pinf[i, j] and ninf[i, j]):
                out[i, j] = NAN32
            elif pinf[i, j]:
                out[i, j] = INF32
            elif ninf[i, j]:
                out[i, j] = 0x80000000 | INF32
            else:
                out[i, j] = round_to_binary32(int(sums[i, j]), lsb)
    return out


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
    FP8 modes (codes, see :data:`FP8_KINDS`): ``uniform`` draws finite codes uniformly (so every
    exponent, subnormals included, is equally likely); ``min`` is the smallest subnormal and ``max`` the
    largest finite value, both with random signs in ``min`` and positive in ``max``; ``alternating`` makes
    every product ``-max**2``; ``zero`` mixes +0 and -0; ``nan`` and ``inf`` (E5M2 only) sprinkle NaNs,
    or infinities of both signs and zeros (for inf - inf and 0 x inf), into uniform operands; ``cancel``
    pairs every product with its negation (x + (-x)) and adds one smallest-subnormal product when K is odd.
    """
    _check_mode(mode)
    if mode in FP8:
        return _fp8_operands(rng, m, n, k, mode, kind)
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


def _fp8_codes(mode):
    """Codes of ``mode`` by class: finite, NaN, +inf, -inf, and the largest finite positive code."""
    finite = [c for c in range(256) if fp8_decode(c, mode)[3] == "finite"]
    nan = [c for c in range(256) if fp8_decode(c, mode)[3] == "nan"]
    inf = [c for c in range(256) if fp8_decode(c, mode)[3] == "inf"]
    largest = max((c for c in finite if c < 0x80), key=lambda c: fp8_units(c, mode))
    return np.array(finite), np.array(nan), inf, largest


def _fp8_operands(rng, m, n, k, mode, kind):
    finite, nan, inf, largest = _fp8_codes(mode)

    def uniform(shape):
        return rng.choice(finite, size=shape).astype(np.int64)

    def signs(shape):
        return rng.integers(0, 2, size=shape).astype(np.int64) << 7

    if kind == "uniform":
        return uniform((m, k)), uniform((k, n))
    if kind == "min":
        return 0x01 | signs((m, k)), 0x01 | signs((k, n))
    if kind == "max":
        return np.full((m, k), largest, dtype=np.int64), np.full((k, n), largest, dtype=np.int64)
    if kind == "alternating":
        ka = np.where(np.arange(k) % 2 == 0, largest | 0x80, largest)
        kw = np.where(np.arange(k) % 2 == 0, largest, largest | 0x80)
        return np.tile(ka, (m, 1)), np.tile(kw[:, None], (1, n))
    if kind == "zero":
        return signs((m, k)), signs((k, n))
    if kind == "nan":
        a, w = uniform((m, k)), uniform((k, n))
        a[rng.random((m, k)) < 0.5 / k] = rng.choice(nan)
        w[rng.random((k, n)) < 0.5 / k] = rng.choice(nan)
        return a, w
    if kind == "inf":
        if not inf:
            raise ValueError(f"kind = 'inf': mode {mode} has no infinities")
        a, w = uniform((m, k)), uniform((k, n))
        for x in (a, w):
            u = rng.random(x.shape)
            x[u < 1.0 / k] = 0x00
            sel = u > 1 - 1.5 / k
            x[sel] = rng.choice(inf, size=int(sel.sum()))
        return a, w
    if kind == "cancel":
        a, w = uniform((m, k)), uniform((k, n))
        a[:, 1::2] = a[:, 0:k - k % 2:2]
        w[1::2, :] = w[0:k - k % 2:2, :] ^ 0x80
        if k % 2:
            a[:, -1] = 0x01
            w[-1, :] = 0x01
        return a, w
    raise ValueError(f"kind = {kind!r}: must be one of " + ", ".join(FP8_KINDS))


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


def _pad(x, rows, cols, fill=0):
    out = np.full((rows, cols), fill, dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def k_tiles(k, mode, rows, vector_size=None):
    """The k tiles of a command as ``(start, stop)`` ranges of reduction indices, in stream order.

    A plain command cuts ``0 .. K-1`` into tiles of :func:`tile_k` elements (the last one shorter).
    A VSQ command (``vector_size`` = V) cuts each vector of V elements (the last one shorter when V
    does not divide K) into its own tiles: a vector occupies ``ceil(V / tile)`` k tiles, and where
    the tile does not divide V its last tile is padded (lanes past the vector's end are ignored),
    so no tile holds elements of two vectors. Where the tile divides V both cuts are the same.
    """
    _check_mode(mode)
    tk = tile_k(mode, rows)
    if k < 1:
        raise ValueError(f"k = {k}: must be at least 1")
    if vector_size is None:
        return [(k0, min(k0 + tk, k)) for k0 in range(0, k, tk)]
    if vector_size < 1:
        raise ValueError(f"vector_size = {vector_size}: must be at least 1")
    tiles = []
    for v0 in range(0, k, vector_size):
        vend = min(v0 + vector_size, k)
        tiles += [(k0, min(k0 + tk, vend)) for k0 in range(v0, vend, tk)]
    return tiles


def k_tile_count(k, mode, rows, vector_size=None):
    """``len(k_tiles(...))`` in closed form: ``ceil(K / tile)``, or for VSQ
    ``floor(K / V) * ceil(V / tile) + ceil((K mod V) / tile)``."""
    tk = tile_k(mode, rows)
    if vector_size is None:
        return -(-k // tk)
    return (k // vector_size) * -(-vector_size // tk) + -(-(k % vector_size) // tk)


def _beats_per_tile(mode, rows):
    return rows if MODES[mode][2] == 1 or mode == "int4" else -(-rows // 2)


def weight_beats(w, mode, rows, cols, pad=0, vector_size=None):
    """The beats of the ``w`` stream for one command, each a list of C bytes (0 to 255).

    Lanes past K or N, and (VSQ with ``vector_size``) past the end of a tile's vector, are
    don't-care for the engine; they hold ``pad`` (an element value; a bench may put NaN codes there
    to check that FP8 results ignore them). The k tiles follow :func:`k_tiles`.
    """
    _check_mode(mode)
    w = np.asarray(w, dtype=np.int64)
    k, n = w.shape
    tk = tile_k(mode, rows)
    beats = []
    for n0 in range(0, n, cols):
        for k0, k1 in k_tiles(k, mode, rows, vector_size):
            tile = _pad(w[k0:k1, n0:n0 + cols], tk, cols, pad)
            if MODES[mode][2] == 1:  # int8 and FP8: one byte per element
                beats.extend((tile[r] & 0xFF).tolist() for r in range(rows))
            else:  # int4 and w4a8: rows of INT4 pairs along K
                if tile.shape[0] % 2:
                    tile = _pad(tile, tile.shape[0] + 1, cols, pad)
                pairs = pack_int4_pairs(tile[0::2], tile[1::2])
                beats.extend(pairs[j].tolist() for j in range(_beats_per_tile(mode, rows)))
    return beats


def act_beats(a, mode, rows, pad=0, vector_size=None):
    """The beats of the ``a`` stream for one command, each a list of R bytes; lanes past K (or,
    VSQ, past the end of the tile's vector) hold ``pad``. The k tiles follow :func:`k_tiles`."""
    _check_mode(mode)
    a = np.asarray(a, dtype=np.int64)
    m, k = a.shape
    tk = tile_k(mode, rows)
    beats = []
    for k0, k1 in k_tiles(k, mode, rows, vector_size):
        tile = _pad(a[:, k0:k1], m, tk, pad)
        if mode == "int4":
            tile = pack_int4_pairs(tile[:, 0::2], tile[:, 1::2])
        else:
            tile = tile & 0xFF
        beats.extend(tile[i].tolist() for i in range(m))
    return beats


def weight_scale_beats(s_qw, mode, rows, cols, k, vector_size):
    """VSQ: the ``scale`` lanes of the ``w`` beats of :func:`weight_beats` (called with the same
    ``vector_size``), beat for beat (C values each): every beat of a k tile of vector v carries
    ``s_qw[v, n0 + c]`` in lane c (lanes past N hold 0). ``s_qw`` is ceil(K / V) x N."""
    _check_mode(mode)
    s_qw = np.asarray(s_qw, dtype=np.int64)
    n = s_qw.shape[1]
    nbeats = _beats_per_tile(mode, rows)
    beats = []
    for n0 in range(0, n, cols):
        for k0, _ in k_tiles(k, mode, rows, vector_size):
            lanes = _pad(s_qw[k0 // vector_size:k0 // vector_size + 1, n0:n0 + cols], 1, cols)[0]
            beats.extend([lanes.tolist()] * nbeats)
    return beats


def column_param_beats(values, mode, rows, cols, k, vector_size=None):
    """Per-column parameters (e.g. the post-processing ``mult`` and ``shift``, length N) as lanes of
    the ``w`` beats of :func:`weight_beats`: every beat of the column tile at ``n0`` carries
    ``values[n0 + c]`` in lane c (lanes past N hold 0). ``vector_size``: that of a VSQ command."""
    _check_mode(mode)
    values = np.asarray(values, dtype=np.int64)
    per_tile = _beats_per_tile(mode, rows) * k_tile_count(k, mode, rows, vector_size)
    beats = []
    for n0 in range(0, len(values), cols):
        lanes = _pad(values[None, n0:n0 + cols], 1, cols)[0].tolist()
        beats.extend([lanes] * per_tile)
    return beats


def act_scale_beats(s_qa, mode, rows, k, vector_size):
    """VSQ: the ``scale`` field of the ``a`` beats of :func:`act_beats` (called with the same
    ``vector_size``), beat for beat: the beat of row m in a k tile of vector v carries
    ``s_qa[m, v]``."""
    _check_mode(mode)
    s_qa = np.asarray(s_qa, dtype=np.int64)
    return [int(s_qa[i, k0 // vector_size]) for k0, _ in k_tiles(k, mode, rows, vector_size)
            for i in range(s_qa.shape[0])]


def act_row_beats(values, mode, rows, k, vector_size=None):
    """Per-row parameters (the post-processing unit's row multiplier ``a.mult`` and shift
    ``a.shift``, length M) as fields of the ``a`` beats of :func:`act_beats`: the beat of row m
    in every k tile carries ``values[m]`` (the engine reads the one of the last k tile)."""
    _check_mode(mode)
    values = [int(x) for x in np.asarray(values, dtype=np.int64)]
    return values * k_tile_count(k, mode, rows, vector_size)


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
