"""Dream figures: arrays in, Figure out.

* :func:`seed_panels` — the reference's row of panels for one map: the 28×28 pattern in viridis and in gray, the
  upscaled dream, the final image with details re-added and contrast stretched.
* :func:`octave_panels`, :func:`tiled_panels` — original, dream, difference (dream − original).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def _panels(images: Sequence[np.ndarray], titles: Sequence[str], cmaps: Sequence[str], *, suptitle: str | None,
            ranges: Sequence[tuple[float, float] | None], panel_inches: float) -> Figure:
    """One row of image panels without axes; ``ranges[i]`` fixes vmin/vmax (None: the image's own min..max)."""
    shapes = [np.shape(img) for img in images]
    aspect = max(s[1] / s[0] for s in shapes)
    fig = Figure(figsize=(len(images) * panel_inches * min(aspect, 2.0), panel_inches + (0.5 if suptitle else 0.3)),
                 layout="constrained")
    axes = fig.subplots(1, len(images), squeeze=False)[0]
    for ax, img, title, cmap, rng in zip(axes, images, titles, cmaps, ranges):
        img = np.asarray(img, dtype=np.float32)
        vmin, vmax = rng if rng is not None else (float(img.min()), float(img.max()))
        shown = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6,
                          interpolation="nearest" if max(img.shape) <= 64 else "antialiased")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
        if cmap != "gray":
            fig.colorbar(shown, ax=ax, shrink=0.7, pad=0.02)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def seed_panels(result, *, suptitle: str | None = None, panel_inches: float = 2.4) -> Figure:
    """The four panels of a :class:`~analysis.dream.SeedDream`: 28×28 pattern (viridis), the same in gray,
    the upscaled dream, and the final image with details re-added and contrast stretched."""
    gain = f"objective {result.objective_before:.3g} → {result.objective_after:.3g}"
    return _panels(
        [result.dream28, result.dream28, result.upscaled, result.stretched],
        ["28×28 dream", "28×28 dream (gray)", "upscaled dream", "details re-added, stretched"],
        ["viridis", "gray", "gray", "gray"],
        suptitle=f"{suptitle} — {gain}" if suptitle else gain,
        ranges=[None, None, None, (0.0, 1.0)],
        panel_inches=panel_inches,
    )


def _before_after(result, what: str, suptitle: str | None, panel_inches: float) -> Figure:
    diff = np.asarray(result.image) - np.asarray(result.original)
    bound = float(np.abs(diff).max()) or 1.0
    gain = f"{what}: objective {result.objective_before:.3g} → {result.objective_after:.3g}"
    return _panels(
        [result.original, result.image, diff],
        ["original", "dream", "difference (dream − original)"],
        ["gray", "gray", "RdBu_r"],
        suptitle=f"{suptitle} — {gain}" if suptitle else gain,
        ranges=[(0.0, 1.0), (0.0, 1.0), (-bound, bound)],
        panel_inches=panel_inches,
    )


def octave_panels(result, *, suptitle: str | None = None, panel_inches: float = 3.0) -> Figure:
    """Original, dream and difference of an :class:`~analysis.dream.OctaveDream` (difference centred at 0)."""
    return _before_after(result, f"{len(result.octave_shapes)} octaves", suptitle, panel_inches)


def tiled_panels(result, *, suptitle: str | None = None, panel_inches: float = 3.0) -> Figure:
    """Original, dream and difference of a :class:`~analysis.dream.TiledDream` (difference centred at 0)."""
    return _before_after(result, f"{result.n_tiles} tiles", suptitle, panel_inches)
