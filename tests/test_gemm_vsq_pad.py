"""VSQ on array heights whose k tile does not divide V: each vector of V elements occupies
ceil(V / tile) k tiles of its own, the last one padded (:func:`sim.golden.gemm.k_tiles`).

Bench: ``sim/tb/gemm.py``. Engines: R = 3 (int8 and w4a8 tile 3, int4 tile 6: V = 16 takes 6 and
3 tiles, V = 32 takes 11 and 6, V = 64 22 and 11; with the post unit and per-row factors behind
the VSQ unit; the engine of tests/test_gemm_vsq.py) in the quick subset, and R = 16 with INT4
(tile 32 > V = 16: one half-empty tile per vector) marked slow. Padding lanes of the streams
carry junk (-3) that the engine must ignore.
"""

import numpy as np
import pytest

from gen.config import ConfigError, parse_config
from gen.lib.formats import k_tile_count, max_k_tiles
from sim import runner
from sim.golden import gemm as golden
from sim.golden import vsq as golden_vsq
from tests.conftest import build_block, write_json
from tests.test_gemm_vsq import VSQ

MODES = ("int8", "int4", "w4a8")
# The quick VSQ engine of tests/test_gemm_vsq.py (one build for both files): R = 3, C = 3, max_k
# 64, V = 16, 32, 64, post unit with per-row factors.
R3 = VSQ
R16 = {"gemm": {"top": "gemm_vsq_r16", "rows": 16, "cols": 2, "modes": ["int8", "int4"],
                "max_m": 3, "max_n": 3, "max_k": 80, "acc_width": 32, "out_fifo_depth": 4,
                "vsq_vector_sizes": [16, 32], "vsq_scale_bits": 4}}


