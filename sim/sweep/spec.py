"""The sweep file: a base configuration, the keys to vary, the metrics to compute.

A sweep file is TOML::

    [sweep]
    name = "gemm_precisions"          # optional; default: the file's name
    base = "base.toml"                # a configuration file, relative to the sweep file ...
    metrics = ["emit", "synth", "sim", "accuracy"]
    workload = "gemm_small"           # the GEMMs of the "sim" metric (a name or [[m, n, k], ...])
    sim = "icarus"                    # simulator of "sim" (default: $SIM, else verilator)
    synth_targets = ["generic"]       # targets of the "synth" metric
    timeout_s = 1800                  # per point

    [base.gemm]                       # ... or the base configuration inline (not both)
    rows = 4

    [grid]                            # every combination of these values ...
    "gemm.cols" = [4, 8, 16]
    "gemm.modes" = [["int8"], ["int4"]]

    [[points]]                        # ... or an explicit list of points (not both)
    "gemm.cols" = 4
    "sweep.timeout_s" = 60            # a point may override the timeout

Dotted keys name configuration fields (``gemm.cols``, ``system.gemm.rows``); TOML's unquoted
dotted keys (``gemm.cols = [4, 8]``) and sub-tables (``[grid.gemm]``) mean the same. A mistake in
the file is a :class:`gen.config.ConfigError`, one line naming the key, the value and what is
allowed; a point whose configuration is invalid is not an error of the file (it is recorded as an
invalid point by :mod:`sim.sweep.point`).
"""

import copy
import dataclasses
import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gen.config import SECTIONS, SETTINGS, ConfigError, ConfigFileError, load_config, parse_config

from .metrics import METRICS, check_workload

__all__ = ["Sweep", "Point", "load_sweep", "parse_sweep", "point_config_data", "MAX_POINTS"]

MAX_POINTS = 10000
_SWEEP_KEYS = ("name", "base", "metrics", "workload", "sim", "synth_targets", "timeout_s")
_POINT_SETTINGS = ("sweep.timeout_s",)
SYNTH_TARGETS = ("generic", "ice40", "asic")
SIMULATORS = ("verilator", "icarus")
DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its position, the values of the varied keys, its timeout."""

    index: int
    values: dict
    timeout_s: float


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file.

    Members
    -------
    name : str
    base : dict
        The base configuration as TOML data (not yet validated: each point is).
    keys : tuple of str
        The varied dotted keys, in the order of the file.
    points : tuple of Point
    metrics : tuple of str
        Names from :data:`sim.sweep.metrics.METRICS`.
    workload : str or list
        A name from :data:`sim.sweep.metrics.WORKLOADS` or a list of ``[m, n, k]``.
    sim : str or None
    synth_targets : tuple of str
    timeout_s : float
    """

    name: str
    base: dict
    keys: tuple
    points: tuple
    metrics: tuple
    workload: object = "gemm_small"
    sim: str | None = None
    synth_targets: tuple = ("generic",)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def settings(self):
        """What, beside a point's configuration, decides its results (part of its cache key)."""
        return {"metrics": list(self.metrics), "workload": self.workload, "sim": self.sim,
                "synth_targets": list(self.synth_targets)}


def _flatten(table, prefix, leaf):
    """``{dotted key: value}`` of a TOML table whose sub-tables are dotted key parts; ``leaf(v)`` is
    True where a value stops the descent."""
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not leaf(value):
            out.update(_flatten(value, name + ".", leaf))
        else:
            out[name] = value
    return out


def _check_key(where, key, value):
    """``key`` (dotted) names a configuration field; ConfigError otherwise."""
    parts = key.split(".")
    every = {**SECTIONS, **SETTINGS}
    if parts[0] not in every or len(parts) < 2:
        raise ConfigError(f"{where}.{key}", value,
                          "must name a configuration key as section.key, with section one of "
                          + ", ".join(every))
    cls = every[parts[0]]
    for i, part in enumerate(parts[1:], 1):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise ConfigError(f"{where}.{key}", value,
                              f"unknown configuration key; allowed keys of {'.'.join(parts[:i])} "
                              "are " + ", ".join(fields))
        meta = fields[part].metadata
        if meta["kind"] == "section":
            if i == len(parts) - 1:
                raise ConfigError(f"{where}.{key}", value,
                                  "names a table; vary its keys (" + key + ".<key>) instead")
            cls = meta["cls"]
        elif i != len(parts) - 1:
            raise ConfigError(f"{where}.{key}", value,
                              f"{'.'.join(parts[:i + 1])} is a value, not a table")


def point_config_data(base, values):
    """The configuration data of a point: ``base`` with every dotted key of ``values`` set
    (``sweep.*`` settings left out)."""
    data = copy.deepcopy(base)
    for key, value in values.items():
        if key.startswith("sweep."):
            continue
        *tables, last = key.split(".")
        node = data
        for t in tables:
            node = node.setdefault(t, {})
        node[last] = copy.deepcopy(value)
    return data


def _str_list(where, value, choices):
    allowed = "must be a non-empty list of distinct names from: " + ", ".join(choices)
    if (not isinstance(value, list) or not value or len(set(map(str, value))) != len(value)
            or any(not isinstance(v, str) or v not in choices for v in value)):
        raise ConfigError(where, value, allowed)
    return tuple(value)


def _timeout(where, value):
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or value != value
            or value <= 0):
        raise ConfigError(where, value, "must be a number of seconds greater than 0")
    return float(value)


