"""The system-level golden model (sim/golden/system.py): composed block models and the
word-level executor, without a simulator."""

import numpy as np
import pytest

from sim import host as H
from sim.bench import vsq as B
from sim.golden import gemm as G
from sim.golden import softmax as SM
from sim.golden import system as GS
from tests.test_host import W4A4, W4A8, make_manifest


@pytest.fixture(scope="module")
def digits():
    return B.train_digits_mlp(max_iter=40, seed=0)


@pytest.mark.parametrize("setting", [W4A4, W4A8], ids=["W4A4", "W4A8"])
def test_mlp_logits_equal_vsq_golden_path(digits, setting):
    x = digits["x_test"][:100]
    want = B.mlp_forward_quantized(digits, x, setting["a_bits"], setting["w_bits"], "vsq",
                                   setting["m"], setting["calibration"])
    assert np.array_equal(GS.mlp_logits(digits, x, setting), want)
    # batching does not change a row's result (activation scales are per image)
    assert np.array_equal(np.concatenate([GS.mlp_logits(digits, x[i:i + 7], setting)
                                          for i in range(0, 100, 7)]), want)


def _qkv(seed, L=64, d=16):
    return np.random.default_rng(seed).standard_normal((3, L, d))


def _params(man):
    return GS.softmax_params(H.System(man).softmax)


def test_attention_golden_composition(seed):
    """Scores are the post unit's rounding of the real base-2 scores, probabilities are the
    softmax unit's (clamped to 127), BMM2 is exact."""
    q, k, v = _qkv(seed)
    qu = H.quantize_attention(q, k, v, in_frac=4)
    p = SM.SoftmaxParams(in_width=8, in_frac=4, out_frac=7, max_len=64, lanes=4)
    g = GS.attention(qu["q"], qu["k"], qu["v"], qu["mult"], qu["shift"], p)
    exact = (qu["q"] @ qu["k"].T) * (qu["mult"] / 2.0 ** qu["shift"])
    assert np.all(np.abs(g["scores"] - np.clip(exact, -128, 127)) <= 0.5 + 1e-9)
    assert np.allclose(qu["mult"] / 2.0 ** qu["shift"], qu["score_scale"], rtol=2 ** -15)
    assert qu["score_peak"] == pytest.approx(np.abs(exact).max())
    assert qu["saturated"] == np.mean((exact > 127.5) | (exact < -128.5))
    assert g["probs"].min() >= 0 and g["probs"].max() <= 127
    row = 5
    assert np.array_equal(g["probs"][row], np.minimum(SM.softmax(g["scores"][row], p=p)[0], 127))
    assert np.all(np.abs(g["probs"].sum(1) - 128) <= 64 * 0.51 + 1)
    assert np.array_equal(g["acc"], g["probs"] @ qu["v"])


def test_attention_score_range():
    """Unit-variance Q and K (d = 16) use most of the INT8 range at in_frac = 4 without
    saturating; Q three times larger saturates some scores, and the report says so."""
    q, k, v = _qkv(0)
    qu = H.quantize_attention(q, k, v, in_frac=4)
    assert 64 < qu["score_peak"] < 127.5 and qu["saturated"] == 0
    big = H.quantize_attention(3 * q, k, v, in_frac=4)
    assert big["score_peak"] > 127.5 and 0 < big["saturated"] < 0.1


def test_attention_error_against_float64():
    """Seed 0, L = 64, d = 16: the INT8 head stays within 10 % RMS of float64 attention (most
    of it the probabilities' 7 fraction bits); a wrong log2(e) or 1/sqrt(d) would not."""
    q, k, v = _qkv(0)
    ref = GS.attention_float(q, k, v)
    man = make_manifest(1, 1)
    plan = H.attention_plan(man, q, k, v)
    res, _, _ = GS.execute(man, plan)
    err = GS.attention_error(res["output"], ref)
    assert err["rel_rms"] < 0.1
    qu = res["quant"]
    wrong = H.quantize_attention(q, k, v, in_frac=3)         # scores off by a factor of 2
    g = GS.attention(qu["q"], qu["k"], qu["v"], wrong["mult"], wrong["shift"], _params(man))
    assert GS.attention_error(g["acc"] * qu["s_v"] / 128, ref)["rel_rms"] > 2 * err["rel_rms"]


@pytest.mark.parametrize("kx,ky,d", [(1, 1, 16), (2, 2, 16), (4, 4, 16), (2, 2, 32)])
def test_attention_plan_executes_bit_exact(kx, ky, d):
    man = make_manifest(kx, ky)
    q, k, v = _qkv(1, d=d)
    plan = H.attention_plan(man, q, k, v)
    assert plan.static and len(plan.phases) == 1
    res, received, ws = GS.execute(man, plan)
    qu = res["quant"]
    gold = GS.attention(qu["q"], qu["k"], qu["v"], qu["mult"], qu["shift"], _params(man))
    assert np.array_equal(res["acc"], gold["acc"])
    assert ws.gemms == [2] * (kx * ky)
    # ideal cycles: BMM1 and BMM2 of each tile's rows
    rows = [r1 - r0 for r0, r1 in plan.info["rows"]]
    assert plan.ideal_cycles == [G.ideal_cycles(mt, 64, d, "int8", 4, 4)
                                 + G.ideal_cycles(mt, d, 64, "int8", 4, 4) for mt in rows]
    assert plan.phases[0].ideal_cycles == plan.ideal_cycles
    assert sum(len(p["words"]) for p in received[0]) == plan.phases[0].host_words == 64 * d // 4


