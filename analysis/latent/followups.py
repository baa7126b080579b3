"""What a researcher asks next of the latent space (issue 21), on top of :func:`~analysis.latent.report.analyze_latents`:
the ellipsoid tested (Mahalanobis distances against χ²_N), held-out vectors against the training region, and the
hit grid in centred principal axes.

Pure numpy/pandas: vectors and a :class:`~analysis.latent.report.LatentReport` in, a frozen :class:`FollowUps` out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.latent.ellipsoid import ks_chi2, mahalanobis_table, principal_coordinates
from analysis.latent.fits import fit_gaussian
from analysis.latent.heldout import heldout_table
from analysis.latent.histograms import component_histograms, half_widths
from analysis.latent.hits import hit_counts
from analysis.latent.pca import principal_axes

if TYPE_CHECKING:
    from analysis.latent.report import LatentReport
    from analysis.settings import LatentSettings


@dataclass(frozen=True)
class FollowUps:
    """:ivar mahalanobis_d2: (n,) squared distances; :ivar dof: their χ² degrees of freedom (the covariance's rank);
    :ivar mahalanobis_ks: KS statistic against χ²_dof; :ivar mahalanobis: quantile table;
    :ivar hits_pca: the hit grid in principal axes (``HIT_COLUMNS``); :ivar pca_components: per-axis statistics
    (component = axis index, descending variance; mu, half_width, gauss_sigma, fit_r2);
    :ivar heldout: the held-out table (``HELDOUT_COLUMNS``), None without held-out vectors."""

    mahalanobis_d2: np.ndarray
    dof: int
    mahalanobis_ks: float
    mahalanobis: pd.DataFrame
    hits_pca: pd.DataFrame
    pca_components: pd.DataFrame
    heldout: pd.DataFrame | None


def covering(value_range: Sequence[float], y: np.ndarray) -> tuple[float, float]:
    """``value_range`` widened (to whole numbers) where the values ``y`` leave it."""
    return (min(float(value_range[0]), math.floor(float(y.min()))), max(float(value_range[1]), math.ceil(float(y.max()))))


def pca_hit_grid(y: np.ndarray, variances: np.ndarray, edges: np.ndarray, settings: LatentSettings,
                 progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The b × k hit grid in centred, PCA-rotated coordinates ``y`` (n, N)
    (:func:`~analysis.latent.ellipsoid.principal_coordinates`; their means are 0, their variances ``variances``). Each axis is histogrammed on the data's binning ``edges`` (widened where
    needed) and measured like a component: centre mu' = the Gaussian fit's (started from 0 and sqrt(variance)),
    half-width hw' = FWHM. The same uniform vectors as the data's grid (same seed) are then tested against
    mu' ± k·hw'.

    :returns: the hit table (``HIT_COLUMNS``) and per axis (component, mu, half_width, gauss_sigma, fit_r2).
    """
    s = settings
    edges, counts = component_histograms(y, len(edges) - 1, covering((edges[0], edges[-1]), y))
    sd = np.sqrt(np.asarray(variances, dtype=np.float64))
    fits = np.array([fit_gaussian(edges, counts[j], 0.0, sd[j]) for j in range(y.shape[1])]).reshape(-1, 3)
    axes = pd.DataFrame({"component": np.arange(y.shape[1]), "mu": fits[:, 0], "half_width": half_widths(edges, counts),
                         "gauss_sigma": fits[:, 1], "fit_r2": fits[:, 2]})
    hit_seed = np.random.SeedSequence(s.seed).spawn(1)[0]  # the seed analyze_latents gives the data's hit grid
    hits = hit_counts(axes["mu"].to_numpy(), axes["half_width"].to_numpy(), s.b, s.k, s.n_random or len(y),
                      np.random.default_rng(hit_seed), progress=progress)
    return hits, axes


def analyze_follow_ups(z: np.ndarray, report: LatentReport, settings: LatentSettings, *,
                       z_heldout: np.ndarray | None = None, heldout_split: str = "test",
                       progress: bool = False) -> FollowUps:
    """Mahalanobis test, hit grid in principal axes and (with ``z_heldout``, the vectors of ``heldout_split``)
    the held-out table, for training vectors ``z`` and their :class:`LatentReport`. The vectors are rotated into
    principal axes once; the distances and the grid share that."""
    variances, axes = principal_axes(report.cov)
    y, d2, dof = principal_coordinates(z, report.mean, variances, axes)
    hits_pca, pca_components = pca_hit_grid(y, variances, report.edges, settings, progress)
    del y
    mu, hw = report.components["mu"].to_numpy(), report.components["half_width"].to_numpy()
    heldout = None
    if z_heldout is not None and len(z_heldout):
        heldout = heldout_table(z_heldout, heldout_split, z, mu, hw, settings.k,
                                train_radii=report.radius_samples["data"])
    return FollowUps(mahalanobis_d2=d2, dof=dof, mahalanobis_ks=ks_chi2(d2, dof),
                     mahalanobis=mahalanobis_table(d2, dof), hits_pca=hits_pca, pca_components=pca_components,
                     heldout=heldout)
