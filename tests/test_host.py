"""The host program builder (sim/host.py), without a simulator.

The manifests are the generator's: :func:`make_manifest` elaborates the system top of a
configuration (``gen.emit.manifest_of``, no Verilog written), so the builder is checked against
the word layouts the RTL really has.
"""

import copy
import functools
import json
import math

import numpy as np
import pytest

from gen import emit
from gen.config import parse_config
from sim import host as H
from sim.golden import gemm as G
from sim.golden import system as GS

DEMO = {"kx": 2, "ky": 2, "spad_words": 4096, "cmd_depth": 16, "max_packet_flits": 8,
        "gemm": {"rows": 4, "cols": 4, "modes": ["int8", "int4", "w4a8"], "max_m": 64,
                 "max_n": 128, "max_k": 128, "acc_width": 32, "vsq_vector_sizes": [16],
                 "vsq_scale_bits": 4, "vsq_post_mult_bits": 16, "vsq_post_row_mult_bits": 0},
        "softmax": {"lanes": 4, "in_width": 8, "in_frac": 4, "out_frac": 7, "max_len": 64}}


@functools.cache
def _emitted(key):
    return emit.manifest_without_verilog(parse_config({"system": json.loads(key)}), "system")


def make_manifest(kx=2, ky=2, softmax=True, **over):
    """The emitted manifest of the system ``DEMO`` with ``kx`` x ``ky`` tiles and the settings of
    ``over`` (``gemm={...}`` updates the engine's); without a softmax unit unless ``softmax``.
    Elaborated once per configuration (a fresh copy each call: tests may edit it)."""
    cfg = copy.deepcopy(DEMO)
    cfg.update(kx=kx, ky=ky, **{k: v for k, v in over.items() if k != "gemm"})
    cfg["gemm"].update(over.get("gemm", {}))
    if not softmax:
        del cfg["softmax"]
    return copy.deepcopy(_emitted(json.dumps(cfg, sort_keys=True)))


@pytest.fixture(scope="module")
def system():
    return H.System(make_manifest())


# -- words -----------------------------------------------------------------------------------------

def test_layout_roundtrip(system, seed):
    rng = np.random.default_rng(seed)
    for name, lay in system.layouts.items():
        values = {}
        for fname, (_, width, signed) in lay.fields.items():
            top = 1 << (width - 1 if signed else width)
            lo, hi = (-top, top - 1) if signed else (0, top - 1)
            values[fname] = int(rng.integers(lo, hi, endpoint=True))
        word = lay.pack(values)
        assert word < 1 << lay.width, name
        got = lay.unpack(word)
        flat = {}
        for key, value in got.items():
            if isinstance(value, list):
                assert f"{key}.0" not in got
                flat.update({f"{key}.{i}": v for i, v in enumerate(value)})
            else:
                flat[key] = value
        assert flat == values, name
        assert lay.pack(got) == word, name


def test_stream_payload_is_the_layout_without_range_checks():
    """sim.tb.streams.Payload (every bench's) is sim.layout.Layout cutting values to their
    fields' widths, as the benches' drivers always had it."""
    from sim.layout import Layout
    from sim.tb.streams import Payload
    entry = {"width": 12, "fields": [
        {"name": "data.0", "offset": 0, "width": 4, "format": "sint4"},
        {"name": "data.1", "offset": 4, "width": 4, "format": "sint4"},
        {"name": "last", "offset": 8, "width": 1, "format": "uint1"},
        {"name": "x", "offset": 9, "width": 3, "format": "uint3"}]}
    pay = Payload(entry)
    assert isinstance(pay, Layout) and pay.width == 12
    assert pay.fields["data.1"] == (4, 4, True)
    word = pay.pack(data=[-1, 3], last=1, x=9)                 # x = 9 cut to 1
    assert word == 0xF | 3 << 4 | 1 << 8 | 1 << 9
    assert pay.unpack(word) == {"data": [-1, 3], "last": 1, "x": 1}
    with pytest.raises(ValueError, match=r"layout.x = 9: does not fit 3 bits"):
        Layout(entry).pack(x=9)


