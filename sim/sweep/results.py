"""The results of a sweep: one CSV and one JSON row per point, and the plots a user looks at first.

A row has the point's number, every varied key (dotted, as in the sweep file), every metric, then
``status`` (``ok``, ``invalid``, ``error``), ``error``, ``seconds``, ``cached`` and the cache
``key``. In the CSV, a list value is written with ``+`` between its items (``int8+int4``) and an
empty list as ``-``.

The plots (matplotlib, PNG): the area of every computed point against its throughput (MACs per
cycle of the primary mode) with the Pareto front, the points no other point beats in both, marked
and labelled; and the accuracy against the area, the SQNR and the digits accuracy in two panels,
with their Pareto fronts likewise. The area is
``area_um2`` (the ``asic`` target), else ``cells`` (Yosys generic gates), else ``luts``; the
throughput is ``gmac_per_s`` (MACs per cycle over the minimum period, with the ``asic`` target),
else MACs per cycle; points are coloured by their primary mode.
"""

import csv
import io
import json
from pathlib import Path

__all__ = ["flat_rows", "write_results", "pareto", "plot_fronts", "AREA_KEYS"]

AREA_KEYS = (("area_um2", "area (um^2: standard cells and modelled SRAM)"),
             ("cells", "area (Yosys generic cells)"), ("luts", "area (iCE40 LUTs)"))
_TAIL = ("status", "error", "seconds", "cached", "key")


def flat_rows(sweep, rows):
    """The rows as flat dicts: ``point``, the varied keys, the metrics, then :data:`_TAIL`."""
    out = []
    for row in rows:
        flat = {"point": row["index"]}
        flat.update({k: row["values"].get(k) for k in sweep.keys})
        flat.update(row.get("metrics", {}))
        if flat.get("throughput") is not None and flat.get("min_period_ns"):
            # MACs per cycle at the minimum period: MACs per ns, GMAC/s.
            flat["gmac_per_s"] = round(flat["throughput"] / flat["min_period_ns"], 3)
        flat.update({k: row.get(k) for k in _TAIL})
        out.append(flat)
    return out


# Metric columns in this order (per-mode columns after their kind), the rest alphabetically.
_ORDER = ("area_um2", "cells", "luts", "throughput", "gmac_per_s", "min_period_ns",
          "logic_area_um2", "sram_area_um2", "digits_accuracy", "sqnr_db", "accuracy_mode",
          "flip_flops", "memory_bits", "ice40_flip_flops", "cycles_", "utilization_",
          "macs_per_cycle_", "lines", "modules", "emit_s", "synth_s", "sim_s", "sim_build_s",
          "simulator")


def _rank(name):
    for i, key in enumerate(_ORDER):
        if name == key or (key.endswith("_") and name.startswith(key)):
            return (i, name)
    return (len(_ORDER), name)


def _columns(sweep, flat):
    head = ["point", *sweep.keys]
    metrics = {k for row in flat for k in row if k not in head and k not in _TAIL}
    return head + sorted(metrics, key=_rank) + list(_TAIL)


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value)) if value else "-"
    return value


def _write(path, data):
    from gen import outdir
    outdir.write_file(path, data, what="result file")


