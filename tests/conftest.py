"""Shared fixtures: the seed of a run, the default emission, and simulator builds cached per
configuration."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gen.config import parse_config
from gen.outdir import STAMP
from sim import runner


@pytest.fixture(scope="session")
def seed():
    """The seed of this test run: ``SEED`` if set, else a fresh one; printed either way."""
    return runner.seed_from_env()


def pytest_report_header(config):
    sim = os.environ.get("SIM", "verilator")
    tools = ", ".join(f"{t}: {'yes' if shutil.which(t) else 'no'}" for t in ("iverilog", "yosys"))
    return [f"accelgen: SIM={sim}, SEED={os.environ.get('SEED', '(random per run)')}; {tools}"]


_BUILDS = {}


def build_block(sections, block):
    """Emit and build ``sections`` (a config dict); the :class:`sim.runner.SimBuild` of ``block``.

    Builds are cached in this process and, by Verilog hash, on disk under ``sim_build/``.
    """
    key = json.dumps(sections, sort_keys=True)
    if key not in _BUILDS:
        _BUILDS[key] = runner.emit_and_build(parse_config(sections))
    return _BUILDS[key][block]


def assert_lint_clean(tmp_path, verilog, top):
    """``verilator --lint-only`` with the runner's waivers (each commented there) passes on the
    Verilog text ``verilog`` of module ``top``."""
    path = tmp_path / f"{top}.v"
    path.write_text(verilog)
    runner.verilator_env()
    result = subprocess.run(["verilator", "--lint-only", *runner.VERILATOR_WAIVERS,
                             "--top-module", top, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:3000]


def write_json(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return str(path)


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def default_emission():
    """What ``accelgen emit --out RTL --constraints CON`` writes for the default configuration.

    The command runs once per generator version (a hash of ``gen/``) and test run; the xdist workers
    share its output through a locked folder under the build root. Returns ``(rtl, con, result)``: the
    two folders and the completed process.
    """
    root = runner._build_root() / "default_emission" / runner._generator_digest()[:20]
    with runner._locked(root.with_suffix(".lock")):
        if not (root / "done.json").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            result = subprocess.run(
                [sys.executable, "-m", "gen", "emit", "--out", str(root / "rtl"),
                 "--constraints", str(root / "con")],
                capture_output=True, text=True, cwd=root,
                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
            (root / "done.json").write_text(json.dumps(
                {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}))
    done = json.loads((root / "done.json").read_text())
    return root / "rtl", root / "con", done


@pytest.fixture(scope="session")
def default_files(default_emission):
    """The default configuration's emitted files by name, as text (the stamp left out)."""
    rtl, _, done = default_emission
    assert done["returncode"] == 0, done["stderr"]
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(rtl.iterdir()) if p.name != STAMP}
