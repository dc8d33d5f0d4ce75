"""Flow files (SDC, XDC, FuseSoC core) and the lint and synthesis gates on the emitted Verilog.

Tests that need a tool not installed (Tcl, fusesoc, iverilog, yosys) are skipped, naming the tool.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gen.config import default_config, parse_config
from gen.emit import constraint_files, render
from gen.flow import LINT_WAIVERS
from gen.outdir import STAMP, stamped_names
from sim import runner

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"gemm": {"top": "gemm_small", "rows": 2, "cols": 3, "modes": ["int8", "int4", "w4a8"],
                  "max_m": 8, "max_n": 8, "max_k": 8, "acc_width": 20, "out_fifo_depth": 4}}
INT8_ONLY = {"gemm": {"top": "gemm_int8", "rows": 2, "cols": 2, "modes": ["int8"], "max_m": 4,
                      "max_n": 4, "max_k": 4, "acc_width": 18, "out_fifo_depth": 4},
             "flow": {"clock_period_ns": 3.5, "io_delay_fraction": 0.1, "reset_false_path": False}}


def needs(tool):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not on PATH")


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    for name, text in render(parse_config(SMALL)).items():
        (out / name).write_text(text)
    return out


def test_constraints_dir_is_fresh(default_files):
    """constraints/ holds exactly the default configuration's SDC and XDC."""
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "constraints").iterdir()
               if p.is_file() and p.name != STAMP}
    wanted = constraint_files(default_files)
    tops = [section.top for section in default_config().blocks.values()]
    assert sorted(wanted) == sorted(f"{top}.{ext}" for top in tops for ext in ("sdc", "xdc"))
    assert sorted(on_disk) == sorted(wanted), \
        "constraints/ has other files; run `accelgen emit --constraints constraints`"
    assert stamped_names(ROOT / "constraints") == sorted(wanted), \
        f"constraints/{STAMP} is stale; run `accelgen emit --constraints constraints`"
    stale = [name for name in wanted if on_disk[name] != wanted[name]]
    assert not stale, f"constraints/ is stale ({', '.join(stale)}): run " \
                      "`accelgen emit --constraints constraints`"


def test_emit_writes_flow_files_beside_each_top(default_files):
    tops = [section.top for section in default_config().blocks.values()]
    assert sorted(default_files) == sorted(
        [f"{top}.{ext}" for top in tops for ext in ("core", "f", "json", "sdc", "v", "xdc")]
        + [LINT_WAIVERS])


def test_every_waiver_says_why():
    lines = (ROOT / "gen" / "lint_waivers.vlt").read_text().splitlines()
    rules = [line for line in lines if line.startswith("lint_off")]
    assert rules and len(rules) <= 10
    for line in rules:
        reason = line.partition("//")[2].strip()
        assert len(reason) > 20, f"waiver without a reason: {line}"


# --- SDC and XDC, read by a Tcl interpreter with the constraint commands recorded --------------------

_RECORDER = r"""
set ::calls {}
proc get_ports {pattern} { return [list port $pattern] }
proc get_clocks {name} { return [list clock $name] }
proc _record {cmd args} { lappend ::calls [concat $cmd $args] }
foreach cmd {create_clock set_input_delay set_output_delay set_false_path} {
    proc $cmd {args} "_record $cmd {*}\$args"
}
"""


def _tcl_calls(text):
    """Run constraint text in Tcl with recording stubs; the commands as lists of words. Tcl is
    Python's tkinter, else `tclsh`."""
    try:
        import tkinter
    except ImportError:
        tclsh = shutil.which("tclsh")
        if tclsh is None:
            pytest.skip("no Tcl interpreter: neither Python's tkinter nor tclsh is installed")
        script = _RECORDER + text + '\nforeach c $::calls { puts [join $c "\\t"] }\n'
        out = subprocess.run([tclsh], input=script, capture_output=True, text=True, check=True)
        return [line.split("\t") for line in out.stdout.splitlines()]
    tcl = tkinter.Tcl()
    tcl.eval(_RECORDER)
    tcl.eval(text)
    calls = tcl.splitlist(tcl.eval("set ::calls"))
    return [list(tcl.splitlist(call)) for call in calls]


