"""OIP grids: an :class:`~analysis.oip.render.OIPResult` in, a Figure out (``oip/<layer>_<init>.png``)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from analysis.oip.presets import OIPPreset, comparability_note
from analysis.plots.images import image_grid


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
