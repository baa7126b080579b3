"""A mosaic of many small images drawn as ONE picture with text labels: hundreds of panels (every map's OIP beside
its dataset examples) without hundreds of matplotlib axes, which would take seconds to draw.

Pure: numpy in, ``matplotlib.figure.Figure`` out.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

FIGURE_DPI = 110  # as analysis.tracking.FIGURE_DPI: the figure is sized so the saved PNG fits MAX_PX
MAX_PX = 2000


def coloured(img: np.ndarray, cmap: str | None = None, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """An image as RGB floats in [0, 1] (H, W, 3).

    :param img: (H, W) drawn with ``cmap`` (None: gray) on ``value_range`` (None: its own min..max; a flat image
        on [0, 1]), or (H, W, 3) RGB in [0, 1].
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3:
        return np.clip(img[..., :3], 0, 1)
    lo, hi = value_range if value_range is not None else (float(img.min()), float(img.max()))
    if hi - lo < 1e-6:
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    scaled = np.clip((img - lo) / (hi - lo), 0, 1)
    return scaled[..., None].repeat(3, axis=2) if cmap is None else colormaps[cmap](scaled)[..., :3]


class Canvas:
    """A white picture of ``width`` × ``height`` px to place images and labels on (x right, y down, in px)."""

    def __init__(self, width: int, height: int) -> None:
        self.rgb = np.ones((height, width, 3))
        self.texts: list[tuple[float, float, str, dict]] = []

    def put(self, x: int, y: int, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        self.rgb[y:y + h, x:x + w] = rgb

    def text(self, x: float, y: float, s: str, size: float = 8.0, **kw) -> None:
        """A label at (x, y), ``size`` picture px tall (it scales with the picture); ``kw`` go to ``Axes.text``."""
        self.texts.append((x, y, s, {"size": size, **kw}))

    def figure(self, title: str = "") -> Figure:
        """The picture, scaled so that the PNG's long side is at most :data:`MAX_PX` (at most 4× enlarged), with
        ``title`` (lines at 12 pt) above it."""
        height, width = self.rgb.shape[:2]
        title_px = 23 * (title.count("\n") + 1) + 10 if title else 0
        scale = min(4.0, (MAX_PX - title_px - 2) / height, (MAX_PX - 2) / width)
        total = height * scale + title_px
        fig = Figure(figsize=(width * scale / FIGURE_DPI, total / FIGURE_DPI))
        ax = fig.add_axes((0, 0, 1, height * scale / total))
        ax.imshow(self.rgb, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        points = 72 / FIGURE_DPI * scale  # one picture px, in points on the figure
        for x, y, s, kw in self.texts:
            kw = dict(kw)
            ax.text(x, y, s, fontsize=kw.pop("size") * points, **{"ha": "left", "va": "center", **kw})
        if title:
            fig.text(0.5, 1 - 5 / total, title, ha="center", va="top", fontsize=12)
        return fig
