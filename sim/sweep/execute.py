"""Running a sweep on Dask: a local cluster, or an existing one.

Without a scheduler address, a ``dask.distributed`` ``LocalCluster`` with one single-threaded worker
process per core (or ``workers``); with one (``tcp://HOST:PORT``), a ``Client`` of that cluster.
Every point to compute is one task (:func:`sim.sweep.point.run_point`) whose Dask key is the point's
cache key, so a point is computed once however many times it appears; the dearest points (by
:func:`cost_estimate`) go first. Results arrive as they
complete: each is written to the cache at once (``OUT/cache/<key>.json``), and a progress line is
printed. A rerun reads the cache and computes only the points it lacks; when nothing is missing,
no cluster is started at all.

The cache key is the SHA-256 of the point's whole configuration (defaults filled in), the sweep's
settings that decide its figures (metrics, workload, simulator, synthesis targets) and a digest of
the generator's and the measurements' sources, so a change of the code is never answered with old
figures. Failed points are cached too (``--retry-failed`` computes them again); points that were
running when a sweep was interrupted are not, and are computed by the rerun.

The scheduler and the workers of an existing cluster must be able to import this accelgen (the
scheduler reads the tasks), and the workers to write the output folder at the same path (a shared
file system), where each point has its build folder.
"""

import hashlib
import json
import os
from pathlib import Path

from gen.config import ConfigError, parse_config

from .point import _first_line, make_task, run_point
from .spec import point_config_data

__all__ = ["run_sweep", "point_key", "code_digest", "check_out_dir", "prepare_out_dir",
           "default_workers", "cost_estimate", "RESULT_FILES"]

# Sources of the sweep that do not change a point's figures.
_CLIENT_ONLY = {"sweep/__init__.py", "sweep/execute.py", "sweep/results.py", "sweep/spec.py"}