def _port_of(tcl_word, manifest_ports):
    kind, pattern = tcl_word.split(" ", 1)
    assert kind == "port"
    pattern = pattern.strip("{}")
    if pattern.endswith("[*]"):
        name = pattern[:-3]
        assert manifest_ports[name] > 1, pattern
    else:
        name = pattern
        assert manifest_ports[name] == 1, pattern
    return name


@pytest.mark.parametrize("sections", [SMALL, INT8_ONLY], ids=["small", "int8-no-reset-false-path"])
@pytest.mark.parametrize("dialect", ["sdc", "xdc"])
def test_constraints_cover_every_port(sections, dialect):
    """Tcl reads the file; the clock has the configured period; every data input has one input delay,
    every output one output delay, of the configured fraction; rst is a false path or has a delay."""
    config = parse_config(sections)
    files = render(config)
    top = sections["gemm"]["top"]
    manifest = json.loads(files[f"{top}.json"])
    ports = {p["name"]: p["width"] for p in manifest["ports"]}
    directions = {p["name"]: p["direction"] for p in manifest["ports"]}
    calls = _tcl_calls(files[f"{top}.{dialect}"])
    period = config.flow.clock_period_ns
    delay = period * config.flow.io_delay_fraction
    clocks = [c for c in calls if c[0] == "create_clock"]
    assert clocks == [["create_clock", "-name", "clk", "-period", f"{period:.3f}", "port clk"]]
    delays = {"set_input_delay": [], "set_output_delay": []}
    false_paths = []
    for call in calls:
        if call[0] in delays:
            assert call[1] == "-clock"
            assert call[2] == ("clock clk" if dialect == "xdc" else "clk")
            assert float(call[3]) == pytest.approx(delay, abs=5e-4)
            delays[call[0]].append(_port_of(call[4], ports))
        elif call[0] == "set_false_path":
            assert call[1] == "-from"
            false_paths.append(_port_of(call[2], ports))
    inputs = sorted(n for n, d in directions.items() if d == "in" and n != "clk")
    outputs = sorted(n for n, d in directions.items() if d == "out")
    if config.flow.reset_false_path:
        assert false_paths == ["rst"]
        inputs.remove("rst")
    else:
        assert false_paths == []
    assert sorted(delays["set_input_delay"]) == inputs
    assert sorted(delays["set_output_delay"]) == outputs


# --- FuseSoC ----------------------------------------------------------------------------------------

