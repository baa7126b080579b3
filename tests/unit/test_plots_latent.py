"""Cheap checks of analysis.plots.latent: each function returns a Figure with titled, labelled axes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.plots import latent as pl

EDGES = np.linspace(-3, 3, 13)


def _labelled(fig: Figure, n_axes: int | None = None) -> None:
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]
    if n_axes is not None:
        assert len(axes) >= n_axes
    main = axes[0]
    assert main.get_xlabel() and main.get_ylabel()
    assert main.get_title() or fig.get_suptitle()
    fig.canvas.draw()  # renders without error


@pytest.fixture
def counts():
    rng = np.random.default_rng(0)
    z = rng.normal([0.0, 1.0, -0.5, 0.0], [0.5, 0.6, 0.4, 1.2], size=(500, 4))
    return np.stack([np.histogram(z[:, i], bins=EDGES)[0] for i in range(4)])


@pytest.fixture
def components():
    return pd.DataFrame(
        {
            "component": [0, 1, 2, 3],
            "mu": [0.0, 1.0, -0.5, 0.0],
            "half_width": [1.2, 1.4, 0.9, 2.8],
            "gauss_mu": [0.0, 1.0, -0.5, 0.0],
            "gauss_sigma": [0.5, 0.6, 0.4, 1.2],
            "fit_r2": [0.99, 0.98, 0.97, 0.99],
            "dominant": [False, True, True, True],
        }
    )


def test_all_histograms(counts):
    fig = pl.all_histograms(EDGES, counts)
    _labelled(fig)
    assert "4" in fig.axes[0].get_title()
    assert len(fig.axes[0].lines) == 4  # one line per component


def test_dominant_fits_one_panel_per_dominant_component(counts, components):
    fig = pl.dominant_fits(EDGES, counts, components, ncols=2)
    _labelled(fig, n_axes=3)
    titles = sorted(ax.get_title() for ax in fig.axes if ax.axison)
    assert [t.split(":")[0] for t in titles] == ["#1", "#2", "#3"]


def test_dominant_fits_without_dominant_components(counts, components):
    fig = pl.dominant_fits(EDGES, counts, components.assign(dominant=False))
    assert isinstance(fig, Figure) and "0 shown" in fig.get_suptitle()


def test_radius_distributions():
    rng = np.random.default_rng(1)
    fig = pl.radius_distributions(
        rng.normal(8, 0.6, 300), {1.0: rng.normal(9.2, 0.26, 300), 2.0: rng.normal(18.5, 0.5, 300)},
        {1.0: (9.23, 0.258), 2.0: (18.47, 0.516)},
    )
    _labelled(fig)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["data", "uniform b=1", "uniform b=2"]


def test_correlation_scatter_subsamples_to_1000_points():
    rng = np.random.default_rng(2)
    x = rng.normal(size=5000)
    fig = pl.correlation_scatter(x, 2 * x, 118, 151)
    _labelled(fig)
    ax = fig.axes[0]
    assert ax.collections[0].get_offsets().shape == (1000, 2)
    assert "z_118" in ax.get_xlabel() and "z_151" in ax.get_ylabel() and "r = 1.00" in ax.get_title()


def test_correlation_heatmap():
    fig = pl.correlation_heatmap(np.array([[1.0, 0.3], [0.3, 1.0]]), [15, 118])
    _labelled(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["15", "118"]


def test_pca_spectrum_plot():
    ratios = np.array([0.5, 0.3, 0.15, 0.05])
    fig = pl.pca_spectrum_plot(ratios, 3)
    _labelled(fig)
    assert "3 of 4" in fig.axes[0].get_title()


def test_uniform_histograms_one_panel_per_b_over_the_data():
    rng = np.random.default_rng(3)
    data = np.stack([np.histogram(rng.normal(0, 0.5, 400), bins=EDGES)[0] for _ in range(3)])
    uniform = {1.0: np.full((3, 12), 7), 2.0: np.full((3, 12), 3)}
    fig = pl.uniform_histograms(EDGES, uniform, data)
    _labelled(fig)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["uniform in [-1, 1]^N", "uniform in [-2, 2]^N"]
    assert len(panels[0].lines) == 3 + 3  # the data's components in gray, then the uniform ones


def test_radius_distributions_second_panel_is_log_density():
    rng = np.random.default_rng(1)
    fig = pl.radius_distributions(rng.normal(8, 3, 300), {1.0: rng.normal(9.2, 0.26, 300)}, {1.0: (9.23, 0.258)})
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]


def test_correlation_heatmap_clusters_and_stays_readable_for_many_components():
    # 3 blocks of correlated components, shuffled: the clustered order puts each block together again
    rng = np.random.default_rng(4)
    block = np.repeat(np.arange(3), 40)
    factors = rng.normal(size=(2000, 3))
    z = factors[:, block] + 0.3 * rng.normal(size=(2000, 120))
    perm = rng.permutation(120)
    corr = np.corrcoef(z[:, perm], rowvar=False)
    fig = pl.correlation_heatmap(corr, perm)
    ax = fig.axes[0]
    labels = [int(t.get_text()) for t in ax.get_xticklabels()]
    assert len(labels) <= pl.MAX_TICK_LABELS
    ordered = block[[int(t) for t in np.asarray(perm)[ls_order(corr)]]]
    assert np.count_nonzero(np.diff(ordered)) == 2  # three contiguous blocks
    assert "clustering" in ax.get_title()
    assert max(fig.get_size_inches()) * 110 <= 2000


def ls_order(corr):
    from analysis.latent import correlation_order

    return correlation_order(corr)