def write_results(sweep, rows, out_dir):
    """Write ``results.csv``, ``results.json`` and the plots into ``out_dir``; the paths written
    and a note per plot that could not be drawn."""
    out = Path(out_dir)
    flat = flat_rows(sweep, rows)
    columns = _columns(sweep, flat)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in flat:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    written, notes = [], []
    _write(out / "results.csv", text.getvalue())
    _write(out / "results.json", json.dumps(
        {"sweep": sweep.name, "keys": list(sweep.keys), "metrics": list(sweep.metrics),
         "rows": flat}, indent=1, sort_keys=False) + "\n")
    written += [out / "results.csv", out / "results.json"]
    ok = [r for r in flat if r["status"] == "ok"]
    area = next(((k, label) for k, label in AREA_KEYS if any(r.get(k) is not None for r in ok)),
                None)
    speed = (("gmac_per_s", "throughput (GMAC/s at the minimum period)")
             if any(r.get("gmac_per_s") is not None for r in ok)
             else ("throughput", "throughput (MACs per cycle)"))
    plots = [("pareto_area_throughput.png", f"{sweep.name}: area against throughput", [speed]),
             ("accuracy_area.png", f"{sweep.name}: accuracy against area",
              [("sqnr_db", "SQNR of the weights (dB)"),
               ("digits_accuracy", "digits MLP accuracy (%)")])]
    for name, title, panels in plots:
        drawn = []
        for y_key, y_label in panels:
            pts = [r for r in ok
                   if area and r.get(area[0]) is not None and r.get(y_key) is not None]
            if pts:
                drawn.append((pts, (y_key, y_label)))
        if not drawn:
            keys = " or ".join(k for k, _ in panels)
            notes.append(f"{name}: not drawn (no point has an area and {keys})")
            continue
        png = plot_fronts(sweep, drawn, area, title)
        if png is None:
            notes.append(f"{name}: not drawn (matplotlib is not installed)")
            continue
        _write(out / name, png)
        written.append(out / name)
    return written, notes


def pareto(points, x_key, y_key):
    """The points of ``points`` (dicts) that no other has at most the ``x`` (area) and at least the
    ``y`` of, with one of them strictly better; sorted by ``x``."""
    front = []
    for p in points:
        beaten = any(q[x_key] <= p[x_key] and q[y_key] >= p[y_key]
                     and (q[x_key] < p[x_key] or q[y_key] > p[y_key]) for q in points)
        if not beaten:
            front.append(p)
    return sorted(front, key=lambda p: (p[x_key], -p[y_key]))


def _label(sweep, row):
    parts = []
    for key in sweep.keys:
        value = _csv_value(row.get(key))
        parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return " ".join(parts)


def plot_fronts(sweep, panels, area, title):
    """PNG bytes of one panel per ``(points, (y key, y label))`` of ``panels``: the points against
    their ``area`` (less is better; more ``y`` is better) with their Pareto front marked; None
    without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(9, 6 if len(panels) == 1 else 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (points, y) in zip(axes, panels, strict=True):
        _panel(ax, sweep, points, area, y)
    axes[0].set_title(title)
    axes[-1].set_xlabel(area[1] + ", log scale")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _panel(ax, sweep, points, area, y):
    (x_key, _), (y_key, y_label) = area, y
    front = pareto(points, x_key, y_key)
    # Points coloured by their primary mode where the accuracy metric names it.
    groups = {}
    for p in points:
        groups.setdefault(p.get("accuracy_mode"), []).append(p)
    colors = iter(["tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"])
    for mode, members in sorted(groups.items(), key=lambda g: str(g[0])):
        ax.scatter([p[x_key] for p in members], [p[y_key] for p in members], s=28,
                   color="0.6" if mode is None else next(colors, "0.6"), zorder=2,
                   label=f"{len(members)} points" + ("" if mode is None else f", {mode}"))
    ax.step([p[x_key] for p in front], [p[y_key] for p in front], where="post", color="tab:red",
            alpha=0.5, zorder=1)
    ax.scatter([p[x_key] for p in front], [p[y_key] for p in front], s=90, facecolors="none",
               edgecolors="tab:red", linewidths=1.5, marker="D",
               label=f"Pareto front ({len(front)} points)", zorder=3)
    xs = sorted(p[x_key] for p in points)
    for p in front:
        # Labels of the right half's points go to their left, so that they stay inside the axes.
        right = p[x_key] > xs[len(xs) // 2] and len(xs) > 1
        ax.annotate(_label(sweep, p), (p[x_key], p[y_key]), textcoords="offset points",
                    xytext=(-6, 6) if right else (6, -10), ha="right" if right else "left",
                    fontsize=7, color="tab:red")
    ax.set_xscale("log")
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
