"""Figures of the latent-space analysis (post "latent space fragmentation – II"): arrays / DataFrames in, Figure out.

Every function builds a fresh ``matplotlib.figure.Figure`` (no pyplot, no global state, nothing saved); the caller
decides where it goes. Inputs are the outputs of :mod:`analysis.latent`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy.stats import norm


def _centres(edges: np.ndarray) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.float64)
    return 0.5 * (edges[:-1] + edges[1:])


def all_histograms(edges: np.ndarray, counts: np.ndarray, *, title: str | None = None) -> Figure:
    """All N component number distributions overlaid in one panel (the post's "spectral display").

    :param edges: (B + 1,) bin edges; :param counts: (N, B) vectors per bin and component.
    Lines are coloured by component index (colour bar), so the few wide or off-centre components stand out.
    """
    counts = np.asarray(counts)
    centres, width = _centres(edges), float(edges[1] - edges[0])
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    cmap, norm_idx = colormaps["viridis"], Normalize(0, max(1, len(counts) - 1))
    for i, row in enumerate(counts):
        ax.plot(centres, row, color=cmap(norm_idx(i)), lw=0.7, alpha=0.6)
    fig.colorbar(ScalarMappable(norm=norm_idx, cmap=cmap), ax=ax, label="component index")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("component value z_i (latent units)")
    ax.set_ylabel(f"number of vectors per bin (bin width {width:.3g})")
    ax.set_title(title or f"Number distributions of all {len(counts)} latent components")
    ax.grid(alpha=0.3)
    return fig


def dominant_fits(
    edges: np.ndarray, counts: np.ndarray, components: pd.DataFrame, *, max_panels: int = 20, ncols: int = 5
) -> Figure:
    """Small multiples: each dominant component's histogram, its Gaussian fit, mu (the fit's centre), the
    histogram mode (dashed, where the table has it) and the FWHM points mu ± hw/2.

    :param edges: (B + 1,); :param counts: (N, B); :param components: DataFrame of
        :func:`analysis.latent.component_stats` (uses component, mu, half_width, gauss_mu, gauss_sigma,
        fit_r2, dominant). At most ``max_panels`` components, the strongest (|mu| + hw) first.
    """
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(counts)
    centres, width = _centres(edges), float(edges[1] - edges[0])
    dom = components[components["dominant"]].copy()
    dom = dom.assign(_rank=dom["mu"].abs() + dom["half_width"]).sort_values("_rank", ascending=False)
    dom = dom.head(max_panels).sort_values("component")
    n = len(dom)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(2.6 * ncols + 0.5, 2.1 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    if n == 0:
        axes[0].text(0.5, 0.5, "no dominant components", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_xlabel("component value z_i (latent units)")
        axes[0].set_ylabel("vectors per bin")
    for ax, (_, row) in zip(axes, dom.iterrows()):
        i = int(row["component"])
        y = counts[i]
        ax.stairs(y, edges, color="0.4", fill=True, alpha=0.35, label="histogram")
        # The fit's amplitude is close to the in-range count; draw the matching density curve on a fine grid.
        xs = np.linspace(edges[0], edges[-1], 2000)
        if np.isfinite(row["gauss_sigma"]) and row["gauss_sigma"] > 0:
            ax.plot(xs, y.sum() * width * norm.pdf(xs, row["gauss_mu"], row["gauss_sigma"]), "C3", lw=1.2,
                    label="Gaussian fit")
        mu, hw = row["mu"], row["half_width"]
        ax.axvline(mu, color="C0", lw=1, label="mu (fit centre)")
        if "mode" in row and np.isfinite(row["mode"]):
            ax.axvline(row["mode"], color="C1", lw=0.8, ls="--", label="histogram mode")
        ax.axvspan(mu - hw / 2, mu + hw / 2, color="C0", alpha=0.12, label="mu ± hw/2")
        ax.axhline(y.max() / 2, color="C0", lw=0.6, ls=":")
        reach = 4 * max(hw, width)
        ax.set_xlim(mu - reach, mu + reach)
        ax.set_title(f"#{i}: mu={mu:.2f} hw={hw:.2f} R²={row['fit_r2']:.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("z_i (latent units)", fontsize=7)
        ax.set_ylabel("vectors per bin", fontsize=7)
    for ax in axes[max(n, 1):]:
        ax.set_axis_off()
    if n:
        axes[0].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"Dominant components ({n} shown): histogram, Gaussian fit, mu ± hw/2 (hw = FWHM)", fontsize=10)
    return fig


def radius_distributions(
    data_radii: np.ndarray,
    uniform_radii_by_b: Mapping[float, np.ndarray],
    analytic: Mapping[float, tuple[float, float]],
    *,
    bins: int = 80,
) -> Figure:
    """Distributions of vector lengths R = |z| for the data (red) and for method-2 vectors per b, twice: on a
    linear density axis (left) and a logarithmic one (right), where the data's wide, low distribution is not
    flattened under the narrow uniform peaks.

    :param data_radii: (n,) radii of the data; :param uniform_radii_by_b: b → (m,) radii of uniform vectors;
    :param analytic: b → (mean, std) from :func:`analysis.latent.uniform_radius_moments`, drawn as a
        vertical line at the mean and a band of ± std. Densities (not counts), so different sample sizes compare.
    """
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    palette = sns.color_palette("viridis", n_colors=max(1, len(uniform_radii_by_b)))
    data_radii = np.asarray(data_radii)
    for ax, log in zip(axes, (False, True)):
        ax.hist(data_radii, bins=bins, density=True, histtype="stepfilled", color="C3", alpha=0.5, label="data")
        for color, (b, r) in zip(palette, sorted(uniform_radii_by_b.items())):
            ax.hist(np.asarray(r), bins=bins, density=True, histtype="step", color=color, lw=1.3,
                    label=f"uniform b={b:g}")
            if b in analytic:
                mean, std = analytic[b]
                ax.axvline(mean, color=color, ls="--", lw=0.9)
                ax.axvspan(mean - std, mean + std, color=color, alpha=0.15)
        ax.set_xlabel("vector length R = ||z||_2 (latent units)")
        ax.set_ylabel("probability density (1 / latent unit)" + (", log scale" if log else ""))
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
            ax.set_title("the same, log density: the data's spread shows", fontsize=10)
        else:
            ax.set_title("linear density", fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Radius distributions: data ({len(data_radii)} vectors, red) vs uniform [-b, b]^N "
                 "(dashed: analytic mean, band: ± std)")
    return fig


def uniform_histograms(
    edges: np.ndarray, uniform_counts: Mapping[float, np.ndarray], data_counts: np.ndarray, *, ncols: int = 3
) -> Figure:
    """The post's figure on method 2: per b, the number distributions of all N components of the uniform vectors
    in [-b, b]^N (coloured by component index), over the data's distributions (gray, rescaled to the same number of
    vectors), on the data's binning.

    :param edges: (B + 1,); :param uniform_counts: b → (N, B) counts; :param data_counts: (N, B) counts of the data.
    """
    edges = np.asarray(edges, dtype=np.float64)
    centres = _centres(edges)
    data_counts = np.asarray(data_counts, dtype=np.float64)
    items = sorted(uniform_counts.items())
    ncols = max(1, min(ncols, len(items)))
    nrows = max(1, math.ceil(len(items) / ncols))
    fig = Figure(figsize=(4.6 * ncols, 3.3 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cmap = colormaps["viridis"]
    n_uniform = max((int(np.asarray(c).sum(axis=1).max()) for _, c in items), default=0)
    for ax, (b, counts) in zip(axes, items):
        counts = np.asarray(counts, dtype=np.float64)
        total = data_counts.sum(axis=1, keepdims=True)
        scaled = np.divide(data_counts * counts.sum(axis=1, keepdims=True), total, out=np.zeros_like(data_counts),
                           where=total > 0)
        for row in scaled:
            ax.plot(centres, row, color="0.55", lw=0.5, alpha=0.35)
        norm_idx = Normalize(0, max(1, len(counts) - 1))
        for i, row in enumerate(counts):  # empty bins left out: the plateaus, not 256 lines along zero
            ax.plot(centres, np.where(row > 0, row, np.nan), color=cmap(norm_idx(i)), lw=0.6, alpha=0.5)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_title(f"uniform in [-{b:g}, {b:g}]^N", fontsize=9)
        ax.set_xlabel("component value z_i (latent units)", fontsize=8)
        ax.set_ylabel("vectors per bin", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(items):]:
        ax.set_axis_off()
    fig.suptitle(f"Component distributions of {n_uniform} uniform vectors per b (colour: component index) "
                 "over the data's (gray, same number of vectors)", fontsize=10)
    return fig


def correlation_scatter(
    x: np.ndarray, y: np.ndarray, i: int, j: int, *, max_points: int = 1000, seed: int = 0
) -> Figure:
    """Scatter of component ``i`` (x) against component ``j`` (y) for at most ``max_points`` vectors (a seeded
    random subset when more are given), with the Pearson r of all given vectors in the title."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 else float("nan")
    if len(x) > max_points:
        keep = np.random.default_rng(seed).choice(len(x), size=max_points, replace=False)
        x, y = x[keep], y[keep]
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(x, y, s=5, alpha=0.5, color="C0", edgecolors="none")
    ax.set_xlabel(f"z_{i} (latent units)")
    ax.set_ylabel(f"z_{j} (latent units)")
    ax.set_title(f"Components {i} vs {j}: {len(x)} vectors\nPearson r = {r:.2f}", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


MAX_TICK_LABELS = 40  # more component labels than this on an axis are thinned out, so they stay readable


def correlation_heatmap(matrix: np.ndarray, labels: Sequence, *, cluster: bool = True) -> Figure:
    """Pearson correlation matrix of (dominant) components as a diverging heat map in [-1, 1].

    With ``cluster`` the components are reordered by :func:`analysis.latent.correlation_order` (hierarchical
    clustering), so groups of correlated components show as blocks on the diagonal. The figure stays at most
    11 in wide whatever the number of components; with more than :data:`MAX_TICK_LABELS` components only every
    k-th is labelled, and values are written into the cells up to 15 components.
    """
    from analysis.latent import correlation_order

    matrix = np.asarray(matrix, dtype=np.float64)
    names = [str(label) for label in labels]
    n = len(names)
    order = correlation_order(matrix) if cluster else np.arange(n)
    matrix = matrix[np.ix_(order, order)]
    names = [names[i] for i in order]
    size = min(10.0, max(4.0, 0.3 * n + 2))
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    # seaborn's "vlag" diverging map, drawn with imshow (sns.heatmap warns on current matplotlib)
    image = ax.imshow(matrix, cmap="vlag", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="Pearson r", shrink=0.8)
    every = max(1, math.ceil(n / MAX_TICK_LABELS))
    ticks = list(range(0, n, every))
    fontsize = 8 if n <= 25 else 6.5
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90 if n > 15 else 0, fontsize=fontsize)
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=fontsize)
    if n <= 15:
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7)
    shown = "" if every == 1 else f" (one in {every} labelled)"
    ax.set_xlabel(f"component index{shown}")
    ax.set_ylabel("component index")
    how = " (ordered by hierarchical clustering)" if cluster and n >= 3 else ""
    off = np.abs(matrix[~np.eye(n, dtype=bool)]) if n > 1 else np.zeros(1)
    ax.set_title(f"Correlations of {n} dominant components{how}\nmean |r| off the diagonal: "
                 f"{float(np.nanmean(off)) if np.isfinite(off).any() else float('nan'):.3f}", fontsize=10)
    return fig


