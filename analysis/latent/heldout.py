"""Held-out vectors against the training data's region: which share of the test (or validation) split's vectors lie
inside μ ± k·hw, next to the training vectors' share, and their radii."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.latent.checks import _check_z, _positive_values, _region, _row_chunks
from analysis.latent.radius import radii
from latentdream.errors import InputError

HELDOUT_COLUMNS = ("split", "k", "n_vectors", "inside", "fraction", "train_fraction", "radius_mean", "radius_std",
                   "train_radius_mean", "train_radius_std")


def region_fractions(z: np.ndarray, mu, half_width, k_values: Sequence[float], *,
                     chunk_size: int = 16384) -> np.ndarray:
    """For every k, the fraction of the vectors ``z`` (n, N) inside mu_i ± k·hw_i for all i: one pass computes each
    vector's k-score max_i |z_i − mu_i| / hw_i (as :func:`~analysis.latent.hits.k_scores`, in float32: a fraction,
    not an exact count at the box's surface) and serves all k. (K,) float64."""
    z = _check_z(z)
    mu32, hw32 = _region(mu, half_width)
    ks = np.asarray(_positive_values("k_values", k_values, allow_zero=True))
    if z.shape[1] != mu32.size:
        raise InputError(f"vectors must be (n, {mu32.size}), got shape {z.shape}")
    inside = np.zeros(ks.size, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start, stop in _row_chunks(len(z), chunk_size):
            ratio = np.abs(z[start:stop].astype(np.float32, copy=False) - mu32)
            ratio /= hw32  # a degenerate component (hw = 0): 0/0 = NaN where z_i == mu_i (ignored by fmax), else inf
            score = np.fmax.reduce(ratio, axis=1)
            inside += np.sum(np.nan_to_num(score, nan=0.0)[:, None] <= ks[None, :], axis=0)
    return inside / len(z)


def heldout_table(z_heldout: np.ndarray, split: str, z_train: np.ndarray, mu, half_width,
                  k_values: Sequence[float], *, train_radii: np.ndarray | None = None) -> pd.DataFrame:
    """One row per k (:data:`HELDOUT_COLUMNS`): the held-out split's name, its vectors inside the training
    region mu ± k·hw (count and fraction), the training vectors' fraction, and both radius means and stds.

    :param train_radii: the training vectors' radii when already at hand (else computed from ``z_train``).
    """
    z_heldout, z_train = _check_z(z_heldout), _check_z(z_train)
    ks = _positive_values("k_values", k_values, allow_zero=True)
    held = region_fractions(z_heldout, mu, half_width, ks)
    train = region_fractions(z_train, mu, half_width, ks)
    r_held = radii(z_heldout)
    r_train = radii(z_train) if train_radii is None else np.asarray(train_radii, dtype=np.float64)
    return pd.DataFrame({
        "split": split, "k": ks, "n_vectors": len(z_heldout), "inside": np.rint(held * len(z_heldout)).astype(np.int64),
        "fraction": held, "train_fraction": train, "radius_mean": float(r_held.mean()),
        "radius_std": float(r_held.std()), "train_radius_mean": float(r_train.mean()),
        "train_radius_std": float(r_train.std())}, columns=list(HELDOUT_COLUMNS))
