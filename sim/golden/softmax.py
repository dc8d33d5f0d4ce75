"""Bit-exact model of the softmax unit (:class:`gen.softmax.Softmax`) and its float64 reference.

The unit computes a base-2 softmax, ``p_i = 2**x_i / sum_j 2**x_j`` over the unmasked elements of a row,
in fixed point, following Softermax (Stevens et al., "Softermax: Hardware/Software Co-Design of an
Efficient Softmax for Transformers", DAC 2021): base 2 instead of e (a scale of log2(e) folds into the
input's fixed-point scale), an integer running maximum, and the online normalizer of Milakov and
Gimelshein ("Online normalizer calculation for softmax", 2018), which keeps a running maximum ``m`` and a
running sum ``d`` in one pass and renormalizes ``d`` by a right shift when ``m`` grows.

Numbers
-------
Inputs are signed ``in_width``-bit integers ``x`` with ``F = in_frac`` fraction bits (real value
``x / 2**F``). Outputs are unsigned ``out_frac + 1``-bit integers ``y`` with ``O = out_frac`` fraction bits
(real value ``y / 2**O``; ``2**O`` is exactly 1.0).

The arithmetic, step by step (every rounding written out)
--------------------------------------------------------
``fl(x) = x >> F`` (floor of the real value), ``ce(x) = -((-x) >> F)`` (its ceiling),
``r(x) = x & (2**F-1)``.

Table: ``T[r] = round_half_up(2**(r / 2**F) * 2**S)`` for ``r`` in ``0 .. 2**F - 1``; ``S = sum_frac``;
entries lie in ``[2**S, 2**(S+1))``.

Pass 1, one beat of ``P`` lanes at a time (masked lanes take no part):

* ``mb = max ce(x_i)`` over the beat's unmasked lanes; ``m' = mb`` for the row's first beat with an
  unmasked lane, else ``max(m, mb)``. ``m`` is an integer, so ``x_i - m' <= 0`` for every lane.
* ``c_i = T[r(x_i)] >> min(m' - fl(x_i), S + 2)``: ``2**(x_i - m')`` with ``S`` fraction bits, truncated.
  Each ``c_i <= 2**S``.
* ``d' = (d >> min(m' - m, Wd)) + sum c_i`` (``d = 0`` before the first unmasked lane), truncated;
  ``Wd = S + (B_max * P).bit_length()`` bits hold it, ``B_max = ceil(max_len / P)``.

Reciprocal, once per row: ``k = d.bit_length()``, ``dn = d << (Wd - k)`` (normalized, top bit set),
``R = floor(2**(Wd + M) / dn)`` with ``M = recip_bits``: ``2**M < R <= 2**(M+1)``, so ``R * 2**-(M+k)``
is ``1 / d`` (in units of ``2**-S``) with a relative error below ``2**-M``. The hardware computes ``R``
with a restoring divider, one quotient bit per cycle.

Pass 2, from the row buffer: ``n_i = T[r(x_i)] >> min(m - fl(x_i), S + 2)`` with the row's final ``m``
(0 for masked lanes), ``t = M + k - O``, ``y_i = min((((n_i * R) >> (t - 1)) + 1) >> 1, 2**O)``:
rounded half up (not to even; a tie needs ``n_i * R`` to be an exact odd multiple of ``2**(t-1)``),
saturated at 1.0.

Error bound and the derived widths
----------------------------------
With ``u = 2**-S`` and ``A = sum_j 2**(x_j - m)`` (``A > 1/2`` because ``m = ce(max x)``):
``|n_i - a_i| <= a_i u/2 + u`` (table rounding, then truncation), ``|d - A| <= A u/2 + L u`` (the shifts of
a sum lose no more than the shifts of its terms), hence ``|n_i/d - p_i| <= (2L + 3) u`` to first order, and
the reciprocal adds ``2**-M``. Before the final rounding the error in output LSB is at most
``2**O ((2L + 3) 2**-S + 2**-M)``. :func:`derive_widths` picks ``S = O + ceil(log2(2 L_max + 3)) + 8`` and
``M = O + 8``, which bounds it by ``2**-8 + 2**-8 < 0.01`` LSB, so the total error is at most 0.51 LSB
(0.5 of it the final rounding). Narrower overrides trade accuracy for width (``accelgen bench softmax``).

Edge cases (each tested)
------------------------
* ``L = 1`` (one unmasked element): ``d = c = T[r] >> (ce - fl)`` and the output is ``2**O`` (1.0) unless
  a narrow override lets the rounding fall short; with the derived widths it is exactly 1.0.
* All elements equal: every output is ``round(2**O / L)`` up to the 0.51 LSB bound.
* All at the most negative value: same as all equal (only differences matter).
* One maximum, the others at the minimum: the others underflow to 0 when ``2**(min - max)`` is below the
  sum's LSB; the maximum gets 1.0 minus their share.
* Ramps: ascending rows renormalize ``d`` at every beat; descending rows never do.
* Every element masked: ``d = 0``; no division; every output is 0 and the row's ``all_masked`` flag is 1.
* Rows longer than ``B_max`` beats are cut by the hardware after ``B_max`` beats (each piece is a row of
  its own; the unit counts such cuts); :func:`split_rows` models it.
"""

