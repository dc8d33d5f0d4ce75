"""`accelgen synth --target asic`: Liberty reading, SRAM macros, per-module area and OpenSTA timing.

The tests that run Yosys and OpenSTA are skipped, naming what is missing, without ``yosys``, ``sta``
or the OSU 0.18 um Liberty file (Debian packages yosys, opensta, qflow-tech-osu018). They check
behaviour (what is counted where, what is timed, what is refused), not the figures.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gen import synth_asic
from gen.liberty import MacroPort, drive_and_load, macro_library, read_cells

ROOT = Path(__file__).resolve().parent.parent


def needs_flow():
    missing = [t for t in ("yosys", "sta") if shutil.which(t) is None]
    if not Path(synth_asic.DEFAULT_LIBERTY).is_file():
        missing.append(synth_asic.DEFAULT_LIBERTY)
    return pytest.mark.skipif(bool(missing), reason=", ".join(missing) + " missing")


TINY_LIB = """
library (tiny) {
  /* a comment { with braces } */
  time_unit : "1ns";
  cell (INVX1) { area : 16; pin (A) { direction : input; capacitance : 0.01; }
                 pin (Y) { direction : output; function : "!A"; } }
  cell (INVX4) { area : 24; pin (A) { direction : input; capacitance : 0.04; }
                 pin (Y) { direction : output; function : "!A"; } }
  cell (BUFX2) { area : 24; pin (A) { direction : input; capacitance : 0.01; }
                 pin (Y) { direction : output; function : "A"; } }
  cell ("DFF") { area : 96;
    ff (IQ, IQN) { clocked_on : "CLK"; next_state : "D"; }
    pin (CLK) { direction : input; clock : true; capacitance : 0.02; }
    pin (D) { direction : input; capacitance : 0.01; }
    pin (Q) { direction : output; function : "IQ"; } }
}
"""


def test_liberty_cells_area_sequential_and_pins(tmp_path):
    lib = tmp_path / "tiny.lib"
    lib.write_text(TINY_LIB)
    cells = read_cells(lib)
    assert sorted(cells) == ["BUFX2", "DFF", "INVX1", "INVX4"]
    assert cells["DFF"].area == 96 and cells["DFF"].sequential
    assert not cells["INVX1"].sequential
    assert cells["INVX1"].pins["Y"] == {"direction": "output", "capacitance": 0.0, "function": "!A"}
    assert cells["DFF"].pins["CLK"]["capacitance"] == 0.02


def test_abc_drives_inputs_with_the_smallest_inverter_and_a_fanout_of_four(tmp_path):
    lib = tmp_path / "tiny.lib"
    lib.write_text(TINY_LIB)
    assert drive_and_load(read_cells(lib)) == ("INVX1", 0.04)
    lib.write_text("library (x) { cell (BUFX2) { area : 1; pin (A) { direction : input; } "
                   'pin (Y) { direction : output; function : "A"; } } }')
    with pytest.raises(ValueError, match="no inverter"):
        drive_and_load(read_cells(lib))


def test_macro_library_times_synchronous_and_asynchronous_ports(tmp_path):
    ports = [MacroPort("CLK0", "input", clock_pin=True), MacroPort("A0", "input", clock="CLK0"),
             MacroPort("Q0", "output", clock="CLK0"), MacroPort("AA0", "input"),
             MacroPort("QA0", "output", through=("AA0",))]
    text = macro_library("m", [("ram", 123.5, ports)], access_ns=1.5, setup_ns=0.25)
    (tmp_path / "m.lib").write_text(text)
    cells = read_cells(tmp_path / "m.lib")
    assert cells["ram"].area == 123.5
    assert "timing_type : setup_rising" in text and "timing_type : rising_edge" in text
    assert "timing_type : combinational" in text and 'values ("1.5")' in text


HIER = """
module adder(input clk, input [7:0] a, input [7:0] b, output reg [7:0] y);
  always @(posedge clk) y <= a + b;
