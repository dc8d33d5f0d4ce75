"""The softmax golden model on its own: its table, its error against the float64 reference, its edge
cases (sim/golden/softmax.py documents them)."""

import numpy as np
import pytest

from gen.softmax import derive_widths as hw_derive_widths
from gen.softmax import exp2_entries
from sim.golden import softmax as golden

# The formats the error bound is checked for, with the derived widths: the default INT8 unit, a 16-bit
# input with a wide output at L_max = 4096, and one lane.
FORMATS = {
    "int8f4-o8-P4-L1024": golden.SoftmaxParams(in_width=8, in_frac=4, out_frac=8, max_len=1024,
                                               lanes=4),
    "int16f8-o12-P8-L4096": golden.SoftmaxParams(in_width=16, in_frac=8, out_frac=12, max_len=4096,
                                                 lanes=8),
    "int6f2-o6-P1-L256": golden.SoftmaxParams(in_width=6, in_frac=2, out_frac=6, max_len=256, lanes=1),
}


def lengths(max_len):
    return list(range(1, 65)) + [1 << k for k in range(7, max_len.bit_length()) if 1 << k <= max_len]


@pytest.mark.parametrize(("F", "S"), [(0, 10), (2, 9), (4, 28), (6, 38), (8, 20), (10, 16)])
def test_table_two_ways(F, S):
    """The generator's table (nested integer square roots) equals the model's (float estimate refined
    by integer comparisons), and every entry is the correctly rounded 2**(r/2**F) * 2**S."""
    p = golden.SoftmaxParams(in_width=12, in_frac=F, sum_frac=S)
    table = golden.exp2_table(p)
    assert table == exp2_entries(F, S)
    assert table[0] == 1 << S and all(1 << S <= t < 1 << (S + 1) for t in table)
    approx = np.exp2(np.arange(1 << F) / (1 << F) + S)
    assert np.all(np.abs(np.array(table, dtype=np.float64) - approx) <= 0.5 + 1e-9 * approx)


def test_derived_widths_agree_with_the_generator():
    for out_frac, max_len in [(8, 1024), (12, 4096), (1, 1), (16, 16384)]:
        assert golden.derive_widths(out_frac, max_len) == hw_derive_widths(out_frac, max_len)
    assert golden.SoftmaxParams(out_frac=8, max_len=1024).sum_frac == 8 + 12 + 8


def _rows(p, rng):
    for L in lengths(p.max_len):
        for kind in golden.ROW_KINDS:
            yield f"L={L} {kind}", golden.random_row(rng, L, p, kind), None
        mask = rng.random(L) < 0.3
        yield f"L={L} masked", golden.random_row(rng, L, p, "gaussian"), mask
        if L in (1, 2, 3, 7, 64) or L >= 128:
            for name, (x, m) in golden.edge_rows(p, L).items():
                yield f"L={L} {name}", x, m


@pytest.mark.parametrize("name", list(FORMATS))
def test_error_bound_every_length(name, seed):
    """Max abs error <= 0.51 LSB against the float64 reference, row sums within L * 0.5 LSB of 1.0,
    and the argmax kept wherever the reference's top two differ by more than 1 LSB, for every length
    1 to 64 and every power of two up to L_max."""
    p = FORMATS[name]
    table = golden.exp2_table(p)
    rng = np.random.default_rng(seed)
    one = 1 << p.out_frac
    worst = 0.0
    for label, x, mask in _rows(p, rng):
        y, empty = golden.softmax(x, mask, p=p, table=table)
        ref = golden.reference(x, mask, in_frac=p.in_frac) * one
        err = np.abs(y - ref).max()
        worst = max(worst, err)
        assert err <= 0.51, f"{label}: error {err:.4f} LSB"
        live = np.ones(x.size, bool) if mask is None else ~mask
        if empty:
            assert not live.any() and not y.any()
            continue
        n = int(live.sum())
        assert abs(int(y.sum()) - one) <= n * 0.5, f"{label}: row sum {y.sum()} vs {one}"
        top2 = np.sort(ref)[-2:] if ref.size > 1 else np.array([0.0, ref[0]])
        if top2[1] - top2[0] > 1:
            assert np.argmax(y) == np.argmax(ref), label
    assert worst > 0.3, "the rows never exercise the rounding"