def pca_spectrum_plot(ratios: np.ndarray, n90: int, *, target: float = 0.9) -> Figure:
    """Explained-variance ratio per principal component (bars) and its cumulative sum (line), with the number
    ``n90`` of components needed for ``target`` of the variance marked. Shows the leading max(30, 2·n90)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    shown = min(len(ratios), max(30, 2 * n90))
    idx = np.arange(1, shown + 1)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.bar(idx, ratios[:shown], color="C0", alpha=0.7, label="per component")
    ax.set_xlabel("principal component (sorted by variance)")
    ax.set_ylabel("explained variance ratio")
    twin = ax.twinx()
    twin.plot(idx, np.cumsum(ratios)[:shown], color="C3", marker=".", label="cumulative")
    twin.axhline(target, color="0.5", ls=":", lw=1)
    twin.axvline(n90, color="C3", ls="--", lw=1)
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("cumulative explained variance ratio")
    ax.set_title(f"PCA spectrum: {n90} of {len(ratios)} components explain {target:.0%} of the variance")
    return fig


def mahalanobis_plot(d2: np.ndarray, dof: int, ks: float, *, bins: int = 120) -> Figure:
    """The squared Mahalanobis distances of the data against χ²_dof: their density next to χ²'s (left) and the
    quantile–quantile plot (right, on the diagonal where they agree), titled with the KS statistic."""
    from scipy.stats import chi2

    d2 = np.asarray(d2, dtype=np.float64)
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    hi = float(max(np.quantile(d2, 0.999), chi2.ppf(0.999, dof)))
    left.hist(d2, bins=bins, range=(0.0, hi), density=True, color="C0", alpha=0.5, label="data")
    xs = np.linspace(0.0, hi, 600)
    left.plot(xs, chi2.pdf(xs, dof), "C3", lw=1.5, label=f"χ² with {dof} degrees of freedom")
    left.set_xlabel("squared Mahalanobis distance d² (full covariance)")
    left.set_ylabel("density")
    left.legend(fontsize=8)
    p = np.linspace(0.0, 1.0, 202)[1:-1]
    observed, expected = np.quantile(d2, p), chi2.ppf(p, dof)
    right.plot(expected, observed, ".", ms=3, color="C0", label="quantiles 0.5 % … 99.5 %")
    lo, top = float(min(expected[0], observed[0])), float(max(expected[-1], observed[-1]))
    right.plot([lo, top], [lo, top], color="0.4", lw=1, ls="--", label="d² ~ χ²")
    right.set_xlabel(f"χ²_{dof} quantile")
    right.set_ylabel("data quantile")
    right.legend(fontsize=8)
    fig.suptitle(f"The ellipsoid tested: d² of {len(d2):,} vectors against χ²_{dof}; KS statistic {ks:.3f} "
                 f"(0: Gaussian ellipsoid; mean d² {d2.mean():.1f} vs {dof})", fontsize=10)
    return fig
