"""Hierarchical emission (gen/lib/hier.py): one module per distinct component, plain names, SRAM
macros, the manifest's hierarchy."""

import json
import re
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.lib import hier
from gen.lib.fifo import Fifo
from gen.lib.hier import KEYWORDS, plain_name
from gen.lib.sram import Sram

RTL = Path(__file__).resolve().parent.parent / "rtl_out"
TOPS = ("accelgen_gemm", "accelgen_softmax", "accelgen_noc")


def modules(text):
    return re.findall(r"^module\s+([^\s(]+)", text, re.M)


@pytest.mark.parametrize("top", TOPS)
def test_default_modules_are_distinct_and_plainly_named(top):
    """Every module is defined once, under a plain identifier that is no keyword, starting with the
    top's name; no escaped identifier is left anywhere; the manifest lists exactly these modules."""
    text = (RTL / f"{top}.v").read_text()
    names = modules(text)
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in KEYWORDS
        assert name == top or name.startswith(top + "_")
    assert "\\" not in text
    words = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_$]*\b", re.sub(r"//.*", "", text)))
    assert not words & hier.SYSTEMVERILOG_KEYWORDS
    manifest = json.loads((RTL / f"{top}.json").read_text())
    assert sorted(e["module"] for e in manifest["hierarchy"]) == sorted(names)
    assert manifest["hierarchy"][0] == {"module": top, "component": manifest["hierarchy"][0]["component"],
                                        "parameters": {}, "instances": 1}


def test_default_gemm_has_one_pe_module_instantiated_per_pe():
    text = (RTL / "accelgen_gemm.v").read_text()
    manifest = json.loads((RTL / "accelgen_gemm.json").read_text())
    rows, cols = manifest["parameters"]["rows"], manifest["parameters"]["cols"]
    pe = {e["module"]: e for e in manifest["hierarchy"]}["accelgen_gemm_pe"]
    assert pe["instances"] == rows * cols
    assert pe["parameters"]["modes"] == manifest["parameters"]["modes"]
    # R instances of one row module, each instantiating C PEs.
    assert len(re.findall(r"^\s*accelgen_gemm_pe_row\s+\w+\s*\(", text, re.M)) == rows
    assert len(re.findall(r"^\s*accelgen_gemm_pe\s+\w+\s*\(", text, re.M)) == cols


def test_default_noc_has_one_router_and_one_interface_module():
    manifest = json.loads((RTL / "accelgen_noc.json").read_text())
    nodes = manifest["parameters"]["nodes"]
    by_name = {e["module"]: e for e in manifest["hierarchy"]}
    assert by_name["accelgen_noc_router"]["instances"] == nodes
    assert by_name["accelgen_noc_ni"]["instances"] == nodes
    # Five input buffers per router and one ejection buffer per interface, all one module.
    assert by_name["accelgen_noc_vc_buffer"]["instances"] == 6 * nodes


def test_memories_are_sram_macros_without_per_word_initialization():
    """Memories are SRAM macro instances (depth and width in the name); no module but a macro
    declares a memory array, and no word is initialized one by one."""
    for top in TOPS:
        text = (RTL / f"{top}.v").read_text()
        for chunk in re.split(r"(?m)^(?=module )", text)[1:]:
            name = modules(chunk)[0]
            arrays = re.findall(r"^\s*reg\s+\[[^\]]+\]\s+\w+\s*\[", chunk, re.M)
            if "_sram_" in name:
                assert re.search(r"_sram_\d+r\d+w_d\d+_w\d+$", name)
                assert len(arrays) == 1
            elif "_fifo" not in name:
                assert arrays == [], name
        assert not re.search(r"\w+\[\d+\] = \d+'h", text)


