"""The `accelgen` command line: help, emission, and errors that name the field and write nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gen import cli, preflight
from gen.outdir import STAMP

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "gen", *args], capture_output=True, text=True,
                          cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                        **(env or {})})


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
    names = sorted(p.name for p in rtl.iterdir() if p.name != STAMP)
    tops = ("accelgen_gemm", "accelgen_noc", "accelgen_softmax")
    assert names == sorted([f"{top}.{ext}" for top in tops
                            for ext in ("core", "f", "json", "sdc", "v", "xdc")]
                           + ["accelgen_lint.vlt"])
    con_names = sorted(p.name for p in con.iterdir() if p.name != STAMP)
    assert done["stdout"].split() == ([str(rtl / name) for name in names]
                                      + [str(con / name) for name in con_names])
    for top in tops:
        for ext in ("sdc", "xdc"):
            assert (con / f"{top}.{ext}").read_text() == (rtl / f"{top}.{ext}").read_text()
    assert con_names == sorted(f"{top}.{ext}" for top in tops for ext in ("sdc", "xdc"))
    for folder, listed in ((rtl, names), (con, con_names)):
        assert (folder / STAMP).read_text().splitlines()[1:] == listed


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
     "vsq_post_row_mult_bits, sparsity"),
])
def test_bad_config_one_line_status_2_nothing_written(tmp_path, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    out = tmp_path / "out"
    out.mkdir()
    (out / STAMP).write_text("# accelgen wrote the files below\nkeep.txt\n")
    (out / "keep.txt").write_text("untouched")
    result = run_cli("emit", str(config), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr == f"accelgen: error: {message}\n"
    assert result.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [STAMP, "keep.txt"]
    assert (out / "keep.txt").read_text() == "untouched"
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


def _tree(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv, message", [
    (["emit", "--out", "mine"],
     "mine: holds files accelgen did not write (notes.txt) and no .accelgen-stamp; choose a new or "
     "empty folder"),
    (["emit", "--out", "."],
     ".: is the current folder; the --out folder must be a folder of its own (for example rtl_out)"),
    (["emit", "cfg/my.toml", "--out", "cfg"],
     "cfg: holds the configuration file cfg/my.toml; the --out folder must be a folder of its own"),
    (["emit", "--out", "notes.txt"],
     "notes.txt: is a file, not a folder; the --out folder must be a folder (new, empty, or written "
     "by accelgen)"),
    (["emit", "--out", ""], '"": --out folder is an empty path; give a name'),
    (["emit", "--out", "/proc/x"],
     "/proc/x: is under /proc, a system folder; choose a folder of your own for the --out folder"),
    (["emit", "--out", "new", "--constraints", "notes.txt"],
     "notes.txt: is a file, not a folder; the --constraints folder must be a folder (new, empty, "
     "or written by accelgen)"),
    (["emit", "--out", "new", "--constraints", "new"],
     "new: is the --out folder too; give --constraints another folder"),
    (["bench", "gemm", "--quick", "--json", "notes.txt/g.json"],
     "notes.txt/g.json: cannot be created: a part of the path is a file, not a folder"),
    (["bench", "gemm", "--quick", "--json", "notes.txt"],
     "notes.txt: exists and accelgen did not write it (no .accelgen-stamp beside it lists it); "
     "remove it or choose another name"),
    (["demo", "attention", "--quick", "--json", "mine"],
     "mine: is a folder, not a file; the --json file must be a file name"),
    (["synth", "--json", "cfg/my.toml"],
     "cfg/my.toml: exists and accelgen did not write it (no .accelgen-stamp beside it lists it); "
     "remove it or choose another name"),
])
def test_refused_output_paths_touch_nothing(tmp_path, argv, message):
    """Output paths are checked before any work: one line, exit status 2, every file as it was."""
    (tmp_path / "notes.txt").write_text("a user's notes")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's notes")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "my.toml").write_text("[gemm]\nrows = 2\ncols = 2\n")
    before = _tree(tmp_path)
    result = run_cli(*argv, cwd=tmp_path)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"accelgen: error: {message}\n",
                                                                 "")
    assert _tree(tmp_path) == before


def test_out_rewrites_only_its_own_files(tmp_path):
    """A folder accelgen wrote is rewritten: its files replaced, a user's file beside them kept."""
    config = tmp_path / "small.toml"
    config.write_text("[gemm]\ntop = 'g'\nrows = 2\ncols = 2\nmax_k = 8\nmax_m = 8\nmax_n = 8\n"
                      "acc_width = 20\n")
    out = tmp_path / "out"
    assert run_cli("emit", str(config), "--out", str(out)).returncode == 0
    (out / "notes.txt").write_text("a user's notes")
    config.write_text(config.read_text().replace("top = 'g'", "top = 'h'"))
    result = run_cli("emit", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [STAMP, "notes.txt", "accelgen_lint.vlt"] + [f"h.{e}" for e in
                                                      ("core", "f", "json", "sdc", "v", "xdc")])
    assert (out / "notes.txt").read_text() == "a user's notes"


