"""Latent vectors drawn for generation and for "method 2": uniform in [-b, b]^N, per-component Gaussian,
multivariate Gaussian; and the spread of a set of vectors or images."""

from __future__ import annotations

import numpy as np

from latentdream.errors import InputError


def _scale_uniform(u: np.ndarray, b: float) -> np.ndarray:
    """Map u ~ U[0, 1) (float32) to x = 2b·u − b ~ U[-b, b), in float32.

    The one formula shared by :func:`sample_uniform`, :func:`hit_counts` and :func:`hit_counts_reference`, so the
    same seed gives bit-identical vectors in all three.
    """
    x = u * np.float32(2.0 * b)
    x -= np.float32(b)
    return x


def sample_uniform(n: int, dim: int, b: float, rng: np.random.Generator) -> np.ndarray:
    """Method 2: ``n`` vectors with independent components uniform in [-b, b), float32 (n, dim).

    Draws ``rng.random((n, dim), dtype=float32)`` and maps u → 2b·u − b; :func:`hit_counts` draws the same numbers
    in the same order, so a test can rebuild its vectors from the seed.
    """
    return _scale_uniform(rng.random((int(n), int(dim)), dtype=np.float32), float(b))


def sample_component_gaussian(n: int, mu, sigma, rng: np.random.Generator) -> np.ndarray:
    """``n`` vectors with independent components N(mu_i, sigma_i²), float32 (n, N)."""
    mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if mu.shape != sigma.shape or mu.ndim != 1 or np.any(sigma < 0):
        raise InputError(f"mu and sigma must be (N,) with sigma >= 0, got {mu.shape} and {sigma.shape}")
    return rng.normal(mu, sigma, size=(int(n), mu.size)).astype(np.float32)


def sample_multivariate(n: int, mean, cov, rng: np.random.Generator) -> np.ndarray:
    """``n`` vectors from N(mean, cov) (e.g. the mean and covariance of the data, :func:`latent_moments`),
    float32 (n, N). Uses an eigen-decomposition, which tolerates the near-singular covariance of latent data."""
    mean, cov = np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64)
    if mean.ndim != 1 or cov.shape != (mean.size, mean.size):
        raise InputError(f"mean must be (N,) and cov (N, N), got {mean.shape} and {cov.shape}")
    return rng.multivariate_normal(mean, cov, size=int(n), method="eigh").astype(np.float32)


def spread(x: np.ndarray) -> float:
    """How much the rows of ``x`` (n, ...) differ: the rms over features of each feature's std across the rows,
    sqrt(mean_j Var_i x_ij). 0 when all rows are equal (e.g. a decoder that gives the same image for every z)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return float(np.sqrt(np.mean(np.var(x, axis=0)))) if len(x) else float("nan")