class _Pair(wiring.Component):
    """Three FIFOs of one size and one of another, for the deduplication test."""

    def __init__(self):
        super().__init__({"i": In(4), "o": Out(4)})

    def elaborate(self, platform):
        m = Module()
        prev = self.i
        for k in range(3):
            f = hier.add(m, f"q{k}", Fifo(width=4, depth=2))
            m.d.comb += [f.w_data.eq(prev), f.w_en.eq(1), f.r_en.eq(1)]
            prev = f.r_data
        g = hier.add(m, "wide", Fifo(width=5, depth=2))
        m.d.comb += [g.w_data.eq(prev), g.w_en.eq(1), g.r_en.eq(1), self.o.eq(g.r_data)]
        return m


def test_same_parameters_share_a_module_and_others_get_their_own():
    out = hier.convert(_Pair(), "pair")
    by_name = {e["module"]: e for e in out.hierarchy}
    assert by_name["pair_fifo_w4_d2"]["instances"] == 3
    assert by_name["pair_fifo_w5_d2"]["instances"] == 1
    assert by_name["pair_fifo_w4_d2"]["parameters"] == {"width": 4, "depth": 2, "buffered": False}
    assert modules(out.verilog) == ["pair", "pair_fifo_w4_d2", "pair_fifo_w5_d2"]


def test_plain_name_makes_identifiers_and_avoids_keywords():
    assert plain_name("a.b[3]") == "a_b_3_"
    assert plain_name("logic") == "logic_"
    assert plain_name("module") == "module_"
    assert plain_name("3x") == "_3x"


