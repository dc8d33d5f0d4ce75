"""Emission: deterministic, complete manifests, lint-clean Verilog, and a fresh rtl_out/."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gen.config import parse_config
from gen.emit import render
from gen.outdir import STAMP, stamped_names
from tests.conftest import assert_lint_clean

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"gemm": {"top": "gemm_small", "rows": 2, "cols": 3, "modes": ["int8", "int4", "w4a8"],
                  "max_m": 8, "max_n": 8, "max_k": 8,
                  "acc_width": 20, "out_fifo_depth": 4}}


def test_rtl_out_is_fresh(default_files):
    """rtl_out/ holds exactly what `accelgen emit` writes for the default configuration."""
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "rtl_out").iterdir()
               if p.is_file() and p.name != STAMP}
    assert stamped_names(ROOT / "rtl_out") == sorted(default_files), \
        f"rtl_out/{STAMP} is stale; run `accelgen emit`"
    assert sorted(on_disk) == sorted(default_files), "rtl_out/ has other files; run `accelgen emit`"
    stale = [name for name in default_files if on_disk[name] != default_files[name]]
    assert not stale, f"rtl_out/ is stale ({', '.join(stale)}): run `accelgen emit`"


def test_two_emissions_in_separate_processes_are_identical(tmp_path):
    """Separate processes with different hash seeds and working folders write the same bytes."""
    outs = []
    for i, hashseed in enumerate(("1", "12345")):
        cwd = tmp_path / f"run{i}"
        cwd.mkdir()
        (cwd / "small.toml").write_text(
            "[gemm]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in SMALL["gemm"].items()))
        env = dict(os.environ, PYTHONHASHSEED=hashseed, PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "gen", "emit", "small.toml", "--out", "out"],
                       cwd=cwd, env=env, check=True, capture_output=True)
        outs.append({p.name: p.read_bytes() for p in (cwd / "out").iterdir() if p.name != STAMP})
    assert outs[0] == outs[1]
    assert sorted(outs[0]) == ["accelgen_lint.vlt", "gemm_small.core", "gemm_small.f",
                               "gemm_small.json", "gemm_small.sdc", "gemm_small.v", "gemm_small.xdc"]
    text = outs[0]["gemm_small.v"].decode()
    assert str(tmp_path) not in text and str(ROOT) not in text


def _verilog_ports(text, top):
    module = text[text.index(f"module {top}("):]
    module = module[:module.index("endmodule")]
    module = re.sub(r"(?s)\bfunction\b.*?\bendfunction\b", "", module)   # the inputs of functions
    ports = {}
    for direction, width, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+);",
                                             module, re.M):
        ports[name] = ("in" if direction == "input" else "out", int(width) + 1 if width else 1)
    return ports


def test_manifest_matches_the_verilog(default_files):
    manifest = json.loads(default_files["accelgen_gemm.json"])
    ports = _verilog_ports(default_files["accelgen_gemm.v"], "accelgen_gemm")
    listed = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert listed == ports
    assert all(p["role"] for p in manifest["ports"])
    assert manifest["generator"] == {"name": "accelgen", "version": "0.1.0"}
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["config_hash"])
    for name, stream in manifest["streams"].items():
        covered = sorted((f["offset"], f["offset"] + f["width"]) for f in stream["fields"])
        assert covered[0][0] == 0 and covered[-1][1] == stream["width"], name
        assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False)), name
        assert ports[f"{name}__payload"][1] == stream["width"]
    modes = manifest["performance"]["modes"]
    assert modes["int8"]["macs_per_cycle"] == 16 and modes["int4"]["macs_per_cycle"] == 32  # 4 x 4
    assert modes["fp8_e4m3"]["macs_per_cycle"] == modes["fp8_e5m2"]["macs_per_cycle"] == 16
    assert manifest["parameters"]["fp_acc_width"] == 73   # E5M2, max_k = 256
    lanes = [f for f in manifest["streams"]["o"]["fields"] if f["name"].startswith("data.")]
    assert all(f["width"] == 32 for f in lanes)
    assert all(m["latency"] == manifest["performance"]["pipeline_depth"] for m in modes.values())


@pytest.mark.parametrize("modes", [None, ["int8", "int4", "w4a8", "fp8_e4m3", "fp8_e5m2"]],
                         ids=["integer", "with-fp8"])
def test_verilator_lint(tmp_path, modes):
    """The Verilog passes `verilator --lint-only` with the runner's waivers (each commented there)."""
    sections = SMALL if modes is None else {"gemm": dict(SMALL["gemm"], modes=modes)}
    files = render(parse_config(sections))
    assert_lint_clean(tmp_path, files["gemm_small.v"], "gemm_small")


FP_SIGNALS = ("fa_sig", "fw_exp", "fp_mag", "fp_flags", "cv_norm", "to_binary32")


@pytest.mark.parametrize("modes, fp", [(["int8", "int4", "w4a8"], False), (["int8"], False),
                                       (["int4", "fp8_e5m2"], True), (["fp8_e4m3"], True)])
def test_integer_only_builds_carry_no_fp_hardware(modes, fp):
    """FP8 decoders, shifters, flags and the binary32 converter appear only where FP8 modes are built;
    the integer-only Verilog has none of their signals."""
    sections = {"gemm": dict(SMALL["gemm"], modes=modes)}
    text = render(parse_config(sections))["gemm_small.v"]
    present = [name for name in FP_SIGNALS if name in text]
    assert present == (list(FP_SIGNALS) if fp else []), present