@pytest.mark.parametrize("argv, env, message", [
    (["bench", "gemm", "--quick"], {"SIM": "modelsim"},
     'SIM = "modelsim": must be one of verilator, icarus'),
    (["demo", "attention", "--quick"], {"SIM": "modelsim"},
     'SIM = "modelsim": must be one of verilator, icarus'),
    (["bench", "gemm", "--quick"], {"SEED": "abc"},
     'SEED = "abc": must be an integer from 0 to 4294967295'),
    (["bench", "softmax", "--quick"], {"SEED": "-1"},
     'SEED = "-1": must be an integer from 0 to 4294967295'),
    (["bench", "gemm", "--quick"], {"WAVES": "yes"},
     'WAVES = "yes": must be 0 or 1 (1: dump waveforms)'),
    (["bench", "gemm", "--quick", "--sim", "icarus"], {"PATH": "EMPTY"},
     "SIM=icarus needs iverilog on PATH (Debian package iverilog)"),
    (["bench", "gemm", "--quick"], {"SIM": "icarus", "PATH": "EMPTY"},
     "SIM=icarus needs iverilog on PATH (Debian package iverilog)"),
    (["bench", "gemm", "--quick"], {"PATH": "EMPTY"},
     "Verilator builds need make on PATH (Debian package make)"),
    (["synth"], {"PATH": "EMPTY"},
     "yosys is not on PATH (Debian package yosys); accelgen synth needs it"),
    (["bench", "area", "--quick"], {"PATH": "EMPTY"},
     "yosys is not on PATH (Debian package yosys); accelgen bench area needs it"),
    (["bench", "gemm", "--quick"], {"ACCELGEN_SIM_BUILD": "notes.txt"},
     "notes.txt: is a file, not a folder; the build folder (ACCELGEN_SIM_BUILD) must be a folder "
     "(new, empty, or written by accelgen)"),
    (["bench", "gemm", "--quick"], {"ACCELGEN_SIM_BUILD": ""},
     '"": build folder (ACCELGEN_SIM_BUILD) is an empty path; give a name'),
    (["bench", "gemm", "--quick"], {"ACCELGEN_SIM_BUILD": "mine"},
     "mine: holds files accelgen did not write (notes.txt) and no .accelgen-stamp; choose a new or "
     "empty folder for the build folder (ACCELGEN_SIM_BUILD)"),
    (["bench", "noc", "--quick"], {"ACCELGEN_BENCH_OUT": "notes.txt"},
     "notes.txt: is a file, not a folder; the bench output folder (ACCELGEN_BENCH_OUT) must be a "
     "folder"),
    (["emit", "--out", "new"], {"ACCELGEN_SIMBUILD": "x"},
     "ACCELGEN_SIMBUILD is set, but accelgen reads no such variable (it reads ACCELGEN_SIM_BUILD, "
     "ACCELGEN_BENCH_OUT, ACCELGEN_DEBUG, ACCELGEN_NOC_BENCH_MESHES, ACCELGEN_NOC_BENCH_VCS, "
     "ACCELGEN_NOC_BENCH_PATTERNS, ACCELGEN_NOC_BENCH_FRACTIONS)"),
    (["emit", "--out", "new"], {"ACCELGEN_MANIFEST": "x"},
     "ACCELGEN_MANIFEST is set: accelgen sets it for its own benches; unset it"),
    (["emit", "--out", "new"], {"ACCELGEN_DEBUG": "yes"}, 'ACCELGEN_DEBUG = "yes": must be 0 or 1'),
    (["bench", "noc"], {"ACCELGEN_NOC_BENCH_VCS": "3"},
     'ACCELGEN_NOC_BENCH_VCS = "3": must be a comma-separated list of 1, 2 or 4'),
    (["bench", "noc"], {"ACCELGEN_NOC_BENCH_FRACTIONS": "0.5,x"},
     'ACCELGEN_NOC_BENCH_FRACTIONS = "0.5,x": must be a comma-separated list of numbers above 0, '
     "at most 2 (times the pattern's bound)"),
    (["bench", "gemm", "--quick"], {"ACCELGEN_BENCH_OUT": "notes.txt"},
     "notes.txt: is a file, not a folder; the bench output folder (ACCELGEN_BENCH_OUT) must be a "
     "folder"),
    (["bench", "noc-stress", "--quick", "--sim", "icarus"], {},
     "--sim icarus: the noc-stress bench runs on Verilator only (Icarus simulates its 10^6 cycles "
     "at about 60 cycles/s)"),
    (["emit", "mine"], {}, "mine: is a folder, not a configuration file; give a .toml file"),
    (["emit", "/dev/null"], {},
     "/dev/null: is not a regular file (a device, pipe or socket); give a .toml file"),
    (["emit", "latin1.toml"], {}, "latin1.toml: is not UTF-8 text (byte 0xe9 on line 2); save it as "
                                  "UTF-8"),
    (["emit", "same.toml"], {},
     'softmax.top = "same": must differ from gemm.top = "same" (each block is a Verilog module and a '
     "set of files of its own)"),
    (["emit", "keyword.toml"], {},
     'gemm.top = "logic": is a Verilog or SystemVerilog keyword; choose another module name'),
    (["emit", "", "--out", "new"], {}, '"": the configuration path is empty; give a .toml file'),
    (["synth", "--seed", "-1"], {},
     "--seed -1: the nextpnr placer seed must be from 0 to 2147483647"),
    (["synth", "--baseline", "notes.txt"], {},
     "notes.txt: is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    (["synth", "--baseline", "other.json"], {},
     "other.json: is a baseline for target 'ice40', not --target generic"),
    (["bench", "nonsense"], {},
     "argument block: invalid choice: 'nonsense' (choose from 'area', 'gemm', 'noc', 'noc-stress', "
     "'qor', 'scale', 'softmax', 'sparsity', 'vsq', 'vsq-rtl') (see `accelgen bench --help`)"),
    (["emit", "--bogus"], {}, "unrecognized arguments: --bogus (see `accelgen --help`)"),
])
def test_bad_input_one_line_status_2(tmp_path, argv, env, message):
    """Bad settings, files, tools and command lines: one line, exit status 2, before any work, and
    nothing written."""
    (tmp_path / "notes.txt").write_text("a user's notes")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's notes")
    (tmp_path / "latin1.toml").write_bytes("[gemm]\ntop = 'caf\u00e9'\n".encode("latin-1"))
    (tmp_path / "same.toml").write_text("[gemm]\ntop = 'same'\n[softmax]\ntop = 'same'\n")
    (tmp_path / "keyword.toml").write_text("[gemm]\ntop = 'logic'\n")
    (tmp_path / "other.json").write_text('{"target": "ice40", "tops": {}}')
    (tmp_path / "empty").mkdir()
    if env.get("PATH") == "EMPTY":
        env = {**env, "PATH": str(tmp_path / "empty")}
    before = _tree(tmp_path)
    result = run_cli(*argv, cwd=tmp_path, env=env)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"accelgen: error: {message}\n",
                                                                 "")
    assert _tree(tmp_path) == before


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    config = tmp_path / "bom.toml"
    config.write_bytes(b"\xef\xbb\xbf[gemm]\ntop = 'g'\nrows = 2\ncols = 2\nmax_k = 8\n"
                       b"max_m = 8\nmax_n = 8\nacc_width = 20\n")
    result = run_cli("emit", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "g.v").exists()


