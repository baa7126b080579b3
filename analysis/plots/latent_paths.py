"""Figures of decoded latent paths: traversals of single components and interpolations between two images.

Arrays in, ``matplotlib.figure.Figure`` out (nothing saved). Images are (…, H, W) grayscale or (…, H, W, 3) RGB in
[0, 1] (the decoder's sigmoid output), all drawn on that one scale so that a change across a row is a change of the
decoded image, not of a per-panel stretch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def _image_rows(images: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str] | None,
                cell_titles: np.ndarray | None, suptitle: str, cell_inches: float, label_inches: float) -> Figure:
    """A (rows, cols) grid of images with a label left of each row and optional titles per column or per cell."""
    images = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)
    rows, cols = images.shape[:2]
    fig = Figure(figsize=(label_inches + cols * cell_inches, rows * (cell_inches + 0.12) + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [label_inches / cell_inches] + [1.0] * cols})
    for r in range(rows):
        label_ax = axes[r, 0]
        label_ax.set_axis_off()
        label_ax.text(1.0, 0.5, row_labels[r], ha="right", va="center", fontsize=7, transform=label_ax.transAxes)
        for c in range(cols):
            ax = axes[r, c + 1]
            ax.set_axis_off()
            img = images[r, c]
            if img.ndim == 2:
                ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            title = cell_titles[r, c] if cell_titles is not None else (col_labels[c] if r == 0 and col_labels else "")
            if title:
                ax.set_title(title, fontsize=6, pad=1)
    fig.suptitle(suptitle, fontsize=9)
    return fig


def traversals(images: np.ndarray, components: Sequence[int], values: np.ndarray, mu, half_width, *,
               reach: float = 3.0, title: str = "", cell_inches: float = 0.95) -> Figure:
    """One row per traversed component: the mean latent vector decoded with that component at mu ± s·hw.

    :param images: (C, S, H, W[, 3]) decoded images; :param components: (C,) component indices;
    :param values: (C, S) the component's values; :param mu, half_width: (N,) the data's centres and widths.
    """
    values = np.asarray(values)
    n_steps = values.shape[1]
    offsets = np.linspace(-reach, reach, n_steps)
    labels = [f"z{i}: mu {mu[i]:.2f}\nhw {half_width[i]:.2f}\n{values[r, 0]:.2f} … {values[r, -1]:.2f}"
              for r, i in enumerate(components)]
    cols = [f"mu {s:+g} hw" if s else "mu" for s in offsets]
    head = (f"Traversals of the {len(components)} widest components: the mean latent vector decoded with one "
            f"component swept over mu ± {reach:g} hw")
    return _image_rows(images, labels, cols, None, f"{head}\n{title}" if title else head, cell_inches, 1.3)


def interpolations(images: dict[str, np.ndarray], shares: dict[str, np.ndarray], pairs: np.ndarray, k: float, *,
                   cell_inches: float = 0.95) -> Figure:
    """For each pair of encoded images, one row per path (linear, spherical): the decoded points from image a
    (t = 0) to image b (t = 1), each titled with its ``in_region_share`` (share of components inside mu ± k·hw).

    :param images: path → (P, S, H, W[, 3]); :param shares: path → (P, S); :param pairs: (P, 2) image indices.
    """
    names = list(images)
    n_pairs, n_steps = next(iter(shares.values())).shape
    rows = np.stack([images[name][p] for p in range(n_pairs) for name in names])
    titles = np.array([[f"{shares[name][p, s]:.0%}" for s in range(n_steps)] for p in range(n_pairs) for name in names])
    labels = [f"{a} → {b}\n{name}" for a, b in np.asarray(pairs) for name in names]
    suptitle = (f"Interpolations between encoded validation images (t = 0 … 1 left to right); over each image the "
                f"share of its components inside mu ± {k:g} hw")
    return _image_rows(rows, labels, None, titles, suptitle, cell_inches, 1.0)