def test_layout_nested_and_lists(system):
    w = system.command.pack(op=0, gemm={"m": 5, "n": 7, "k": 9, "mode": 2, "vsq": 1})
    u = system.command.unpack(w)
    assert (u["gemm.m"], u["gemm.n"], u["gemm.k"], u["gemm.mode"], u["gemm.vsq"]) == (5, 7, 9, 2, 1)
    assert system.a.unpack(system.a.pack(data=[1, 2, 3, 255], scale=9))["data"] == [1, 2, 3, 255]


def test_layout_errors(system):
    with pytest.raises(ValueError, match=r"layout 'command' has no field 'bogus'"):
        system.command.pack(bogus=1)
    with pytest.raises(ValueError, match=r"command.gemm.m = 128: does not fit 7 bits"):
        system.command.pack(gemm={"m": 128})
    with pytest.raises(ValueError, match=r"a.data: 3 values for 4 lanes"):
        system.a.pack(data=[1, 2, 3])
    with pytest.raises(ValueError, match=r"manifest has no 'words' \(the word layouts command, "
                                         r"header, a, w, o\): not the manifest of a system top"):
        H.System({"parameters": {}})
    with pytest.raises(ValueError, match=r"manifest is a list: must be a dict"):
        H.System([])


@pytest.mark.parametrize("missing, message", [
    ((("words", "w"), ("words", "o")), r"manifest 'words' lacks the layouts w, o$"),
    ((("parameters", "cmd_depth"), ("parameters", "ops")),
     r"manifest 'parameters' lacks cmd_depth, ops$"),
    ((("parameters", "softmax_out_frac"),), r"manifest 'parameters' lacks softmax_out_frac$"),
    ((("parameters", "kinds", "host"),), r"manifest parameter 'kinds' lacks host$"),
    ((("parameters",),), r"manifest has no 'parameters'"),
    ((("words", "command", "fields"),), r"manifest layout 'command': needs 'width' and 'fields'"),
], ids=["layouts", "parameters", "softmax", "kinds", "no-parameters", "layout-fields"])
def test_manifest_read_strictly(missing, message):
    """Every layout and parameter the host reads must be in the manifest: nothing is defaulted,
    and the error names what is missing."""
    man = make_manifest()
    for path in missing:
        node = man
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    with pytest.raises(ValueError, match=message):
        H.System(man)


def test_codes_from_the_manifest():
    """ops and kinds are the manifest's (the generator's gen.tile.OPS / KINDS), not copies."""
    from gen.tile import KINDS, OPS
    s = H.System(make_manifest(softmax=False))
    assert s.ops == OPS and s.kinds == KINDS and s.softmax is None
    man = make_manifest()
    man["parameters"]["kinds"] = {"cmd": 1, "data": 2, "host": 0}
    s = H.System(man)
    assert s.header.unpack(s.header_word("host", 5)) == {"kind": 0, "addr": 5}
    assert s.header.unpack(s.header_word(2, 5))["kind"] == 2


def test_command_words(system):
    c = system.command.unpack(system.gemm_command(
        m=4, n=32, k=64, mode="w4a8", a_addr=10, a_count=64, w_addr=20, w_count=256, o_addr=30,
        vector_size=16))
    assert (c["op"], c["a_addr"], c["a_count"], c["w_addr"], c["w_count"], c["o_addr"]) == \
        (0, 10, 64, 20, 256, 30)
    assert (c["gemm.m"], c["gemm.n"], c["gemm.k"], c["gemm.mode"], c["gemm.vsq"], c["gemm.out"]) \
        == (4, 32, 64, 2, 1, 0)
    c = system.command.unpack(system.send_command(a_addr=5, a_count=9, kind="host", tag=100,
                                                  node=3))
    assert (c["op"], c["kind"], c["o_addr"], c["mcast"], c["dest_x"], c["dest_y"]) == \
        (2, 2, 100, 0, 1, 1)
    c = system.command.unpack(system.send_command(a_addr=5, a_count=9, kind="data", mask=0b1010))
    assert (c["mcast"], c["mask"], c["kind"]) == (1, 0b1010, 1)
    c = system.command.unpack(system.softmax_command(a_addr=1, o_addr=2, rows=16, beats=16,
                                                     stride=16))
    assert (c["op"], c["rows"], c["beats"], c["stride"]) == (1, 16, 16, 16)
    assert system.command.unpack(system.wait_command(300))["a_count"] == 300
    assert system.header.unpack(system.header_word("data", 77)) == {"kind": 1, "addr": 77}


