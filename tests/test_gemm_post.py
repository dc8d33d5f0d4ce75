"""The post-processing unit of the GEMM engine without VSQ: plain per-channel scaling of the
integer accumulator (fixed-point multiplier and shift, rounding half to even, ReLU, saturation to
INT8 / INT4, or FP32 rounded once), with a per-row factor (multiplier and shift streamed with the
activations of row m), against :func:`sim.golden.gemm.gemm` and
:func:`sim.golden.vsq.postprocess`.

Bench: ``sim/tb/gemm.py`` (cases with ``"post"`` and no ``"vsq"``; ``"row"``: random row factors,
else 1 and 0). The engine is the INT8-only one of tests/test_gemm.py (4 x 4, max_k 64).
"""

import numpy as np
import pytest

from gen.config import parse_config
from gen.emit import render
from sim import runner
from tests.conftest import build_block, write_json
from tests.test_gemm import INT8_ONLY

# The INT8-only engine of tests/test_gemm.py (one build for both files): 4 x 4, max_k 64, with a
# 16-bit column multiplier and an 8-bit row multiplier.
POST = INT8_ONLY


def run_cases(tmp_path, cases, seed, gap=0.0, stall=0.0, testcase="cases"):
    sim_build = build_block(POST, "gemm")
    env = {"ACCELGEN_GEMM_CASES": write_json(tmp_path, "cases.json", cases),
           "ACCELGEN_GAP": str(gap), "ACCELGEN_STALL": str(stall)}
    runner.run(sim_build, "sim.tb.gemm", testcase=testcase, extra_env=env, seed=seed)


def post_cases(rng):
    """INT8, INT4 and FP32 outputs with and without ReLU and row factors over random shapes, the
    extremes (all-min and all-max codes at max_k), exact ties, and unprocessed (accumulator) GEMMs
    between them."""
    g = POST["gemm"]
    cases = []
    for mode in g["modes"]:
        for output in ("int8", "int4", "fp32"):
            for relu in (False, True):
                for row in (False, True):
                    cases.append({"mode": mode, "m": int(rng.integers(1, g["max_m"] + 1)),
                                  "n": int(rng.integers(1, g["max_n"] + 1)),
                                  "k": int(rng.integers(1, g["max_k"] + 1)), "kind": "uniform",
                                  "post": output, "relu": relu, "row": row})
        for kind in ("min", "max"):
            for output in ("int8", "fp32"):
                cases.append({"mode": mode, "m": 2, "n": 3, "k": g["max_k"], "kind": kind,
                              "post": output, "relu": False, "row": True})
        cases.append({"mode": mode, "m": 3, "n": 4, "k": 7, "kind": "uniform"})
    for relu in (False, True):
        # multipliers 1 to 3, shifts 1 or 2: every odd product with shift 1 is a tie (the small
        # ones stay in range; the INT4 ties of tests/test_gemm_vsq.py hit the same rounding unit)
        cases.append({"mode": "int8", "m": 16, "n": 16, "k": 1, "kind": "uniform", "post": "int8",
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
    """Without VSQ the streams carry the post-processing parameters (per column on ``w``, per row
    on ``a``) but no scales."""
    import json

    man = json.loads(render(parse_config(POST))[POST["gemm"]["top"] + ".json"])
    names = {s: {f["name"].split(".")[0] for f in v["fields"]} for s, v in man["streams"].items()}
    assert names["cmd"] == {"m", "n", "k", "mode", "out", "relu"}
    assert names["w"] == {"data", "mult", "shift"}
    assert names["a"] == {"data", "mult", "shift"}
    assert man["streams"]["o"]["fields"][0]["width"] == 32   # FP32 results need 32 bits
