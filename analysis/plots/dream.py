"""Dream figures: arrays in, Figure out.

* :func:`seed_panels` — the reference's row of six panels for one map: the 28×28 pattern after the first and the
  last cycle (viridis, one scale), the last in gray, the upscaled dream, the photo with its details re-added, and
  that image contrast-stretched.
* :func:`octave_panels` — the progression: the photo, the dream after each octave (at that octave's size), the
  difference to the photo.
* :func:`tiled_panels` — the progression: the photo, snapshots over the steps, the difference to the photo.

Every panel says what it shows and, where it has one, its objective value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def _panels(images: Sequence[np.ndarray], titles: Sequence[str], cmaps: Sequence[str], *, suptitle: str | None,
            ranges: Sequence[tuple[float, float] | None], panel_inches: float, ncols: int | None = None) -> Figure:
    """Image panels without axes in rows of ``ncols`` (default: all in one row); ``ranges[i]`` fixes vmin/vmax
    (None: the image's own min..max); non-gray panels get a thin colour bar at their right edge."""
    shapes = [np.shape(img) for img in images]
    aspect = min(max(s[1] / s[0] for s in shapes), 2.0)
    ncols = ncols or len(images)
    nrows = math.ceil(len(images) / ncols)
    width = ncols * (panel_inches * aspect + 0.25)  # + room for a colour bar
    fig = Figure(figsize=(width, nrows * (panel_inches + 0.3) + (0.4 if suptitle else 0.1)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, img, title, cmap, rng in zip(axes, images, titles, cmaps, ranges):
        img = np.asarray(img, dtype=np.float32)
        vmin, vmax = rng if rng is not None else (float(img.min()), float(img.max()))
        shown = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6,
                          interpolation="nearest" if max(img.shape) <= 64 else "antialiased")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
        if cmap != "gray":  # a thin bar inside the panel's own column, so the columns stay aligned
            bar = fig.colorbar(shown, cax=ax.inset_axes([1.02, 0.1, 0.035, 0.8]))
            bar.ax.tick_params(labelsize=6)
            bar.ax.set_in_layout(False)
    for ax in axes[len(images):]:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def _headline(what: str, result, suptitle: str | None) -> str:
    gain = f"{what}: objective {result.objective_before:.3g} → {result.objective_after:.3g}"
    return f"{suptitle} — {gain}" if suptitle else gain


def _target(result) -> str:
    """``", conv3:56 post-ReLU mean (fires: yes)"``: what a seed dream maximised and whether the map fires at the
    end (a post-ReLU objective > 0); empty for results that do not say."""
    target = getattr(result, "target", "")
    if not target:
        return ""
    name, _, response = target.partition(" ")
    if response == "post_relu":
        return f", {name} post-ReLU mean (map fires: {'yes' if result.objective_after > 0 else 'no'})"
    return f", {name} {response.replace('_', '-')} mean"


def seed_panels(result, *, suptitle: str | None = None, panel_inches: float = 2.4) -> Figure:
    """The reference's six panels of a :class:`~analysis.dream.SeedDream`, in two rows of three: the 28×28 dream
    after the first and after the last cycle (viridis, on one scale so the growth of the pattern shows), the last in
    gray, the dream upscaled to the photo ("the blurry vision level"), the photo's details re-added (the final
    image), and that image with its value distribution widened (contrast stretch)."""
    cycles = len(result.cycle_images)
    first, last = result.cycle_images[0], result.dream28
    shared = (float(min(first.min(), last.min())), float(max(first.max(), last.max())))
    return _panels(
        [first, last, last, result.upscaled, result.image, result.stretched],
        ["28×28 dream, cycle 1", f"28×28 dream, cycle {cycles}", f"28×28 dream, cycle {cycles} (gray)",
         "upscaled dream", "details re-added", "details re-added, stretched"],
        ["viridis", "viridis", "gray", "gray", "gray", "gray"],
        suptitle=_headline(f"seed ({cycles} cycles){_target(result)}", result, suptitle),
        ranges=[shared, shared, None, None, (0.0, 1.0), (0.0, 1.0)],
        panel_inches=panel_inches,
        ncols=3,
    )


def _progression(result, stages: Sequence[np.ndarray], titles: Sequence[str], what: str, suptitle: str | None,
                 panel_inches: float) -> Figure:
    """Original, the stages, the difference final − original (centred at 0), in rows of at most four."""
    diff = np.asarray(result.image) - np.asarray(result.original)
    bound = float(np.abs(diff).max()) or 1.0
    images = [result.original, *stages, diff]
    return _panels(
        images,
        [f"original: objective {result.objective_before:.3g}", *titles, "difference (dream − original)"],
        ["gray"] * (len(images) - 1) + ["RdBu_r"],
        suptitle=_headline(what, result, suptitle),
        ranges=[(0.0, 1.0)] * (len(images) - 1) + [(-bound, bound)],
        panel_inches=panel_inches,
        ncols=min(4, len(images)),
    )


def octave_panels(result, *, suptitle: str | None = None, panel_inches: float = 2.6) -> Figure:
    """The progression of an :class:`~analysis.dream.OctaveDream`: the photo, the dream after each octave at that
    octave's size (with its objective), and the difference to the photo."""
    titles = [f"octave {k + 1}: {shape[0]}×{shape[1]}, objective {value:.3g}"
              for k, (shape, value) in enumerate(zip(result.octave_shapes, result.octave_objectives))]
    stages = [np.clip(img, 0.0, 1.0) for img in result.octave_images]
    return _progression(result, stages, titles, f"{len(result.octave_shapes)} octaves", suptitle, panel_inches)


def tiled_panels(result, *, suptitle: str | None = None, panel_inches: float = 2.6) -> Figure:
    """The progression of a :class:`~analysis.dream.TiledDream`: the photo, snapshots after evenly spaced steps
    (with their objective), and the difference to the photo."""
    titles = [f"after step {step}: objective {value:.3g}"
              for step, value in zip(result.snapshot_steps, result.snapshot_objectives)]
    return _progression(result, list(result.snapshots), titles, f"{result.n_tiles} tiles per step", suptitle,
                        panel_inches)
