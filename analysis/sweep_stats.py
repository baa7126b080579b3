"""Seed statistics of a sweep: every grid point's runs (one per seed) pooled into mean and standard deviation.

* :func:`summarize` — final values (one row per run and metric) → ``n``, ``mean``, ``std`` per point and metric.
* :func:`curve_stats` — per-epoch histories of one metric → ``n``, ``mean``, ``std`` per point and epoch.

``std`` is the sample standard deviation (ddof = 1): NaN for a point with a single run. Pure: pandas in and out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

STAT_COLUMNS = ["n", "mean", "std"]


def _stats(values: pd.core.groupby.SeriesGroupBy) -> pd.DataFrame:
    return values.agg(n="count", mean="mean", std=lambda v: v.std(ddof=1)).reset_index()


def summarize(values: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Pool the runs of each grid point.

    :param values: one row per run and metric, columns ``point``, the swept ``keys``, ``metric``, ``value``
        (a run without a metric has no row for it; NaN values are left out of ``n``, ``mean`` and ``std``).
    :param keys: the swept config keys (their columns identify the point together with ``point``).
    :returns: columns ``point``, ``keys``…, ``metric``, ``n``, ``mean``, ``std`` (ddof = 1), rows in the order the
        points first appear, metrics sorted.
    """
    columns = ["point", *keys, "metric"]
    if values.empty:
        return pd.DataFrame(columns=[*columns, *STAT_COLUMNS])
    order = {p: i for i, p in enumerate(dict.fromkeys(values["point"]))}
    out = _stats(values.groupby(columns, sort=False, dropna=False)["value"])
    out = out.sort_values(["point", "metric"], key=lambda c: c.map(order) if c.name == "point" else c, kind="stable")
    return out.reset_index(drop=True)[[*columns, *STAT_COLUMNS]]


def curve_stats(histories: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]]) -> pd.DataFrame:
    """Mean ± std per epoch of one metric over each point's runs.

    :param histories: point → one ``(epochs, values)`` pair of arrays per run (runs may hold different epochs).
    :returns: columns ``point``, ``epoch``, ``n``, ``mean``, ``std`` (ddof = 1), epochs ascending per point.
    """
    rows = [pd.DataFrame({"point": point, "epoch": np.asarray(epochs, dtype=int), "value": np.asarray(vals, float)})
            for point, runs in histories.items() for epochs, vals in runs]
    if not rows:
        return pd.DataFrame(columns=["point", "epoch", *STAT_COLUMNS])
    frame = pd.concat(rows, ignore_index=True)
    out = _stats(frame.groupby(["point", "epoch"], sort=False)["value"])
    order = {p: i for i, p in enumerate(histories)}
    return out.sort_values(["point", "epoch"], key=lambda c: c.map(order) if c.name == "point" else c,
                           kind="stable").reset_index(drop=True)
