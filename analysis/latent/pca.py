"""Mean and covariance of the latent vectors and their principal-component spectrum."""

from __future__ import annotations

import numpy as np

from analysis.latent.checks import _check_z, _row_chunks
from latentdream.errors import InputError


def latent_moments(z: np.ndarray, *, chunk_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Mean (N,) and population covariance (N, N) of ``z``, accumulated in float64 over row chunks."""
    z = _check_z(z)
    mean = z.mean(axis=0, dtype=np.float64)
    cov = np.zeros((z.shape[1], z.shape[1]))
    for start, stop in _row_chunks(z.shape[0], chunk_size):
        x = z[start:stop].astype(np.float64) - mean
        cov += x.T @ x
    return mean, cov / z.shape[0]


def pca_spectrum(z: np.ndarray) -> np.ndarray:
    """Explained-variance ratios of the principal components of ``z``: eigenvalues of the covariance over their
    sum, sorted descending, (N,)."""
    return spectrum_of(latent_moments(z)[1])


def spectrum_of(cov: np.ndarray) -> np.ndarray:
    """Explained-variance ratios (N,) of a covariance (N, N): its eigenvalues over their sum, descending."""
    ev = np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)
    if ev.sum() <= 0:
        raise InputError("z has zero variance; the PCA spectrum is undefined")
    return ev / ev.sum()


def n_components_for(ratios: np.ndarray, target: float = 0.9) -> int:
    """Smallest number of leading principal components whose explained-variance ratios sum to >= ``target``."""
    if not 0 < target <= 1:
        raise InputError(f"target must be in (0, 1], got {target}")
    ratios = np.asarray(ratios, dtype=np.float64)
    cum = np.cumsum(ratios) / ratios.sum()
    # the 1e-12 slack counts e.g. 0.6 + 0.3 = 0.8999999999999999 as reaching 0.9
    return int(min(len(cum), np.searchsorted(cum, target - 1e-12) + 1))


def principal_axes(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (N,) of the covariance, descending and clipped at 0, and the principal axes as the columns of an
    orthogonal (N, N) matrix in the same order."""
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise InputError(f"cov must be a square (N, N) matrix, got shape {cov.shape}")
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    return np.clip(values[::-1], 0.0, None), vectors[:, ::-1]

