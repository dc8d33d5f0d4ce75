"""2:4 sparse GEMMs on the engine (``sparsity = "2:4"``) against :mod:`sim.golden.sparsity`.

Bench: ``sim/tb/gemm.py`` (cases with ``"sparse": kind``). One engine with every mode, VS-Quant and
the post-processing unit, built once: directed cases (every metadata pattern, all 16 position
pairs, kept zeros and empty groups, K not a multiple of 4, extremes), random streams of dense and
sparse commands back to back, under random gaps and stalls.
"""

import json

import numpy as np
import pytest

from gen.config import ConfigError, parse_config
from gen.emit import emit
from sim import runner
from tests.conftest import build_block, write_json

MODES = ("int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2")
INT_MODES = ("int8", "int4", "w4a8")
KINDS = ("pruned", "patterns", "kept_zeros", "any_meta")
SPARSE = {"gemm": {"top": "gemm_sparse_4x3", "rows": 4, "cols": 3, "modes": list(MODES),
                   "max_m": 12, "max_n": 8, "max_k": 72, "acc_width": 32, "out_fifo_depth": 8,
                   "vsq_vector_sizes": [16, 32], "vsq_scale_bits": 4, "vsq_post_mult_bits": 12,
                   "sparsity": "2:4"}}


def run_cases(tmp_path, cases, seed, gap=0.0, stall=0.0, testcase="cases"):
    sim_build = build_block(SPARSE, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.gemm", testcase=testcase, extra_env=env, seed=seed)


def directed_cases():
    """Every mode and sparse kind over K classes (1 to 3, not a multiple of 4, whole tiles, the
    largest), extremes, and a dense command of each mode between them."""
    g = SPARSE["gemm"]
    cases = []
    for mode in MODES:
        for i, kind in enumerate(KINDS):
            for m, n, k in [(1, 1, 1), (2, 3, 3), (3, 4, 6), (2, g["cols"], 8), (4, 5, 13),
                            (3, 2 * g["cols"] + 1, 35), (g["max_m"], g["max_n"], g["max_k"])]:
                cases.append({"mode": mode, "m": m, "n": n, "k": k, "sparse": kind})
            cases.append({"mode": mode, "m": 3, "n": 4, "k": 17 + i})   # dense, between
        extremes = ("min", "max", "alternating", "zero") if mode in INT_MODES else \
            ("max", "alternating", "zero", "nan", "cancel")
        for kind in extremes:
            cases.append({"mode": mode, "m": 3, "n": 4, "k": g["max_k"] - 1, "kind": kind,
                          "sparse": "pruned"})
        if mode == "fp8_e5m2":
            cases.append({"mode": mode, "m": 3, "n": 4, "k": 30, "kind": "inf", "sparse": "pruned"})
    return cases


def vsq_post_cases(rng):
    """Sparse VSQ commands of every integer mode and V (vectors on the dense K index), and
    post-processed sparse commands, with dense ones of the same shapes between them."""
    g = SPARSE["gemm"]
    cases = []
    for mode in INT_MODES:
        for v in g["vsq_vector_sizes"]:
            for m, n, k in [(1, 1, 3), (2, 4, v + 5), (3, 5, 2 * v + 2), (g["max_m"], 3, g["max_k"])]:
                for sparse in ("pruned", "patterns"):
                    cases.append({"mode": mode, "m": m, "n": n, "k": k, "vsq": v, "sparse": sparse,
                                  "scales": str(rng.choice(["uniform", "mixed"]))})
                cases.append({"mode": mode, "m": m, "n": n, "k": k, "vsq": v})
        for out in ("int8", "int4", "fp32"):
            cases.append({"mode": mode, "m": 4, "n": 5, "k": 29, "sparse": "pruned", "post": out,
                          "relu": bool(rng.integers(0, 2))})
            cases.append({"mode": mode, "m": 3, "n": 4, "k": 40, "sparse": "kept_zeros",
                          "vsq": 16, "post": out})
    return cases


def random_cases(rng, count):
    """Random modes, shapes, kinds, dense or sparse, VSQ or not."""
    g = SPARSE["gemm"]
    cases = []
    for _ in range(count):
        mode = str(rng.choice(MODES))
        case = {"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                "n": int(rng.integers(1, g["max_n"] + 1)),
                "k": int(rng.integers(1, g["max_k"] + 1))}
        if rng.random() < 0.7:
            case["sparse"] = str(rng.choice(KINDS))
        if mode in INT_MODES and rng.random() < 0.3 and case.get("sparse") != "any_meta":
            case["vsq"] = int(rng.choice(g["vsq_vector_sizes"]))
        cases.append(case)
    return cases


def products(cases):
    """Multiplies of a case list's 2:4 commands: M * N * K4 / 2 (the kept values times rows)."""
    return sum(c["m"] * c["n"] * (-(-c["k"] // 4) * 2) for c in cases if c.get("sparse"))


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_directed(tmp_path, seed, traffic):
    run_cases(tmp_path, directed_cases(), seed, *traffic)


@pytest.mark.sim
def test_vsq_and_post_processing(tmp_path, seed):
    run_cases(tmp_path, vsq_post_cases(np.random.default_rng(seed)), seed, 0.2, 0.3)


@pytest.mark.sim
def test_bad_commands_are_dropped_and_counted(tmp_path, seed):
    run_cases(tmp_path, [], seed, testcase="bad_commands")


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "int4", "fp8_e4m3", "w4a8", "fp8_e5m2"])
def test_many_products_per_mode(tmp_path, seed, mode):
    """At least 10^5 sparse products of ``mode`` (plus dense commands between), gaps and stalls."""
    rng = np.random.default_rng(seed)
    g = SPARSE["gemm"]
    cases = []
    while products([c for c in cases if c["mode"] == mode]) < 100_000:
        case = {"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                "n": int(rng.integers(1, g["max_n"] + 1)),
                "k": int(rng.integers(1, g["max_k"] + 1)), "sparse": str(rng.choice(KINDS))}
        cases.append(case)
        if rng.random() < 0.2:
            cases.append(random_cases(rng, 1)[0])
    run_cases(tmp_path, cases, seed, 0.2, 0.3)


@pytest.mark.sim
@pytest.mark.slow
def test_random_stream(tmp_path, seed):
    run_cases(tmp_path, random_cases(np.random.default_rng(seed), 150), seed, 0.25, 0.4)


def test_config_rules():
    with pytest.raises(ConfigError, match=r'gemm.rows = 3: must be even with gemm.sparsity = "2:4"'):
        parse_config({"gemm": {"rows": 3, "sparsity": "2:4"}})
    with pytest.raises(ConfigError, match='gemm.sparsity = "1:2": must be one of none, 2:4'):
        parse_config({"gemm": {"sparsity": "1:2"}})
    with pytest.raises(ConfigError, match="system.gemm.rows = 3: must be even"):
        parse_config({"system": {"gemm": {"rows": 3, "cols": 3, "sparsity": "2:4"}}})


def _pe_module(folder, top):
    text = (folder / f"{top}.v").read_text()
    name = f"{top}_pe"
    start = text.index(f"module {name}(")
    return text[start:text.index("endmodule", start)]


def test_dense_build_carries_no_sparse_hardware(tmp_path):
    """The same engine without ``sparsity``: no meta ports, 8-bit activation lanes, no selection in
    the PE, and the manifest names no 2:4 field; with it, the PE's activation lane is a group."""
    dense = {"gemm": {k: v for k, v in SPARSE["gemm"].items() if k != "sparsity"}}
    emit(parse_config(dense), tmp_path / "dense")
    emit(parse_config(SPARSE), tmp_path / "sparse")
    top = SPARSE["gemm"]["top"]
    pe_dense, pe_sparse = _pe_module(tmp_path / "dense", top), _pe_module(tmp_path / "sparse", top)
    assert "w_meta" not in pe_dense and "a_sel" not in pe_dense and "input [7:0] a_i;" in pe_dense
    assert "w_meta" in pe_sparse and "input [31:0] a_i;" in pe_sparse
    man = json.loads((tmp_path / "dense" / f"{top}.json").read_text())
    assert "sparse_modes" not in man["performance"] and "sparsity" not in man["parameters"]
    text = json.dumps(man["streams"])
    assert "meta" not in text and '"sparse"' not in text
    sp = json.loads((tmp_path / "sparse" / f"{top}.json").read_text())
    assert sp["performance"]["sparse_modes"]["int8"]["macs_per_cycle"] == 2 * 4 * 3
    assert sp["parameters"]["sparse_format"]["w.meta"]


def test_sparse_engine_is_lint_clean(tmp_path):
    from tests.conftest import assert_lint_clean
    emit(parse_config(SPARSE), tmp_path / "rtl")
    top = SPARSE["gemm"]["top"]
    assert_lint_clean(tmp_path, (tmp_path / "rtl" / f"{top}.v").read_text(), top)