endmodule
module top(input clk, input rst, input [7:0] a, input [7:0] b, output [7:0] y, output reg [7:0] q,
           output reg [7:0] r);
  wire [7:0] t;
  reg [7:0] big [0:255];   // 2048 bits: an SRAM macro
  reg [7:0] small [0:3];   // 32 bits: flip-flops
  adder u0(clk, a, b, t);
  adder u1(clk, t, q, y);
  always @(posedge clk) begin
    big[a] <= b; q <= big[t];
    small[a[1:0]] <= b; r <= small[b[1:0]];
  end
endmodule
"""


@needs_flow()
def test_hierarchy_is_kept_and_memories_are_macros_or_flip_flops(tmp_path):
    """A module instantiated twice is synthesized once and counted twice; a memory of at least
    ``sram_min_bits`` is a black box priced by the area model, a smaller one becomes flip-flops."""
    (tmp_path / "top.v").write_text(HIER)
    r = synth_asic.synthesize(tmp_path / "top.v", "top", sram_min_bits=1024,
                              sram_um2_per_bit=2.0, netlist=tmp_path / "net.v")
    mods = {m["module"]: m for m in r["modules"]}
    assert mods["adder"]["instances"] == 2
    assert mods["top"]["area_with_submodules_um2"] == pytest.approx(
        mods["top"]["area_um2"] + 2 * mods["adder"]["area_um2"], abs=0.2)
    assert r["area_um2"] == mods["top"]["area_with_submodules_um2"]
    (shape,) = r["sram"]["shapes"]
    assert (shape["words"], shape["width"], shape["instances"]) == (256, 8, 1)
    assert r["sram"]["area_um2"] == 2048 * 2.0
    assert r["total_area_um2"] == pytest.approx(r["area_um2"] + 2048 * 2.0)
    # Two adders' outputs, r, and the small memory's 4 x 8 bits; q is the macro's read register.
    assert r["flip_flops"] == 16 + 8 + 32
    assert r["unmapped"] == {}
    assert shape["macro"] in (tmp_path / "net.v").read_text()
    # Everything in the library counts; a lower threshold makes the small memory a macro too.
    r2 = synth_asic.synthesize(tmp_path / "top.v", "top", sram_min_bits=32, timing=False)
    assert r2["sram"]["macros"] == 2 and r2["flip_flops"] == 16
    assert "timing" not in r2


def _chain(n):
    """Registers, the sum of ``n + 1`` of them, a register."""
    ins = ", ".join(f"input [15:0] c{i}" for i in range(n))
    regs = "".join(f"  reg [15:0] r{i};\n" for i in range(n))
    loads = " ".join(f"r{i} <= c{i};" for i in range(n))
    body = " + ".join(["x"] + [f"r{i}" for i in range(n)])
    return (f"module top(input clk, input rst, input [15:0] a, {ins}, output reg [15:0] y);\n"
            f"  reg [15:0] x;\n{regs}"
            f"  always @(posedge clk) begin x <= a; {loads} y <= {body}; end\nendmodule\n")


@needs_flow()
def test_min_period_follows_the_logic_depth_and_the_sdc(tmp_path):
    (tmp_path / "c1.v").write_text(_chain(1))
    (tmp_path / "c6.v").write_text(_chain(6))
    t1 = synth_asic.synthesize(tmp_path / "c1.v", "top")["timing"]
    t6 = synth_asic.synthesize(tmp_path / "c6.v", "top")["timing"]
    assert 0 < t1["min_period_ns"] < t6["min_period_ns"]
    assert t6["min_period_ns"] == pytest.approx(t6["period_ns"] - t6["slack_ns"], abs=1e-3)
    assert t6["cell_levels"] > t1["cell_levels"]
    # An output delay in the SDC adds to a path to the output.
    sdc = ("create_clock -name clk -period 7.000 [get_ports clk]\n"
           "set_output_delay -clock clk 4.000 [get_ports {y[*]}]\n")
    t = synth_asic.synthesize(tmp_path / "c1.v", "top", sdc=sdc)["timing"]
    assert t["period_ns"] == 7.0
    assert t["endpoint"].startswith("y[")
    assert t["min_period_ns"] > t1["min_period_ns"]


FANOUT = """
module top(input clk, input rst, input en, input [511:0] d, output reg [511:0] q);
  reg en_r;
  always @(posedge clk) begin en_r <= en; if (en_r) q <= d; end
