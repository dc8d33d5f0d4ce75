"""``accelgen sweep``: the sweep file's checks, and sweeps run by real processes on real Dask
clusters (a local one, and a scheduler and a worker started as separate processes), with an
invalid point, a point that times out, the cache, and an interruption.

The points are tiny GEMM engines; most sweeps here compute only emission and golden-model accuracy,
which need no tools, so that the quick subset stays quick. The sweep with every metric is slow."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gen.cli import main
from gen.config import ConfigError
from sim.sweep import results, spec

ROOT = Path(__file__).resolve().parent.parent

BASE = """
[base.gemm]
top = "sweep_gemm"
rows = 2
cols = 2
modes = ["int8"]
max_m = 4
max_n = 8
max_k = 16
acc_width = 32
out_fifo_depth = 4
"""


def sweep_text(points, metrics=("emit", "accuracy"), timeout_s=600):
    lines = ["[sweep]", f"metrics = {json.dumps(list(metrics))}", 'workload = [[4, 8, 16]]',
             f"timeout_s = {timeout_s}", BASE]
    for point in points:
        lines.append("[[points]]")
        lines += [f'"{k}" = {json.dumps(v)}' for k, v in point.items()]
    return "\n".join(lines) + "\n"


# Two valid points, one invalid (a key out of range) and one that cannot finish in its timeout
# (a 32 x 32 engine takes seconds to emit; it is given 1 s).
FOUR_POINTS = [
    {"gemm.cols": 2},
    {"gemm.cols": 4, "gemm.modes": ["int4"]},
    {"gemm.cols": 99},
    {"gemm.rows": 32, "gemm.cols": 32, "sweep.timeout_s": 1},
]


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(*args, timeout=600):
    """``accelgen ARGS`` in a process of its own, from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, "-m", "gen.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rows_of(out):
    return json.loads((out / "results.json").read_text())["rows"]


# -- the sweep file --------------------------------------------------------------------------------

def test_grid_is_every_combination_in_file_order(tmp_path):
    sweep = spec.load_sweep(write(tmp_path, "[sweep]\nmetrics = [\"emit\"]\n" + BASE + """
[grid]
"gemm.cols" = [2, 4, 8]
gemm.modes = [["int8"], ["int4"]]
"""))
    assert sweep.name == "sweep"
    assert sweep.keys == ("gemm.cols", "gemm.modes")
    assert [p.values for p in sweep.points][:3] == [
        {"gemm.cols": 2, "gemm.modes": ["int8"]}, {"gemm.cols": 2, "gemm.modes": ["int4"]},
        {"gemm.cols": 4, "gemm.modes": ["int8"]}]
    assert len(sweep.points) == 6
    assert all(p.timeout_s == spec.DEFAULT_TIMEOUT_S for p in sweep.points)


def test_base_file_and_point_timeout(tmp_path):
    write(tmp_path, BASE.replace("[base.gemm]", "[gemm]"), "base.toml")
    sweep = spec.load_sweep(write(tmp_path, """
[sweep]
name = "mine"
base = "base.toml"
metrics = ["emit", "synth"]
timeout_s = 100
[[points]]
gemm.cols = 4
[[points]]
"gemm.rows" = 4
"sweep.timeout_s" = 5
"""))
    assert sweep.name == "mine" and sweep.base["gemm"]["rows"] == 2
    assert sweep.keys == ("gemm.cols", "gemm.rows")
    assert [(p.values, p.timeout_s) for p in sweep.points] == [
        ({"gemm.cols": 4}, 100.0), ({"gemm.rows": 4}, 5.0)]
    assert spec.point_config_data(sweep.base, sweep.points[1].values)["gemm"]["rows"] == 4


SPEC_ERRORS = [
    ("[sweep]\nmetrics = [\"emit\"]\n[grid]\n\"gemm.cols\" = [2]\n",
     "sweep.base = None: missing: give a configuration file (sweep.base) or an inline [base] "
     "table"),
    ("[sweep]\nmetrics = [\"emit\"]\n" + BASE,
     "grid = None: missing: give a [grid] of keys to vary or a list of [[points]]"),
    ("[sweep]\nmetrics = [\"emit\"]\n" + BASE + "[grid]\n\"gemm.cols\" = 4\n",
     "grid.gemm.cols = 4: must be a non-empty list of values"),
    ("[sweep]\nmetrics = [\"emit\"]\n" + BASE + "[grid]\n\"gemm.colz\" = [4]\n",
     "grid.gemm.colz = [4]: unknown configuration key; allowed keys of gemm are top, rows, cols, "
     "modes, acc_width, max_m, max_n, max_k, out_fifo_depth, vsq_vector_sizes, vsq_scale_bits, "
     "vsq_post_mult_bits, vsq_post_row_mult_bits, sparsity"),
    ("[sweep]\nmetrics = [\"emit\"]\n" + BASE + "[grid]\n\"gpu.cols\" = [4]\n",
     "grid.gpu.cols = [4]: must name a configuration key as section.key, with section one of "
     "gemm, softmax, noc, system, flow"),
    ("[sweep]\nmetrics = [\"area\"]\n" + BASE + "[grid]\n\"gemm.cols\" = [4]\n",
     'sweep.metrics = ["area"]: must be a non-empty list of distinct names from: emit, synth, '
     "sim, accuracy"),
    ("[sweep]\nmetrics = [\"sim\"]\nworkload = \"resnet\"\n" + BASE
     + "[grid]\n\"gemm.cols\" = [4]\n",
     'sweep.workload = "resnet": must be one of gemm_small, digits_mlp_layer, attention_head or '
     "a list of [m, n, k]"),
    ("[sweep]\nmetrics = [\"emit\"]\ntimeout_s = 0\n" + BASE + "[grid]\n\"gemm.cols\" = [4]\n",
     "sweep.timeout_s = 0: must be a number of seconds greater than 0"),
    ("[sweep]\nmetrics = [\"emit\"]\n" + BASE + "[[points]]\n\"sweep.retries\" = 2\n",
     "points.0.sweep.retries = 2: unknown point setting; allowed: sweep.timeout_s"),
    ("[sweep]\nmetrics = [\"emit\"]\nsim = \"vcs\"\n" + BASE + "[grid]\n\"gemm.cols\" = [4]\n",
     'sweep.sim = "vcs": must be one of verilator, icarus'),
]