def test_command_errors(system):
    kw = dict(a_addr=0, a_count=1, w_addr=0, w_count=1, o_addr=0)
    with pytest.raises(ValueError, match=r"mode = 'fp8_e4m3': the system's engines are built with "
                                         r"int8, int4, w4a8"):
        system.gemm_command(m=1, n=1, k=1, mode="fp8_e4m3", **kw)
    with pytest.raises(ValueError, match=r"GEMM m = 65: must be 1 to max_m = 64"):
        system.gemm_command(m=65, n=1, k=1, mode="int8", **kw)
    with pytest.raises(ValueError, match=r"vector_size = 32: the engines are built with VSQ "
                                         r"vector sizes \[16\]"):
        system.gemm_command(m=1, n=1, k=1, mode="int8", vector_size=32, **kw)
    with pytest.raises(ValueError, match=r"GEMM w: words 4095 to 4096 are outside the scratchpad"):
        system.gemm_command(m=1, n=1, k=1, mode="int8", **dict(kw, w_addr=4095, w_count=2))
    with pytest.raises(ValueError, match=r"out = 'int5': must be one of acc, int8, int4, fp32"):
        system.gemm_command(m=1, n=1, k=1, mode="int8", out="int5", **kw)
    with pytest.raises(ValueError, match=r"SEND: give a destination node or a multicast mask"):
        system.send_command(a_addr=0, a_count=1, kind="host")
    with pytest.raises(ValueError, match=r"node = 4: must be 0 to 3 \(2 x 2 mesh\)"):
        system.send_command(a_addr=0, a_count=1, kind="host", node=4)
    with pytest.raises(ValueError, match=r"WAIT count = 9000: must be 0 to 8191"):
        system.wait_command(9000)
    with pytest.raises(ValueError, match=r"kind = 'bogus': must be one of cmd, data, host"):
        system.header_word("bogus")
    nosm = H.System(make_manifest(softmax=False))
    with pytest.raises(ValueError, match=r"SOFTMAX: the system's tiles have no softmax unit"):
        nosm.softmax_command(a_addr=0, o_addr=0, rows=1, beats=1, stride=1)
    nopost = H.System(make_manifest(gemm={"vsq_post_mult_bits": 0}))
    with pytest.raises(ValueError, match=r"out = 'int8': the engines have no post-processing"):
        nopost.gemm_command(m=1, n=1, k=1, mode="int8", out="int8", **kw)


@pytest.mark.parametrize("mode", ["int8", "int4", "w4a8"])
def test_engine_words_roundtrip(system, mode, seed):
    """a / w words decode (the executor's inverse) to the operands they were built from."""
    rng = np.random.default_rng(seed)
    m, k, n = 5, 40, 10
    a, w = G.random_operands(rng, m, n, k, mode)
    s_qa = rng.integers(0, 16, (m, 3))
    s_qw = rng.integers(0, 16, (3, n))
    mult, shift = rng.integers(0, 1 << 16, n), rng.integers(0, 64, n)
    aw = system.a_words(a, mode, vector_size=16, s_qa=s_qa)
    ww = system.w_words(w, mode, vector_size=16, s_qw=s_qw, mult=mult, shift=shift)
    a2, s_qa2, _, _ = GS._decode_a([system.a.unpack(x) for x in aw], m, k, mode, 4, 16)
    w2, s_qw2, mult2, shift2 = GS._decode_w([system.w.unpack(x) for x in ww], k, n, mode, 4, 4,
                                            16)
    assert np.array_equal(a, a2) and np.array_equal(w, w2)
    assert np.array_equal(s_qa, s_qa2) and np.array_equal(s_qw, s_qw2)
    assert np.array_equal(mult, mult2) and np.array_equal(shift, shift2)