endmodule
"""


@needs_flow()
def test_high_fanout_nets_are_buffered(tmp_path):
    """One flip-flop enabling 512 others: ABC buffers the net, so the period stays that of a few
    gates (unbuffered, one minimum-size output driving 512 inputs gives hundreds of nanoseconds)."""
    (tmp_path / "top.v").write_text(FANOUT)
    r = synth_asic.synthesize(tmp_path / "top.v", "top")
    assert r["timing"]["min_period_ns"] < 5.0
    assert any(name.startswith(("BUF", "INV")) for name in _cell_types(r, tmp_path))


def _cell_types(report, tmp_path):
    net = tmp_path / "fan.v"
    synth_asic.synthesize(tmp_path / "top.v", "top", timing=False, netlist=net)
    return {line.split()[0] for line in net.read_text().splitlines()
            if line.strip() and line.split()[0].isupper()}


PE_1X1 = ("[gemm]\ntop = \"gemm_1x1\"\nrows = 1\ncols = 1\nmodes = [\"int8\"]\nmax_m = 4\n"
          "max_n = 4\nmax_k = 4\nacc_width = 18\nout_fifo_depth = 4\n"
          "[flow]\nclock_period_ns = 6.0\n")


@needs_flow()
def test_synth_command_on_asic_reports_area_and_min_period(tmp_path):
    """`accelgen synth --target asic --json` on a 1 x 1 INT8 engine, timed with its emitted SDC."""
    config = tmp_path / "c.toml"
    config.write_text(PE_1X1)
    out = tmp_path / "r.json"
    result = subprocess.run([sys.executable, "-m", "gen", "synth", str(config), "--target", "asic",
                             "--json", str(out)], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "gemm_1x1" in result.stdout and "min period ns" in result.stdout
    report = json.loads(out.read_text())
    assert report["target"] == "asic"
    (top,) = report["tops"]
    assert top["block"] == "gemm" and top["area_um2"] > 0 and top["flip_flops"] > 0
    assert top["timing"]["period_ns"] == 6.0 and top["timing"]["min_period_ns"] > 0
    assert top["modules"][0]["module"] == "gemm_1x1"


def _synth(tmp_path, *args, path=None):
    config = tmp_path / "c.toml"
    config.write_text(PE_1X1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "gen", "synth", str(config), *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env)


def test_asic_without_a_tool_is_one_line_error(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    result = _synth(tmp_path, "--target", "asic", path=str(bin_dir))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("accelgen: error: ")
    assert "not on PATH" in result.stderr or "qflow-tech-osu018" in result.stderr
    if shutil.which("yosys") and Path(synth_asic.DEFAULT_LIBERTY).is_file():
        (bin_dir / "yosys").symlink_to(shutil.which("yosys"))
        result = _synth(tmp_path, "--target", "asic", path=str(bin_dir))
        assert result.returncode == 2
        assert result.stderr.startswith("accelgen: error: sta is not on PATH (Debian package "
                                        "opensta)")


def test_asic_options_are_checked(tmp_path):
    """Options are checked before any work: one line, exit status 2."""
    result = _synth(tmp_path, "--target", "asic", "--liberty", str(tmp_path / "none.lib"))
    assert result.returncode == 2
    assert result.stderr.startswith("accelgen: error: ") and "no such file" in result.stderr
    (tmp_path / "bad.lib").write_text("not a library\n")
    result = _synth(tmp_path, "--target", "asic", "--liberty", str(tmp_path / "bad.lib"))
    assert result.returncode == 2 and "is not a usable Liberty library" in result.stderr
    result = _synth(tmp_path, "--liberty", str(tmp_path / "none.lib"))
    assert result.returncode == 2
    assert result.stderr == "accelgen: error: --liberty applies to --target asic only\n"
    result = _synth(tmp_path, "--target", "asic", "--baseline", "x.json")
    assert result.returncode == 2
    assert result.stderr == ("accelgen: error: --baseline and --update-baseline apply to "
                             "--target generic and ice40 only\n")
    result = _synth(tmp_path, "--target", "asic", "--sram-min-bits", "0")
    assert result.returncode == 2
    assert result.stderr == "accelgen: error: --sram-min-bits 0: must be at least 1\n"


@needs_flow()
def test_cells_outside_the_library_are_reported(tmp_path):
    """A latch has no cell in the mapping (Yosys's dfflibmap maps flip-flops only): it is reported,
    not counted as area, and the command would exit with status 1."""
    (tmp_path / "top.v").write_text(
        "module top(input clk, input rst, input en, input [3:0] d, output reg [3:0] q);\n"
        "  always @* if (en) q = d;\nendmodule\n")
    r = synth_asic.synthesize(tmp_path / "top.v", "top", timing=False)
    assert r["unmapped"] == {"$_DLATCH_P_": 4}


WRAPPED = """
module ram_d256_w8(input clk, input r0_en, input [7:0] r0_addr, output reg [7:0] r0_data,
                   input w0_en, input [7:0] w0_addr, input [7:0] w0_data);
  reg [7:0] mem [0:255];
  always @(posedge clk) begin
    if (r0_en) r0_data <= mem[r0_addr];
    if (w0_en) mem[w0_addr] <= w0_data;
  end
endmodule
module top(input clk, input rst, input [7:0] a, output reg [7:0] y);
  wire [7:0] d;
  ram_d256_w8 ram(.clk(clk), .r0_en(1'b1), .r0_addr(a), .r0_data(d), .w0_en(a[0]),
                  .w0_addr(a + 8'd1), .w0_data(a));
  always @(posedge clk) y <= d + 8'd1;
endmodule
"""


@needs_flow()
def test_sram_wrappers_are_black_boxes_timed_at_their_ports(tmp_path):
    """A wrapper module named as an SRAM is not synthesized: it is one macro of the model's area,
    and the path from its read data to the register behind it is timed."""
    (tmp_path / "top.v").write_text(WRAPPED)
    r = synth_asic.synthesize(tmp_path / "top.v", "top", sram_um2_per_bit=1.0, sram_modules={
        "ram_d256_w8": {"words": 256, "width": 8, "read_ports": 1, "write_ports": 1}})
    (shape,) = r["sram"]["shapes"]
    assert shape["macro"] == "ram_d256_w8" and shape["area_um2"] == 2048.0
    assert [m["module"] for m in r["modules"]] == ["top"]
    assert r["flip_flops"] == 8
    reg = r["timing"]["register_to_register"]
    assert reg["startpoint"].startswith("ram ") and reg["cell_levels"] > 0


def test_sram_modules_come_from_the_manifest_hierarchy():
    manifest = {"hierarchy": [
        {"component": "gen.pe.MixedPE", "module": "x_pe", "instances": 4, "parameters": {}},
        {"component": "gen.lib.sram.SramMacro", "module": "x_sram_1r1w_d64_w8", "instances": 1,
         "parameters": {"depth": 64, "width": 8, "reads": 1, "writes": 1}}]}
    assert synth_asic.sram_modules(manifest) == {
        "x_sram_1r1w_d64_w8": {"words": 64, "width": 8, "read_ports": 1, "write_ports": 1}}


def test_parameterized_modules_are_reported_by_name_and_parameters():
    from gen.synth_asic import module_display_name
    assert module_display_name("$paramod\\t_delay_w70\\DEPTH=32'00000000000000000000000000000011") \
        == "t_delay_w70 #(DEPTH=3)"
    assert module_display_name("t_pe") == "t_pe"