@pytest.mark.parametrize("text, message", SPEC_ERRORS,
                         ids=[m.split(" =")[0] for _, m in SPEC_ERRORS])
def test_sweep_file_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as exc:
        spec.load_sweep(write(tmp_path, text))
    assert str(exc.value) == message


def test_cli_sweep_errors_exit_2_and_write_nothing(tmp_path, capsys):
    path = write(tmp_path, SPEC_ERRORS[2][0])
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"accelgen: error: {SPEC_ERRORS[2][1]}\n"
    assert not (tmp_path / "out").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    good = write(tmp_path, sweep_text([{"gemm.cols": 99}]), "good.toml")
    assert main(["sweep", str(good), "--out", str(foreign)]) == 2
    assert capsys.readouterr().err == (
        f"accelgen: error: {foreign}: holds files accelgen did not write (notes.txt) and no "
        ".accelgen-stamp; choose a new or empty folder\n")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert main(["sweep", str(good), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "accelgen: error: --workers = 0: must be at least 1\n"
    assert main(["sweep", str(good), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == (
        "accelgen: error: --workers = 2: applies to the local cluster only; the cluster at "
        "--scheduler has its own workers\n")
    missing = tmp_path / "nope.toml"
    assert main(["sweep", str(missing)]) == 2
    assert capsys.readouterr().err == f"accelgen: error: {missing}: no such file\n"
    based = write(tmp_path, '[sweep]\nbase = "nope.toml"\nmetrics = ["emit"]\n'
                            '[grid]\n"gemm.cols" = [2]\n', "based.toml")
    assert main(["sweep", str(based)]) == 2
    assert capsys.readouterr().err == f"accelgen: error: {missing}: no such file\n"


def test_pareto_front():
    pts = [{"a": 1, "t": 1}, {"a": 2, "t": 3}, {"a": 3, "t": 2}, {"a": 2, "t": 3}, {"a": 4, "t": 5}]
    assert results.pareto(pts, "a", "t") == [pts[0], pts[1], pts[3], pts[4]]


# -- sweeps on clusters ----------------------------------------------------------------------------

def test_local_cluster_invalid_and_failing_points_then_cached_rerun(tmp_path):
    path = write(tmp_path, sweep_text(FOUR_POINTS))
    out = tmp_path / "out"
    proc = run_cli("sweep", path, "--workers", 2, "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr     # one point failed
    log = proc.stdout
    assert "4 points, 1 invalid, 0 cached, 3 to compute" in log
    assert "a local cluster of 2 worker processes" in log
    assert "point 2 is invalid (gemm.cols=99): gemm.cols = 99: " \
           "must be an integer from 1 to 64" in log
    assert sum(line.startswith("[") and "/3]" in line for line in log.splitlines()) == 3
    rows = rows_of(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "invalid", "error"]
    assert rows[3]["error"] == "timed out after 1 s"
    assert rows[2]["error"] == "gemm.cols = 99: must be an integer from 1 to 64"
    assert [r["gemm.modes"] for r in rows] == [["int8"], ["int4"], ["int8"], ["int8"]]
    for row in rows[:2]:
        assert row["lines"] > 0 and row["modules"] >= 1
        assert 0 < row["sqnr_db"] and 0 < row["digits_accuracy"] <= 100
    assert rows[0]["accuracy_mode"] == "int8" and rows[1]["accuracy_mode"] == "int4"
    assert rows[0]["sqnr_db"] > rows[1]["sqnr_db"]      # 8-bit weights beat 4-bit ones
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("point,gemm.cols,gemm.modes,gemm.rows,")
    assert len(csv_lines) == 5
    assert len(list((out / "cache").glob("*.json"))) == 3   # the failed point is cached too

    start = time.monotonic()
    again = run_cli("sweep", path, "--out", out)
    assert "4 points, 1 invalid, 3 cached, 0 to compute" in again.stdout
    assert "computing" not in again.stdout
    assert time.monotonic() - start < 30     # no cluster, nothing computed
    assert rows_of(out) == [dict(r, cached=True) if r["status"] != "invalid" else r
                            for r in rows]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_existing_cluster_through_scheduler_address(tmp_path):
    """``dask scheduler`` and ``dask worker`` as separate processes on localhost; the sweep runs
    on them through ``--scheduler``, unchanged."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_CURRENT_TEST", None)
    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = tmp_path / "logs"
    logs.mkdir()
    dask = [sys.executable, "-m", "dask"]
    with open(logs / "scheduler.log", "w") as log:
        scheduler = subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
             "--no-dashboard"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    worker = None
    try:
        with open(logs / "worker.log", "w") as log:
            worker = subprocess.Popen(
                [*dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while "Registered to" not in (logs / "worker.log").read_text() \
                and time.monotonic() < deadline:
            assert worker.poll() is None and scheduler.poll() is None, \
                (logs / "worker.log").read_text() + (logs / "scheduler.log").read_text()
            time.sleep(0.2)
        points = [{"gemm.cols": 2}, {"gemm.cols": 4}]
        out = tmp_path / "out"
        proc = run_cli("sweep", write(tmp_path, sweep_text(points)), "--scheduler", address,
                       "--out", out)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"the cluster at {address} (1 workers)" in proc.stdout
        rows = rows_of(out)
        assert [r["status"] for r in rows] == ["ok", "ok"]
        assert rows[0]["lines"] < rows[1]["lines"]
    finally:
        for p in (worker, scheduler):
            if p is not None:
                _stop(p)


def _processes_mentioning(text):
    """PIDs of processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_interrupted_sweep_loses_no_finished_point(tmp_path):
    """Kill a sweep (client, cluster and points) after its first point; the rerun computes only
    the points that were not finished, and the finished ones are kept as they were."""
    points = [{"gemm.cols": c} for c in (2, 3, 4, 5)]
    path = write(tmp_path, sweep_text(points))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_CURRENT_TEST", None)
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "gen.cli", "sweep", str(path), "--workers",
                                 "1", "--out", str(out)], cwd=ROOT, env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "cache").glob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = {p.name: p.read_text() for p in (out / "cache").glob("*.json")}
    assert 1 <= len(kept) < 4
    # The point that was running ends with its worker.
    deadline = time.monotonic() + 20
    while _processes_mentioning(str(out / "build")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_mentioning(str(out / "build"))

    again = run_cli("sweep", path, "--workers", 2, "--out", out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"4 points, 0 invalid, {len(kept)} cached, {4 - len(kept)} to compute" in again.stdout
    assert all((out / "cache" / name).read_text() == text for name, text in kept.items())
    assert [r["status"] for r in rows_of(out)] == ["ok"] * 4


needs_tools = pytest.mark.skipif(shutil.which("yosys") is None or shutil.which("iverilog") is None,
                                 reason="needs yosys and iverilog on PATH")


@pytest.mark.slow
@pytest.mark.sim
@needs_tools
def test_every_metric_on_the_tiny_sweep(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("sweep", ROOT / "sweeps" / "tiny.toml", "--workers", 2, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(out)
    assert [(r["gemm.cols"], r["gemm.modes"]) for r in rows] == [
        (2, ["int8"]), (2, ["int4"]), (4, ["int8"]), (4, ["int4"])]
    for row in rows:
        assert row["status"] == "ok"
        assert row["cells"] > 0 and row["flip_flops"] > 0
        mode = row["gemm.modes"][0]
        peak = 2 * row["gemm.cols"] * (2 if mode == "int4" else 1)
        assert 0 < row["throughput"] <= peak
        assert 0 < row[f"utilization_{mode}"] <= 1
        assert row["simulator"] == "icarus"
    assert rows[2]["cells"] > rows[0]["cells"]
    for name in ("pareto_area_throughput.png", "accuracy_area.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


needs_asic = pytest.mark.skipif(
    shutil.which("sta") is None or shutil.which("yosys") is None or shutil.which("iverilog") is None
    or not Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib").is_file(),
    reason="needs yosys, iverilog, OpenSTA (sta) and the OSU 0.18 um library (qflow-tech-osu018)")


@pytest.mark.slow
@pytest.mark.sim
@needs_asic
def test_asic_target_gives_area_period_and_gmacs(tmp_path):
    text = sweep_text([{"gemm.cols": 2}], metrics=("synth", "sim")).replace(
        "[sweep]\n", '[sweep]\nsim = "icarus"\nsynth_targets = ["asic"]\n')
    out = tmp_path / "out"
    proc = run_cli("sweep", write(tmp_path, text), "--workers", 1, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = rows_of(out)
    assert row["area_um2"] >= row["logic_area_um2"] > 0 and row["min_period_ns"] > 0
    assert row["gmac_per_s"] == round(row["throughput"] / row["min_period_ns"], 3)
    assert (out / "pareto_area_throughput.png").is_file()