@needs("fusesoc")
def test_fusesoc_accepts_the_core_file_and_runs_its_lint_target(small_dir, tmp_path):
    """fusesoc parses the core (its schema check rejects unknown keys) and its lint target, Verilator
    with -Wall and the waivers, passes."""
    show = subprocess.run(["fusesoc", "--cores-root", str(small_dir), "core", "show",
                           "accelgen:blocks:gemm_small"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert show.returncode == 0, show.stdout + show.stderr
    assert "Name:        accelgen:blocks:gemm_small:0.1.0" in show.stdout
    assert "lint" in show.stdout and "failed to parse" not in show.stdout + show.stderr
    runner.verilator_env()
    lint = subprocess.run(["fusesoc", "--cores-root", str(small_dir), "run", "--target", "lint",
                           "accelgen:blocks:gemm_small"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert lint.returncode == 0, (lint.stdout + lint.stderr)[-3000:]


@needs("fusesoc")
def test_fusesoc_rejects_a_broken_core_file(small_dir, tmp_path):
    """The acceptance above means something: a misspelt key makes the core unparseable."""
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (small_dir / "gemm_small.core").read_text()
    (bad / "gemm_small.core").write_text(text.replace("file_type: SDC", "file_typ: SDC"))
    show = subprocess.run(["fusesoc", "--cores-root", str(bad), "core", "show",
                           "accelgen:blocks:gemm_small"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert "Name:        accelgen:blocks:gemm_small" not in show.stdout
    assert "file_typ" in show.stdout + show.stderr


# --- Lint gates -------------------------------------------------------------------------------------

def _lint(verilog_dir, top):
    runner.verilator_env()
    return subprocess.run(["verilator", "--lint-only", "-Wall", str(verilog_dir / LINT_WAIVERS),
                           "--top-module", top, str(verilog_dir / f"{top}.v")],
                          capture_output=True, text=True)


def test_verilator_wall_on_the_default_configuration():
    result = _lint(ROOT / "rtl_out", "accelgen_gemm")
    assert result.returncode == 0, result.stderr[:3000]


def test_verilator_wall_on_an_int8_only_array(tmp_path):
    for name, text in render(parse_config(INT8_ONLY)).items():
        (tmp_path / name).write_text(text)
    result = _lint(tmp_path, "gemm_int8")
    assert result.returncode == 0, result.stderr[:3000]


def test_verilator_wall_without_waivers_fails(small_dir, tmp_path):
    """The waivers are needed (each one removes real warnings), so the gate above tests something."""
    (tmp_path / LINT_WAIVERS).write_text("`verilator_config\n")
    (tmp_path / "gemm_small.v").write_text((small_dir / "gemm_small.v").read_text())
    result = _lint(tmp_path, "gemm_small")
    assert result.returncode != 0 and "%Warning-WIDTHEXPAND" in result.stderr


@needs("iverilog")
@pytest.mark.parametrize("top", ["accelgen_gemm"])
def test_icarus_compiles_the_default_configuration(top, tmp_path):
    result = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", str(tmp_path / "a.out"),
                             "-s", top, str(ROOT / "rtl_out" / f"{top}.v")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:3000]


@needs("yosys")
def test_yosys_check_after_synth_finds_no_latch_loop_or_multiple_driver(small_dir):
    """`check -assert` fails on combinational loops, multiple drivers and undriven wires; latches
    would show as $dlatch cells."""
    from gen import synth
    report = synth.yosys_check(small_dir / "gemm_small.v", "gemm_small")
    assert report["latches"] == 0
    assert report["check_passed"], report["log_tail"]


# --- accelgen synth ---------------------------------------------------------------------------------

PE_1X1 = {"gemm": {"top": "gemm_1x1", "rows": 1, "cols": 1, "modes": ["int8"], "max_m": 4,
                   "max_n": 4, "max_k": 4, "acc_width": 18, "out_fifo_depth": 4}}


def _toml(sections):
    return "".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
                   for name, table in sections.items())


@needs("iverilog")
def test_ooc_wrapper_connects_every_port(tmp_path):
    """The wrapper compiles with the block under Icarus with every port connected, and its shift
    registers are as wide as the block's data inputs and outputs."""

    from gen.flow import io_ports
    from gen.synth import ooc_wrapper
    files = render(parse_config(SMALL))
    manifest = json.loads(files["gemm_small.json"])
    text = ooc_wrapper(manifest)
    inputs, outputs = io_ports(manifest)
    assert f"reg [{sum(w for _, w in inputs) - 1}:0] in_sr" in text
    assert f"reg [{sum(w for _, w in outputs) - 1}:0] out_sr" in text
    path = tmp_path / "ooc.v"
    path.write_text(files["gemm_small.v"] + text)
    result = subprocess.run(["iverilog", "-g2005", "-Wall", "-Wno-timescale", "-o",
                             str(tmp_path / "a.out"), "-s", "gemm_small_ooc", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:3000]
    assert "port" not in result.stderr.lower(), result.stderr[:3000]


@pytest.mark.slow
@needs("yosys")
@needs("nextpnr-ice40")
def test_synth_command_on_ice40_reports_area_and_fmax(tmp_path):
    """`accelgen synth --target ice40 --json` on a 1x1 INT8 array: LUTs, flip-flops, one 8x8
    multiplier, and an fmax from nextpnr; the same figures in the table and the JSON."""
    config = tmp_path / "pe.toml"
    config.write_text(_toml(PE_1X1))
    result = subprocess.run([sys.executable, "-m", "gen", "synth", str(config), "--target", "ice40",
                             "--json", str(tmp_path / "r.json")], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    (top,) = report["tops"]
    assert top["top"] == "gemm_1x1" and top["check_passed"] and top["latches"] == 0
    assert top["multipliers"] == {"16-bit product": 1}
    assert top["luts"] == top["cells_by_type"]["SB_LUT4"] > 0
    assert top["flip_flops"] == sum(n for t, n in top["cells_by_type"].items()
                                    if t.startswith("SB_DFF"))
    timing = top["timing"]
    assert timing["fits"] and 10 < timing["fmax_mhz"] < 1000
    assert timing["flip_flops"] > top["flip_flops"]  # the wrapper's shift registers
    row = [line for line in result.stdout.splitlines() if line.startswith("| gemm_1x1")]
    assert row and f"| {top['luts']} |" in row[0] and f"{timing['fmax_mhz']:.1f}" in row[0]


def test_synth_without_yosys_is_one_line_error(tmp_path):
    config = tmp_path / "pe.toml"
    config.write_text(_toml(PE_1X1))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "gen", "synth", str(config)],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr == ("accelgen: error: yosys is not on PATH (Debian package yosys); "
                             "accelgen synth needs it\n")


# --- QoR baseline -----------------------------------------------------------------------------------

BASELINE = ROOT / "qor" / "baseline_generic.json"


def _result(cells, ffs, top="t"):
    return {"target": "generic", "yosys": "Yosys 0.23",
            "tops": [{"top": top, "cells": cells, "flip_flops": ffs}]}


def test_compare_baseline_flags_changes_over_two_percent():
    from gen.synth import baseline_of, compare_baseline
    base = baseline_of(_result(1000, 200))
    assert compare_baseline(_result(1020, 204), base) == []
    assert compare_baseline(_result(980, 196), base) == []
    assert compare_baseline(_result(1021, 200), base) == [
        "t: cells 1000 -> 1021 (+2.1%, more than 2%)"]
    assert compare_baseline(_result(1000, 195), base) == [
        "t: flip_flops 200 -> 195 (-2.5%, more than 2%)"]
    assert compare_baseline(_result(1000, 200, top="u"), base) == [
        "t: in the baseline only", "u: in the result only"]


def test_baseline_is_of_the_default_configuration():
    import gen.config
    baseline = json.loads(BASELINE.read_text())
    assert baseline["target"] == "generic"
    assert sorted(baseline["tops"]) == sorted(
        s.top for s in gen.config.default_config().blocks.values())


@pytest.mark.slow
@needs("yosys")
def test_default_configuration_area_matches_the_baseline():
    """Cells and flip-flops of the default configuration within 2% of qor/baseline_generic.json. An
    intended change updates the baseline in the same commit, saying why:
    `accelgen synth --update-baseline qor/baseline_generic.json`."""
    from gen import synth
    baseline = json.loads(BASELINE.read_text())
    version = synth._yosys_version()
    if version != baseline["yosys"]:
        pytest.skip(f"baseline made with {baseline['yosys']}; this is {version}, whose cell counts "
                    "differ")
    result = synth.run(default_config(), "generic")
    problems = synth.compare_baseline(result, baseline)
    assert not problems, "\n".join(problems) + "\nIf intended: accelgen synth --update-baseline " \
                                                "qor/baseline_generic.json, and say why in the commit"
