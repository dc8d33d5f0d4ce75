"""The GEMM engine in RTL simulation against the golden model (bench: ``sim/tb/gemm.py``)."""

import json
import shutil

import numpy as np
import pytest

from gen.config import parse_config
from sim import runner
from tests.conftest import build_block, write_json

# Small engines keep the builds short. NONSQUARE has R != C, neither a power of two, and tiny maxima
# so that every shape class fits, and the integer modes only (FP8 engines are below); SQUARE is a 4 x 4 array with one mode only (no fused multiplier).
NONSQUARE = {"gemm": {"top": "gemm_3x5", "rows": 3, "cols": 5, "modes": ["int8", "int4", "w4a8"],
                      "max_m": 20, "max_n": 24,
                      "max_k": 40, "acc_width": 24, "out_fifo_depth": 16}}
# The INT8-only engine also carries the post-processing unit (per-column and per-row factors):
# tests/test_gemm_post.py runs on the same build.
INT8_ONLY = {"gemm": {"top": "gemm_4x4_int8", "rows": 4, "cols": 4, "modes": ["int8"],
                      "max_m": 16, "max_n": 16, "max_k": 64, "acc_width": 22,
                      "vsq_post_mult_bits": 16, "vsq_post_row_mult_bits": 8}}
W4A8_INT4 = {"gemm": {"top": "gemm_2x6_w4a8", "rows": 2, "cols": 6, "modes": ["w4a8", "int4"],
                      "max_m": 8, "max_n": 16, "max_k": 16, "acc_width": 20, "out_fifo_depth": 4}}

MODES = ("int8", "int4", "w4a8")


def shape_cases(modes, max_m, max_n, max_k, rows, cols):
    """Named shape classes: single elements, non-multiples of R and C, exact tiles, the maxima."""
    shapes = [
        (1, 1, 1), (1, cols, rows), (2, cols + 1, rows + 1), (max_m, 1, 1), (1, max_n, 1),
        (1, 1, max_k), (5, 2 * cols - 1, 3 * rows - 1), (rows, cols, 2 * rows),
        (max_m, max_n, max_k),
    ]
    return [{"mode": mode, "m": m, "n": n, "k": k, "kind": "uniform"}
            for mode in modes for (m, n, k) in shapes]


def extreme_cases(modes, m, n, k):
    kinds = ("min", "max", "alternating", "zero")
    return [{"mode": mode, "m": m, "n": n, "k": k, "kind": kind} for mode in modes for kind in kinds]


def run_cases(tmp_path, sections, cases, seed, gap=0.0, stall=0.0, testcase="cases"):
    sim_build = build_block(sections, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.gemm", testcase=testcase, extra_env=env, seed=seed)


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_shapes_every_mode(tmp_path, seed, traffic):
    """Every mode and shape class, back to back, on a non-square 3 x 5 array."""
    g = NONSQUARE["gemm"]
    cases = shape_cases(MODES, g["max_m"], g["max_n"], g["max_k"], g["rows"], g["cols"])
    run_cases(tmp_path, NONSQUARE, cases, seed, *traffic)


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.2, 0.5)], ids=["steady", "gaps+stalls"])
def test_extremes_at_max_k(tmp_path, seed, traffic):
    """All-min, all-max and alternating operands at the largest K: the accumulator width rule holds
    (acc_width is the smallest the configuration allows for max_k)."""
    g = NONSQUARE["gemm"]
    run_cases(tmp_path, NONSQUARE, extreme_cases(MODES, 4, g["cols"] + 2, g["max_k"]), seed, *traffic)


@pytest.mark.sim
def test_bad_commands_are_dropped_and_counted(tmp_path, seed):
    run_cases(tmp_path, NONSQUARE, [], seed, testcase="bad_commands")


@pytest.mark.sim
@pytest.mark.parametrize("sections", [INT8_ONLY, W4A8_INT4], ids=["int8-only-4x4", "w4a8+int4-2x6"])
def test_other_mode_sets(tmp_path, seed, sections):
    """Engines built with fewer modes: a single-mode PE (plain multiplier) and a two-mode one, with a
    shallow output FIFO under backpressure."""
    g = sections["gemm"]
    cases = shape_cases(g["modes"], g["max_m"], g["max_n"], g["max_k"], g["rows"], g["cols"])
    cases += extreme_cases(g["modes"], 3, g["cols"], g["max_k"])
    run_cases(tmp_path, sections, cases, seed, 0.25, 0.5)


@pytest.mark.sim
def test_blackbox_sram_wrappers_with_their_models(tmp_path, seed):
    """With ``[flow] sram = "blackbox"`` the SRAM macros leave the top's Verilog for a model file
    that the manifest and filelist list; the engine built from both is bit-exact, under stalls."""
    sections = {**W4A8_INT4, "flow": {"sram": "blackbox"}}
    from gen.emit import emit
    folder = tmp_path / "rtl"
    emit(parse_config(sections), folder)
    top = W4A8_INT4["gemm"]["top"]
    manifest = json.loads((folder / f"{top}.json").read_text())
    assert manifest["sources"] == [f"{top}.v", f"{top}_sram_model.v"]
    srams = [e["module"] for e in manifest["hierarchy"] if e["component"].endswith("SramMacro")]
    assert srams
    text, model = (folder / f"{top}.v").read_text(), (folder / f"{top}_sram_model.v").read_text()
    blackbox = (folder / f"{top}_sram_blackbox.v").read_text()
    assert (folder / f"{top}.f").read_text() == f"{top}.v\n{top}_sram_model.v\n"
    for name in srams:
        assert f"module {name} " not in text and f"module {name} " in model
        assert f"(* blackbox *)\nmodule {name} " in blackbox
    g = W4A8_INT4["gemm"]
    cases = shape_cases(g["modes"], g["max_m"], g["max_n"], g["max_k"], g["rows"], g["cols"])
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": "0.25", "ACCELGEN_STALL": "0.5"}
    runner.run(build_block(sections, "gemm"), "sim.tb.gemm", testcase="cases", extra_env=env,
               seed=seed)