from dataclasses import dataclass, fields

import numpy as np

from .checks import as_array, bool_array, int_array, int_param

__all__ = ["SoftmaxParams", "derive_widths", "exp2_table", "softmax_beats", "softmax", "reference",
           "random_row", "ROW_KINDS", "edge_rows", "split_rows", "to_beats"]


def _clog2(n):
    return max(0, (n - 1).bit_length())


def derive_widths(out_frac, max_len):
    """The widths that meet the 0.51 LSB error target: ``(sum_frac, recip_bits)`` (see the module)."""
    return out_frac + _clog2(2 * max_len + 3) + 8, out_frac + 8


_PARAM_RANGES = {"in_width": (2, 24), "in_frac": (0, 10), "out_frac": (1, 16), "max_len": (1, 16384),
                 "lanes": (1, 16), "sum_frac": (0, 48), "recip_bits": (0, 40)}


@dataclass(frozen=True)
class SoftmaxParams:
    """Everything the arithmetic depends on, checked on construction (:class:`ValueError` naming
    the field; the ranges are the unit's).

    ``sum_frac`` (S) and ``recip_bits`` (M) of 0 mean "derived" (:func:`derive_widths`).
    """

    in_width: int = 8
    in_frac: int = 4
    out_frac: int = 8
    max_len: int = 1024
    lanes: int = 4
    sum_frac: int = 0
    recip_bits: int = 0

    def __post_init__(self):
        for f in fields(self):
            lo, hi = _PARAM_RANGES[f.name]
            int_param(f"SoftmaxParams.{f.name}", getattr(self, f.name), lo, hi)
            object.__setattr__(self, f.name, int(getattr(self, f.name)))
        if self.in_frac > self.in_width - 1:
            raise ValueError(f"SoftmaxParams.in_frac = {self.in_frac}: must be at most in_width - 1 "
                             f"= {self.in_width - 1}")
        if self.recip_bits and self.recip_bits < 4:
            raise ValueError(f"SoftmaxParams.recip_bits = {self.recip_bits}: must be 0 (derived) or "
                             f"from 4 to 40")
        s, m = derive_widths(self.out_frac, self.max_len)
        if not self.sum_frac:
            object.__setattr__(self, "sum_frac", s)
        if not self.recip_bits:
            object.__setattr__(self, "recip_bits", m)
        if self.sum_frac + self.recip_bits < self.out_frac + 1:
            raise ValueError(f"SoftmaxParams.sum_frac + recip_bits = "
                             f"{self.sum_frac + self.recip_bits}: must be at least out_frac + 1 = "
                             f"{self.out_frac + 1} (the final rounding shifts right)")

    @property
    def max_beats(self):
        return -(-self.max_len // self.lanes)

    @property
    def sum_width(self):
        """Wd: bits of the running sum (``d <= B_max * P * 2**S``)."""
        return self.sum_frac + (self.max_beats * self.lanes).bit_length()

    @property
    def out_width(self):
        return self.out_frac + 1

    @property
    def in_min(self):
        return -(1 << (self.in_width - 1))

    @property
    def in_max(self):
        return (1 << (self.in_width - 1)) - 1

    @property
    def shift_cap(self):
        return self.sum_frac + 2


def exp2_table(p):
    """``T[r] = round_half_up(2**(r / 2**F) * 2**S)`` as Python ints, computed exactly enough.

    float64 has 53 bits; for ``S + 1 > 50`` the entries are refined with integer arithmetic so that the
    rounding is of the true value (checked by bisection on ``T**(2**F)`` against ``2**(r + S * 2**F)``).
    """
    F, S = p.in_frac, p.sum_frac
    out = []
    for r in range(1 << F):
        # Half-up rounding of v = 2**(r/2**F + S): the largest t with (t - 1/2) <= v, i.e. with
        # (2t - 1)**(2**F) <= 2**(r + (S + 1) * 2**F); start from the float estimate and correct.
        t = int(np.floor(2.0 ** (r / (1 << F) + S) + 0.5))
        rhs = 1 << (r + (S + 1) * (1 << F))
        while (2 * t - 1) ** (1 << F) > rhs:
            t -= 1
        while (2 * t + 1) ** (1 << F) <= rhs:
            t += 1
        out.append(t)
    return out


def _check_params(p, mask=None):
    if isinstance(mask, SoftmaxParams):
        raise TypeError("the parameters were given as the mask: p is keyword-only "
                        "(softmax(x, p=p) or softmax(x, mask, p=p))")
    if p is None:
        return SoftmaxParams()
    if not isinstance(p, SoftmaxParams):
        raise TypeError(f"p is a {type(p).__name__}: must be a SoftmaxParams")
    return p


def _check_table(table, p):
    if table is None:
        return exp2_table(p)
    if len(table) != 1 << p.in_frac:
        raise ValueError(f"table has {len(table)} entries: must be exp2_table(p), 2**in_frac = "
                         f"{1 << p.in_frac} entries")
    return table


def _check_row(x, mask, p):
    x = int_array("row", x, p.in_min, p.in_max, ndim=1, shape_text="one dimension (a row)",
                  allowed=f"of signed {p.in_width}-bit inputs")
    limit = p.max_beats * p.lanes
    if x.size > limit:
        raise ValueError(f"row has {x.size} elements: at most {limit} (max_len = {p.max_len} in "
                         f"beats of {p.lanes}); the unit cuts longer rows, split_rows gives the "
                         f"pieces it computes")
    mask = np.zeros(x.shape, dtype=bool) if mask is None else bool_array("mask", mask, x.shape)
    return x, mask


def to_beats(x, mask, lanes):
    """Pad a row to a multiple of ``lanes`` with masked zeros; ``(x, mask)`` of shape (beats, lanes)."""
    x = np.asarray(x, dtype=np.int64)
    mask = np.zeros(x.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    beats = max(1, -(-x.size // lanes))
    xp = np.zeros(beats * lanes, dtype=np.int64)
    mp = np.ones(beats * lanes, dtype=bool)
    xp[:x.size] = x
    mp[:x.size] = mask
    return xp.reshape(beats, lanes), mp.reshape(beats, lanes)


def softmax_beats(xb, mb, p, table=None):
    """The unit's output for one row given as beats: ``(y, all_masked)``, ``y`` of shape (beats, lanes).

    ``xb``/``mb``: int and bool arrays of shape (beats, lanes), at most ``p.max_beats`` beats; ``mb``
    True masks a lane.
    """
    p = _check_params(p, mb)
    xb = as_array("xb", xb)
    if xb.ndim != 2 or xb.shape[1] != p.lanes or not 1 <= xb.shape[0] <= p.max_beats:
        raise ValueError(f"xb has shape {xb.shape}: must be (beats, lanes = {p.lanes}) with 1 to "
                         f"max_beats = {p.max_beats} beats")
    xb = int_array("xb", xb, p.in_min, p.in_max, allowed=f"of signed {p.in_width}-bit inputs")
    mb = bool_array("mb", mb, xb.shape)
    T = _check_table(table, p)
    F, M, Of = p.in_frac, p.recip_bits, p.out_frac
    Wd, cap = p.sum_width, p.shift_cap
    fl = xb >> F
    ce = -((-xb) >> F)
    r = xb & ((1 << F) - 1)
    # Pass 1: online maximum and sum, one beat at a time.
    m, d, first = 0, 0, True
    for b in range(xb.shape[0]):
        live = ~mb[b]
        if not live.any():
            continue
        beat_max = int(ce[b][live].max())
        m_new = beat_max if first else max(m, beat_max)
        d = 0 if first else d >> min(m_new - m, Wd)
        for lane in np.flatnonzero(live):
            d += T[r[b, lane]] >> min(m_new - int(fl[b, lane]), cap)
        m, first = m_new, False
    y = np.zeros(xb.shape, dtype=np.int64)
    if first:
        return y, True
    assert 0 < d < (1 << Wd), (d, Wd)
    # The reciprocal, once per row.
    k = d.bit_length()
    dn = d << (Wd - k)
    R = (1 << (Wd + M)) // dn
    t = M + k - Of
    # Pass 2: y = round(n * R / 2**t), saturated at 1.0.
    for (b, lane), live in np.ndenumerate(~mb):
        if live:
            n = T[r[b, lane]] >> min(m - int(fl[b, lane]), cap)
            y[b, lane] = min((((n * R) >> (t - 1)) + 1) >> 1, 1 << Of)
    return y, False


def softmax(x, mask=None, *, p=None, table=None):
    """Bit-exact output of the unit for one row ``x``; ``(y, all_masked)``.

    ``x``: integers (any integer dtype, or exactly integral floats) in the signed ``p.in_width``-bit
    range, at most ``p.max_beats * p.lanes`` of them (longer rows are cut by the unit:
    :func:`split_rows`). ``mask``: booleans (or 0 and 1) of the row's shape, True masks an element.
    ``p`` (default ``SoftmaxParams()``) and ``table`` (:func:`exp2_table` of ``p``) are keyword-only.
    The row is sent as ``ceil(L / P)`` beats, the last one padded with masked lanes; ``y`` has length L.
    Bad inputs raise :class:`ValueError` (:class:`TypeError` for parameters of the wrong kind).
    """
    p = _check_params(p, mask)
    x, mask = _check_row(x, mask, p)
    xb, mb = to_beats(x, mask, p.lanes)
    y, empty = softmax_beats(xb, mb, p, table)
    return y.reshape(-1)[:x.size], empty


def reference(x, mask=None, *, in_frac=4):
    """float64 base-2 softmax of the real inputs ``x / 2**in_frac``; masked elements get 0.

    Returns probabilities (not scaled to the output format); all-masked rows give all zeros.
    """
    v = np.asarray(x, dtype=np.float64) / (1 << in_frac)
    live = np.ones(v.shape, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    out = np.zeros(v.shape)
    if live.any():
        e = np.exp2(v[live] - v[live].max())
        out[live] = e / e.sum()
    return out


ROW_KINDS = ("uniform", "gaussian", "heavy", "narrow")


def random_row(rng, length, p, kind="uniform"):
    """A random row of ``length`` input integers of kind ``uniform`` (the whole range), ``gaussian``
    (sigma 2 in real units, clipped), ``heavy`` (Student-t with 1.5 degrees of freedom, clipped: a few
    large outliers) or ``narrow`` (within 2 units of a random centre: many comparable terms)."""
    p = _check_params(p)
    length = int_param("length", length, 0, 1 << 24)
    lo, hi, one = p.in_min, p.in_max, 1 << p.in_frac
    if kind == "uniform":
        x = rng.integers(lo, hi + 1, length)
    elif kind == "gaussian":
        x = np.rint(rng.normal(0, 2 * one, length))
    elif kind == "heavy":
        x = np.rint(rng.standard_t(1.5, length) * one)
    elif kind == "narrow":
        c = rng.integers(lo, hi + 1)
        x = c + rng.integers(-2 * one, 2 * one + 1, length)
    else:
        raise ValueError(f"kind = {kind!r}: must be one of " + ", ".join(ROW_KINDS))
    return np.clip(x, lo, hi).astype(np.int64)


def edge_rows(p, length):
    """Named edge-case rows of ``length`` elements: ``{name: (x, mask)}``."""
    lo, hi = p.in_min, p.in_max
    none = np.zeros(length, dtype=bool)
    ramp = np.linspace(lo, hi, length).round().astype(np.int64) if length > 1 else np.array([0])
    one_max = np.full(length, lo, dtype=np.int64)
    one_max[length // 2] = hi
    return {
        "all_equal": (np.full(length, min(3, hi), dtype=np.int64), none),
        "all_min": (np.full(length, lo, dtype=np.int64), none),
        "all_max": (np.full(length, hi, dtype=np.int64), none),
        "one_max_rest_min": (one_max, none),
        "ascending": (ramp, none),
        "descending": (ramp[::-1].copy(), none),
        "all_masked": (np.arange(length, dtype=np.int64) % (hi + 1), np.ones(length, dtype=bool)),
        "one_unmasked": (np.full(length, hi, dtype=np.int64), np.arange(length) != length - 1),
    }


def split_rows(rows, p):
    """The rows as the hardware sees them: a row of more than ``B_max`` beats is cut after every
    ``B_max`` beats (``B_max * P`` elements). ``rows`` and the result are lists of ``(x, mask)``."""
    step = p.max_beats * p.lanes
    out = []
    for x, mask in rows:
        x = np.asarray(x)
        mask = np.zeros(x.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        for start in range(0, max(1, x.size), step):
            out.append((x[start:start + step], mask[start:start + step]))
    return out
