"""The mesh network-on-chip in RTL simulation against the golden model (bench: ``sim/tb/noc.py``).

These benches run few cycles on designs of tens of thousands of Verilog lines, so a Verilator build (C++
compilation, minutes on a busy 2-core machine) costs far more than the simulation: they use Icarus
Verilog when it is installed (build under a few seconds) and ``SIM`` is not set, else Verilator.
"""

import json
import os
import shutil

import pytest

from gen.config import ConfigError, parse_config
from sim import runner
from sim.golden import noc as golden
from tests.conftest import assert_lint_clean

# Small meshes keep the builds short: narrow flits, shallow buffers.
MESH_2X2 = {"noc": {"top": "noc_2x2", "kx": 2, "ky": 2, "flit_width": 8, "vcs": 2, "vc_depth": 4,
                    "max_packet_flits": 4}}
MESH_3X3 = {"noc": {"top": "noc_3x3_1vc", "kx": 3, "ky": 3, "flit_width": 8, "vcs": 1,
                    "vc_depth": 4, "max_packet_flits": 3}}
MESH_3X2_YX = {"noc": {"top": "noc_3x2_yx_4vc_reg", "kx": 3, "ky": 2, "flit_width": 12, "vcs": 4,
                       "vc_depth": 3, "max_packet_flits": 2, "routing": "yx", "router_cycles": 2}}
MESH_1X1 = {"noc": {"top": "noc_1x1", "kx": 1, "ky": 1, "flit_width": 5, "vcs": 1, "vc_depth": 3,
                    "max_packet_flits": 2}}
# The least buffering of one VC with registered inputs: a whole packet and 3 flits of credits.
MESH_3X1_REG = {"noc": {"top": "noc_3x1_1vc_reg", "kx": 3, "ky": 1, "flit_width": 6, "vcs": 1,
                        "vc_depth": 5, "max_packet_flits": 2, "router_cycles": 2}}
MESH_4X4 = {"noc": {"top": "noc_4x4", "kx": 4, "ky": 4, "flit_width": 8, "vcs": 2, "vc_depth": 4,
                    "max_packet_flits": 4}}

# Allocation and switch in separate stages (4 VCs of a packet each: the least it allows).
MESH_3X2_PIPE = {"noc": {"top": "noc_3x2_4vc_pipe", "kx": 3, "ky": 2, "flit_width": 8, "vcs": 4,
                         "vc_depth": 2, "max_packet_flits": 2, "pipelined": True}}

MESHES = [MESH_2X2, MESH_3X3, MESH_3X2_YX, MESH_3X2_PIPE]
IDS = ["2x2-2vc", "3x3-1vc", "3x2-yx-4vc-registered", "3x2-4vc-pipelined"]


_BUILDS = {}


def noc_simulator():
    if os.environ.get("SIM"):
        return os.environ["SIM"]
    return "icarus" if shutil.which("iverilog") else "verilator"


def build_noc(sections):
    key = (json.dumps(sections, sort_keys=True), noc_simulator())
    if key not in _BUILDS:
        _BUILDS[key] = runner.emit_and_build(parse_config(sections), sim=key[1])["noc"]
    return _BUILDS[key]


def run_noc(sections, testcase, seed, **env):
    sim_build = build_noc(sections)
    runner.run(sim_build, "sim.tb.noc", testcase=testcase, seed=seed,
               extra_env={k: str(v) for k, v in env.items()})


@pytest.mark.sim
@pytest.mark.parametrize("sections", MESHES, ids=IDS)
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.5)], ids=["steady", "gaps+stalls"])
def test_random_traffic(sections, traffic, seed):
    """Random unicast and multicast traffic, random lengths, all sources at once; with and without
    injection gaps and ejection backpressure: 0 lost, duplicated, reordered or corrupted packets."""
    gap, stall = traffic
    run_noc(sections, "traffic", seed, ACCELGEN_GAP=gap, ACCELGEN_STALL=stall,
            ACCELGEN_NOC_PACKETS=15, ACCELGEN_NOC_MCAST=0.25, ACCELGEN_NOC_BADS=0.05)


