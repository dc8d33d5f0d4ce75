"""A property of the command line, on generated bad configurations, command lines and environments run
in a sandbox folder that holds a user's files: the exit status is 0 or 2, no traceback is shown, on
exit status 2 the message is one line (after progress lines, if the check needed long work) and
nothing at all is written or changed, and on 0 no file but
those accelgen's stamps list is changed.

The CLI runs in this process. The long work of ``bench``, ``demo``, ``synth`` and ``sweep`` is replaced
by a stub that writes nothing: what is tested is that every input is checked before work starts.
``emit`` runs for real, on configurations small enough to emit in a second.
"""

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from gen import cli
from gen.config import SECTIONS, SETTINGS, VERILOG_KEYWORDS
from gen.outdir import STAMP

TINY = "[gemm]\ntop = 'tiny'\nrows = 1\ncols = 1\nmodes = ['int8']\nmax_m = 1\nmax_n = 1\n" \
       "max_k = 1\nacc_width = 16\nout_fifo_depth = 4\n"

PATHS = ["", ".", "..", "/", "/proc/x", "/sys/x", "/dev/null", "notes.txt", "mine", "mine/notes.txt",
         "link", "dangling", "empty", "old_out", "old_out/tiny.v", "new_out", "new/deep/out", "cfg",
         "cfg/tiny.toml", "notes.txt/x", "gen.toml", " spaced", "new.json", "old_out/r.json",
         "ro", "ro/x"]


def _sandbox(root, config_bytes):
    """The user's files: notes, a folder of notes, a link, an empty folder, a read-only folder, an
    earlier emission holding a user's file, the configurations."""
    (root / "notes.txt").write_text("a user's notes")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("a user's notes")
    (root / "empty").mkdir()
    (root / "ro").mkdir()
    (root / "ro" / "keep.txt").write_text("read-only")
    os.chmod(root / "ro", 0o555)
    os.symlink("mine", root / "link")
    os.symlink("nowhere", root / "dangling")
    (root / "cfg").mkdir()
    (root / "cfg" / "tiny.toml").write_text(TINY)
    (root / "gen.toml").write_bytes(config_bytes)
    old = root / "old_out"
    old.mkdir()
    (old / "tiny.v").write_text("// an earlier emission\n")
    (old / "r.json").write_text("{}\n")
    (old / "mine.txt").write_text("a user's file beside accelgen's")
    (old / STAMP).write_text("# accelgen wrote the files below\ntiny.v\nr.json\n")


def _snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", oct(p.stat().st_mode))
            else:
                out[rel] = ("file", p.read_bytes(), oct(p.stat().st_mode))
    return out


def _listed(root):
    """Files that stamps in the sandbox list (accelgen may replace them)."""
    out = set()
    for stamp in root.rglob(STAMP):
        for line in stamp.read_text().splitlines()[1:]:
            out.add(str((stamp.parent / line).relative_to(root)))
        out.add(str(stamp.relative_to(root)))
    return out


def _value(lo, hi):
    """Values for an integer or number key: at its edges and beyond, never large."""
    return st.one_of(st.sampled_from([lo - 1, lo, lo + 1, hi + 1, -1, 0]),
                     st.sampled_from(["8", True, 1.5, float("nan"), [], {}, "", None]))


def _section_values(cls):
    import dataclasses
    items = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        kind = meta["kind"]
        if kind in ("int", "num"):
            items[f.name] = _value(meta["lo"], meta["hi"])
        elif kind == "str" and meta["choices"] is None:
            items[f.name] = st.one_of(st.sampled_from(sorted(VERILOG_KEYWORDS)[:20]),
                                      st.sampled_from(["same", "Same", "tiny", "9x", "a b", "x" * 200,
                                                       "caf\u00e9", "accelgen_lint"]),
                                      st.text(max_size=6))
        elif kind == "str":
            items[f.name] = st.one_of(st.sampled_from(list(meta["choices"])), st.text(max_size=4))
        elif kind == "bool":
            items[f.name] = st.sampled_from([True, False, 1, "yes"])
        elif kind in ("strs", "ints"):
            items[f.name] = st.lists(st.sampled_from(list(meta["choices"]) + ["x", 3, 1.0]),
                                     max_size=3)
        elif kind == "section":
            items[f.name] = st.just({})
    return st.dictionaries(st.sampled_from(sorted(items) + ["bogus"]), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: items.get(k, st.integers(0, 3)) for k in keys}))


def _toml_value(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        parts = [_toml_value(x) for x in v]
        return "[" + ", ".join(p for p in parts if p is not None) + "]"
    if isinstance(v, dict):
        return "{}"
    raise AssertionError(v)


def _toml(doc):
    lines = []
    for section, keys in doc.items():
        lines.append(f"[{section}]")
        for k, v in keys.items():
            text = _toml_value(v)
            if text is not None:
                lines.append(f"{k} = {text}")
    return "\n".join(lines) + "\n"


every = {**SECTIONS, **SETTINGS}
configs = st.one_of(
    st.dictionaries(st.sampled_from(sorted(every)), st.none(), min_size=0, max_size=3).flatmap(
        lambda names: st.fixed_dictionaries({n: _section_values(every[n]) for n in names})
    ).map(lambda doc: _toml(doc).encode()),
    st.sampled_from([TINY.encode(), b"\xef\xbb\xbf" + TINY.encode(), b"[gemm\n", b"",
                     "[gemm]\ntop = 'caf\u00e9'\n".encode("latin-1"), b"\x00\x01",
                     (TINY + "[softmax]\ntop = 'tiny'\n").encode()]),
    st.binary(max_size=30),
)

paths = st.one_of(st.sampled_from(PATHS), st.text(max_size=8))
env_values = {
    "SIM": st.sampled_from(["modelsim", "", "ICARUS", "verilator", "icarus"]),
    "SEED": st.sampled_from(["abc", "-1", "0x10", "1e3", "99999999999", "7", " "]),
    "WAVES": st.sampled_from(["yes", "2", "0", "1", ""]),
    "ACCELGEN_SIM_BUILD": paths,
    "ACCELGEN_BENCH_OUT": paths,
    "ACCELGEN_DEBUG": st.sampled_from(["0", "", "yes"]),
    "ACCELGEN_SIMBUILD": st.just("x"),
    "ACCELGEN_MANIFEST": st.just("x"),
    "ACCELGEN_NOC_BENCH_VCS": st.sampled_from(["3", "1,2", "", "x"]),
    "PATH": st.sampled_from(["", "EMPTY"]),
}
environments = st.dictionaries(st.sampled_from(sorted(env_values)), st.none(), max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: env_values[k] for k in keys}))


