"""OIP grids: an :class:`~analysis.oip.render.OIPResult` in, a Figure out (``oip/<layer>_<init>.png``)."""

from __future__ import annotations

from matplotlib.figure import Figure

from analysis.plots.images import image_grid


def oip_grid(result, *, ncols: int | None = None, cmap: str = "viridis") -> Figure:
    """One panel per map, titled ``"map: activation"`` (post-ReLU mean on its OIP, 2 decimals).

    Each pattern is stretched to its own min..max (viridis, as in the reference); dead maps are drawn as blank
    panels reading "dead" rather than as the meaningless noise their ascent left behind.

    :param result: an ``OIPResult`` with ``layer``, ``init``, ``maps`` (M,), ``patterns`` (M, H, W),
        ``activation`` (M,) and ``dead`` (M,).
    """
    titles = [f"{int(m)}: {a:.2f}" for m, a in zip(result.maps, result.activation)]
    return image_grid(result.patterns, titles, cmap=cmap, ncols=ncols, blank=list(result.dead),
                      suptitle=f"OIPs of {result.layer} (init {result.init})")