def default_workers():
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def code_digest():
    """SHA-256 of the generator's and the measurements' sources (``gen/`` and ``sim/``)."""
    import gen
    import sim
    digest = hashlib.sha256()
    for package in (gen, sim):
        root = Path(package.__file__).resolve().parent
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.suffix in (".py", ".toml", ".vlt") and rel not in _CLIENT_ONLY \
                    and "__pycache__" not in rel:
                digest.update(f"{package.__name__}/{rel}".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def point_key(config, settings, code):
    """The cache key of a point: its configuration, the sweep's settings, the code digest."""
    text = json.dumps({"config": config.to_dict(), "settings": settings, "code": code},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


RESULT_FILES = ("results.csv", "results.json", "pareto_area_throughput.png", "accuracy_area.png")
"""The files a sweep writes into its output folder, beside ``cache/`` and ``build/``."""


def check_out_dir(out_dir, keep=()):
    """Check, touching nothing, that the sweep may write ``out_dir``: new, empty, or stamped by
    accelgen (an earlier sweep's); its absolute path. :class:`gen.outdir.OutputError` if not.
    ``keep``: the sweep file, which the folder must not hold."""
    from gen import outdir
    path = outdir.check_folder(out_dir, what="--out folder", keep=keep, names=RESULT_FILES)
    outdir.check_folder(path / "cache", what="cache folder of the --out folder")
    outdir.check_build_root(path / "build", what="build folder of the --out folder")
    return path


def prepare_out_dir(out_dir, keep=()):
    """Check ``out_dir`` (:func:`check_out_dir`), then create and stamp it and its ``cache/`` and
    ``build/`` folders; its path."""
    from gen import outdir
    path = check_out_dir(out_dir, keep)
    for folder in (path, path / "cache"):
        folder.mkdir(parents=True, exist_ok=True)
        outdir.record(folder, [])
    outdir.mark_build_root(path / "build")
    return path


def cost_estimate(data):
    """A rough relative cost of a point from its configuration data: Dask runs the dearest points
    first (a higher priority), so that the sweep does not end waiting for one large point."""
    def gemm_cost(g):
        return g["rows"] * g["cols"] * len(g["modes"]) * (2 if g["vsq_vector_sizes"] else 1)
    cost = 0
    if data.get("gemm"):
        cost += gemm_cost(data["gemm"])
    if data.get("system"):
        cost += data["system"]["kx"] * data["system"]["ky"] * gemm_cost(data["system"]["gemm"])
    if data.get("noc"):
        cost += data["noc"]["kx"] * data["noc"]["ky"] * data["noc"]["vcs"] * 8
    if data.get("softmax"):
        cost += data["softmax"]["lanes"] * 8
    return cost


def _read_cache(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_cache(path, entry):
    from gen import outdir
    outdir.write_file(path, json.dumps(entry, indent=1, sort_keys=True) + "\n",
                      what="cache file")


def _lookup(keys, data):
    """``{dotted key: value}`` of ``keys`` in the configuration ``data`` (None where absent)."""
    out = {}
    for key in keys:
        node = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[key] = node
    return out


def _values_text(values):
    def show(v):
        if isinstance(v, list):
            return "+".join(map(str, v)) if v else "-"
        return str(v)
    return " ".join(f"{k}={show(v)}" for k, v in values.items())


def _summary(row):
    if row["status"] != "ok":
        return row["error"] or ""
    m = row["metrics"]
    parts = []
    for key, fmt in (("area_um2", "{} um^2"), ("min_period_ns", "{} ns"), ("cells", "{} cells"),
                     ("luts", "{} LUTs"), ("throughput", "{} MAC/cycle"),
                     ("digits_accuracy", "{} % digits"), ("lines", "{} lines")):
        if m.get(key) is not None:
            parts.append(fmt.format(m[key]))
    return ", ".join(parts)


class _Cluster:
    """A Dask client of a new local cluster or of ``scheduler``; closed on exit."""

    def __init__(self, workers, scheduler):
        self.workers, self.scheduler = workers, scheduler
        self.cluster = self.client = None

    def __enter__(self):
        import logging

        from dask.distributed import Client, LocalCluster
        if self.scheduler:
            self.client = Client(self.scheduler, timeout="20s")
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                        processes=True, dashboard_address=None,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_sweep(sweep, out_dir, *, workers=None, scheduler=None, retry_failed=False, log=print,
              keep=()):
    """Run ``sweep`` (a :class:`sim.sweep.spec.Sweep`) with its cache in ``out_dir``; the rows
    (one result dict per point, in the sweep's order). ``keep``: the sweep file (see
    :func:`check_out_dir`)."""
    out = prepare_out_dir(out_dir, keep)
    cache, builds = out / "cache", out / "build"
    code = code_digest()
    settings = sweep.settings()
    rows = [None] * len(sweep.points)
    tasks = {}          # key -> task
    where = {}          # key -> indices of the points with that key
    invalid = cached = 0
    values = {}         # index -> every varied key's value at the point (defaults filled in)
    for point in sweep.points:
        data = point_config_data(sweep.base, point.values)
        values[point.index] = _lookup(sweep.keys, data)
        base = {"index": point.index, "values": values[point.index]}
        try:
            config = parse_config(data)
            values[point.index] = base["values"] = _lookup(sweep.keys, config.to_dict())
        except ConfigError as exc:
            rows[point.index] = {**base, "key": None, "status": "invalid", "error": str(exc),
                                 "metrics": {}, "seconds": 0.0}
            invalid += 1
            log(f"point {point.index} is invalid ({_values_text(point.values)}): {exc}")
            continue
        key = point_key(config, settings, code)
        entry = _read_cache(cache / f"{key}.json")
        if entry is not None and (entry["status"] == "ok" or not retry_failed):
            rows[point.index] = {**entry, **base, "cached": True}
            cached += 1
            continue
        where.setdefault(key, []).append(point.index)
        if key not in tasks:
            tasks[key] = make_task(key, point.index, point.values, config.to_dict(), settings,
                                   point.timeout_s, builds / key[:16], builds / "shared")
    todo = sum(len(v) for v in where.values())
    log(f"sweep {sweep.name}: {len(sweep.points)} points, {invalid} invalid, {cached} cached, "
        f"{todo} to compute; results in {out}")
    if tasks:
        _compute(tasks, where, values, rows, cache, workers or default_workers(), scheduler, log)
    return rows


def _compute(tasks, where, values, rows, cache, workers, scheduler, log):
    import time

    from dask.distributed import as_completed
    total = sum(len(v) for v in where.values())
    width = len(str(total))
    done = 0
    start = time.monotonic()
    with _Cluster(workers, scheduler) as client:
        log(f"computing {len(tasks)} points on {_client_text(client, scheduler, workers)}")
        # Dearest first, in the order of submission too: an idle worker starts the first task
        # it is given before the later ones (and their priorities) arrive.
        order = sorted(tasks, key=lambda k: -cost_estimate(tasks[k]["config"]))
        futures = {client.submit(run_point, tasks[key], key=f"accelgen-point-{key}", pure=False,
                                 retries=0, priority=cost_estimate(tasks[key]["config"])): key
                   for key in order}
        for future in as_completed(futures):
            key = futures[future]
            try:
                result = future.result()
            except Exception as exc:    # the worker died or the task was lost
                task = tasks[key]
                result = {"key": key, "index": task["index"], "values": task["values"],
                          "status": "error", "metrics": {}, "seconds": None,
                          "error": f"{type(exc).__name__}: {_first_line(exc)}"}
            future.release()
            _write_cache(cache / f"{key}.json", result)
            for index in where[key]:
                rows[index] = {**result, "index": index, "values": values[index],
                               "cached": False}
                done += 1
                seconds = result.get("seconds")
                log(f"[{done:>{width}}/{total}] {result['status']:<7} "
                    f"{'' if seconds is None else f'{seconds:.1f} s':>9}  "
                    f"{_values_text(rows[index]['values'])}  {_summary(result)}")
    log(f"computed {total} points in {time.monotonic() - start:.1f} s")


def _client_text(client, scheduler, workers):
    if scheduler:
        n = len(client.scheduler_info().get("workers", {}))
        return f"the cluster at {scheduler} ({n} workers)"
    return f"a local cluster of {workers} worker processes"