@pytest.mark.sim
@pytest.mark.parametrize("sections", MESHES + [MESH_1X1], ids=IDS + ["1x1"])
def test_zero_load_latency_every_pair(sections, seed):
    """Every source/destination pair meets the manifest's zero-load latency formula."""
    run_noc(sections, "zero_load", seed)


@pytest.mark.sim
@pytest.mark.parametrize("sections", MESHES + [MESH_1X1, MESH_3X1_REG],
                         ids=IDS + ["1x1", "3x1-1vc-registered"])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.5)], ids=["steady", "gaps+stalls"])
def test_single_stream_at_the_manifest_link_rate(sections, traffic, seed):
    """One uncontended stream of back-to-back packets (one-flit, longest, alternating and random
    lengths) at the least buffering each configuration allows moves 1 flit per cycle, the manifest's
    figure; under gaps and stalls it is still delivered bit-exact."""
    gap, stall = traffic
    run_noc(sections, "stream", seed, ACCELGEN_GAP=gap, ACCELGEN_STALL=stall)


@pytest.mark.parametrize("router_cycles, pipelined", [(1, False), (2, False), (1, True)],
                         ids=["bypassed", "registered", "pipelined"])
@pytest.mark.parametrize("vcs", [1, 2, 4])
def test_link_rate_rule_is_the_golden_models(vcs, router_cycles, pipelined):
    """The buffering rule the configuration enforces is exactly where the link model reaches 1 flit
    per cycle for every sequence of packet lengths, and one flit less of depth does not."""
    from gen.lib.noc import CREDIT_LOOP, full_rate_depth
    assert CREDIT_LOOP == golden.CREDIT_LOOP
    for lmax in range(1, 6):
        need = full_rate_depth(vcs, lmax, router_cycles, pipelined)
        for depth in range(lmax, lmax + 6):
            full = golden.stream_full_rate(vcs=vcs, vc_depth=depth, max_packet_flits=lmax,
                                           router_cycles=router_cycles, pipelined=pipelined)
            assert full == (need is not None and depth >= need), (lmax, depth)
            legal = True
            try:
                parse_config({"noc": {"vcs": vcs, "vc_depth": depth, "max_packet_flits": lmax,
                                      "router_cycles": router_cycles, "pipelined": pipelined}})
            except ConfigError:
                legal = False
            assert legal == full


def test_link_model_gives_the_rates_below_the_rule():
    """Below the rule one VC of max_packet_flits flits carries L / (L + r) flits per cycle: the
    credits of a whole packet must be back before the next head leaves."""
    for lmax in (1, 2, 4):
        for router_cycles, r in ((1, 1), (2, 3)):
            cycles = golden.stream_cycles([lmax] * 10, vcs=1, vc_depth=lmax,
                                          max_packet_flits=lmax, router_cycles=router_cycles)
            assert cycles == 10 * (lmax + r) - r
            assert golden.stream_cycles([lmax] * 10, vcs=1, vc_depth=lmax + r,
                                        max_packet_flits=lmax, router_cycles=router_cycles) == 10 * lmax


def test_manifest_states_the_link_rate_rule():
    from gen.emit import render
    manifest = json.loads(render(parse_config(MESH_3X2_YX))["noc_3x2_yx_4vc_reg.json"])
    perf = manifest["performance"]
    assert perf["flits_per_cycle_per_link"] == 1
    assert "vc_depth >= max_packet_flits + r with 1 VC" in perf["link_rate_rule"]


def test_manifest_states_the_pipelined_latency():
    from gen.emit import render
    manifest = json.loads(render(parse_config(MESH_3X2_PIPE))["noc_3x2_4vc_pipe.json"])
    zl = manifest["performance"]["zero_load_latency"]
    assert manifest["parameters"]["pipelined"] is True
    assert zl["router"] == 2 and zl["router_parts"]["vc_allocation"] == 1
    assert sum(zl["router_parts"].values()) == zl["router"]
    assert "2 * hops + length + 2" in zl["formula"]
    for hop_count in range(4):
        assert (zl["inject"] + (hop_count + 1) * zl["router"] + zl["eject"]
                == golden.zero_load_latency(hop_count, 1, 2))


