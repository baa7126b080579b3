"""The ellipsoid tested: squared Mahalanobis distances of the data vectors against χ²_N.

If the vectors were Gaussian, N(m, Σ), the squared distance d² = (z − m)ᵀ Σ⁻¹ (z − m) would follow χ² with N
degrees of freedom; the Kolmogorov–Smirnov statistic sup |F_data − F_χ²| says how far the data's region is from
that ellipsoid picture (0: exactly; near 1: nothing alike).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2

from analysis.latent.checks import _check_z, _row_chunks
from latentdream.errors import InputError

MAHALANOBIS_COLUMNS = ("quantile", "observed", "chi2", "dof")
RANK_RTOL = 1e-9  # principal variances below this share of the largest count as zero (a constant direction)


def mahalanobis_squared(z: np.ndarray, mean: np.ndarray, variances: np.ndarray,
                        axes: np.ndarray) -> tuple[np.ndarray, int]:
    """d² = (z − mean)ᵀ Σ⁺ (z − mean) of every vector for Σ = axes · diag(variances) · axesᵀ
    (:func:`~analysis.latent.pca.principal_axes` of the covariance). :returns: d² (n,) float64 and the degrees of
    freedom (the covariance's rank, N when it is full); see :func:`principal_coordinates`."""
    _, d2, dof = principal_coordinates(z, mean, variances, axes)
    return d2, dof


def principal_coordinates(z: np.ndarray, mean: np.ndarray, variances: np.ndarray, axes: np.ndarray, *,
                          chunk_size: int = 32768) -> tuple[np.ndarray, np.ndarray, int]:
    """The vectors in centred principal axes, y = (z − mean) @ axes, and their squared Mahalanobis distances
    d² = Σ_j y_j² / λ_j, in one float64 pass over row chunks. Axes whose variance λ_j is at most
    :data:`RANK_RTOL` · max λ are left out of d² (the pseudo-inverse of a singular covariance: a constant
    direction adds nothing).

    :returns: y float32 (n, N), d² (n,) float64 and the degrees of freedom (the number of axes kept).
    """
    z = _check_z(z)
    lam = np.asarray(variances, dtype=np.float64)
    axes = np.asarray(axes, dtype=np.float64)
    if lam.size != z.shape[1] or axes.shape != (lam.size, lam.size) or lam.max() <= 0:
        raise InputError(f"need N = {z.shape[1]} variances (max > 0) and (N, N) axes, got {lam.size} and "
                         f"{axes.shape}: a zero covariance has no ellipsoid to test")
    keep = lam > RANK_RTOL * lam.max()
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    mean = np.asarray(mean, dtype=np.float64)
    y = np.empty(z.shape, dtype=np.float32)
    d2 = np.empty(z.shape[0])
    for start, stop in _row_chunks(z.shape[0], chunk_size):
        x = (z[start:stop].astype(np.float64) - mean) @ axes
        y[start:stop] = x
        x *= x
        d2[start:stop] = x @ inv
    return y, d2, int(keep.sum())


def ks_chi2(d2: np.ndarray, dof: int) -> float:
    """Kolmogorov–Smirnov statistic of the sample ``d2`` against χ² with ``dof`` degrees of freedom:
    max over the sorted sample of max(i/n − F(x_i), F(x_i) − (i − 1)/n)."""
    x = np.sort(np.asarray(d2, dtype=np.float64).ravel())
    if x.size == 0 or dof < 1:
        raise InputError(f"need a non-empty sample and dof >= 1, got {x.size} values and dof={dof}")
    cdf = chi2.cdf(x, dof)
    n = x.size
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


def mahalanobis_table(d2: np.ndarray, dof: int, n_quantiles: int = 199) -> pd.DataFrame:
    """Quantile–quantile table (:data:`MAHALANOBIS_COLUMNS`): at ``n_quantiles`` levels p (0.5 % … 99.5 % for
    199) the data's d² quantile and χ²_dof's."""
    p = np.linspace(0.0, 1.0, int(n_quantiles) + 2)[1:-1]
    return pd.DataFrame({"quantile": p, "observed": np.quantile(np.asarray(d2, dtype=np.float64), p),
                         "chi2": chi2.ppf(p, dof), "dof": int(dof)}, columns=list(MAHALANOBIS_COLUMNS))
