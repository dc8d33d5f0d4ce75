"""The `accelgen` command line: help, emission, and errors that name the field and write nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

from gen import cli

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gen", *args], capture_output=True, text=True,
                          cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_help_explains_every_option(capsys):
    for argv, words in [([], ["emit", "bench", "--version"]),
                        (["emit"], ["CONFIG.toml", "--out", "default"]),
                        (["bench"], ["--quick", "--json", "--sim", "gemm"])]:
        with pytest.raises(SystemExit) as info:
            cli.main([*argv, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        for word in words:
            assert word in out, (argv, word)


def test_emit_default(default_emission):
    """`accelgen emit` with no CONFIG writes the embedded default's files (the run is shared with the
    freshness tests of rtl_out/ and constraints/: tests/conftest.py)."""
    rtl, con, done = default_emission
    assert done["returncode"] == 0, done["stderr"]
    names = sorted(p.name for p in rtl.iterdir())
    tops = ("accelgen_gemm", "accelgen_noc", "accelgen_softmax")
    assert names == sorted([f"{top}.{ext}" for top in tops
                            for ext in ("core", "f", "json", "sdc", "v", "xdc")]
                           + ["accelgen_lint.vlt"])
    con_names = sorted(p.name for p in con.iterdir())
    assert done["stdout"].split() == ([str(rtl / name) for name in names]
                                      + [str(con / name) for name in con_names])
    for top in tops:
        for ext in ("sdc", "xdc"):
            assert (con / f"{top}.{ext}").read_text() == (rtl / f"{top}.{ext}").read_text()
    assert sorted(p.name for p in con.iterdir()) == sorted(
        f"{top}.{ext}" for top in tops for ext in ("sdc", "xdc"))


@pytest.mark.parametrize("toml, message", [
    ("[gemm]\nrows = 0\n", "gemm.rows = 0: must be an integer from 1 to 64"),
    ("[gemm]\nmodes = ['int8', 'fp4']\n",
     'gemm.modes = ["int8", "fp4"]: must be a non-empty list of distinct names from: int8, int4, '
     "w4a8, fp8_e4m3, fp8_e5m2"),
    ("[gemm]\nmax_k = 100000\n", "gemm.max_k = 100000: must be an integer from 1 to 65536"),
    ("[gemm]\nacc_width = 16\n",
     "gemm.acc_width = 16: must be at least 24 so that gemm.max_k = 256 INT8 products cannot "
     "overflow"),
    ("[gemm]\nspeed = 'fast'\n",
     'gemm.speed = "fast": unknown key; allowed keys are top, rows, cols, modes, acc_width, max_m, '
     "max_n, max_k, out_fifo_depth, vsq_vector_sizes, vsq_scale_bits, vsq_post_mult_bits, "
     "vsq_post_row_mult_bits"),
])
def test_bad_config_one_line_status_2_nothing_written(tmp_path, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    result = run_cli("emit", str(config), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr == f"accelgen: error: {message}\n"
    assert result.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_missing_config_file(tmp_path):
    result = run_cli("emit", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr == f"accelgen: error: {tmp_path / 'nope.toml'}: no such file\n"
    assert not (tmp_path / "o").exists()


def test_bad_arguments_exit_2():
    result = run_cli("bench", "nonsense")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
