"""`accelgen bench qor`: the hand-written references, the repairs of pymtl3-net's translation, and
the command on its quick subset (slow; needs yosys, sta, the OSU 0.18 um library and pymtl3-net)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gen import cli, synth_asic
from sim.bench import pymtl3_peers, qor

ROOT = Path(__file__).resolve().parent.parent

needs_flow = pytest.mark.skipif(
    shutil.which("yosys") is None or shutil.which("sta") is None
    or not Path(synth_asic.DEFAULT_LIBERTY).is_file(),
    reason="yosys, sta or the OSU 0.18 um library is missing")


def test_qor_is_a_bench():
    assert cli.BENCHES["qor"][0] == "sim.bench.qor"


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is missing")
@pytest.mark.parametrize("key", sorted(qor.HAND))
def test_hand_written_references_compute_the_same_sum(tmp_path, key):
    """Both forms of each reference compute a signed INT8 product added to a 32-bit sum: after one
    cycle with rst low the accumulator (or partial sum out) holds the expected value."""
    _, text = qor.HAND[key]
    top = f"hand_{key}"
    pe = key.startswith("ws_pe")
    stim = (f"{top} dut(.clk(clk), .rst(rst), .a_i(-8'sd7), .bank_i(1'b1), .w_data(-8'sd9), "
            ".w_we(w_we), .ps_i(32'sd1000), .a_o(), .bank_o(), .ps_o(y));" if pe else
            f"{top} dut(.clk(clk), .rst(rst), .a(-8'sd7), .w(-8'sd9), .acc(y));")
    bench = f"""
module tb;
  reg clk = 0, rst = 1; reg [1:0] w_we = 2'b10; wire signed [31:0] y;
  {stim}
  initial begin
    #1 clk = 1; #1 clk = 0; rst = 0; w_we = 0;
    #1 clk = 1; #1 clk = 0;
    $display("%0d", y); $finish;
  end
endmodule
"""
    (tmp_path / "d.v").write_text(text + bench)
    subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "sim"), str(tmp_path / "d.v")],
                   check=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) == (1000 + 63 if pe else 63)


TRANSLATED = """\
module Unit
(
  input  logic [0:0]    clk,
  output logic [1:0]    send__0__msg__x,
  output logic [3:0]    send__0__msg
);
  logic [1:0]    pkt__x [0:1];
  logic [3:0]    pkt [0:1];
  logic [0:0]    send_msg_wire__vc_id;
  logic [40:0]   send_msg_wire;
  integer __loopvar__up_a_i;

  always_comb begin : up_a
    if ( clk ) begin
      for ( __loopvar__up_a_i = 1'd0; __loopvar__up_a_i < 2'd2;
            __loopvar__up_a_i = __loopvar__up_a_i + 1'd1 )
        pkt[1'(__loopvar__up_a_i)] = 4'd3;
      send_msg_wire__vc_id = 1'd1;
    end
  end

  assign send__0__msg__x = pkt__x[0];
  assign send__0__msg__x = pkt[0][3:2];
  assign send__0__msg = pkt[0];
endmodule
"""


def test_translation_repairs():
    """Reads of a field array nothing drives are dropped (the packed array's stay), loop
    variables start each always_comb block at 0, and the dateline writes the packed VC bit."""
    text, counts = pymtl3_peers.repair(TRANSLATED)
    assert counts == {"undriven_array_reads": 1, "loop_variables": 1, "dateline_assignments": 1}
    assert "= pkt__x[0];" not in text
    assert "assign send__0__msg__x = pkt[0][3:2];" in text
    assert "assign send__0__msg = pkt[0];" in text
    assert "always_comb begin : up_a\n    __loopvar__up_a_i = 0;\n" in text
    assert f"send_msg_wire[{pymtl3_peers.PAYLOAD_BITS}] = 1'd1;" in text


def test_quick_subset_is_a_subset():
    every = [d[0] for d in qor._designs(quick=False)]
    assert set(qor.QUICK) <= set(every)
    assert [d[0] for d in qor._designs(quick=True)] == [k for k in every if k in qor.QUICK]


@pytest.mark.slow
@needs_flow
def test_bench_qor_quick_writes_ratios(tmp_path):
    out = tmp_path / "qor.json"
    result = subprocess.run([sys.executable, "-m", "gen", "bench", "qor", "--quick", "--json",
                             str(out)], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    keys = {r["key"] for r in data["results"]}
    assert {"ws_pe", "ws_pe_sext", "pe_int8", "pe_int", "router_1vc"} <= keys
    assert all(r["unmapped"] == {} and r["area_um2"] > 0 and r["reg_min_period_ns"] > 0
               for r in data["results"])
    (pe,) = [x for x in data["ratios"] if x["design"] == "pe_int8"]
    assert pe["peer"] in ("ws_pe", "ws_pe_sext") and pe["area_goal"] == 1.05
    assert "Ratios to peers" in result.stdout
    if pymtl3_peers.available() is None:
        assert "mesh" in keys
        (r,) = [x for x in data["ratios"] if x["design"] == "router_1vc"]
        assert r["peer"] == "mesh"
    else:
        assert data["skipped"]["mesh"] == pymtl3_peers.available()