def run_cases(tmp_path, sections, cases, seed, gap=0.0, stall=0.0, testcase="cases"):
    sim_build = build_block(sections, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.gemm", testcase=testcase, extra_env=env, seed=seed)


def pad_cases(rng, g, extremes=True):
    """Every mode and V: K inside one vector, at a vector's end, across vectors with a short last
    vector, and max_k; random scales; the extremes at max_k; plain GEMMs between them."""
    cases = []
    for mode in g["modes"]:
        for v in g["vsq_vector_sizes"]:
            for k in sorted({1, v - 1, v, v + 5, g["max_k"]}):
                if k > g["max_k"]:
                    continue
                cases.append({"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                              "n": int(rng.integers(1, g["max_n"] + 1)), "k": k,
                              "kind": "uniform", "vsq": v, "scales": "mixed"})
            if extremes:
                cases.append({"mode": mode, "m": 2, "n": g["cols"] + 1, "k": g["max_k"],
                              "kind": str(rng.choice(["min", "max"])), "vsq": v,
                              "scales": "max"})
        cases.append({"mode": mode, "m": 2, "n": 3, "k": g["max_k"] - 1, "kind": "uniform"})
        if g.get("vsq_post_mult_bits"):
            # the post unit behind the VSQ unit, with per-row factors: INT8 / INT4 / FP32
            for output in ("int8", "int4", "fp32"):
                cases.append({"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                              "n": int(rng.integers(1, g["max_n"] + 1)),
                              "k": int(rng.integers(1, g["max_k"] + 1)), "kind": "uniform",
                              "vsq": int(rng.choice(g["vsq_vector_sizes"])), "scales": "mixed",
                              "post": output, "relu": bool(rng.integers(0, 2)), "row": True})
    return [cases[i] for i in rng.permutation(len(cases))]


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_v_not_a_multiple_of_the_tile_r3(tmp_path, seed, traffic):
    rng = np.random.default_rng(seed + 3)
    # (the extremes run on this engine in tests/test_gemm_vsq.py)
    run_cases(tmp_path, R3, pad_cases(rng, R3["gemm"], extremes=False), seed, *traffic)


@pytest.mark.sim
@pytest.mark.slow
def test_tile_longer_than_v_r16_int4(tmp_path, seed):
    """R = 16: INT4's k tile (32) holds one V = 16 vector, half of it padding; V = 32 fills it.
    INT8 (tile 16) beside it; gaps and stalls."""
    rng = np.random.default_rng(seed + 4)
    run_cases(tmp_path, R16, pad_cases(rng, R16["gemm"]), seed, 0.3, 0.4)


def test_k_tiles_rule():
    """Each vector has its own ceil(V / tile) tiles; the figures quoted in the README."""
    assert golden.k_tile_count(16, "int8", 3, 16) == 6           # 16 -> 18 elements
    assert golden.k_tile_count(256, "int8", 3, 16) == 96          # plain: ceil(256 / 3) = 86
    assert golden.k_tile_count(256, "int8", 3) == 86
    assert golden.k_tile_count(16, "int4", 16, 16) == 1           # 16 of 32 lanes
    assert golden.k_tiles(37, "int8", 3, 16)[4:7] == [(12, 15), (15, 16), (16, 19)]
    for k in range(1, 200):
        for mode in MODES:
            for rows in (1, 2, 3, 5, 6, 16):
                for v in (None, 16, 32, 64):
                    tiles = golden.k_tiles(k, mode, rows, v)
                    assert len(tiles) == golden.k_tile_count(k, mode, rows, v) == k_tile_count(
                        k, golden.tile_k(mode, rows), v)
                    # the tiles cover 0 .. k-1 once, in order, none crossing a vector's end
                    assert [i for a, b in tiles for i in range(a, b)] == list(range(k))
                    if v:
                        assert all(a // v == (b - 1) // v for a, b in tiles)


def test_v16_works_on_every_height():
    """V = 16 (and 32, 64) builds on every R from 1 to 64 with every integer mode; the activation
    buffer grows with the padded tiles."""
    for rows in range(1, 65):
        g = parse_config({"gemm": {"rows": rows, "modes": list(MODES), "max_k": 64, "max_m": 4,
                                   "acc_width": 40, "vsq_vector_sizes": [16, 32, 64]}}).gemm
        assert max_k_tiles(rows, g.modes, g.vsq_vector_sizes, 64) >= -(-64 // rows)


def test_padded_activation_buffer_message():
    with pytest.raises(ConfigError) as info:
        parse_config({"gemm": {"rows": 3, "modes": ["int8"], "max_k": 65536, "max_m": 43,
                               "acc_width": 41, "vsq_vector_sizes": [16]}})
    assert str(info.value) == (
        "gemm.max_m = 43: max_m * 24576 (the k tiles of max_k with VSQ vectors padded to whole "
        "tiles) must be at most 1048576 activation-buffer words; it is 1056768")
    # without VSQ the same array needs ceil(65536 / 3) = 21846 words per row: it fits
    parse_config({"gemm": {"rows": 3, "modes": ["int8"], "max_k": 65536, "max_m": 43,
                           "acc_width": 41}})


@pytest.mark.parametrize("sections", [R3, R16], ids=["r3", "r16"])
def test_pad_engines_have_the_narrowest_accumulator(sections):
    g = sections["gemm"]
    need = max(golden_vsq.acc_width(mo, v, g["vsq_scale_bits"], g["max_k"])
               for mo in g["modes"] for v in g["vsq_vector_sizes"])
    assert g["acc_width"] == need


# A longer engine for the cost of the padding in cycles (slow): R = 3, INT8, M up to 24.
R3_MEASURE = {"gemm": {"top": "gemm_vsq_r3m", "rows": 3, "cols": 2, "modes": ["int8"],
                       "max_m": 24, "max_n": 2, "max_k": 96, "acc_width": 32,
                       "out_fifo_depth": 16, "vsq_vector_sizes": [16, 32], "vsq_scale_bits": 4}}


@pytest.mark.sim
@pytest.mark.slow
def test_padding_cost_in_cycles(tmp_path, seed):
    """R = 3, M = 24, N = 2, K = 96 in INT8: plain (32 k tiles), V = 16 (6 vectors of 6 tiles: 36)
    and V = 32 (3 of 11: 33). Each tile streams M rows, so the cycles grow by M per extra tile and
    the fixed overhead is the same; the figures go to the README (run with -s to see them)."""
    import json

    cases = [{"mode": "int8", "m": 24, "n": 2, "k": 96, "kind": "uniform"},
             {"mode": "int8", "m": 24, "n": 2, "k": 96, "kind": "uniform", "vsq": 16,
              "scales": "uniform"},
             {"mode": "int8", "m": 24, "n": 2, "k": 96, "kind": "uniform", "vsq": 32,
              "scales": "uniform"}]
    results = tmp_path / "results.json"
    sim_build = build_block(R3_MEASURE, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_RESULTS": str(results)}
    runner.run(sim_build, "sim.tb.gemm", testcase="measure", extra_env=env, seed=seed)
    got = json.loads(results.read_text())
    overheads = []
    for case in got:
        tiles = golden.k_tile_count(96, "int8", 3, case.get("vsq"))
        overheads.append(case["cycles"] - tiles * case["m"])
        print(f"V = {case.get('vsq', '-')}: {tiles} k tiles, {case['cycles']} cycles, "
              f"ideal {24 * 2 * 96 // 6}, utilization {24 * 2 * 96 / 6 / case['cycles']:.1%}")
    assert max(overheads) - min(overheads) <= 2, overheads
