"""Comparison figures for ``latentdream compare``: arrays of several runs in, one Figure out.

* :func:`dominant_histograms` — the runs' dominant latent components overlaid, matched by rank (widest first).
* :func:`hit_rate_curves` — hit fraction against k, one colour per b, one line style per run.
* :func:`oip_side_by_side` — the same layer's OIPs of several runs, one row per run.
* :func:`images_side_by_side` — whole images (e.g. the runs' OIP PNGs) in one row.

Pure: numpy/pandas in, ``matplotlib.figure.Figure`` out; no pyplot, no files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


def style_for(i: int) -> dict:
    """Line style of the ``i``-th run: line pattern and marker cycle independently, so runs stay apart past 4."""
    return {"linestyle": LINESTYLES[i % len(LINESTYLES)], "marker": MARKERS[i % len(MARKERS)]}


def density(edges: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Counts → probability density per bin: ``counts / (sum(counts) * bin_width)``, so runs with different numbers
    of vectors or bin widths are drawn on one scale. Shapes: edges (B+1,), counts (..., B) → (..., B); an all-zero
    row stays zero."""
    counts = np.asarray(counts, dtype=np.float64)
    widths = np.diff(np.asarray(edges, dtype=np.float64))
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total * widths, out=np.zeros_like(counts), where=total > 0)


def dominant_order(components: pd.DataFrame) -> np.ndarray:
    """Indices of the dominant components (``dominant`` column true), widest (largest ``std``) first.

    Two trained networks number their latent components arbitrarily, so components are compared by rank: the
    widest dominant component of run A against the widest of run B, and so on.
    """
    dom = components[components["dominant"].astype(bool)]
    return dom.sort_values("std", ascending=False, kind="stable")["component"].to_numpy(dtype=int)


def dominant_histograms(edges: Sequence[np.ndarray], counts: Sequence[np.ndarray], components: Sequence[pd.DataFrame],
                        labels: Sequence[str], *, max_panels: int = 8) -> Figure:
    """One panel per dominant rank r (up to ``max_panels``): run i's r-th widest dominant component as a density.

    :param edges: per run, (B_i+1,) bin edges.
    :param counts: per run, (D_i, B_i) counts per component and bin.
    :param components: per run, the ``latent/components.csv`` table (columns ``component``, ``std``, ``dominant``).
    :param labels: per run, its legend label (e.g. a short run id).
    """
    orders = [dominant_order(c) for c in components]
    n_panels = max(1, min(max_panels, max((len(o) for o in orders), default=0)))
    ncols = min(4, n_panels)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.6 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for r, ax in enumerate(axes):
        if r >= n_panels:
            ax.set_visible(False)
            continue
        for i, (e, c, order, label) in enumerate(zip(edges, counts, orders, labels)):
            if r < len(order):
                comp = int(order[r])
                ax.stairs(density(e, c[comp]), e, label=f"{label}: z{comp}", linestyle=style_for(i)["linestyle"],
                          color=f"C{i}", linewidth=1.3)
        ax.set_title(f"dominant #{r + 1}", fontsize=9)
        ax.set_xlabel("z", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.has_data():
            ax.legend(fontsize=6)
    if not any(len(o) for o in orders):
        axes[0].text(0.5, 0.5, "no dominant components", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_ylabel("density")
    fig.suptitle("Dominant latent components by width rank")
    return fig


def hit_rate_curves(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> Figure:
    """Hit fraction against k: one colour per b, one line style (and marker) per run.

    :param tables: per run, the ``latent/hit_rates.csv`` table (columns ``b``, ``k``, ``fraction``).
    :param labels: per run, its legend label.

    The y axis is logarithmic when a positive fraction below 1 % is present (random hits in many dimensions are
    rare, and a linear axis would show them all as 0); zeros are then left out of the line.
    """
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    bs = sorted({float(b) for t in tables for b in t["b"]})
    colour = {b: f"C{j}" for j, b in enumerate(bs)}
    fractions = np.concatenate([t["fraction"].to_numpy(dtype=float) for t in tables]) if tables else np.zeros(0)
    log = bool(np.any((fractions > 0) & (fractions < 0.01)))
    for i, (table, label) in enumerate(zip(tables, labels)):
        for b, group in table.groupby("b", sort=True):
            group = group.sort_values("k")
            y = group["fraction"].to_numpy(dtype=float)
            if log:
                y = np.where(y > 0, y, np.nan)
            ax.plot(group["k"].to_numpy(dtype=float), y, color=colour[float(b)], label=f"{label}, b={float(b):g}",
                    **style_for(i))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("k (box half-width in units of the component's half width)")
    ax.set_ylabel("fraction of random vectors hitting the data region")
    ax.set_title("Hit rates: colour = b, line style = run")
    ax.legend(fontsize=7, ncols=2)
    return fig


def oip_side_by_side(patterns: Sequence[np.ndarray], labels: Sequence[str], *, dead: Sequence[np.ndarray] | None = None,
                     maps: Sequence[np.ndarray] | None = None, title: str = "", max_maps: int = 16,
                     cmap: str = "viridis") -> Figure:
    """OIPs of one layer from several runs: row i holds run i's first ``max_maps`` maps, each stretched to its own
    min..max and titled with its map index; dead maps are blank panels reading "dead".

    :param patterns: per run, (M_i, H, W) optimised images.
    :param labels: per run, the row label.
    :param dead: per run, (M_i,) booleans (None: no map is dead).
    :param maps: per run, (M_i,) map indices (None: 0..M_i-1) — runs may have rendered different subsets.
    """
    n_cols = max(1, min(max_maps, max(len(p) for p in patterns)))
    fig = Figure(figsize=(1.1 * n_cols + 1.2, 1.2 * len(patterns) + 0.6), layout="constrained")
    axes = fig.subplots(len(patterns), n_cols, squeeze=False)
    for i, (pats, label) in enumerate(zip(patterns, labels)):
        gone = np.zeros(len(pats), bool) if dead is None else np.asarray(dead[i], bool)
        ids = np.arange(len(pats)) if maps is None else np.asarray(maps[i])
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(pats) and not gone[j]:
                img = np.asarray(pats[j], dtype=np.float64)
                ax.imshow(img, cmap=cmap, vmin=float(img.min()), vmax=float(img.max()) + 1e-12)
            elif j < len(pats):
                ax.text(0.5, 0.5, "dead", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                ax.set_axis_off()
            if j < len(pats):
                ax.set_title(f"map {int(ids[j])}", fontsize=7)
        axes[i, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title or "OIPs side by side")
    return fig


def images_side_by_side(images: Sequence[np.ndarray], labels: Sequence[str], *, title: str = "") -> Figure:
    """Whole images (H, W) or (H, W, C) next to each other, one per run, titled by ``labels``."""
    fig = Figure(figsize=(5.0 * len(images), 5.4), layout="constrained")
    axes = fig.subplots(1, len(images), squeeze=False)[0]
    for ax, img, label in zip(axes, images, labels):
        ax.imshow(np.asarray(img))
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig
