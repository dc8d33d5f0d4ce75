"""cocotb bench: the digits MLP's quantized GEMMs through a VSQ GEMM engine.

The pytest side (``sim/bench/vsq_rtl.py``, ``tests/test_vsq_rtl.py``) builds a GEMM engine with
per-vector scaling (:class:`gen.gemm.GemmEngine`, ``gemm.vsq_vector_sizes`` holding 16) and
passes, in the environment:

ACCELGEN_MLP_MODEL : an ``.npz`` file with the float model (``w0``, ``b0``, ``w1``, ``b1``, ...)
    and the test images ``x`` (one per row).
ACCELGEN_MLP_SETTINGS : a JSON list of quantized settings ``{"name", "a_bits", "w_bits", "m",
    "calibration"}`` (VSQ with V = 16 for weights and activations, as
    :func:`sim.bench.vsq.mlp_forward_quantized` with scheme ``vsq``); ``"sparse": true`` sends the
    weight codes (2:4 already) compressed, as 2:4 commands (an engine built with ``sparsity =
    "2:4"``), checked against :func:`sim.golden.sparsity.sparse_vsq_gemm`.
ACCELGEN_GAP, ACCELGEN_STALL : probabilities of an idle cycle on every input stream and of a
    stalled cycle on the output (0 by default; cycles are meaningful only without them).
ACCELGEN_RESULTS : where the test writes, per setting, the logits computed from the engine's
    accumulators, and per GEMM its shape, cycles, accumulator mismatches and the RTL accumulators.

For every setting, the images go through the layers in batches of at most ``max_m`` rows. Each
layer's operands (codes and M-bit per-vector scales) come from
:func:`sim.bench.vsq.vsq_layer_operands`; the GEMM runs on the engine alone (accumulator output, no
post-processing), and every accumulator is compared with :func:`sim.golden.vsq.vsq_gemm`. The next
layer's input is computed from the **engine's** accumulators with the golden model's float steps
(:func:`sim.bench.vsq.layer_output`, bias, ReLU), so the logits are those of the RTL path; they
equal the golden model's exactly when no accumulator differs. Cycles are counted from the
command's handshake to the last result beat, without gaps or stalls.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from sim.bench import vsq as bench_vsq
from sim.golden import gemm as golden
from sim.golden import sparsity
from sim.golden import vsq as golden_vsq
from sim.runner import seed_from_env
from sim.tb.gemm import PERIOD_NS, GemmTB
from sim.tb.streams import gap_and_stall

VECTOR_SIZE = bench_vsq.VECTOR_SIZE


def load_model(path):
    """``(weights, biases, x)`` from the ``.npz`` of ACCELGEN_MLP_MODEL."""
    data = np.load(path)
    layers = len([name for name in data.files if name.startswith("w")])
    return ([data[f"w{i}"] for i in range(layers)], [data[f"b{i}"] for i in range(layers)],
            data["x"])


async def run_gemm(tb, ops, timeout_cycles, sparse=False):
    """One VSQ GEMM alone on the engine (``sparse``: a 2:4 command of the compressed weights);
    ``(rtl accumulators, golden accumulators, cycles)``."""
    dut = tb.dut
    a, w = ops["a"], ops["w"]
    m, n = a.shape[0], w.shape[1]
    before = len(tb.o.received)
    compressed = sparsity.compress(w) if sparse else None
    expected = tb.queue(ops["mode"], a, w, vsq=(VECTOR_SIZE, ops["s_qa"], ops["s_qw"]),
                        sparse=compressed)
    first_in, waited = None, 0
    while len(tb.o.received) < before + len(expected):
        await RisingEdge(dut.clk)
        waited += 1
        assert waited < timeout_cycles, f"no result after {timeout_cycles} cycles"
        if first_in is None and dut.cmd__valid.value and dut.cmd__ready.value:
            first_in = get_sim_time("ns") / PERIOD_NS
    cycles = int(get_sim_time("ns") / PERIOD_NS - first_in)
    pay = tb.man.payloads["o"]
    got = [pay.unpack(word) for word in tb.o.received[before:]]
    for i, (want, beat) in enumerate(zip(expected, got, strict=True)):
        tb.scoreboard.compare(want, (beat["data"], beat["last"]), f"beat {i} of {ops['mode']} "
                              f"{m}x{n}x{a.shape[1]}")
    rtl = golden.outputs_to_matrix([beat["data"] for beat in got], m, n, tb.cols)
    bits = tb.man.parameters["vsq_scale_bits"]
    if sparse:
        gold = sparsity.sparse_vsq_gemm(a, *compressed, ops["s_qa"], ops["s_qw"], mode=ops["mode"],
                                        vector_size=VECTOR_SIZE, scale_bits=bits)
    else:
        gold = golden_vsq.vsq_gemm(a, w, ops["s_qa"], ops["s_qw"], mode=ops["mode"],
                                   vector_size=VECTOR_SIZE, scale_bits=bits)
    while dut.busy.value:
        await RisingEdge(dut.clk)
    return rtl, gold, cycles


@cocotb.test()
async def mlp(dut):
    """Every setting of ACCELGEN_MLP_SETTINGS over the images of ACCELGEN_MLP_MODEL, layer by layer
    on the engine; writes ACCELGEN_RESULTS."""
    weights, biases, x = load_model(os.environ["ACCELGEN_MLP_MODEL"])
    with open(os.environ["ACCELGEN_MLP_SETTINGS"], encoding="utf-8") as f:
        settings = json.load(f)
    gap, stall = gap_and_stall()
    tb = GemmTB(dut, seed=seed_from_env(1), gap=gap, stall=stall)
    await tb.start()
    p = tb.man.parameters
    batch = tb.man.config["max_m"]
    assert p["vsq_scale_bits"] == settings[0]["m"] and VECTOR_SIZE in p["vsq_vector_sizes"]
    results = []
    for setting in settings:
        assert setting["m"] == p["vsq_scale_bits"], "the engine is built for one M"
        logits, gemms = [], []
        for start in range(0, len(x), batch):
            h = x[start:start + batch]
            last = len(weights) - 1
            for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
                ops = bench_vsq.vsq_layer_operands(h, w, setting["a_bits"], setting["w_bits"],
                                                   setting["m"], setting["calibration"])
                m, k = ops["a"].shape
                n = ops["w"].shape[1]
                tiles = -(-n // tb.cols) * -(-k // golden.tile_k(ops["mode"], tb.rows))
                budget = int((1000 + 4 * tiles * (m + 2 * tb.rows + tb.cols + 8))
                             / max(0.05, (1 - gap) * (1 - stall)))
                rtl, gold, cycles = await run_gemm(tb, ops, budget,
                                                   sparse=bool(setting.get("sparse")))
                gemms.append({"layer": i, "first_image": start, "mode": ops["mode"], "m": m,
                              "n": n, "k": k, "cycles": cycles,
                              "mismatches": int(np.count_nonzero(rtl != gold)),
                              "accumulators": rtl.tolist()})
                h = bench_vsq.layer_output(rtl, ops["gamma"]) + b
                if i < last:
                    h = np.maximum(h, 0)
            logits.append(h)
        results.append({"name": setting["name"], "logits": np.concatenate(logits).tolist(),
                        "gemms": gemms})
    with open(os.environ["ACCELGEN_RESULTS"], "w", encoding="utf-8") as f:
        json.dump(results, f)
    tb.scoreboard.check()
    dut._log.info("%d result beats matched", tb.scoreboard.compared)
