"""Per-vector scaled (VS-Quant) GEMMs on the engine against :func:`sim.golden.vsq.vsq_gemm`.

Bench: ``sim/tb/gemm.py`` (cases with ``"vsq": V``). The engine is small (3 x 3, max_k 64) and built
once; its accumulator is the narrowest the VSQ rule allows, so the all-extreme cases prove that no sum
overflows.
"""

import numpy as np
import pytest

from gen.config import ConfigError, parse_config
from gen.lib.formats import VSQ_VECTOR_SIZES, vsq_acc_width, vsq_partial_width
from sim import runner
from sim.golden import gemm as golden
from sim.golden import vsq as golden_vsq
from tests.conftest import assert_lint_clean, build_block, write_json

MODES = ("int8", "int4", "w4a8")
SIZES = [16, 32, 64]
# R = 3: the k tiles (3 in INT8 and W4A8, 6 in INT4) divide no V, so every vector is padded
# (tests/test_gemm_vsq_pad.py); the post unit has per-row factors.
VSQ = {"gemm": {"top": "gemm_vsq_3x3", "rows": 3, "cols": 3, "modes": list(MODES),
                "max_m": 6, "max_n": 8, "max_k": 64, "acc_width": 31, "out_fifo_depth": 8,
                "vsq_vector_sizes": SIZES, "vsq_scale_bits": 4, "vsq_post_mult_bits": 12,
                "vsq_post_row_mult_bits": 6}}
# Without the post-processing unit, M = 8, a 2 x 2 array, INT4 and W4A8 only (slow: a second build).
VSQ_PLAIN = {"gemm": {"top": "gemm_vsq_2x2", "rows": 2, "cols": 2, "modes": ["int4", "w4a8"],
                      "max_m": 5, "max_n": 5, "max_k": 48, "acc_width": 35, "out_fifo_depth": 4,
                      "vsq_vector_sizes": [16, 32], "vsq_scale_bits": 8}}


def run_cases(tmp_path, cases, seed, gap=0.0, stall=0.0, testcase="cases", sections=VSQ):
    sim_build = build_block(sections, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.gemm", testcase=testcase, extra_env=env, seed=seed)


@pytest.mark.parametrize("sections", [VSQ, VSQ_PLAIN], ids=["vsq", "plain"])
def test_test_engines_have_the_narrowest_accumulator(sections):
    g = sections["gemm"]
    need = max(golden_vsq.acc_width(mo, v, g["vsq_scale_bits"], g["max_k"])
               for mo in g["modes"] for v in g["vsq_vector_sizes"])
    assert g["acc_width"] == need
    with pytest.raises(ConfigError):
        parse_config({"gemm": dict(g, acc_width=need - 1)})


def shape_cases(rng):
    """Every mode and V over the shape classes (one element, partial vectors, several vectors, the
    maxima), with random scales, and plain (unscaled) GEMMs of the same shapes between them."""
    g = VSQ["gemm"]
    cases = []
    for mode in MODES:
        for v in SIZES:
            for m, n, k in [(1, 1, 1), (1, g["cols"], v), (2, g["cols"] + 1, min(v + 1, 63)),
                            (3, 2 * g["cols"] - 1, min(2 * v + 3, g["max_k"])),
                            (g["max_m"], g["max_n"], g["max_k"]), (g["max_m"], 1, g["max_k"] - 5)]:
                cases.append({"mode": mode, "m": m, "n": n, "k": k, "kind": "uniform", "vsq": v,
                              "scales": str(rng.choice(["uniform", "mixed"]))})
        cases.append({"mode": mode, "m": 3, "n": g["cols"] + 2, "k": 37, "kind": "uniform"})
    order = rng.permutation(len(cases))
    return [cases[i] for i in order]


def extreme_cases(g=VSQ["gemm"]):
    """All-min, all-max and alternating codes at max_k with every scale at 2**M - 1 (the largest sums
    of either sign), and zero and one scales."""
    cases = []
    for mode in g["modes"]:
        for v in g["vsq_vector_sizes"]:
            for kind in ("min", "max", "alternating"):
                cases.append({"mode": mode, "m": 2, "n": g["cols"] + 1, "k": g["max_k"],
                              "kind": kind, "vsq": v, "scales": "max"})
        cases.append({"mode": mode, "m": 2, "n": 2, "k": g["max_k"], "kind": "min", "vsq": 16,
                      "scales": "zero"})
        cases.append({"mode": mode, "m": 2, "n": 2, "k": 40, "kind": "uniform", "vsq": 32,
                      "scales": "one"})
        cases.append({"mode": mode, "m": 2, "n": 3, "k": 33, "kind": "uniform", "vsq": 16,
                      "scales": "mixed"})
    return cases


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_vsq_shapes_every_mode_and_v(tmp_path, seed, traffic):
    rng = np.random.default_rng(seed)
    run_cases(tmp_path, shape_cases(rng), seed, *traffic)


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.2, 0.5)], ids=["steady", "gaps+stalls"])
def test_vsq_extremes_cannot_overflow(tmp_path, seed, traffic):
    """The accumulator is the narrowest the rule allows; the largest sums of either sign come out
    exact."""
    g = VSQ["gemm"]
    bound = max(golden_vsq.acc_bound(mo, v, g["vsq_scale_bits"], g["max_k"])
                for mo in MODES for v in SIZES)
    assert bound < 2 ** (g["acc_width"] - 1)
    run_cases(tmp_path, extreme_cases(), seed, *traffic)


