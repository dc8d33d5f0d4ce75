"""One point of a sweep: one idempotent task, run in a process of its own with a timeout.

:func:`run_point` is what a Dask worker runs. It clears the point's build folder (its own, under
the sweep's output folder), writes ``task.json`` there and starts ``python -m sim.sweep.point
FOLDER`` in a new session, so that the point, its Yosys and its simulator can all be killed
together when the timeout expires. The child (:func:`main`) validates the configuration,
computes the metrics in order (``emit``, ``synth``, ``sim``, ``accuracy``) inside the folder and
writes ``result.json`` after each one, so that a point that fails or times out keeps the figures it
had. Nothing is raised to the worker: every outcome is a result dict with ``status`` ``ok``,
``invalid`` (the configuration error) or ``error`` (the first line of the error; the whole trace
is in ``point.log``).

A task is a JSON-ready dict (see :func:`make_task`): running it twice gives the same result.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

__all__ = ["make_task", "run_point", "compute", "main"]

ORDER = ("emit", "synth", "sim", "accuracy")


def make_task(key, index, values, config_data, settings, timeout_s, build_dir, shared_dir):
    """The task of one point: everything :func:`run_point` needs, JSON-ready."""
    return {"key": key, "index": index, "values": values, "config": config_data,
            "settings": settings, "timeout_s": timeout_s, "build_dir": str(build_dir),
            "shared_dir": str(shared_dir)}


def _write_json(path, value):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _repo_root():
    import sim
    return Path(sim.__file__).resolve().parent.parent


def _first_line(text, limit=400):
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    return line[:limit]


def run_point(task):
    """Compute one point in a child process; its result dict (never raises)."""
    from gen import outdir
    build = Path(task["build_dir"])
    start = time.monotonic()
    result = {"key": task["key"], "index": task["index"], "values": task["values"],
              "status": "error", "error": None, "metrics": {}, "host": socket.gethostname()}
    proc = None
    try:
        # The point's own folder: new, or left by an interrupted or earlier run (its files are
        # replaced; the emitted Verilog and the simulator builds are reused where unchanged).
        outdir.write_folder({"task.json": json.dumps(task, indent=1, sort_keys=True) + "\n",
                             "result.json": "{}\n", "point.log": ""}, build,
                            what="build folder of a point")
        env = dict(os.environ)
        env.pop("PYTEST_CURRENT_TEST", None)
        env["ACCELGEN_SIM_BUILD"] = str(build / "sim")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_repo_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        with open(build / "point.log", "w", encoding="utf-8") as log:
            proc = subprocess.Popen([sys.executable, "-m", "sim.sweep.point", str(build)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=build, start_new_session=True)
            try:
                code = proc.wait(timeout=task["timeout_s"])
                timed_out = False
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                timed_out = True
        child = _read_result(build / "result.json")
        result["metrics"] = child.get("metrics", {})
        if timed_out:
            done = child.get("done", [])
            result["error"] = (f"timed out after {task['timeout_s']:g} s"
                               + (f" (done: {', '.join(done)})" if done else ""))
        elif child.get("status") in ("ok", "invalid", "error"):
            result["status"] = child["status"]
            result["error"] = child.get("error")
        else:
            tail = (build / "point.log").read_text(errors="replace").strip().splitlines()
            result["error"] = (f"the point's process exited with status {code}"
                               + (f": {tail[-1][:300]}" if tail else ""))
    except Exception as exc:   # a failure of the worker's side: recorded, never raised
        result["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_result(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def compute(task, build, save):
    """Compute the metrics of ``task`` in the folder ``build``; ``save(result)`` is called after
    each metric. Returns the result dict (``status``, ``error``, ``metrics``, ``done``)."""
    from gen.config import ConfigError, parse_config

    from . import metrics as M
    result = {"status": "error", "error": None, "metrics": {}, "done": []}
    try:
        config = parse_config(task["config"])
    except ConfigError as exc:
        result.update(status="invalid", error=str(exc))
        return result
    settings = task["settings"]
    wanted = set(settings["metrics"])
    rtl = build / "rtl"
    steps = []
    if wanted & {"emit", "synth", "sim"}:
        steps.append(("emit", lambda: M.emission(config, rtl)))
    if "synth" in wanted:
        steps.append(("synth", lambda: M.synthesis(config, rtl, settings["synth_targets"])))
    if "sim" in wanted:
        steps.append(("sim", lambda: M.simulation(config, rtl, settings["workload"],
                                                  settings["sim"])))
    if "accuracy" in wanted:
        steps.append(("accuracy", lambda: M.accuracy(config, task["shared_dir"])))
    for name, step in steps:
        print(f"--- {name}", flush=True)
        try:
            figures = step()
        except Exception as exc:
            traceback.print_exc()
            result["error"] = f"{name}: {type(exc).__name__}: {_first_line(exc)}"
            return result
        if name in wanted:
            result["metrics"].update(figures)
        result["done"].append(name)
        save(result)
    result["status"] = "ok"
    return result


def _watch_parent():
    """End this point's whole process group when the worker that started it goes away."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None):
    """``python -m sim.sweep.point FOLDER``: compute the task in ``FOLDER/task.json``."""
    argv = sys.argv[1:] if argv is None else argv
    build = Path(argv[0]).resolve()
    task = json.loads((build / "task.json").read_text(encoding="utf-8"))
    _watch_parent()

    def save(result):
        _write_json(build / "result.json", result)

    result = compute(task, build, save)
    save(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
