"""OIP figures: an :class:`~analysis.oip.render.OIPResult` in, a Figure out — the grid ``oip/<layer>_<init>.png``
and the OIPs beside their dataset examples ``oip/examples_<layer>.png``."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from analysis.oip.presets import OIPPreset, comparability_note
from analysis.plots.images import image_grid
from analysis.plots.mosaic import Canvas, coloured


def shared_range(patterns: np.ndarray, dead: np.ndarray, pct: float = 0.5) -> tuple[float, float]:
    """One colour scale for a grid: the ``pct`` and ``100 − pct`` percentiles of the pixels of the live maps' patterns
    (all maps if every one is dead), so a few extreme pixels of unclamped patterns do not flatten all the others."""
    alive = ~np.asarray(dead, bool)
    live = np.asarray(patterns)[alive] if alive.any() else np.asarray(patterns)
    lo, hi = (float(v) for v in np.percentile(live, [pct, 100 - pct]))
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def oip_grid(result, *, ncols: int | None = None, cmap: str = "viridis", shared_scale: bool = False,
             preset: OIPPreset | str = OIPPreset.lucent) -> Figure:
    """One panel per map, titled ``"map: activation"``: the map index and the map's post-ReLU mean activation on
    its OIP (2 decimals), as the figure's title says.

    Each pattern is stretched to its own min..max (viridis, as in the reference), or with ``shared_scale`` all are
    drawn on one scale (:func:`shared_range`, with a colour bar), so a nearly flat pattern looks flat instead of
    being stretched into a solid block of noise. Dead maps are drawn as blank panels reading "dead" rather than as
    the meaningless noise their ascent left behind.

    :param result: an ``OIPResult`` with ``layer``, ``init``, ``maps`` (M,), ``patterns`` (M, H, W),
        ``activation`` (M,) and ``dead`` (M,).
    :param ncols: columns; default about twice as many as rows (at most 16): the MLflow UI's image cards are wider
        than tall, and a square grid would be cut off below the card's caption.
    :param preset: the recipe that rendered ``result``; for ``reference`` the title adds that the activations
        (of unclamped patterns) are not comparable with the default preset's
        (:func:`~analysis.oip.presets.comparability_note`).
    """
    ncols = ncols or min(16, len(result.maps), max(1, math.ceil(math.sqrt(2 * len(result.maps)))))
    titles = [f"{int(m)}: {a:.2f}" for m, a in zip(result.maps, result.activation)]
    scale = "one colour scale for all panels" if shared_scale else "each panel stretched to its own min..max"
    suptitle = (f"OIPs of {result.layer} (init {result.init}); over each panel: map index: post-ReLU mean "
                f"activation on its OIP\n{scale}; {int(np.sum(result.dead))} of {len(result.maps)} maps dead")
    note = comparability_note(preset, np.asarray(result.patterns))
    if note:
        suptitle += f"\n{note}"
    return image_grid(result.patterns, titles, cmap=cmap, ncols=ncols, blank=list(result.dead), suptitle=suptitle,
                      value_range=shared_range(result.patterns, result.dead) if shared_scale else None)


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
