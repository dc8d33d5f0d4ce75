"""Shared fixtures: the seed of a run, and simulator builds cached per configuration."""

import json
import os
import shutil

import pytest

from gen.config import parse_config
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


def write_json(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return str(path)