def test_narrow_widths_miss_the_bound():
    """The bound needs the derived widths: 10-bit sums and reciprocal exceed it on long rows
    (so the error test above can fail)."""
    p = golden.SoftmaxParams(in_width=8, in_frac=4, out_frac=8, max_len=1024, lanes=4,
                             sum_frac=10, recip_bits=10)
    table = golden.exp2_table(p)
    rng = np.random.default_rng(3)
    worst = 0.0
    for L in (8, 64, 256, 1024):
        for kind in golden.ROW_KINDS:
            x = golden.random_row(rng, L, p, kind)
            y, _ = golden.softmax(x, p=p, table=table)
            worst = max(worst, np.abs(y - golden.reference(x, in_frac=4) * 256).max())
    assert worst > 0.51


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_edge_cases(lanes):
    p = golden.SoftmaxParams(lanes=lanes, max_len=64)
    one = 1 << p.out_frac
    for L in (1, 2, 5, 16, 64):
        rows = golden.edge_rows(p, L)
        for name in ("all_equal", "all_min", "all_max"):
            y, empty = golden.softmax(*rows[name], p=p)
            assert not empty and len(set(y.tolist())) == 1, name
            assert abs(y[0] - one / L) <= 0.51, (name, L, y[0])
        y, _ = golden.softmax(*rows["one_unmasked"], p=p)
        assert y[-1] == one and not y[:-1].any()
        y, empty = golden.softmax(*rows["all_masked"], p=p)
        assert empty and not y.any() and y.size == L
        y, _ = golden.softmax(*rows["one_max_rest_min"], p=p)
        # 2**(min - max) = 2**-16 is below half an output LSB (2**-9) even 63 times over.
        assert y[L // 2] == one and y.sum() == one
        asc, _ = golden.softmax(*rows["ascending"], p=p)
        desc, _ = golden.softmax(*rows["descending"], p=p)
        assert np.all(np.diff(asc) >= 0)
        assert np.array_equal(desc, asc[::-1]) or lanes > 1  # beat order changes the truncations
    y, empty = golden.softmax([5], p=p)
    assert y.tolist() == [one] and not empty


def test_single_beat_uses_no_renormalization():
    """Lane order inside a beat does not matter; across beats it may (shifts of partial sums)."""
    p = golden.SoftmaxParams(lanes=8, max_len=64)
    rng = np.random.default_rng(0)
    x = golden.random_row(rng, 8, p)
    y, _ = golden.softmax(x, p=p)
    perm = rng.permutation(8)
    y2, _ = golden.softmax(x[perm], p=p)
    assert np.array_equal(y[perm], y2)


def test_split_rows_and_padding():
    p = golden.SoftmaxParams(lanes=3, max_len=7)  # 3 beats, 9 elements per piece
    parts = golden.split_rows([(np.arange(20), None)], p=p)
    assert [len(x) for x, _ in parts] == [9, 9, 2]
    xb, mb = golden.to_beats(np.arange(4), None, 3)
    assert xb.tolist() == [[0, 1, 2], [3, 0, 0]]
    assert mb.tolist() == [[False] * 3, [False, True, True]]


def test_bad_rows_are_refused():
    p = golden.SoftmaxParams(in_width=8)
    with pytest.raises(ValueError, match=r"row has values outside \[-128, 127\]"):
        golden.softmax([128], p=p)
    with pytest.raises(ValueError, match=r"mask shape \(2,\) differs from the row's \(1,\)"):
        golden.softmax([1], [True, False], p=p)
    with pytest.raises(ValueError, match="kind = 'flat': must be one of uniform, gaussian"):
        golden.random_row(np.random.default_rng(0), 4, p, "flat")


@pytest.mark.parametrize("call, error, message", [
    (lambda p: golden.softmax(np.array([0.5, 1.7, -3.2]), p=p), ValueError,
     "row has non-integer values (first: 0.5 at [0]): must hold integers (integral floats are "
     "accepted)"),
    (lambda p: golden.softmax([1.0, np.nan], p=p), ValueError,
     "row has NaN values (first at [1]): must hold integers"),
    (lambda p: golden.softmax([1, 200], p=p), ValueError,
     "row has values outside [-128, 127] of signed 8-bit inputs (first: 200 at [1])"),
    (lambda p: golden.softmax([[1, 2]], p=p), ValueError,
     "row has shape (1, 2): must have one dimension (a row)"),
    (lambda p: golden.softmax(np.zeros(65, int), p=p), ValueError,
     "row has 65 elements: at most 64 (max_len = 64 in beats of 4); the unit cuts longer rows, "
     "split_rows gives the pieces it computes"),
    (lambda p: golden.softmax([1, 2], [0.5, 0], p=p), ValueError,
     "mask must hold booleans (or 0 and 1); it has dtype float64"),
    (lambda p: golden.softmax([1, 2], p), TypeError,
     "the parameters were given as the mask: p is keyword-only (softmax(x, p=p) or "
     "softmax(x, mask, p=p))"),
    (lambda p: golden.softmax([1, 2], p={"lanes": 4}), TypeError,
     "p is a dict: must be a SoftmaxParams"),
    (lambda p: golden.softmax([1, 2], p=p, table=[1, 2]), ValueError,
     "table has 2 entries: must be exp2_table(p), 2**in_frac = 16 entries"),
    (lambda p: golden.softmax_beats(np.zeros((17, 4), int), np.zeros((17, 4), bool), p), ValueError,
     "xb has shape (17, 4): must be (beats, lanes = 4) with 1 to max_beats = 16 beats"),
    (lambda p: golden.random_row(np.random.default_rng(0), -1, p), ValueError,
     "length = -1: must be an integer from 0 to 16777216"),
])
def test_bad_inputs_are_named(call, error, message):
    """Golden-model inputs are checked like sim.golden.vsq's: no silent truncation of fractions, no
    NaN warnings, no assertion on long rows, no positional mix-up of mask and parameters."""
    p = golden.SoftmaxParams(max_len=64, lanes=4)
    with pytest.raises(error) as info:
        call(p)
    assert str(info.value) == message


def test_integral_inputs_of_any_dtype_are_taken():
    p = golden.SoftmaxParams(max_len=64)
    y, _ = golden.softmax([3, -2, 7], p=p)
    for x in (np.array([3.0, -2.0, 7.0]), np.array([3, -2, 7], dtype=np.int8), (3, -2, 7)):
        assert np.array_equal(golden.softmax(x, [0, 0, 0], p=p)[0], y)


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 0}, "SoftmaxParams.lanes = 0: must be an integer from 1 to 16"),
    ({"lanes": 2.0}, "SoftmaxParams.lanes = 2.0: must be an integer from 1 to 16"),
    ({"max_len": 0}, "SoftmaxParams.max_len = 0: must be an integer from 1 to 16384"),
    ({"in_width": 1}, "SoftmaxParams.in_width = 1: must be an integer from 2 to 24"),
    ({"in_frac": 8}, "SoftmaxParams.in_frac = 8: must be at most in_width - 1 = 7"),
    ({"out_frac": True}, "SoftmaxParams.out_frac = True: must be an integer from 1 to 16"),
    ({"recip_bits": 2}, "SoftmaxParams.recip_bits = 2: must be 0 (derived) or from 4 to 40"),
    ({"sum_frac": 1, "recip_bits": 4, "out_frac": 16},
     "SoftmaxParams.sum_frac + recip_bits = 5: must be at least out_frac + 1 = 17 (the final "
     "rounding shifts right)"),
])
def test_params_are_checked_on_construction(kwargs, message):
    with pytest.raises(ValueError) as info:
        golden.SoftmaxParams(**kwargs)
    assert str(info.value) == message


def test_edge_rows_are_inputs_of_the_narrowest_unit():
    """Every edge row is a legal input, also at the narrowest input width (2 bits)."""
    p = golden.SoftmaxParams(in_width=2, in_frac=0, out_frac=1, max_len=4, lanes=1)
    for L in (1, 2, 4):
        for name, (x, m) in golden.edge_rows(p, L).items():
            assert p.in_min <= x.min() and x.max() <= p.in_max, name