def test_output_words_roundtrip(system, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(-(1 << 31), 1 << 31, (6, 10))
    assert np.array_equal(system.output_matrix(system.output_words(y), 6, 10), y)
    y8 = rng.integers(-128, 128, (6, 10))
    words = system.output_words(y8, pack=1)
    assert max(words) < 1 << 32
    assert np.array_equal(system.output_matrix(words, 6, 10, pack=1), y8)
    with pytest.raises(ValueError, match=r"5 output words for an 6 x 10 result: need 18"):
        system.output_matrix(words[:5], 6, 10)


# -- packets and plans -----------------------------------------------------------------------------

def _plans(man, model, images, setting):
    return {"mlp": H.mlp_plan(man, model, images, setting),
            "layer": H.layer_plan(man, model, images[:16], setting)}


@pytest.fixture(scope="module")
def digits():
    from sim.bench import vsq as B
    return B.train_digits_mlp(max_iter=40, seed=0)


W4A8 = {"name": "W4A8 VSQ V=16 M=4", "a_bits": 8, "w_bits": 4, "m": 4, "calibration": "max"}
W4A4 = {"name": "W4A4 VSQ V=16 M=4", "a_bits": 4, "w_bits": 4, "m": 4, "calibration": "max"}


def _check_phase(system, phase, outstanding):
    for p in phase.packets:
        assert 2 <= len(p.words) <= system.max_packet_flits
        assert (p.node is None) != (p.mask is None)
        kind = system.header.unpack(p.words[0])["kind"]
        if kind == system.kinds["cmd"]:
            outstanding[p.node] += len(p.words) - 1
            assert outstanding[p.node] <= system.cmd_depth


def test_mlp_plan_executes_bit_exact(digits):
    """The MLP plan on the word-level executor reproduces the golden logits; packets within
    max_packet_flits; at most cmd_depth commands queued; every output word exactly once."""
    man = make_manifest()
    system = H.System(man)
    x = digits["x_test"][:70]
    for setting in (W4A4, W4A8):
        plan = H.mlp_plan(man, digits, x, setting)
        result, received, ws = GS.execute(man, plan)
        gold, accs = GS.mlp_logits(digits, x, setting, return_accumulators=True)
        assert np.array_equal(result["output"], gold)
        for got, want in zip(result["accumulators"], accs, strict=True):
            assert np.array_equal(got, want)
        assert len(plan.phases) == 1 + 2 * 2          # weights, 2 batches x 2 layers
        for phase in plan.phases:
            _check_phase(system, phase, [0] * system.nodes)
        # replaying the recorded answers gives the same result
        again = plan.finish(received)
        assert np.array_equal(again["output"], gold)
        # layer 0: 128 columns = 32 C tiles over 4 tiles; layer 1: 10 columns on 3 tiles
        assert plan.info["columns"]["0"] == {"0": [0, 32], "1": [32, 64], "2": [64, 96],
                                             "3": [96, 128]}
        assert plan.info["columns"]["1"] == {"0": [0, 4], "1": [4, 8], "2": [8, 10]}
        assert ws.gemms == [4, 4, 4, 2]
    json.dumps(plan.to_json())


def test_plan_json_roundtrip(digits):
    man = make_manifest()
    plan = H.layer_plan(man, digits, digits["x_test"][:8], W4A4)
    plan.run(GS.WordSystem(man).run_phase)
    data = json.loads(plan.dumps())
    phases = [H.Phase.from_json(p) for p in data["phases"]]
    assert [p.to_json() for p in phases] == [p.to_json() for p in plan.phases]
    ws = GS.WordSystem(man)
    received = [ws.run_phase(p) for p in phases]
    assert np.array_equal(plan.finish(received)["accumulators"][0],
                          GS.mlp_logits(digits, digits["x_test"][:8], W4A4, True)[1][0])


@pytest.mark.parametrize("kx,ky", [(1, 1), (2, 2), (4, 4)])
def test_layer_plan_scaling(digits, kx, ky):
    """Strong scaling: the same layer on 1, 4 and 16 tiles gives the golden accumulators; the
    ideal cycles split evenly over the tiles."""
    man = make_manifest(kx, ky)
    x = digits["x_test"][:64]
    plan = H.layer_plan(man, digits, x, W4A8)
    result, _, ws = GS.execute(man, plan)
    gold = GS.mlp_logits(digits, x, W4A8, return_accumulators=True)[1][0]
    assert np.array_equal(result["accumulators"][0], gold)
    total = G.ideal_cycles(64, 128, 64, "w4a8", 4, 4)
    assert sum(plan.ideal_cycles) == total
    assert max(plan.ideal_cycles) == total / (kx * ky)
    assert sum(ws.gemms) == kx * ky
    assert [sum(c) for c in zip(*(p.ideal_cycles for p in plan.phases), strict=True)] == \
        plan.ideal_cycles


def test_packets_split_at_max_packet_flits(digits):
    man = make_manifest(max_packet_flits=3)
    system = H.System(man)
    plan = H.layer_plan(man, digits, digits["x_test"][:4], W4A4)
    result, _, _ = GS.execute(man, plan)
    assert np.array_equal(result["accumulators"][0],
                          GS.mlp_logits(digits, digits["x_test"][:4], W4A4, True)[1][0])
    data = [p for p in plan.phases[0].packets if system.header.unpack(p.words[0])["kind"] == 1]
    assert all(len(p.words) <= 3 for p in plan.phases[0].packets)
    # consecutive packets continue the address where the previous one stopped
    node0 = [p for p in data if p.node == 0]
    for prev, nxt in zip(node0, node0[1:], strict=False):
        assert (system.header.unpack(nxt.words[0])["addr"]
                == system.header.unpack(prev.words[0])["addr"] + len(prev.words) - 1)
    assert sum(len(p.words) - 1 for p in node0) == plan.info["spad"]["weights of layer 0"][1]


def test_cmd_depth_refused(digits):
    man = make_manifest(cmd_depth=4)
    with pytest.raises(ValueError, match=r"tile 0 would have 5 commands outstanding: more than "
                                         r"cmd_depth = 4"):
        H.attention_plan(man, *np.random.default_rng(0).normal(size=(3, 64, 16)))


def test_builder_frees_the_fifo_only_after_a_final_send_to_the_host(system):
    """Commands count against cmd_depth until the phase's HOST words prove them done: only when a
    tile's last command in the phase is its SEND to the host."""
    send = system.send_command(a_addr=0, a_count=1, kind="host", tag=0, node=0)
    b = H._Builder(system)
    b.start("p")
    b.commands(0, [system.wait_command(1), send])
    b.commands(1, [send, system.wait_command(1)])             # a WAIT after the SEND
    b.commands(2, [send])
    b.commands(2, [system.wait_command(0)])                   # a later packet ends with a WAIT
    b.commands(3, [system.send_command(a_addr=0, a_count=1, kind="host", tag=0, node=3)])
    b.finish(3)
    assert b.outstanding == [0, 2, 2, 1]
    b.start("q")
    b.commands(1, [send])
    b.finish(1)
    assert b.outstanding == [0, 0, 2, 1]


def test_plan_errors(digits):
    man = make_manifest()
    x = digits["x_test"][:8]
    with pytest.raises(ValueError, match=r"setting W8A8: VS-Quant settings are W4A4 and W4A8"):
        H.mlp_plan(man, digits, x, {"a_bits": 8, "w_bits": 8, "m": 4})
    with pytest.raises(ValueError, match=r"setting m = 6: the engines are built with "
                                         r"vsq_scale_bits = 4"):
        H.mlp_plan(man, digits, x, dict(W4A4, m=6))
    with pytest.raises(ValueError, match=r"setting = 3: must be a dict with a_bits, w_bits, m"):
        H.mlp_plan(man, digits, x, 3)
    with pytest.raises(ValueError, match=r"images of shape \(8, 63\): must be \(count, 64\)"):
        H.mlp_plan(man, digits, x[:, :63], W4A4)
    with pytest.raises(ValueError, match=r"batch = 65: must be 1 to max_m = 64"):
        H.mlp_plan(man, digits, x, W4A4, batch=65)
    with pytest.raises(ValueError, match=r"65 images: one batch holds at most max_m = 64"):
        H.layer_plan(man, digits, digits["x_test"][:65], W4A4)
    with pytest.raises(ValueError, match=r"the plan needs 5312 scratchpad words per tile "
                                         r"\(weights of layer 0 1024, weights of layer 1 192, "
                                         r"activations 2048, outputs 2048\): more than "
                                         r"spad_words = 4096"):
        H.mlp_plan(make_manifest(1, 1), digits, x, W4A8)
    with pytest.raises(ValueError, match=r"setting W4A8 needs mode w4a8: the engines are built "
                                         r"with int8, int4"):
        H.mlp_plan(make_manifest(gemm={"modes": ["int8", "int4"]}), digits, x, W4A8)
    plan = H.layer_plan(man, digits, x, W4A4)
    with pytest.raises(ValueError, match=r"received packets for 1 phases: the plan has more"):
        plan.finish([_weight_acks(man, plan)])


def _weight_acks(man, plan):
    """The acknowledgements of ``plan``'s weights phase, from the word-level executor."""
    return GS.WordSystem(man).run_phase(plan.start())


def test_weight_load_is_acknowledged(digits):
    """The weights phase waits for one word from every tile with weights: after its WAIT for them
    it SENDs its last weight word to the host with the reserved tag spad_words - 1; the plan
    refuses a missing, doubled, wrong or stray acknowledgement."""
    man = make_manifest()
    system = H.System(man)
    x = digits["x_test"][:8]
    plan = H.layer_plan(man, digits, x, W4A4, layer=1)     # 10 columns: tiles 0, 1, 2
    phase = plan.start()
    assert phase.name == "weights" and phase.host_words == 3
    acks = _weight_acks(man, plan)
    assert sorted(p["src"] for p in acks) == [0, 1, 2]
    region = plan.info["spad"]["weights of layer 1"]
    assert system.ack_tag == 4095
    for p in acks:
        assert system.header.unpack(p["header"]) == {"kind": system.kinds["host"], "addr": 4095}
        # the tile's last weight word: the last DATA word the host sent it
        data = [q for q in phase.packets if q.node == p["src"]
                and system.header.unpack(q.words[0])["kind"] == system.kinds["data"]]
        assert p["words"] == [data[-1].words[-1]]
        assert region[0] <= system.header.unpack(data[-1].words[0])["addr"] < sum(region)
    # each tile's commands: WAIT for its weights, then the acknowledgement
    for node in range(3):
        cmds = [system.command.unpack(w) for q in phase.packets
                if q.node == node and system.header.unpack(q.words[0])["kind"] == 0
                for w in q.words[1:]]
        assert [c["op"] for c in cmds] == [system.ops["wait"], system.ops["send"]]
        assert cmds[0]["a_count"] == sum(len(q.words) - 1 for q in phase.packets
                                         if q.node == node and
                                         system.header.unpack(q.words[0])["kind"] == 1)
    for bad, message in (
            ([], r"weights: no acknowledgement from node\(s\) \[0, 1, 2\]"),
            (acks[1:], r"weights: no acknowledgement from node\(s\) \[" + str(acks[0]["src"])),
            (acks + acks[:1], r"weights: node \d acknowledged twice"),
            ([dict(acks[0], words=[acks[0]["words"][0] ^ 1])] + acks[1:],
             r"weights: node \d acknowledged with 1 words .*: expected its last weight word"),
            ([dict(acks[0], header=system.header_word("host", 5))] + acks[1:],
             r"weights: HOST packet with tag 5 from node \d: the phase expects only "
             r"acknowledgements \(tag 4095\)"),
            (acks + [dict(acks[0], src=3)],
             r"weights: acknowledgement from node 3, which got no weights")):
        plan.start()
        with pytest.raises(ValueError, match=message):
            plan.step(bad)


def test_host_packets_reassembled_in_any_order(digits, seed):
    """HOST packets made from the golden accumulators (not by the executor), shuffled, give the
    golden result; a missing or doubled word is refused."""
    rng = np.random.default_rng(seed)
    man = make_manifest()
    system = H.System(man)
    x = digits["x_test"][:20]
    plan = H.layer_plan(man, digits, x, W4A4)
    gold = GS.mlp_logits(digits, x, W4A4, return_accumulators=True)[1][0]
    words = system.output_words(gold)                 # global order: C tile, then image
    packets = []
    for node, (c0, c1) in plan.info["columns"]["0"].items():
        t0 = c0 // 4
        mine = words[t0 * 20:(c1 // 4) * 20]
        for i in range(0, len(mine), 7):
            packets.append({"src": int(node), "header": system.header_word("host", t0 * 20 + i),
                            "words": mine[i:i + 7]})
    order = rng.permutation(len(packets))
    acks = _weight_acks(man, plan)
    result = plan.finish([acks, [packets[i] for i in order]])
    assert np.array_equal(result["accumulators"][0], gold)
    with pytest.raises(ValueError, match=r"layer 0, images 0-19: 7 of 640 HOST words missing"):
        plan.finish([acks, packets[1:]])
    with pytest.raises(ValueError, match=r"HOST word at tag 0 received twice"):
        plan.finish([acks, packets + packets[:1]])
    bad = dict(packets[0], header=system.header_word("data", 0))
    with pytest.raises(ValueError, match=r"received packet with header kind 1: the host takes "
                                         r"only HOST packets"):
        plan.finish([acks, [bad] + packets[1:]])
    with pytest.raises(ValueError, match=r"layer 0, images 0-19: HOST word at tag 4095 outside "
                                         r"0..639"):
        plan.finish([acks, packets + acks[:1]])


def test_split_tiles():
    assert H.split_tiles(3, 4) == [(0, 1), (1, 2), (2, 3), (3, 3)]
    assert H.split_tiles(32, 4) == [(0, 8), (8, 16), (16, 24), (24, 32)]
    assert H.split_tiles(10, 3) == [(0, 4), (4, 7), (7, 10)]


def test_mask_and_xy(system):
    assert system.mask_of([0, 3]) == 0b1001
    assert system.xy(3) == (1, 1) and system.xy(2) == (0, 1)
    assert math.isclose(H.LOG2E, 1 / math.log(2))


def _sends(system, phase):
    """(node, tag, count) of every SEND to the host in the phase's CMD packets."""
    out = []
    for p in phase.packets:
        if system.header.unpack(p.words[0])["kind"] != system.kinds["cmd"]:
            continue
        for word in p.words[1:]:
            c = system.command.unpack(word)
            if c["op"] == system.ops["send"]:
                assert c["kind"] == system.kinds["host"] and not c["mcast"]
                assert (c["dest_x"], c["dest_y"]) == (0, 0)
                out.append((p.node, c["o_addr"], c["a_count"]))
    return out


@pytest.mark.parametrize("kx,ky", [(1, 1), (2, 2), (4, 4)])
def test_plans_cover_every_output_once(digits, kx, ky):
    """The SEND commands' tag ranges of every compute phase tile 0 .. host_words - 1 exactly
    once; a weights phase has only acknowledgements (one word with the reserved tag per tile),
    host_words of them."""
    man = make_manifest(kx, ky)
    system = H.System(man)
    plans = [H.attention_plan(man, *np.random.default_rng(0).normal(size=(3, 64, 16))),
             H.layer_plan(man, digits, digits["x_test"][:30], W4A4)]
    if kx > 1:
        plans.append(H.mlp_plan(man, digits, digits["x_test"][:70], W4A8))
    for plan in plans:
        plan.run(GS.WordSystem(man).run_phase)
        assert plan.phases
        for phase in plan.phases:
            sends = _sends(system, phase)
            acks = [s for s in sends if s[1] == system.ack_tag]
            if phase.name == "weights":
                assert len(acks) == len(sends) == phase.host_words > 0
                assert all(count == 1 for _, _, count in acks)
                assert len({node for node, _, _ in acks}) == len(acks)
                continue
            assert not acks
            cover = np.zeros(phase.host_words, dtype=int)
            for _, tag, count in sends:
                cover[tag:tag + count] += 1
            assert np.all(cover == 1), (plan.name, phase.name)
