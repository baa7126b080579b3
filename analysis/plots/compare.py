"""Comparison figures for ``latentdream compare``: arrays of several runs in, one Figure out.

* :func:`loss_curves` — the runs' training curves overlaid per epoch (loss; accuracy for classifiers).
* :func:`dominant_histograms` — the runs' dominant latent components overlaid, matched by rank (widest first).
* :func:`hit_rate_curves` — hit fraction against k, one colour per b, one line style per run.
* :func:`oip_pages` — the same layer's OIPs of several runs in index order (map k beside map k), a page per 32
  maps: meaningful only for runs from the same initial weights.
* :func:`matched_oips` — two runs' OIPs paired by map matching (:mod:`analysis.compare.matching`), by correlation.
* :func:`cka_heatmap` — linear CKA between every pair of layers of two runs.
* :func:`images_side_by_side` — whole images (e.g. the runs' OIP PNGs) in one row.

Pure: numpy/pandas in, ``matplotlib.figure.Figure`` out; no pyplot, no files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.plots.mosaic import Canvas, coloured

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


def loss_curves(histories: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]], labels: Sequence[str]) -> Figure:
    """Training curves of several runs overlaid: one panel per quantity (``loss``, and ``acc`` when the runs have
    it), one colour per run, solid for validation and dashed for training, x = epoch.

    :param histories: per run, metric key (``train/loss``, ``val/loss``, ``train/acc``, ``val/acc``) → (steps,
        values); missing keys are left out.
    :param labels: per run, its legend label (the run's name).
    """
    quantities = [q for q in ("loss", "acc") if any(f"{stage}/{q}" in h for h in histories for stage in ("train", "val"))]
    quantities = quantities or ["loss"]
    fig = Figure(figsize=(5.2 * len(quantities), 3.8), layout="constrained")
    axes = fig.subplots(1, len(quantities), squeeze=False)[0]
    for ax, quantity in zip(axes, quantities):
        for i, (history, label) in enumerate(zip(histories, labels)):
            for stage, style in (("val", "-"), ("train", "--")):
                if f"{stage}/{quantity}" in history:
                    steps, values = history[f"{stage}/{quantity}"]
                    ax.plot(steps, values, style, color=f"C{i}", marker=MARKERS[i % len(MARKERS)], markersize=3,
                            label=f"{label} {stage}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.set_title(f"{quantity} per epoch (solid: val, dashed: train)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
            ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


OIP_MAPS_PER_PAGE = 32  # 8 columns × 4 map rows: with two runs a page stays under 2,000 px a side


def oip_pages(patterns: Sequence[np.ndarray], labels: Sequence[str], *, dead: Sequence[np.ndarray] | None = None,
              maps: Sequence[np.ndarray] | None = None, title: str = "", per_page: int = OIP_MAPS_PER_PAGE,
              ncols: int = 8, cmap: str = "viridis") -> list[tuple[str, Figure]]:
    """OIPs of one layer from several runs in index order: every map index any run rendered, in order, each as a
    block of one panel per run (run names at the left of every block row, ``map k`` above), ``per_page`` maps a page.

    Each panel is stretched to its own min..max (OIPs differ in scale); a dead map reads "dead", a map a run did not
    render reads "—".

    :param patterns: per run, (M_i, H, W) optimised images.
    :param labels: per run, its name.
    :param dead: per run, (M_i,) booleans (None: no map is dead).
    :param maps: per run, (M_i,) map indices (None: 0..M_i-1).
    :returns: ``[("maps<first>-<last>", Figure), ...]``, one per page.
    """
    ids = [np.arange(len(p)) if maps is None else np.asarray(maps[i]) for i, p in enumerate(patterns)]
    gone = [np.zeros(len(p), bool) if dead is None else np.asarray(dead[i], bool) for i, p in enumerate(patterns)]
    where = [{int(m): j for j, m in enumerate(run_ids)} for run_ids in ids]
    every = sorted(set().union(*(w.keys() for w in where)))
    runs, pages = len(patterns), []
    for start in range(0, len(every), per_page):
        page = every[start:start + per_page]
        cols = min(ncols, len(page))
        block_rows = -(-len(page) // cols)
        fig = Figure(figsize=(1.05 * cols + 0.9, (1.05 * runs + 0.25) * block_rows + 0.5), layout="constrained")
        axes = fig.subplots(block_rows * runs, cols, squeeze=False)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        for k, map_index in enumerate(page):
            block, col = divmod(k, cols)
            for r in range(runs):
                ax = axes[block * runs + r, col]
                ax.set_frame_on(True)
                j = where[r].get(map_index)
                if j is not None and not gone[r][j]:
                    img = np.asarray(patterns[r][j], dtype=np.float64)
                    ax.imshow(img, cmap=cmap, vmin=float(img.min()), vmax=float(img.max()) + 1e-12)
                else:
                    ax.text(0.5, 0.5, "dead" if j is not None else "—", ha="center", va="center", fontsize=7,
                            color="0.4", transform=ax.transAxes)
                if r == 0:
                    ax.set_title(f"map {map_index}", fontsize=7, pad=2)
                if col == 0:
                    ax.set_ylabel(labels[r], fontsize=7)
        name = f"maps{page[0]}-{page[-1]}"
        fig.suptitle(f"{title or 'OIPs'} ({name.removeprefix('maps')}) in index order: map k of each run, one row "
                     "per run (runs from the same initial weights)", fontsize=9)
        pages.append((name, fig))
    return pages


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


def _oip_cell(patterns: np.ndarray, dead: np.ndarray, where: Mapping[int, int], map_index: int, cmap: str):
    """The panel of one map: its OIP (own min..max), or None with the reason ("dead", "—" where not rendered)."""
    j = where.get(int(map_index))
    if j is None:
        return None, "—"
    if dead[j]:
        return None, "dead"
    return coloured(patterns[j], cmap), ""


def matched_oips(patterns: Sequence[np.ndarray], labels: Sequence[str], matching: pd.DataFrame, *,
                 dead: Sequence[np.ndarray] | None = None, maps: Sequence[np.ndarray] | None = None,
                 title: str = "", cmap: str = "viridis") -> Figure:
    """Two runs' OIPs of one layer paired by map matching: for each row of ``matching`` (in its order, highest
    correlation first) run A's map ``map_a`` (left) beside run B's ``map_b`` (right), over them
    ``map_a↔map_b`` and the correlation.

    :param patterns: per run (A, B), (M_i, H, W) OIPs.
    :param matching: columns map_a, map_b, correlation (:func:`analysis.compare.matching.match_maps`).
    :param dead: per run, (M_i,) booleans (None: none dead); ``maps``: per run, (M_i,) map indices (None: 0..M_i-1).
    """
    ids = [np.arange(len(p)) if maps is None else np.asarray(maps[i]) for i, p in enumerate(patterns)]
    gone = [np.zeros(len(p), bool) if dead is None else np.asarray(dead[i], bool) for i, p in enumerate(patterns)]
    where = [{int(m): j for j, m in enumerate(run_ids)} for run_ids in ids]
    side = np.asarray(patterns[0]).shape[1]
    cell, label, gap = side + 2, max(10, side // 3), side // 3
    n = max(1, len(matching))
    per_row = max(1, min(n, math.ceil(math.sqrt(n * (cell + label) / (2 * cell + gap)))))
    rows = math.ceil(n / per_row)
    canvas = Canvas(per_row * (2 * cell + gap), rows * (label + cell))
    for k, row in enumerate(matching.itertuples(index=False)):
        r, c = divmod(k, per_row)
        x, y = c * (2 * cell + gap), r * (label + cell)
        canvas.text(x + cell - 1, y + label / 2, f"{int(row.map_a)}↔{int(row.map_b)} {row.correlation:.2f}",
                    ha="center", size=label * 0.65)
        for i, m in enumerate((row.map_a, row.map_b)):
            rgb, why = _oip_cell(patterns[i], gone[i], where[i], m, cmap)
            if rgb is None:
                canvas.put(x + i * cell, y + label, np.full((side, side, 3), 0.85))
                canvas.text(x + i * cell + side / 2, y + label + side / 2, why, ha="center", size=side * 0.25,
                            color="0.3")
            else:
                canvas.put(x + i * cell, y + label, rgb)
    return canvas.figure(f"{title or 'OIPs'}: maps matched by the correlation of their activations, highest first\n"
                         f"left {labels[0]}, right {labels[1]}; over each pair: map_a↔map_b correlation")


def cka_heatmap(table: pd.DataFrame, labels: Sequence[str]) -> Figure:
    """Linear CKA between every layer of run A (rows) and run B (columns), 0..1, each cell annotated.

    :param table: columns layer_a, layer_b, cka (:func:`analysis.compare.cka.cka_table`).
    :param labels: the names of run A and run B.
    """
    rows = list(dict.fromkeys(table["layer_a"]))
    cols = list(dict.fromkeys(table["layer_b"]))
    grid = table.pivot(index="layer_a", columns="layer_b", values="cka").loc[rows, cols].to_numpy(dtype=float)
    fig = Figure(figsize=(1.1 * len(cols) + 2.6, 0.9 * len(rows) + 1.6), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(grid, vmin=0, vmax=1, cmap="magma")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9, color="black" if value > 0.6 else "white")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    ax.set_title("linear CKA between layers on the probe images", fontsize=10)
    fig.colorbar(shown, ax=ax, shrink=0.8, label="CKA")
    return fig