def _grid_points(grid):
    keys = _flatten(grid, "", leaf=lambda v: False)
    if not keys:
        raise ConfigError("grid", grid, "must vary at least one key")
    for key, values in keys.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}", values, "must be a non-empty list of values")
        _check_key("grid", key, values)
    count = 1
    for values in keys.values():
        count *= len(values)
    if count > MAX_POINTS:
        raise ConfigError("grid", f"{count} points", f"must have at most {MAX_POINTS} points")
    names = list(keys)
    return names, [dict(zip(names, combo, strict=True))
                   for combo in itertools.product(*keys.values())]


def _explicit_points(points):
    if not isinstance(points, list) or not points:
        raise ConfigError("points", points, "must be a non-empty array of tables ([[points]])")
    if len(points) > MAX_POINTS:
        raise ConfigError("points", f"{len(points)} points",
                          f"must have at most {MAX_POINTS} points")
    names, out = [], []
    for i, point in enumerate(points):
        where = f"points.{i}"
        if not isinstance(point, dict) or not point:
            raise ConfigError(where, point, "must be a non-empty table of dotted keys and values")
        values = _flatten(point, "", leaf=lambda v: False)
        for key, value in values.items():
            if key.startswith("sweep."):
                if key not in _POINT_SETTINGS:
                    raise ConfigError(f"{where}.{key}", value, "unknown point setting; allowed: "
                                      + ", ".join(_POINT_SETTINGS))
                _timeout(f"{where}.{key}", value)
                continue
            _check_key(where, key, value)
            if key not in names:
                names.append(key)
        out.append(values)
    return names, out


def parse_sweep(data, *, source=None, name=None):
    """A :class:`Sweep` from TOML ``data``; ``source``: the file it came from (a relative
    ``sweep.base`` is read beside it)."""
    if not isinstance(data, dict):
        raise ConfigError("sweep", data, "must be a TOML document")
    for key in data:
        if key not in ("sweep", "base", "grid", "points"):
            raise ConfigError(key, data[key],
                              "unknown table; allowed are sweep, base, grid, points")
    settings = data.get("sweep", {})
    if not isinstance(settings, dict):
        raise ConfigError("sweep", settings, "must be a table")
    for key in settings:
        if key not in _SWEEP_KEYS:
            raise ConfigError(f"sweep.{key}", settings[key],
                              "unknown key; allowed keys are " + ", ".join(_SWEEP_KEYS))

    if ("base" in settings) == ("base" in data):
        raise ConfigError("sweep.base", settings.get("base", data.get("base")),
                          "give the base configuration either as a file (sweep.base) or inline "
                          "([base]), not both" if "base" in data else
                          "missing: give a configuration file (sweep.base) or an inline [base] "
                          "table")
    if "base" in settings:
        path = settings["base"]
        if not isinstance(path, str) or not path:
            raise ConfigError("sweep.base", path, "must be the path of a configuration file")
        full = Path(path) if source is None else Path(source).parent / path
        base = load_config(full).to_dict()
    else:
        base = data["base"]
        if not isinstance(base, dict):
            raise ConfigError("base", base, "must be a table of configuration sections")
    if base:
        parse_config(base)   # the base itself must be valid, so that errors name a point's keys

    if ("grid" in data) == ("points" in data):
        raise ConfigError("grid", data.get("grid", data.get("points")),
                          "give either a [grid] or a list of [[points]], not both" if "grid" in data
                          else "missing: give a [grid] of keys to vary or a list of [[points]]")
    if "grid" in data:
        if not isinstance(data["grid"], dict):
            raise ConfigError("grid", data["grid"],
                              "must be a table of dotted keys and value lists")
        keys, values = _grid_points(data["grid"])
    else:
        keys, values = _explicit_points(data["points"])

    if "metrics" not in settings:
        raise ConfigError("sweep.metrics", None,
                          "missing: give a list of metrics from: " + ", ".join(METRICS))
    metrics = _str_list("sweep.metrics", settings["metrics"], tuple(METRICS))
    workload = settings.get("workload", "gemm_small")
    check_workload("sweep.workload", workload)
    sim = settings.get("sim")
    if sim is not None and sim not in SIMULATORS:
        raise ConfigError("sweep.sim", sim, "must be one of " + ", ".join(SIMULATORS))
    targets = _str_list("sweep.synth_targets", settings.get("synth_targets", ["generic"]),
                        SYNTH_TARGETS)
    timeout_s = _timeout("sweep.timeout_s", settings.get("timeout_s", DEFAULT_TIMEOUT_S))
    sweep_name = settings.get("name", name or "sweep")
    if not isinstance(sweep_name, str) or not sweep_name:
        raise ConfigError("sweep.name", sweep_name, "must be a non-empty string")

    points = tuple(Point(index=i, values={k: v for k, v in p.items() if not k.startswith("sweep.")},
                         timeout_s=float(p.get("sweep.timeout_s", timeout_s)))
                   for i, p in enumerate(values))
    return Sweep(name=sweep_name, base=base, keys=tuple(keys), points=points, metrics=metrics,
                 workload=workload, sim=sim, synth_targets=targets, timeout_s=timeout_s)


def load_sweep(path):
    """Read and parse the sweep file ``path``."""
    path = Path(path)
    if path.is_dir():
        raise ConfigFileError(path, "is a folder, not a sweep file; give a .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, f"cannot be read as UTF-8 text ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(path, f"is not valid TOML ({exc})") from None
    return parse_sweep(data, source=path, name=path.stem)

