"""OIP figures: an :class:`~analysis.oip.render.OIPResult` in, a Figure out — the grid ``oip/<layer>_<init>.png``
and the OIPs beside their dataset examples ``oip/examples_<layer>.png``."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from analysis.oip.presets import OIPPreset, comparability_note
from analysis.plots.images import image_grid
from analysis.plots.mosaic import Canvas, coloured

MAX_COLUMNS = 12  # the MLflow UI draws an image card about 850 px wide at 1600 px: 12 panels of >= 48 px fit
CELL_INCHES = 0.8  # at 110 dpi, 88 px a panel with its title: the PNG is drawn at about its own size in the UI
TITLE_POINTS = 7.0  # about 10 px at 110 dpi: readable in the UI without zooming
UNIFORM_SPREAD = 0.05  # a pattern spanning less than this fraction of the grid's pixel range is "uniform"
SPECK_PCT = 2.0  # percent of pixels at either end a uniform field may differ in (a few specks on a flat field)


def shared_range(patterns: np.ndarray, dead: np.ndarray, pct: float = 0.5) -> tuple[float, float]:
    """One colour scale for a grid: the ``pct`` and ``100 − pct`` percentiles of the pixels of the live maps' patterns
    (all maps if every one is dead), so a few extreme pixels of unclamped patterns do not flatten all the others."""
    alive = ~np.asarray(dead, bool)
    live = np.asarray(patterns)[alive] if alive.any() else np.asarray(patterns)
    lo, hi = (float(v) for v in np.percentile(live, [pct, 100 - pct]))
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def uniform_maps(patterns: np.ndarray, dead: np.ndarray, threshold: float = UNIFORM_SPREAD) -> np.ndarray:
    """(M,) bool: live maps whose optimum is near-uniform — its pixel spread (the 2nd to the 98th percentile, so a
    few specks do not count) is below ``threshold`` times the grid's range (:func:`shared_range`). Stretched to its own min..max such a pattern becomes a solid block of
    colour that says nothing; the grid writes "uniform" on its panel instead."""
    patterns = np.asarray(patterns, dtype=np.float64)
    lo, hi = shared_range(patterns, dead)
    flat = patterns.reshape(len(patterns), -1)
    low, high = np.percentile(flat, [SPECK_PCT, 100 - SPECK_PCT], axis=1) if patterns.size else (np.zeros(0),) * 2
    return (high - low < threshold * (hi - lo)) & ~np.asarray(dead, bool)


def default_columns(n: int) -> int:
    """Columns of a grid of ``n`` panels: about twice as many as rows (the UI's cards are wider than tall), at most
    :data:`MAX_COLUMNS` so that each panel stays >= 48 px on screen."""
    return max(1, min(MAX_COLUMNS, n, math.ceil(math.sqrt(2 * n))))


def oip_grid(result, *, ncols: int | None = None, cmap: str = "viridis", shared_scale: bool = False,
             preset: OIPPreset | str = OIPPreset.lucent) -> Figure:
    """One panel per map, titled ``"map: activation"``: the map index and the map's post-ReLU mean activation on
    its OIP (2 decimals), as the figure's title says.

    Each pattern is stretched to its own min..max (viridis, as in the reference), or with ``shared_scale`` all are
    drawn on one scale (:func:`shared_range`, with a colour bar). A near-uniform optimum (:func:`uniform_maps`) reads
    "uniform" and its value on an empty panel instead of a stretched block of colour; dead maps read "dead" rather than showing
    the meaningless noise their ascent left behind.

    :param result: an ``OIPResult`` with ``layer``, ``init``, ``maps`` (M,), ``patterns`` (M, H, W),
        ``activation`` (M,) and ``dead`` (M,).
    :param ncols: columns; default :func:`default_columns`.
    :param preset: the recipe that rendered ``result``; for ``reference`` the title adds that the activations
        (of unclamped patterns) are not comparable with the default preset's
        (:func:`~analysis.oip.presets.comparability_note`).
    """
    ncols = ncols or default_columns(len(result.maps))
    titles = [f"{int(m)}: {a:.2f}" for m, a in zip(result.maps, result.activation)]
    uniform = uniform_maps(result.patterns, result.dead)
    scale = "one colour scale for all panels" if shared_scale else "each panel on its own min..max"
    suptitle = (f"OIPs of {result.layer} (init {result.init}); {scale}\nover each panel: map: post-ReLU mean "
                f"activation on its OIP\n{int(np.sum(result.dead))} of {len(result.maps)} maps dead, "
                f"{int(uniform.sum())} uniform (spread < {UNIFORM_SPREAD:.0%} of the grid's range)")
    note = comparability_note(preset, np.asarray(result.patterns))
    if note:
        suptitle += f"\n{note}"
    return image_grid(result.patterns, titles, cmap=cmap, ncols=ncols, blank=list(result.dead), suptitle=suptitle,
                      value_range=shared_range(result.patterns, result.dead) if shared_scale else None,
                      notes=[f"uniform\n{np.median(p):.2f}" if u else None for u, p in zip(uniform, result.patterns)],
                      cell_inches=CELL_INCHES,
                      title_size=TITLE_POINTS)


def examples_figure(layer: str, images: np.ndarray, oip=None, *, cmap: str = "viridis", n_data: int | None = None) -> Figure:
    """``oip/examples_<layer>.png``: one row per map, its OIP (``cmap``, own min..max; "dead" where the map does not
    fire on it, blank where it was not rendered) then its most activating dataset images (gray, most active first),
    labelled by map index; the rows are laid out in a few block columns so the picture stays near square.

    :param images: (M, k, H, W) the examples of every map (``TopExamples.images``), or (M, k, H, W, 3).
    :param oip: the layer's :class:`~analysis.oip.render.OIPResult` (its ``maps``, ``patterns``, ``dead``), or None.
    :param n_data: how many images were searched (for the title).
    """
    images = np.asarray(images)
    n_maps, k, side = images.shape[0], images.shape[1], images.shape[2]
    cell, label, gap, block_gap, header = side + 2, int(side * 1.1), side // 4, side // 2, int(side * 0.8)
    block_cols = max(1, math.ceil(math.sqrt(n_maps / 8)))
    rows = math.ceil(n_maps / block_cols)
    block = label + cell + gap + k * cell + block_gap
    canvas = Canvas(block_cols * block, header + rows * cell)
    where = {} if oip is None else {int(m): j for j, m in enumerate(oip.maps)}
    for col in range(block_cols):
        x0 = col * block
        canvas.text(x0 + label + cell / 2, header / 2, "OIP", ha="center", size=side * 0.33)
        canvas.text(x0 + label + cell + gap, header / 2, f"top {k} images →", size=side * 0.33)
    for m in range(n_maps):
        col, row = divmod(m, rows)
        x, y = col * block, header + row * cell
        canvas.text(x + label - 3, y + side / 2, str(m), ha="right", size=side * 0.36)
        j = where.get(m)
        if j is None or oip.dead[j]:
            canvas.put(x + label, y, np.full((side, side, 3), 0.85))
            canvas.text(x + label + side / 2, y + side / 2, "dead" if j is not None else "—", ha="center",
                        size=side * 0.25, color="0.3")
        else:
            canvas.put(x + label, y, coloured(oip.patterns[j], cmap))
        for i in range(k):
            canvas.put(x + label + cell + gap + i * cell, y, coloured(images[m, i], None, (0.0, 1.0)))
    searched = f" of {n_data:,}" if n_data else ""
    init = f" (init {oip.init})" if oip is not None else ""
    return canvas.figure(f"{layer}: each map's OIP{init}, then the {k} validation images{searched} that activate it "
                         f"most (maximum over positions), most active first")