def test_attention_host_packets_from_golden(seed):
    """HOST packets built from the golden BMM2 accumulators (one tile's rows after another),
    in random order, reassemble into the golden result."""
    rng = np.random.default_rng(seed)
    man = make_manifest()
    system = H.System(man)
    q, k, v = _qkv(2)
    plan = H.attention_plan(man, q, k, v)
    qu = H.quantize_attention(q, k, v, in_frac=4)
    gold = GS.attention(qu["q"], qu["k"], qu["v"], qu["mult"], qu["shift"], _params(man))["acc"]
    packets = []
    for node, (r0, r1) in enumerate(plan.info["rows"]):
        words = system.output_words(gold[r0:r1])
        for i in range(0, len(words), 7):
            packets.append({"src": node, "header": system.header_word("host", r0 * 4 + i),
                            "words": words[i:i + 7]})
    result = plan.finish([[packets[i] for i in rng.permutation(len(packets))]])
    assert np.array_equal(result["acc"], gold)
    assert np.allclose(result["output"], gold * qu["s_v"] / 128)


def test_attention_plan_errors():
    q, k, v = _qkv(0)
    with pytest.raises(ValueError, match=r"attention needs tiles with a softmax unit"):
        H.attention_plan(make_manifest(softmax=False), q, k, v)
    with pytest.raises(ValueError, match=r"L = 62: must be a multiple of the softmax lanes = 4"):
        H.attention_plan(make_manifest(), q[:62], k[:62], v[:62])
    big = np.zeros((68, 16))
    with pytest.raises(ValueError, match=r"L = 68: more than the softmax unit's max_len = 64"):
        H.attention_plan(make_manifest(), big, big, big)
    with pytest.raises(ValueError, match=r"q, k, v have shapes \(64, 16\), \(64, 8\), \(64, 16\): "
                                         r"must be equal"):
        H.attention_plan(make_manifest(), q, k[:, :8], v)
    with pytest.raises(ValueError, match=r"attention needs the post-processing unit"):
        H.attention_plan(make_manifest(gemm={"vsq_post_mult_bits": 0}), q, k, v)


def test_executor_refuses_spec_violations():
    man = make_manifest(1, 1)
    s = H.System(man)
    ws = GS.WordSystem(man)
    cmd = s.header_word("cmd")
    with pytest.raises(ValueError, match=r"tile 0: 17 commands queued, more than cmd_depth = 16"):
        for _ in range(3):
            ws.inject(H.Packet([cmd] + [s.wait_command(1)] * 7, node=0))
    ws = GS.WordSystem(man)
    ws.inject(H.Packet([cmd, s.gemm_command(m=2, n=4, k=8, mode="int8", a_addr=0, a_count=3,
                                            w_addr=0, w_count=8, o_addr=0)], node=0))
    with pytest.raises(ValueError, match=r"tile 0: GEMM int8 2x4x8 with a_count 3, w_count 8: "
                                         r"the engine takes 4 and 8"):
        ws.run()
    with pytest.raises(ValueError, match=r"packet of 8 payload words: must be 1 to "
                                         r"max_packet_flits - 1 = 7"):
        GS.WordSystem(man).inject(H.Packet([cmd] + [s.wait_command(0)] * 8, node=0))
    ws = GS.WordSystem(man)
    ph = H.Phase("p", [H.Packet([cmd, s.send_command(a_addr=0, a_count=3, kind="host", node=0)],
                                node=0)], host_words=4)
    with pytest.raises(ValueError, match=r"phase 'p': 3 HOST words received, the phase waits "
                                         r"for 4"):
        ws.run_phase(ph)


@pytest.mark.parametrize("dest_x,dest_y", [(2, 0), (0, 2), (3, 1)])
def test_executor_refuses_a_unicast_outside_the_mesh(dest_x, dest_y):
    """A SEND to (dest_x, dest_y) outside the mesh (the fields are wider than the mesh) is not
    delivered to another node: the RTL drops and counts it, the executor refuses it."""
    man = make_manifest(2, 2)
    s = H.System(man)
    send = s.command.pack(op=s.ops["send"], a_addr=0, a_count=1, kind=s.kinds["data"], o_addr=9,
                          dest_x=dest_x, dest_y=dest_y)
    ws = GS.WordSystem(man)
    ws.inject(H.Packet([s.header_word("cmd"), send], node=1))
    with pytest.raises(ValueError, match=rf"tile 1: SEND to \({dest_x}, {dest_y}\), outside the "
                                         r"2 x 2 mesh"):
        ws.run()
    assert ws.counter == [0] * 4                 # (2, 0) would have been node 2's
    with pytest.raises(ValueError, match=r"packet to node 4: outside the 2 x 2 mesh"):
        ws.inject(H.Packet([s.header_word("data", 0), 1], node=4))


def test_executor_wait_blocks_until_data():
    man = make_manifest(1, 1)
    s = H.System(man)
    ws = GS.WordSystem(man)
    ws.inject(H.Packet([s.header_word("cmd"), s.wait_command(3),
                        s.send_command(a_addr=10, a_count=3, kind="host", tag=5, node=0)], node=0))
    ws.run()
    assert ws.host == [] and len(ws.fifo[0]) == 2
    ws.inject(H.Packet([s.header_word("data", 10), 7, 8, 9], node=0))
    ws.run()
    assert ws.host == [{"src": 0, "header": s.header_word("host", 5), "words": [7, 8, 9]}]
    assert ws.counter == [0]
