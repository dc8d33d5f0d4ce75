"""What the ``accelgen`` command checks before any work starts, besides the configuration
(:mod:`gen.config`) and the output paths (:mod:`gen.outdir`): the working folder, the ``ACCELGEN_*``
environment, tools on PATH, Python packages, and the module names of the emitted files.

Each check raises an exception whose message is one line: :class:`UsageError`, :class:`ToolMissing`
(:mod:`gen.synth`'s) or :class:`gen.config.ConfigError`.
"""

import json
import os
import re
import shutil

from .config import ConfigError
from .synth import ToolMissing

__all__ = ["UsageError", "KNOWN_ENVIRONMENT", "INTERNAL_ENVIRONMENT", "working_folder", "environment",
           "noc_bench_environment", "tool", "package", "module_names"]


class UsageError(ValueError):
    """A command line or environment value accelgen cannot use; the message is one line."""


def module_names(config, files):
    """No Verilog module is defined in two blocks' files (a top named like a module inside another
    block's top would clash when both are compiled together)."""
    defined = {}
    tops = {section.top: block for block, section in config.blocks.items()}
    for top, block in tops.items():
        text = files.get(f"{top}.v", "")
        for name in re.findall(r"^module\s+(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)", text, re.M):
            other = defined.get(name)
            if other is not None and other != block:
                culprit = block if name != config.blocks[other].top else other
                owner = other if culprit == block else block
                raise ConfigError(f"{culprit}.top", config.blocks[culprit].top,
                                  f"gives a module name ({name}) that {owner}'s Verilog also "
                                  f"defines; choose another name")
            defined[name] = block


def package(module, package, why):
    """The Python ``package`` (imported as ``module``) is installed."""
    import importlib.util
    if importlib.util.find_spec(module) is None:
        raise ToolMissing(f"the Python package {package} is not installed (pip install "
                          f"'accelgen[bench]'); {why} needs it")


def tool(name, why):
    """``name`` is on PATH; ``why`` names the command that needs it."""
    if shutil.which(name) is None:
        raise ToolMissing(f"{name} is not on PATH (Debian package {name}); {why} needs it")


KNOWN_ENVIRONMENT = {
    "ACCELGEN_SIM_BUILD": "root of the simulator build folders",
    "ACCELGEN_BENCH_OUT": "folder of the benches' plots and tables",
    "ACCELGEN_DEBUG": "1: show Python tracebacks",
    "ACCELGEN_NOC_BENCH_MESHES": "bench noc: mesh sizes k, comma-separated",
    "ACCELGEN_NOC_BENCH_VCS": "bench noc: virtual channel counts, comma-separated",
    "ACCELGEN_NOC_BENCH_PATTERNS": "bench noc: traffic patterns, comma-separated",
    "ACCELGEN_NOC_BENCH_FRACTIONS": "bench noc: offered loads as fractions, comma-separated",
}
"""The ACCELGEN_* environment variables a user may set."""

INTERNAL_ENVIRONMENT = (
    "ACCELGEN_MANIFEST", "ACCELGEN_RESULTS", "ACCELGEN_DATA", "ACCELGEN_PLAN", "ACCELGEN_GAP",
    "ACCELGEN_STALL", "ACCELGEN_GEMM_CASES", "ACCELGEN_MLP_MODEL", "ACCELGEN_MLP_SETTINGS",
    "ACCELGEN_SOFTMAX_ROWS", "ACCELGEN_STRESS_CYCLES", "ACCELGEN_STRESS_DRAIN",
    "ACCELGEN_STRESS_FAULT", "ACCELGEN_NOC_BADS", "ACCELGEN_NOC_CYCLES", "ACCELGEN_NOC_LOADS",
    "ACCELGEN_NOC_MCAST", "ACCELGEN_NOC_PACKETS", "ACCELGEN_NOC_POINTS", "ACCELGEN_NOC_WINDOW",
)
"""Variables accelgen sets itself for its cocotb benches (in their processes only)."""


def environment():
    """Every ACCELGEN_* variable is one accelgen reads, with a usable value."""
    for name in sorted(os.environ):
        if not name.startswith("ACCELGEN_") or name in KNOWN_ENVIRONMENT:
            continue
        if name in INTERNAL_ENVIRONMENT:
            raise UsageError(f"{name} is set: accelgen sets it for its own benches; unset it")
        raise UsageError(f"{name} is set, but accelgen reads no such variable (it reads "
                         + ", ".join(KNOWN_ENVIRONMENT) + ")")
    _flag_variable("ACCELGEN_DEBUG")


def _flag_variable(name):
    value = os.environ.get(name, "")
    if value not in ("", "0", "1"):
        raise UsageError(f"{name} = {_quoted(value)}: must be 0 or 1")


def _quoted(text):
    return json.dumps(text)


def noc_bench_environment():
    """The NoC bench's ACCELGEN_NOC_BENCH_* lists, when set."""
    from sim.golden.noc import PATTERNS
    checks = {
        "ACCELGEN_NOC_BENCH_MESHES": (int, lambda k: 2 <= k <= 8, "integers from 2 to 8"),
        "ACCELGEN_NOC_BENCH_VCS": (int, lambda v: v in (1, 2, 4), "1, 2 or 4"),
        "ACCELGEN_NOC_BENCH_PATTERNS": (str, lambda p: p in PATTERNS, ", ".join(PATTERNS)),
        "ACCELGEN_NOC_BENCH_FRACTIONS": (float, lambda f: 0 < f <= 2,
                                         "numbers above 0, at most 2 (times the pattern's "
                                         "bound)"),
    }
    for name, (cast, good, allowed) in checks.items():
        text = os.environ.get(name)
        if text is None:
            continue
        try:
            values = [cast(v) for v in text.split(",")]
            ok = bool(values) and all(good(v) for v in values)
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(f"{name} = {_quoted(text)}: must be a comma-separated list of "
                             f"{allowed}")


def working_folder():
    """The current folder still exists."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise UsageError("the current folder no longer exists; change to an existing one") from None
