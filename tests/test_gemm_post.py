"""The post-processing unit of the GEMM engine without VSQ: plain per-channel scaling of the
integer accumulator (fixed-point multiplier and shift, rounding half to even, ReLU, saturation to
INT8 / INT4), against :func:`sim.golden.gemm.gemm` and :func:`sim.golden.vsq.postprocess`.

Bench: ``sim/tb/gemm.py`` (cases with ``"post"`` and no ``"vsq"``). The engine is small (3 x 2,
INT8 and INT4, max_k 24) and built once.
"""

import numpy as np
import pytest

from gen.config import parse_config
from gen.emit import render
from sim import runner
from tests.conftest import build_block, write_json

POST = {"gemm": {"top": "gemm_post_3x2", "rows": 3, "cols": 2, "modes": ["int8", "int4"],
                 "max_m": 5, "max_n": 5, "max_k": 24, "acc_width": 20, "out_fifo_depth": 4,
                 "vsq_post_mult_bits": 16}}


def run_cases(tmp_path, cases, seed, gap=0.0, stall=0.0, testcase="cases"):
    sim_build = build_block(POST, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.gemm", testcase=testcase, extra_env=env, seed=seed)


def post_cases(rng):
    """INT8 and INT4 outputs with and without ReLU over random shapes, the extremes (all-min and
    all-max codes at max_k), exact ties, and unprocessed (accumulator) GEMMs between them."""
    g = POST["gemm"]
    cases = []
    for mode in g["modes"]:
        for output in ("int8", "int4"):
            for relu in (False, True):
                cases.append({"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                              "n": int(rng.integers(1, g["max_n"] + 1)),
                              "k": int(rng.integers(1, g["max_k"] + 1)), "kind": "uniform",
                              "post": output, "relu": relu})
        for kind in ("min", "max"):
            cases.append({"mode": mode, "m": 2, "n": 3, "k": g["max_k"], "kind": kind,
                          "post": "int8", "relu": False})
        cases.append({"mode": mode, "m": 3, "n": 4, "k": 7, "kind": "uniform"})
    for relu in (False, True):
        cases.append({"mode": "int4", "m": 5, "n": 5, "k": 1, "kind": "uniform", "post": "int8",
                      "relu": relu, "ties": True})
    return [cases[i] for i in rng.permutation(len(cases))]


@pytest.mark.sim
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["steady", "gaps+stalls"])
def test_post_processing_without_vsq(tmp_path, seed, traffic):
    rng = np.random.default_rng(seed + 2)
    run_cases(tmp_path, post_cases(rng), seed, *traffic)


@pytest.mark.sim
def test_post_bad_commands_are_dropped(tmp_path, seed):
    """Output 3 and post-processed FP8 commands are dropped and counted with the other bad ones."""
    run_cases(tmp_path, [], seed, testcase="bad_commands")


def test_post_engine_has_no_vsq_ports():
    """Without VSQ the streams carry the post-processing parameters but no scales."""
    import json

    man = json.loads(render(parse_config(POST))["gemm_post_3x2.json"])
    names = {s: {f["name"].split(".")[0] for f in v["fields"]} for s, v in man["streams"].items()}
    assert names["cmd"] == {"m", "n", "k", "mode", "out", "relu"}
    assert names["w"] == {"data", "mult", "shift"}
    assert names["a"] == {"data"}
