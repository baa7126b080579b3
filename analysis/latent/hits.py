"""Method 2 against the data region: how many uniform vectors land inside mu_i ± k·hw_i for every component (the
hit grid, fast and chunked, and its plain reference), and which vectors lie inside a region."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.latent.checks import _EPS32, _check_z, _positive_values, _region, _rng, _row_chunks
from analysis.latent.sampling import _scale_uniform, sample_uniform
from latentdream.errors import InputError

HIT_COLUMNS = ("b", "k", "n_vectors", "hits", "fraction")


def k_scores(x: np.ndarray, mu, half_width) -> np.ndarray:
    """Smallest k for which each vector lies in the box mu_i ± k·hw_i: max_i |x_i − mu_i| / hw_i.

    A degenerate component (hw_i = 0) contributes 0 if x_i == mu_i exactly and ∞ otherwise. float64, shape (n,).
    """
    x = np.asarray(x, dtype=np.float64)
    mu, hw = (np.asarray(a, dtype=np.float64) for a in _region(mu, half_width))
    if x.ndim != 2 or x.shape[1] != mu.size:
        raise InputError(f"vectors must be (n, {mu.size}), got shape {x.shape}")
    deg = hw == 0
    dist = np.abs(x - mu)
    score = (dist[:, ~deg] / hw[~deg]).max(axis=1, initial=0.0)
    if deg.any():
        score[np.any(dist[:, deg] != 0, axis=1)] = np.inf
    return score


def region_fraction(z: np.ndarray, mu, half_width, k: float, *, chunk_size: int = 16384) -> float:
    """Fraction of the vectors ``z`` (n, N) that lie inside mu_i ± k·hw_i for every component i
    (e.g. generated vectors against the data region), via :func:`k_scores` <= k in float64 over row chunks."""
    z = _check_z(z)
    inside = sum(int(np.sum(k_scores(z[a:b], mu, half_width) <= float(k))) for a, b in _row_chunks(len(z), chunk_size))
    return inside / len(z)


def _inside(x: np.ndarray, mu32: np.ndarray, hw32: np.ndarray, ks: Sequence[float]) -> np.ndarray:
    """The definition of a hit, in float32: (n, K) bool, all_i |x_i − mu_i| <= k·hw_i."""
    dist = np.abs(x - mu32)
    return np.stack([np.all(dist <= np.float32(k) * hw32, axis=1) for k in ks], axis=1)


def _hits_table(b_values, ks, n_random, hits) -> pd.DataFrame:
    rows = [(b, k, n_random, int(h), h / n_random) for b, row in zip(b_values, hits) for k, h in zip(ks, row)]
    return pd.DataFrame(rows, columns=list(HIT_COLUMNS))


def _check_grid(b_values, k_values, n_random):
    if int(n_random) < 1:
        raise InputError(f"n_random must be >= 1, got {n_random}")
    return _positive_values("b_values", b_values), _positive_values("k_values", k_values, allow_zero=True)


def hit_counts(
    mu,
    half_width,
    b_values: Sequence[float],
    k_values: Sequence[float],
    n_random: int,
    seed,
    *,
    chunk_size: int = 4096,
    progress: bool = False,
) -> pd.DataFrame:
    """How many of ``n_random`` method-2 vectors (uniform in [-b, b]^N) fall inside mu_i ± k·hw_i for all i.

    For each b one pass over float32 chunks of ``chunk_size`` vectors gives every k at once: a vector is inside for
    k iff its k-score max_i |x_i − mu_i|/hw_i <= k. The score is computed in the fused form |u·a_i − c_i| with
    a_i = 2b/hw_i, c_i = (b + mu_i)/hw_i (x = 2b·u − b); vectors whose score is within float32 rounding of some k
    are re-checked with the exact float32 definition, so the result equals :func:`hit_counts_reference` (same seed
    → same vectors) exactly. Memory: two (chunk_size, N) float32 buffers. Degenerate components (hw = 0) never
    divide: they hit only where x_i == mu_i.

    :param mu, half_width: (N,) region centre and FWHM per component.
    :param seed: int or ``np.random.Generator`` (or any object with its ``random(size, dtype, out)``); the b values
        are drawn in the given order, each as n_random × N numbers from ``rng.random(dtype=float32)``.
    :returns: DataFrame with columns ``b, k, n_vectors, hits, fraction``, one row per (b, k), b-major.
    """
    mu32, hw32 = _region(mu, half_width)
    bs, ks = _check_grid(b_values, k_values, n_random)
    n_random, dim, rng = int(n_random), mu32.size, _rng(seed)
    deg = hw32 == 0
    hw_safe = np.where(deg, 1.0, hw32.astype(np.float64))
    k_arr = np.asarray(ks)
    u_buf = np.empty((min(chunk_size, n_random), dim), dtype=np.float32)
    s_buf = np.empty_like(u_buf)
    hits = np.zeros((len(bs), len(ks)), dtype=np.int64)
    for ib, b in enumerate(tqdm(bs, disable=None if progress else True, desc="hit grid")):
        a = np.where(deg, 0.0, 2.0 * b / hw_safe).astype(np.float32)
        c = np.where(deg, 0.0, (b + mu32) / hw_safe).astype(np.float32)
        # Bound on the rounding difference between the fused score and the float32 definition, in score units.
        tol = 16 * _EPS32 * (float(np.max(np.where(deg, 0.0, (3 * b + np.abs(mu32)) / hw_safe))) + k_arr.max())
        for start, stop in _row_chunks(n_random, chunk_size):
            u, s2 = u_buf[: stop - start], s_buf[: stop - start]
            rng.random(out=u, dtype=np.float32)
            np.multiply(u, a, out=s2)
            np.subtract(s2, c, out=s2)
            np.abs(s2, out=s2)
            score = s2.max(axis=1)
            if deg.any():
                score[np.any(_scale_uniform(u[:, deg], b) != mu32[deg], axis=1)] = np.inf
            near = np.abs(score[:, None] - k_arr[None, :]) <= tol  # (m, K)
            hits[ib] += np.sum((score[:, None] <= k_arr[None, :]) & ~near, axis=0)
            rows = np.flatnonzero(near.any(axis=1))
            if rows.size:
                exact = _inside(_scale_uniform(u[rows], b), mu32, hw32, ks)
                hits[ib] += np.sum(exact & near[rows], axis=0)
    return _hits_table(bs, ks, n_random, hits)


def hit_counts_reference(
    mu, half_width, b_values: Sequence[float], k_values: Sequence[float], n_random: int, seed
) -> pd.DataFrame:
    """The plain version of :func:`hit_counts`: per b the full (n_random, N) array, per k a full comparison.

    Same seed → same vectors and the same table; memory ~ 2 × n_random × N × 4 bytes.
    """
    mu32, hw32 = _region(mu, half_width)
    bs, ks = _check_grid(b_values, k_values, n_random)
    rng = _rng(seed)
    hits = [_inside(sample_uniform(n_random, mu32.size, b, rng), mu32, hw32, ks).sum(axis=0) for b in bs]
    return _hits_table(bs, ks, int(n_random), np.asarray(hits))
