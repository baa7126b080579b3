"""Correlations of the dominant components, an order that groups correlated ones, and the two most dominant."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.latent.checks import _check_z
from latentdream.errors import InputError


def dominant_correlation(z: np.ndarray, dominant_idx: Sequence[int]) -> np.ndarray:
    """Pearson correlation matrix (D, D) of the components ``dominant_idx`` (NaN rows for constant components)."""
    z = _check_z(z)
    idx = np.asarray(dominant_idx, dtype=np.intp)
    if idx.size == 0:
        return np.empty((0, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.atleast_2d(np.corrcoef(z[:, idx], rowvar=False))


def correlation_order(matrix: np.ndarray) -> np.ndarray:
    """An order of the rows of a correlation matrix (D, D) that puts correlated components next to each other:
    the leaf order of an average-linkage clustering with distance 1 − r (a NaN r counts as 0). Signed, so that
    anti-correlated groups end up apart: components along one direction split into two blocks by the sign of their
    loading instead of a checkerboard. (D,) int."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    r = np.nan_to_num(np.asarray(matrix, dtype=np.float64), nan=0.0)
    if r.shape[0] < 3:
        return np.arange(r.shape[0])
    distance = np.clip(1.0 - r, 0.0, 2.0)
    distance = 0.5 * (distance + distance.T)
    np.fill_diagonal(distance, 0.0)
    return leaves_list(linkage(squareform(distance, checks=False), method="average", optimal_ordering=True))


def top_two_dominant(mu, half_width, dominant=None) -> tuple[int, int]:
    """The two "most dominant" components, ranked by |mu| + half_width (distance of the distribution's far
    half-maximum point from 0, roughly: how far the component reaches out). Only ``dominant`` components compete
    if at least two are flagged; otherwise all do. Returns the indices, highest score first."""
    mu, hw = np.asarray(mu, dtype=np.float64), np.asarray(half_width, dtype=np.float64)
    if mu.size < 2:
        raise InputError(f"need at least 2 components, got {mu.size}")
    score = np.nan_to_num(np.abs(mu) + hw, nan=-np.inf)
    pool = np.arange(mu.size)
    if dominant is not None and np.count_nonzero(dominant) >= 2:
        pool = np.flatnonzero(dominant)
    best = pool[np.argsort(-score[pool], kind="stable")[:2]]
    return int(best[0]), int(best[1])
