"""Grids of small images (OIPs, generated faces, dream tiles): arrays in, Figure out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    cmap: str = "viridis",
    ncols: int | None = None,
    suptitle: str | None = None,
    cell_inches: float = 1.3,
    normalize_each: bool = True,
    blank: Sequence[bool] | None = None,
    value_range: tuple[float, float] | None = None,
    notes: Sequence[str | None] | None = None,
    title_size: float = 6,
) -> Figure:
    """Draw ``images`` in a grid of panels without axes.

    :param images: (n, H, W) grayscale (drawn with ``cmap``) or (n, H, W, 3) RGB in [0, 1].
    :param titles: one short title per image (e.g. ``"12: 3.41"``), or None.
    :param ncols: columns; default about sqrt(n), at most 16.
    :param normalize_each: stretch each grayscale image to its own min..max (OIPs differ in scale); a flat image is
        drawn on the [0, 1] pixel scale instead, so an all-white pattern does not look like an all-black one.
    :param blank: per image, True draws an empty panel (e.g. a dead map) instead of the pixels.
    :param value_range: (vmin, vmax) shared by all grayscale panels, shown in a colour bar (overrides
        ``normalize_each``).
    :param notes: per image, a word drawn on an empty panel instead of the pixels (e.g. ``"uniform"``), or None.
    :param title_size: the panels' title size in points.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (n, H, W) or (n, H, W, 3), got shape {images.shape}")
    n = len(images)
    ncols = ncols or min(16, max(1, math.ceil(math.sqrt(n))))
    nrows = max(1, math.ceil(n / ncols))
    title_inches = 0.25 * (suptitle.count("\n") + 1) + 0.15 if suptitle else 0.0
    fig = Figure(figsize=(ncols * cell_inches, nrows * cell_inches + title_inches), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        note = "dead" if blank is not None and blank[i] else notes[i] if notes is not None else None
        if note:
            ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=title_size + 1, color="0.4",
                    transform=ax.transAxes)
            ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, edgecolor="0.8", lw=0.8))
        elif images.ndim == 3:
            img = images[i]
            if value_range is not None:
                lo, hi = value_range
            else:
                lo, hi = (float(img.min()), float(img.max())) if normalize_each else (None, None)
                if lo is not None and hi - lo < 1e-6:  # a flat image: show its value on the [0, 1] pixel scale,
                    lo, hi = min(lo, 0.0), max(hi, 1.0)  # not the bottom colour of a degenerate stretch
            shown = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi if hi != lo else None, interpolation="nearest")
        else:
            ax.imshow(np.clip(images[i], 0, 1), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=title_size, pad=1)
    if value_range is not None and shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.01, label="pixel value")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def panel_fraction(fig: Figure) -> float:
    """The smallest image panel's width as a fraction of the figure's width, after layout: a panel is this many
    times the width the whole image is drawn at (the browser test turns an image's on-screen width into panel px)."""
    fig.draw_without_rendering()  # constrained layout places the axes on draw
    widths = [ax.get_position().width for ax in fig.axes if ax.images or ax.get_title()]
    return min(widths) if widths else 0.0
