"""The whole analysis of the post at once: :func:`analyze_latents` → a frozen :class:`LatentReport`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.latent.checks import _check_z
from analysis.latent.correlation import dominant_correlation, top_two_dominant
from analysis.latent.fits import component_stats, summary_counts
from analysis.latent.histograms import component_histograms, uniform_histograms
from analysis.latent.hits import hit_counts
from analysis.latent.pca import latent_moments, n_components_for, spectrum_of
from analysis.latent.radius import radius_samples, radius_summary
from latentdream.errors import InputError

if TYPE_CHECKING:
    from analysis.settings import LatentSettings


@dataclass(frozen=True)
class LatentReport:
    """All results of :func:`analyze_latents` (arrays and DataFrames; nothing is written anywhere).

    :ivar edges: (B + 1,) bin edges; :ivar counts: (N, B) per-component histograms.
    :ivar components: per-component DataFrame (:data:`COMPONENT_COLUMNS`); :ivar summary: :func:`summary_counts`.
    :ivar hits: hit grid (:data:`HIT_COLUMNS`); :ivar radius_samples: radii per source; :ivar radii: radius table.
    :ivar pca_ratios: (N,) explained-variance ratios; :ivar n_pca_90: components for :data:`PCA_TARGET` of it.
    :ivar dominant_idx: indices of dominant components; :ivar correlation: their Pearson matrix (D, D).
    :ivar top_two: the two most dominant components (for the scatter plot).
    :ivar uniform_counts: b → (N, B) histograms of the components of the method-2 vectors (same bins as ``counts``).
    :ivar mean: (N,) mean vector; :ivar cov: (N, N) population covariance (:func:`latent_moments`).
    """

    edges: np.ndarray
    counts: np.ndarray
    components: pd.DataFrame
    summary: dict
    hits: pd.DataFrame
    radius_samples: dict
    radii: pd.DataFrame
    pca_ratios: np.ndarray
    n_pca_90: int
    dominant_idx: np.ndarray
    correlation: np.ndarray
    top_two: tuple[int, int]
    uniform_counts: dict
    mean: np.ndarray
    cov: np.ndarray


RADIUS_SAMPLES = 20_000  # method-2 radii drawn per b (at most as many as data vectors): enough for a smooth histogram

PCA_TARGET = 0.9  # the share of variance ``n_pca_90`` counts components for


def analyze_latents(
    z: np.ndarray, settings: LatentSettings, *, value_range: Sequence[float] | None = None, progress: bool = False,
    with_uniform_counts: bool = True,
) -> LatentReport:
    """Run the whole analysis of the post on ``z`` (n, N) with the ``analysis`` settings (bins, thresholds, b, k,
    ``n_random`` — null: n — and seed). The hit grid, the radius samples and the uniform vectors' histograms get
    independent generators spawned from the seed.

    :param value_range: the histogram range to use instead of ``settings.range`` (e.g. widened to cover the data).
    :param with_uniform_counts: also histogram the uniform vectors' components (for the figure; another draw of
        ``n_random`` vectors per b); False leaves ``uniform_counts`` empty.
    """
    s = settings
    z = _check_z(z)
    value_range = tuple(s.range if value_range is None else value_range)
    n_random = s.n_random or len(z)
    radius_n_random = min(len(z), RADIUS_SAMPLES)
    hit_seed, radius_seed, histogram_seed = np.random.SeedSequence(s.seed).spawn(3)
    edges, counts = component_histograms(z, s.n_bins, value_range, progress=progress)
    components = component_stats(z, edges, counts, mu_threshold=s.mu_threshold, hw_threshold=s.hw_threshold)
    valid = components[["mu", "half_width"]].notna().all(axis=1).to_numpy()
    if not valid.all():
        raise InputError(f"{np.count_nonzero(~valid)} components have no values in value_range={value_range}")
    mu, hw = components["mu"].to_numpy(), components["half_width"].to_numpy()
    hits = hit_counts(mu, hw, s.b, s.k, n_random, np.random.default_rng(hit_seed), progress=progress)
    samples = radius_samples(z, s.b, radius_n_random, np.random.default_rng(radius_seed))
    mean, cov = latent_moments(z)
    ratios = spectrum_of(cov)
    dominant_idx = np.flatnonzero(components["dominant"].to_numpy())
    return LatentReport(
        edges=edges,
        counts=counts,
        components=components,
        summary=summary_counts(z, components),
        hits=hits,
        radius_samples=samples,
        radii=radius_summary(samples, s.b, z.shape[1]),
        pca_ratios=ratios,
        n_pca_90=n_components_for(ratios, PCA_TARGET),
        dominant_idx=dominant_idx,
        correlation=dominant_correlation(z, dominant_idx),
        top_two=top_two_dominant(mu, hw, components["dominant"].to_numpy()),
        uniform_counts=uniform_histograms(z.shape[1], s.b, n_random, edges, np.random.default_rng(histogram_seed))
        if with_uniform_counts else {},
        mean=mean,
        cov=cov,
    )