@pytest.mark.sim
@pytest.mark.parametrize("sections", [MESH_2X2, MESH_3X2_YX, MESH_1X1], ids=["2x2", "3x2-yx", "1x1"])
def test_bad_packets_dropped_counted_flagged(sections, seed):
    run_noc(sections, "bad_packets", seed)


@pytest.mark.sim
@pytest.mark.parametrize("sections", [MESH_2X2, MESH_3X2_YX, MESH_3X2_PIPE],
                         ids=["2x2", "3x2-yx-registered", "3x2-pipelined"])
def test_saturation_stress_drains(sections, seed):
    """Saturation with uniform, transpose, hotspot and 20% multicast traffic under backpressure: the
    watchdog never fires, the network drains, every delivery is right."""
    run_noc(sections, "stress", seed, ACCELGEN_NOC_CYCLES=1500, ACCELGEN_STALL=0.3)


MESH_4X4_PIPE = {"noc": {"top": "noc_4x4_pipe", "kx": 4, "ky": 4, "flit_width": 8, "vcs": 4,
                         "vc_depth": 4, "max_packet_flits": 4, "pipelined": True}}


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sections", [MESH_4X4, MESH_4X4_PIPE], ids=["2vc", "4vc-pipelined"])
def test_4x4_stress(sections, seed):
    run_noc(sections, "stress", seed, ACCELGEN_NOC_CYCLES=5000, ACCELGEN_STALL=0.3)


@pytest.mark.sim
@pytest.mark.slow
def test_4x4_traffic_and_zero_load(seed):
    """The 4 x 4 mesh: random traffic under gaps and backpressure, and every pair's latency."""
    run_noc(MESH_4X4, "traffic", seed, ACCELGEN_GAP=0.2, ACCELGEN_STALL=0.4,
            ACCELGEN_NOC_PACKETS=20, ACCELGEN_NOC_MCAST=0.2, ACCELGEN_NOC_BADS=0.02)
    run_noc(MESH_4X4, "zero_load", seed)


