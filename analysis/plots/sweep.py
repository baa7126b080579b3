"""Sweep figures: seed statistics of the grid points (tables from :mod:`analysis.sweep_stats`) in, one Figure out.

* :func:`metric_vs_value` — each metric's mean ± std against one swept key's value, one line per combination of
  the other swept keys.
* :func:`mean_std_curves` — a metric's per-epoch mean ± std, one line per grid point.

Pure: pandas in, ``matplotlib.figure.Figure`` out; no pyplot, no files. Sizes stay at most 2,000 px a side at the
110 dpi the run writer saves with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.plots.compare import style_for

MAX_PANELS = 9  # 3 × 3 panels of 5.5 × 4.2 in: 1,815 × 1,386 px at 110 dpi
MAX_LEGEND = 12  # lines named in a legend; more would hide the plot
MAX_INCHES = 2000 / 110


def _numeric(values: Sequence[str]) -> np.ndarray | None:
    """``values`` as floats if every one is a number, else None (the axis is then categorical)."""
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        return None


def _band(ax, x: np.ndarray, mean: np.ndarray, std: np.ndarray, label: str, i: int) -> None:
    """A line with markers and a shaded ± std band (a point from one run has NaN std: no band there)."""
    style = style_for(i)
    ax.plot(x, mean, color=f"C{i % 10}", linestyle=style["linestyle"], marker=style["marker"], markersize=4,
            label=label)
    spread = np.nan_to_num(std)
    ax.fill_between(x, mean - spread, mean + spread, color=f"C{i % 10}", alpha=0.18, linewidth=0)


def _finish(ax, xlabel: str, title: str, *, ylabel: str = "", epochs: bool = False) -> None:
    """Labels, a light grid and (where something was drawn) the legend; whole epochs on an epoch axis."""
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=7)
        if epochs:
            ax.xaxis.get_major_locator().set_params(integer=True)


def metric_vs_value(summary: pd.DataFrame, key: str, metrics: Sequence[str], keys: Sequence[str]) -> Figure:
    """One panel per metric (up to :data:`MAX_PANELS`): mean ± std over seeds against the value of ``key``.

    :param summary: the sweep summary (columns ``point``, ``keys``…, ``metric``, ``n``, ``mean``, ``std``).
    :param key: the swept key on the x axis (numeric values on a numeric axis, log-scaled when they span more than a
        factor 20 and are all positive; anything else, e.g. lists or names, as categories in grid order).
    :param metrics: the metrics to draw, in panel order.
    :param keys: every swept key; the others than ``key`` label the lines.
    """
    metrics = list(metrics)[:MAX_PANELS] or ["(none)"]
    others = [k for k in keys if k != key]
    values = list(dict.fromkeys(summary[key].astype(str))) if key in summary else []
    numeric = _numeric(values)
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(min(5.5 * ncols, MAX_INCHES), min(4.2 * nrows, MAX_INCHES)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        rows = summary[summary["metric"] == metric]
        groups = rows.groupby(others, sort=False, dropna=False) if others else [((), rows)] if len(rows) else []
        for i, (name, group) in enumerate(groups):
            group = group.assign(_x=group[key].astype(str).map({v: j for j, v in enumerate(values)})).sort_values("_x")
            x = numeric[group["_x"].to_numpy(int)] if numeric is not None else group["_x"].to_numpy(float)
            name = name if isinstance(name, tuple) else (name,)
            label = " ".join(f"{k}={v}" for k, v in zip(others, name)) or "mean ± std over seeds"
            _band(ax, x, group["mean"].to_numpy(float), group["std"].to_numpy(float),
                  label if i < MAX_LEGEND else "_", i)
        if numeric is None:
            ax.set_xticks(range(len(values)), values, rotation=30 if sum(map(len, values)) > 40 else 0, fontsize=8)
        elif len(numeric) and numeric.min() > 0 and numeric.max() / numeric.min() > 20:
            ax.set_xscale("log")
        if not len(rows):  # no run of the sweep finished (yet): an empty panel that says so
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes, color="0.4")
        _finish(ax, key, metric)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"mean ± std over seeds against {key}", fontsize=11)
    return fig


def mean_std_curves(stats: pd.DataFrame, metric: str) -> Figure:
    """``metric`` per epoch, mean ± std over each point's seeds, one line per point.

    :param stats: columns ``point``, ``epoch``, ``n``, ``mean``, ``std`` (:func:`analysis.sweep_stats.curve_stats`).
    """
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = fig.subplots()
    for i, (point, rows) in enumerate(stats.groupby("point", sort=False)):
        _band(ax, rows["epoch"].to_numpy(float), rows["mean"].to_numpy(float), rows["std"].to_numpy(float),
              point if i < MAX_LEGEND else "_", i)
    _finish(ax, "epoch", f"{metric} per epoch: mean ± std over seeds", ylabel=metric, epochs=True)
    return fig