def test_unexpected_errors_are_one_line_unless_debug(tmp_path, monkeypatch, capsys):
    """An unexpected failure is one line and exit status 1; --debug or ACCELGEN_DEBUG=1 shows the
    traceback."""
    def broken(config):
        raise RuntimeError("something broke\nsecond line")
    monkeypatch.setattr("gen.emit.render", broken)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["emit", "--out", "o"]) == 1
    assert capsys.readouterr().err == ("accelgen: error: RuntimeError: something broke ... (run with "
                                       "--debug for the traceback)\n")
    for argv in (["--debug", "emit", "--out", "o"], ["emit", "--out", "o", "--debug"]):
        with pytest.raises(RuntimeError):
            cli.main(argv)
    monkeypatch.setenv("ACCELGEN_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["emit", "--out", "o"])
    assert not (tmp_path / "o").exists()


def test_the_readmes_noc_bench_lists_are_accepted(monkeypatch):
    for name, value in (("ACCELGEN_NOC_BENCH_MESHES", "4,8"), ("ACCELGEN_NOC_BENCH_VCS", "2"),
                        ("ACCELGEN_NOC_BENCH_PATTERNS", "uniform,hotspot"),
                        ("ACCELGEN_NOC_BENCH_FRACTIONS", "0.5,1.1")):
        monkeypatch.setenv(name, value)
    preflight.noc_bench_environment()


def test_a_removed_working_folder(tmp_path, monkeypatch, capsys):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert cli.main(["emit", "--out", "o"]) == 2
    assert capsys.readouterr().err == ("accelgen: error: the current folder no longer exists; change "
                                       "to an existing one\n")


def test_output_cut_short_by_the_reader(tmp_path):
    """`accelgen emit | head -1`: the rest of the output is dropped without a traceback."""
    config = tmp_path / "small.toml"
    config.write_text("[gemm]\ntop = 'g'\nrows = 1\ncols = 1\nmax_k = 1\nmax_m = 1\nmax_n = 1\n"
                      "acc_width = 16\nmodes = ['int8']\nout_fifo_depth = 4\n")
    result = subprocess.run(f"'{sys.executable}' -m gen emit '{config}' --out '{tmp_path / 'o'}' "
                            f"| head -c 1", shell=True, capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr


def test_each_bench_run_writes_beside_its_own_json(tmp_path, monkeypatch):
    """The bench output folder of one run (the folder of its --json) does not leak into the next
    run in the same process."""
    import sys
    import types
    seen = []

    def run(quick=False, sim=None):
        folder = os.environ["ACCELGEN_BENCH_OUT"]
        seen.append(folder)
        (Path(folder) / "softmax_error.png").write_bytes(b"\x89PNG")
        return {}

    fake = types.SimpleNamespace(run=run, format_table=lambda result: "table")
    monkeypatch.setitem(sys.modules, "fake_softmax_bench", fake)
    monkeypatch.setitem(cli.BENCHES, "softmax", ("fake_softmax_bench", "fake"))
    monkeypatch.delenv("ACCELGEN_BENCH_OUT", raising=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert cli.main(["bench", "softmax", "--quick", "--json", str(tmp_path / name / "r.json")]) == 0
    assert seen == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert "ACCELGEN_BENCH_OUT" not in os.environ
    assert (tmp_path / "b" / "softmax_error.png").exists()