class _Ram(wiring.Component):
    def __init__(self, transparent):
        self._t = transparent
        super().__init__({"wa": In(3), "wd": In(8), "we": In(1), "ra": In(3), "rd": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = Sram(shape=8, depth=8, transparent=[(0,)] if self._t else None)
        m.d.comb += [ram.w[0].addr.eq(self.wa), ram.w[0].data.eq(self.wd), ram.w[0].en.eq(self.we),
                     ram.r[0].addr.eq(self.ra), self.rd.eq(ram.r[0].data)]
        return m


@pytest.mark.parametrize("transparent", [False, True])
def test_sram_read_first_or_transparent_in_amaranth_simulation(transparent):
    """The SRAM wrapper's same-cycle write and read of one address: the old word from the
    read-first macro, the new one through the bypass."""
    from amaranth.sim import Simulator

    dut = _Ram(transparent)
    seen = []

    async def bench(ctx):
        ctx.set(dut.wa, 5)
        ctx.set(dut.wd, 0x11)
        ctx.set(dut.we, 1)
        await ctx.tick()
        ctx.set(dut.wd, 0x22)
        ctx.set(dut.ra, 5)
        await ctx.tick()
        ctx.set(dut.we, 0)
        seen.append(ctx.get(dut.rd))
        await ctx.tick()
        seen.append(ctx.get(dut.rd))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == ([0x22, 0x22] if transparent else [0x11, 0x22])


class _Delays(wiring.Component):
    """Two delay lines of one width (one module, two depths) and one with reset."""

    def __init__(self):
        super().__init__({"d": In(4), "q1": Out(4), "q3": Out(4), "v": In(1), "v2": Out(1)})

    def elaborate(self, platform):
        from gen.lib.delay import delay
        m = Module()
        m.d.comb += [self.q1.eq(delay(m, "one", self.d, 1)), self.q3.eq(delay(m, "three", self.d, 3)),
                     self.v2.eq(delay(m, "valid", self.v, 2, reset=True))]
        return m


def test_delay_lines_are_one_parameterized_module_per_width():
    """Lines of one width share a module whose depth is the instance's DEPTH parameter; a line
    with reset is a module of its own."""
    text = hier.convert(_Delays(), "t")
    names = sorted(text.macros)
    assert names == ["t_delay_w1_rst", "t_delay_w4"]
    depths = re.findall(r"t_delay_w4 #\(\s*\.DEPTH\(32'd(\d+)\)\s*\)", text.verilog)
    assert sorted(depths) == ["1", "3"]


def test_delay_line_parameters_are_checked():
    from gen.lib.delay import DelayLine
    with pytest.raises(ValueError, match=r"depth = 0: a delay line delays by at least 1 cycle"):
        DelayLine(width=4, depth=0)
    with pytest.raises(ValueError, match=r"width = 0: a delay line carries at least 1 bit"):
        DelayLine(width=0, depth=2)


def _run_delays(sim_steps):
    """q1, q3, v2 of :class:`_Delays` in Amaranth's simulator over ``sim_steps`` (d, v, rst)."""
    from amaranth.sim import Simulator
    dut = _Delays()
    seen = []

    async def bench(ctx):
        for d, v, rst in sim_steps:
            ctx.set(dut.d, d)
            ctx.set(dut.v, v)
            await ctx.tick()
            seen.append((ctx.get(dut.q1), ctx.get(dut.q3), ctx.get(dut.v2)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_delay_line_in_amaranth_simulation():
    steps = [(k % 16, k % 2, 0) for k in range(10)]
    seen = _run_delays(steps)
    for t in range(3, 10):
        assert seen[t][0] == steps[t][0]           # q1 after the edge that took d
        assert seen[t][1] == steps[t - 2][0]
        assert seen[t][2] == steps[t - 1][1]


@pytest.mark.skipif(__import__("shutil").which("iverilog") is None, reason="needs iverilog")
def test_delay_line_verilog_under_icarus(tmp_path):
    """The self-written modules delay by DEPTH cycles, and reset clears the line with reset."""
    import subprocess
    text = hier.convert(_Delays(), "t")
    tb = """
module tb;
  reg clk = 0, rst = 1, v = 0; reg [3:0] d = 0; wire [3:0] q1, q3; wire v2;
  t dut (.clk(clk), .rst(rst), .d(d), .v(v), .q1(q1), .q3(q3), .v2(v2));
  integer k;
  initial begin
    @(posedge clk); #1 rst = 0;
    if (v2 !== 1'b0) $display("FAIL reset");
    for (k = 1; k < 12; k = k + 1) begin
      d = k; v = k % 2; @(posedge clk); #1;
      if (q1 !== k[3:0]) $display("FAIL q1 %0d %0d", k, q1);
      if (k >= 3 && q3 !== k - 2) $display("FAIL q3 %0d %0d", k, q3);
      if (k >= 2 && v2 !== (k - 1) % 2) $display("FAIL v2 %0d", k);
    end
    $display("DONE"); $finish;
  end
  always #5 clk = ~clk;
endmodule
"""
    src = tmp_path / "t.v"
    src.write_text(text.verilog + "".join(text.macros.values()) + tb)
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "t.vvp"), str(src)], check=True)
    out = subprocess.run(["vvp", str(tmp_path / "t.vvp")], capture_output=True, text=True).stdout
    assert "DONE" in out and "FAIL" not in out, out


def test_default_gemm_skew_and_deskew_are_delay_lines():
    """The array's skew (rows 1 to R - 1) and deskew (columns 0 to C - 2) are delay-line instances
    of depths 1 to R - 1 and C - 1 to 1; no per-stage register is left in the top."""
    text = (RTL / "accelgen_gemm.v").read_text()
    manifest = json.loads((RTL / "accelgen_gemm.json").read_text())
    rows, cols = manifest["parameters"]["rows"], manifest["parameters"]["cols"]
    skew = re.findall(r"accelgen_gemm_delay_w\d+ #\(\s*\.DEPTH\(32'd(\d+)\)\s*\)\s*array_skew_", text)
    deskew = re.findall(r"accelgen_gemm_delay_w\d+ #\(\s*\.DEPTH\(32'd(\d+)\)\s*\)\s*array_deskew_",
                        text)
    assert sorted(map(int, skew)) == list(range(1, rows))
    assert sorted(map(int, deskew)) == list(range(1, cols))
    assert not re.search(r"skew_a_\d+_\d+", text)