@pytest.mark.sim
@pytest.mark.slow
def test_random_stream_of_gemms(tmp_path, seed):
    """Many random GEMMs of random shapes and modes, with gaps and stalls."""
    rng = np.random.default_rng(seed)
    g = NONSQUARE["gemm"]
    cases = [{"mode": str(rng.choice(MODES)), "m": int(rng.integers(1, g["max_m"] + 1)),
              "n": int(rng.integers(1, g["max_n"] + 1)), "k": int(rng.integers(1, g["max_k"] + 1))}
             for _ in range(60)]
    run_cases(tmp_path, NONSQUARE, cases, seed, 0.2, 0.3)


@pytest.mark.sim
@pytest.mark.parametrize("std", runner.ICARUS_STANDARDS)
def test_icarus(tmp_path, seed, std):
    """The same Verilog on Icarus Verilog, when it is installed (CI installs it), under Verilog-2005
    and under SystemVerilog (IEEE 1800-2012) rules: bit-exact under both."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed (Debian package iverilog); Verilator covers the rest")
    g = W4A8_INT4["gemm"]
    cases = shape_cases(g["modes"], g["max_m"], g["max_n"], g["max_k"], g["rows"], g["cols"])
    sim_build = runner.emit_and_build(parse_config(W4A8_INT4), sim="icarus",
                                      icarus_std=std)["gemm"]
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": "0.2", "ACCELGEN_STALL": "0.3"}
    runner.run(sim_build, "sim.tb.gemm", testcase="cases", extra_env=env, seed=seed)


# FP8: a 2 x 3 array with every mode (so integer and FP8 tiles interleave), and an E4M3-only engine
# (the single-format decoder, no integer multiplier).
FP8_MIXED = {"gemm": {"top": "gemm_2x3_fp8", "rows": 2, "cols": 3,
                      "modes": ["int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2"], "max_m": 12, "max_n": 8,
                      "max_k": 24, "acc_width": 20, "out_fifo_depth": 4}}
FP8_E4M3_ONLY = {"gemm": {"top": "gemm_3x2_e4m3", "rows": 3, "cols": 2, "modes": ["fp8_e4m3"],
                          "max_m": 6, "max_n": 5, "max_k": 16, "acc_width": 20,
                          "out_fifo_depth": 8}}
FP_MODES = ("fp8_e4m3", "fp8_e5m2")


def fp8_directed_cases(modes, m, n, k):
    """Largest values, smallest subnormals, signed zeros, NaNs, infinities (E5M2), x + (-x) + tiny."""
    cases = []
    for mode in modes:
        kinds = ["max", "alternating", "min", "zero", "nan", "cancel"]
        if mode == "fp8_e5m2":
            kinds.append("inf")
        cases += [{"mode": mode, "m": m, "n": n, "k": k, "kind": kind} for kind in kinds]
        cases.append({"mode": mode, "m": m, "n": n, "k": k - 1, "kind": "cancel"})
    return cases


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_fp8_shapes_and_directed(tmp_path, seed, traffic):
    """FP8 modes in every shape class (random codes over the whole exponent range, NaN codes in the
    padding lanes) and the directed special cases, in random order with the integer modes' commands."""
    g = FP8_MIXED["gemm"]
    cases = shape_cases(g["modes"], g["max_m"], g["max_n"], g["max_k"], g["rows"], g["cols"])
    cases += fp8_directed_cases(FP_MODES, 3, g["cols"] + 1, g["max_k"])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cases))
    run_cases(tmp_path, FP8_MIXED, [cases[i] for i in order], seed, *traffic)


@pytest.mark.sim
def test_fp8_e4m3_only_engine(tmp_path, seed):
    g = FP8_E4M3_ONLY["gemm"]
    cases = shape_cases(["fp8_e4m3"], g["max_m"], g["max_n"], g["max_k"], g["rows"], g["cols"])
    cases += fp8_directed_cases(["fp8_e4m3"], 2, g["cols"] + 1, g["max_k"])
    run_cases(tmp_path, FP8_E4M3_ONLY, cases, seed, 0.25, 0.5)


@pytest.mark.sim
def test_fp8_bad_commands_are_dropped(tmp_path, seed):
    run_cases(tmp_path, FP8_MIXED, [], seed, testcase="bad_commands")


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("mode", FP_MODES)
def test_fp8_many_products(tmp_path, seed, mode):
    """At least 10**5 FP8 products of random codes (and some of every directed kind), with gaps and
    stalls: 0 mismatches."""
    rng = np.random.default_rng(seed)
    g = FP8_MIXED["gemm"]
    kinds = ["uniform"] * 6 + ["nan", "cancel", "min", "max"] + (["inf"] if mode == "fp8_e5m2" else [])
    cases, products = [], 0
    while products < 100_000:
        case = {"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                "n": int(rng.integers(1, g["max_n"] + 1)), "k": int(rng.integers(1, g["max_k"] + 1)),
                "kind": str(rng.choice(kinds))}
        cases.append(case)
        products += case["m"] * case["n"] * case["k"]
    run_cases(tmp_path, FP8_MIXED, cases, seed, 0.2, 0.3)