def post_cases(rng):
    """Post-processed GEMMs (INT8, INT4 and FP32 outputs, with and without ReLU, half of them with
    random per-row factors) of every mode, VSQ and plain, between accumulator-output ones."""
    g = VSQ["gemm"]
    cases = []
    for mode in MODES:
        for output in ("int8", "int4", "fp32"):
            for relu in (False, True):
                for vsq in (16, 32, None):
                    m = int(rng.integers(1, g["max_m"] + 1))
                    n = int(rng.integers(1, g["max_n"] + 1))
                    k = int(rng.integers(1, g["max_k"] + 1))
                    case = {"mode": mode, "m": m, "n": n, "k": k, "kind": "uniform",
                            "post": output, "relu": relu, "row": bool(rng.integers(0, 2))}
                    if vsq:
                        case.update(vsq=vsq, scales="mixed")
                    cases.append(case)
            cases.append({"mode": mode, "m": 2, "n": 5, "k": 64, "kind": "min", "vsq": 64,
                          "scales": "max", "post": output, "relu": False})
        cases.append({"mode": mode, "m": 3, "n": 4, "k": 20, "kind": "uniform", "vsq": 16})
    # INT4 products with multipliers 1 to 3 and shifts 1, 2 stay within INT8: many exact ties.
    for relu in (False, True):
        cases.append({"mode": "int4", "m": 6, "n": 7, "k": 1, "kind": "uniform", "vsq": 16,
                      "scales": "one", "post": "int8", "relu": relu, "ties": True})
    order = rng.permutation(len(cases))
    return [cases[i] for i in order]


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_post_processing(tmp_path, seed, traffic):
    """Per-column multiplier and shift with rounding half to even, ReLU, saturation to INT8 / INT4,
    against sim.golden.vsq.postprocess."""
    rng = np.random.default_rng(seed + 1)
    run_cases(tmp_path, post_cases(rng), seed, *traffic)


@pytest.mark.sim
@pytest.mark.slow
def test_engine_without_post_processing(tmp_path, seed):
    """A second VSQ engine: no post-processing unit, M = 8, R = 2 (INT4 k tile 4), INT4 and W4A8;
    random shapes and the extremes, with gaps and stalls."""
    g = VSQ_PLAIN["gemm"]
    rng = np.random.default_rng(seed)
    cases = extreme_cases(g)
    for _ in range(12):
        mode = str(rng.choice(g["modes"]))
        cases.append({"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                      "n": int(rng.integers(1, g["max_n"] + 1)),
                      "k": int(rng.integers(1, g["max_k"] + 1)), "kind": "uniform",
                      "vsq": int(rng.choice(g["vsq_vector_sizes"])), "scales": "uniform"})
    run_cases(tmp_path, cases, seed, 0.2, 0.3, sections=VSQ_PLAIN)