@pytest.mark.parametrize("data, message", [
    ({"kx": 0}, "noc.kx = 0: must be an integer from 1 to 8"),
    ({"ky": 9}, "noc.ky = 9: must be an integer from 1 to 8"),
    ({"vcs": 3}, "noc.vcs = 3: must be 1, 2 or 4"),
    ({"vcs": 8}, "noc.vcs = 8: must be an integer from 1 to 4"),
    ({"flit_width": 0}, "noc.flit_width = 0: must be an integer from 1 to 512"),
    ({"routing": "zigzag"}, 'noc.routing = "zigzag": must be one of xy, yx'),
    ({"vc_depth": 3, "max_packet_flits": 4},
     "noc.vc_depth = 3: must be at least noc.max_packet_flits = 4 (every buffer holds a whole "
     "packet; see gen/router.py)"),
    ({"vcs": 1, "vc_depth": 4, "max_packet_flits": 4},
     "noc.vc_depth = 4: must be at least noc.max_packet_flits + 1 = 5 with noc.vcs = 1 and "
     "noc.router_cycles = 1 (a whole packet and the 1 flit whose credits are on their way back, "
     "for 1 flit per cycle per link; see gen/router.py)"),
    ({"vcs": 1, "vc_depth": 6, "max_packet_flits": 4, "router_cycles": 2},
     "noc.vc_depth = 6: must be at least noc.max_packet_flits + 3 = 7 with noc.vcs = 1 and "
     "noc.router_cycles = 2 (a whole packet and the 3 flits whose credits are on their way back, "
     "for 1 flit per cycle per link; see gen/router.py)"),
    ({"vcs": 2, "vc_depth": 16, "router_cycles": 2},
     "noc.vcs = 2: must be 1 or 4 with noc.router_cycles = 2: a VC is free for a new packet once "
     "its last head's credit is back, 4 cycles after it left, so 2 VCs cannot carry one-flit "
     "packets at 1 flit per cycle; see gen/router.py"),
    ({"vcs": 2, "pipelined": True},
     "noc.vcs = 2: must be 4 with noc.pipelined = true: a head is allocated a cycle before it "
     "leaves, and a VC is free for a new packet once its last head's credit is back, so fewer VCs "
     "cannot carry one-flit packets at 1 flit per cycle; see gen/router.py"),
    ({"vcs": 4, "router_cycles": 2, "pipelined": True},
     "noc.router_cycles = 2: must be 1 with noc.pipelined = true"),
    ({"pipelined": 1}, "noc.pipelined = 1: must be true or false"),
    ({"max_packet_flits": 65}, "noc.max_packet_flits = 65: must be an integer from 1 to 64"),
    ({"router_cycles": 3}, "noc.router_cycles = 3: must be an integer from 1 to 2"),
])
def test_config_messages(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config({"noc": data})
    assert str(info.value) == message


def test_manifest_states_the_latency_formula():
    from gen.emit import render
    config = parse_config({"noc": {"top": "noc_1x2", "kx": 1, "ky": 2, "flit_width": 4, "vcs": 1,
                                   "vc_depth": 2, "max_packet_flits": 1}})
    manifest = json.loads(render(config)["noc_1x2.json"])
    zl = manifest["performance"]["zero_load_latency"]
    assert "hops + length + 1" in zl["formula"]
    for hop_count in range(4):
        for length in range(1, 4):
            assert (zl["inject"] + (hop_count + 1) * zl["router"] + length - 1 + zl["eject"]
                    == golden.zero_load_latency(hop_count, length))
    names = {p["name"] for p in manifest["ports"]}
    assert {"i0__valid", "i1__payload", "o1__ready", "drops0", "drops1", "bad"} <= names
    fields = {f["name"] for f in manifest["streams"]["i1"]["fields"]}
    assert fields == {"data", "last", "mcast", "mask", "dest_x", "dest_y"}


def test_verilator_lint_and_ports(tmp_path):
    """A small mesh's Verilog passes `verilator --lint-only` with the runner's waivers, and its ports
    are the manifest's."""
    import re

    from gen.emit import render
    files = render(parse_config(MESH_3X2_YX))
    top = MESH_3X2_YX["noc"]["top"]
    assert_lint_clean(tmp_path, files[f"{top}.v"], top)
    text = files[f"{top}.v"]
    module = text[text.index(f"module {top}("):]
    module = module[:module.index("endmodule")]
    ports = {name: ("in" if d == "input" else "out", int(w) + 1 if w else 1)
             for d, w, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+);",
                                          module, re.M)}
    manifest = json.loads(files[f"{top}.json"])
    assert {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]} == ports


@pytest.mark.sim
@pytest.mark.slow
def test_bench_noc_quick(tmp_path, capsys):
    """`accelgen bench noc --quick` runs end to end: below saturation the network accepts what is
    offered, latency grows with load, and the CSV, table and PNG land beside the JSON."""
    from gen import cli
    out = tmp_path / "noc.json"
    assert cli.main(["bench", "noc", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [c["pattern"] for c in result["curves"]] == ["uniform", "transpose"]
    for curve in result["curves"]:
        points = curve["points"]
        assert abs(points[0]["accepted"] - points[0]["offered"]) < 0.2 * points[0]["offered"]
        assert points[-1]["latency"] > points[0]["latency"]
        # Above the bound only where some flows do not cross the busiest link (not uniform).
        assert 0 < curve["peak_fraction_of_bound"] <= (1 if curve["pattern"] == "uniform" else 1.5)
    assert "peak accepted" in capsys.readouterr().out
    assert (tmp_path / "noc_latency.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "noc_latency.csv").read_text().splitlines()
    assert rows[0] == "mesh,pattern,vcs,offered,accepted,latency,packets"
    assert len(rows) == 1 + sum(len(c["points"]) for c in result["curves"])
    assert (tmp_path / "noc_table.txt").exists()