def _opt(flag, values):
    return st.one_of(st.just([]), values.map(lambda v: [flag, v]))


command_lines = st.one_of(
    st.tuples(st.just(["emit"]), st.one_of(st.just([]), st.sampled_from(
        ["gen.toml", "cfg/tiny.toml", "mine", "/dev/null", "nope.toml", "", "cfg"]).map(
        lambda c: [c])), _opt("--out", paths), _opt("--constraints", paths)),
    st.tuples(st.just(["bench"]), st.one_of(st.sampled_from(sorted(cli.BENCHES)),
                                            st.text(max_size=5)).map(lambda b: [b]),
              st.sampled_from([[], ["--quick"]]), _opt("--json", paths),
              _opt("--sim", st.sampled_from(["icarus", "verilator", "modelsim"]))),
    st.tuples(st.just(["demo"]), st.sampled_from(["mlp", "attention", "all", "x"]).map(lambda n: [n]),
              _opt("--json", paths), _opt("--sim", st.sampled_from(["icarus", "x"]))),
    st.tuples(st.just(["synth"]), st.sampled_from([[], ["gen.toml"], ["cfg/tiny.toml"]]),
              _opt("--json", paths), _opt("--update-baseline", paths),
              _opt("--baseline", st.sampled_from(["notes.txt", "nope.json", "gen.toml", "mine"])),
              _opt("--seed", st.sampled_from(["-1", "x", "3", "99999999999"])),
              _opt("--target", st.sampled_from(["asic", "ecp5", "generic", "x"])),
              _opt("--device", st.sampled_from(["85k", "hx8k", "x"])),
              _opt("--liberty", paths), _opt("--sram-min-bits", st.sampled_from(["0", "x", "8"]))),
    st.tuples(st.just(["sweep"]), st.sampled_from(["gen.toml", "nope.toml", "mine"]).map(
        lambda s: [s]), _opt("--out", paths), _opt("--workers", st.sampled_from(["0", "-2", "x"]))),
    st.lists(st.text(max_size=6), max_size=3).map(lambda argv: (argv,)),
).map(lambda parts: [a for part in parts for a in part])


COMMANDS = ("emit", "bench", "demo", "synth", "sweep")


def _stub(args):
    return 0


def test_bad_inputs_never_touch_user_files(seed, monkeypatch):
    """Exit status 0 or 2, no traceback; exit 2: one line, the sandbox exactly as it was; exit 0:
    only files accelgen's stamps list changed, nothing else removed."""
    for name in ("_cmd_bench", "_cmd_demo", "_cmd_synth", "_cmd_sweep"):
        monkeypatch.setattr(cli, name, _stub)
    home = os.getcwd()
    saved_env = dict(os.environ)
    tally = {}

    @hypothesis_seed(seed)
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(argv=command_lines, env=environments, config=configs)
    def run(argv, env, config):
        root = Path(tempfile.mkdtemp(prefix="accelgen-sandbox-"))
        try:
            _sandbox(root, config)
            before = _snapshot(root)
            listed = _listed(root)
            os.chdir(root)
            os.environ.clear()
            os.environ.update({k: v for k, v in saved_env.items()
                               if not k.startswith("ACCELGEN_") and k not in ("SIM", "SEED",
                                                                              "WAVES")})
            for k, v in env.items():
                os.environ[k] = str(root / "empty") if v == "EMPTY" else v
            err, out = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                try:
                    status = cli.main(argv)
                except SystemExit as exc:  # argparse: --help, --version, usage errors
                    status = exc.code
            text = err.getvalue()
            where = f"argv={argv!r} env={env!r} config={config[:80]!r}: {text!r}"
            command = argv[0] if argv and argv[0] in COMMANDS else "other"
            tally[f"{command} {status}"] = tally.get(f"{command} {status}", 0) + 1
            assert status in (0, 2), where
            assert "Traceback" not in text, where
            after = _snapshot(root)
            if status == 2:
                # One error line, last; before it at most progress lines of long work.
                lines = text.splitlines()
                assert lines and lines[-1].startswith("accelgen: error: "), where
                assert all(line.startswith("accelgen: ") and "error" not in line
                           for line in lines[:-1]), where
                assert after == before, where
            else:
                for rel, entry in before.items():
                    if rel not in listed:
                        assert after.get(rel) == entry, f"{rel} changed: {where}"
        finally:
            os.chdir(home)
            os.environ.clear()
            os.environ.update(saved_env)
            if (root / "ro").exists():
                os.chmod(root / "ro", 0o755)
            shutil.rmtree(root, ignore_errors=True)

    run()
    print("command and exit status:", ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