# ---- configuration rule: V, R and the mode; the accumulator width -------------------------------

BASE = {"rows": 4, "cols": 3, "modes": list(MODES), "max_k": 64, "max_m": 6, "max_n": 7,
        "acc_width": 31}


@pytest.mark.parametrize("data, message", [
    ({"vsq_post_mult_bits": 1},
     "gemm.vsq_post_mult_bits = 1: must be 0 (none) or from 2 to 32"),
    ({"vsq_vector_sizes": [16], "vsq_post_mult_bits": 1},
     "gemm.vsq_post_mult_bits = 1: must be 0 (none) or from 2 to 32"),
    ({"vsq_vector_sizes": [16], "vsq_post_mult_bits": 33},
     "gemm.vsq_post_mult_bits = 33: must be an integer from 0 to 32"),
    ({"vsq_vector_sizes": [16, 24]},
     "gemm.vsq_vector_sizes = [16, 24]: must be a list of distinct integers from: 16, 32, 64 "
     "(empty for none)"),
    ({"vsq_vector_sizes": [16, 16]},
     "gemm.vsq_vector_sizes = [16, 16]: must be a list of distinct integers from: 16, 32, 64 "
     "(empty for none)"),
    ({"vsq_vector_sizes": 16},
     "gemm.vsq_vector_sizes = 16: must be a list of distinct integers from: 16, 32, 64 "
     "(empty for none)"),
    ({"vsq_vector_sizes": [16], "vsq_scale_bits": 9},
     "gemm.vsq_scale_bits = 9: must be an integer from 3 to 8"),
    ({"vsq_vector_sizes": [16], "modes": ["fp8_e4m3"]},
     "gemm.vsq_vector_sizes = [16]: must be empty when gemm.modes has no integer mode (int8, int4, "
     "w4a8)"),
    ({"vsq_vector_sizes": [16, 64], "acc_width": 30},
     "gemm.acc_width = 30: must be at least 31 for VSQ (Na + Nw + log2 V + 2M + log2(max_k / V) + 1 "
     "over the integer modes and gemm.vsq_vector_sizes, M = 4)"),
    ({"vsq_vector_sizes": [16], "vsq_scale_bits": 8, "modes": ["int4"], "acc_width": 30},
     "gemm.acc_width = 30: must be at least 31 for VSQ (Na + Nw + log2 V + 2M + log2(max_k / V) + 1 "
     "over the integer modes and gemm.vsq_vector_sizes, M = 8)"),
])
def test_vsq_config_messages(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config({"gemm": dict(BASE, **data)})
    assert str(info.value) == message


@pytest.mark.parametrize("mode", MODES)
def test_width_rules_match_the_golden_model(mode):
    for v in VSQ_VECTOR_SIZES:
        assert vsq_partial_width([mode], [v]) == golden_vsq.partial_sum_width(mode, v)
        for bits in range(3, 9):
            for max_k in (1, 15, 16, 17, 64, 100, 256, 4096, 65536):
                assert vsq_acc_width(mode, v, bits, max_k) == golden_vsq.acc_width(mode, v, bits,
                                                                                   max_k)


def test_config_acc_width_is_the_rule():
    """The smallest accepted acc_width is the largest rule width over the modes and V's (and the
    plain INT8 rule)."""
    for modes in (["int4"], ["w4a8"], list(MODES)):
        for sizes in ([16], [32, 64], [16, 32, 64]):
            for bits in (3, 6, 8):
                need = max(vsq_acc_width(mo, v, bits, 256) for mo in modes for v in sizes)
                g = dict(BASE, rows=2, modes=modes, max_k=256, vsq_vector_sizes=sizes,
                         vsq_scale_bits=bits)
                parse_config({"gemm": dict(g, acc_width=max(need, 24))})
                if need > 24:
                    with pytest.raises(ConfigError):
                        parse_config({"gemm": dict(g, acc_width=need - 1)})


def test_scale_beats_follow_the_data_beats():
    """The scale lanes line up with weight_beats and act_beats, one vector per k tile."""
    rng = np.random.default_rng(0)
    rows, cols, k, m, n, v = 4, 3, 37, 5, 7, 16
    for mode in MODES:
        a, w = golden.random_operands(rng, m, n, k, mode)
        s_qa = rng.integers(0, 16, size=(m, 3))
        s_qw = rng.integers(0, 16, size=(3, n))
        wsc = golden.weight_scale_beats(s_qw, mode, rows, cols, k, v)
        asc = golden.act_scale_beats(s_qa, mode, rows, k, v)
        assert len(wsc) == len(golden.weight_beats(w, mode, rows, cols))
        assert len(asc) == len(golden.act_beats(a, mode, rows))
        tk = golden.tile_k(mode, rows)
        ktiles = -(-k // tk)
        assert asc == [int(s_qa[i, t * tk // v]) for t in range(ktiles) for i in range(m)]
        per_tile = len(wsc) // (ktiles * -(-n // cols))
        assert wsc[per_tile * (ktiles + 2)] == [int(s_qw[2 * tk // v, cols + c]) for c in range(3)]
        assert wsc[-1] == [int(s_qw[(ktiles - 1) * tk // v, 6]), 0, 0]
    # a k tile longer than V (int4, R = 16: 32 > 16) holds one vector per tile
    assert golden.act_scale_beats(np.arange(3)[None], "int4", 16, 40, 16) == [0, 1, 2]
    assert golden.weight_scale_beats(np.arange(3)[:, None], "int4", 16, 1, 40, 16) == (
        [[0]] * 16 + [[1]] * 16 + [[2]] * 16)


@pytest.mark.sim
def test_vsq_bad_commands_are_dropped(tmp_path, seed):
    """A VSQ command with a V select that was not built is dropped and counted, like the plain
    engine's bad commands; a valid VSQ command then runs correctly."""
    run_cases(tmp_path, [], seed, testcase="bad_vsq_commands")


# FP8 modes beside VSQ and post-processing: VSQ and post-processed commands in FP8 modes are
# dropped, plain FP8 commands run as before (a 2 x 2 array).
VSQ_FP8 = {"gemm": {"top": "gemm_vsq_fp8", "rows": 2, "cols": 2,
                    "modes": ["int8", "int4", "fp8_e4m3"], "max_m": 4, "max_n": 5, "max_k": 32,
                    "acc_width": 30, "out_fifo_depth": 4, "vsq_vector_sizes": [16],
                    "vsq_scale_bits": 4, "vsq_post_mult_bits": 8}}


@pytest.mark.parametrize("sections", [VSQ, VSQ_PLAIN, VSQ_FP8], ids=["vsq", "plain", "fp8"])
def test_verilator_lint(tmp_path, sections):
    """The VSQ builds pass `verilator --lint-only` with the runner's waivers."""
    from gen.emit import render

    top = sections["gemm"]["top"]
    assert_lint_clean(tmp_path, render(parse_config(sections))[f"{top}.v"], top)


@pytest.mark.sim
@pytest.mark.slow
def test_fp8_beside_vsq_and_post(tmp_path, seed):
    """Plain FP8, VSQ and post-processed integer commands interleaved; then the bad-command check
    (VSQ or post-processed FP8 commands are dropped)."""
    rng = np.random.default_rng(seed)
    cases = []
    for kind in ("uniform", "max", "nan", "cancel"):
        cases.append({"mode": "fp8_e4m3", "m": 3, "n": 3, "k": int(rng.integers(1, 33)),
                      "kind": kind})
    for mode in ("int8", "int4"):
        cases.append({"mode": mode, "m": 4, "n": 3, "k": 32, "kind": "min", "vsq": 16,
                      "scales": "max"})
        cases.append({"mode": mode, "m": 3, "n": 3, "k": int(rng.integers(1, 33)),
                      "kind": "uniform", "vsq": 16, "scales": "mixed", "post": "int4",
                      "relu": True})
        cases.append({"mode": mode, "m": 2, "n": 2, "k": 19, "kind": "uniform", "post": "int8"})
    cases = [cases[i] for i in rng.permutation(len(cases))]
    run_cases(tmp_path, cases, seed, 0.2, 0.3, sections=VSQ_FP8)
    run_cases(tmp_path, [], seed, testcase="bad_vsq_commands", sections=VSQ_FP8)
