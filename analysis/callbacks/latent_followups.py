"""The follow-up analyses of the latent space (issue 21), orchestrated for :mod:`analysis.callbacks.latent`:
traversals and interpolations decoded by the network (on its device), the ellipsoid tested, held-out vectors and
the hit grid in principal axes — pure computation from :mod:`analysis.latent`, figures from :mod:`analysis.plots`,
names from :mod:`analysis.tracking`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from analysis import latent as ls
from analysis import tracking
from analysis.encode import decode_vectors, encode_dataset
from analysis.latent import paths
from analysis.latent.followups import FollowUps, analyze_follow_ups
from analysis.plots import latent as plots
from analysis.plots import latent_paths as path_plots
from analysis.settings import LatentSettings

N_PAIRS = 4  # interpolated pairs of validation images


def encode_held_out(network: torch.nn.Module, heldout: tuple[str, Iterable] | None, val_batches: Iterable | None,
                    device, progress: bool) -> tuple[tuple[str, np.ndarray] | None, np.ndarray | None]:
    """Encode the held-out split (``(name, batches)``) and the validation images the interpolations pair: the
    held-out vectors themselves when they are the validation split, else the first validation batch.

    :returns: (name, vectors) or None, and the validation vectors or None.
    """
    held = None if heldout is None else (heldout[0], encode_dataset(network.encode, heldout[1], device, progress))
    if held is not None and held[0] == "val":
        return held, held[1]
    if val_batches is None:
        return held, None
    return held, encode_dataset(network.encode, itertools.islice(val_batches, 1), device, progress)


def traversal_figure(network: torch.nn.Module, z: np.ndarray, report: ls.LatentReport, device, step: int) -> Figure:
    """The widest components swept from the mean latent vector, decoded (:mod:`analysis.latent.paths`)."""
    mu, hw = report.components["mu"].to_numpy(), report.components["half_width"].to_numpy()
    components = paths.widest_components(mu, hw)
    vectors, values = paths.traversal_vectors(report.mean, mu, hw, components)
    images = decode_vectors(network.decode, vectors.reshape(-1, z.shape[1]), device)
    return path_plots.traversals(images.reshape(*vectors.shape[:2], *images.shape[1:]), components, values, mu, hw,
                                 title=f"after epoch {step}")


def figure_k(k_values) -> float:
    """The k the interpolation figure shows: the one closest to 2 (the generators' box)."""
    return float(min(k_values, key=lambda k: (abs(k - 2.0), k)))


def interpolation_outputs(network: torch.nn.Module, z_val: np.ndarray, report: ls.LatentReport, s: LatentSettings,
                          device):
    """Linear and spherical paths between :data:`N_PAIRS` random pairs of encoded validation images, decoded;
    returns the table (:data:`~analysis.latent.paths.INTERPOLATION_COLUMNS`) and the figure, or (None, None) with
    fewer than two validation vectors."""
    if len(z_val) < 2:
        return None, None
    rng = np.random.default_rng(s.seed)
    n_pairs = min(N_PAIRS, len(z_val) // 2)
    pairs = np.sort(rng.choice(len(z_val), size=2 * n_pairs, replace=False).reshape(n_pairs, 2), axis=1)
    vectors = paths.interpolation_vectors(z_val[pairs[:, 0]], z_val[pairs[:, 1]])
    mu, hw = report.components["mu"].to_numpy(), report.components["half_width"].to_numpy()
    table = paths.interpolation_table(vectors, pairs, mu, hw, s.k)
    k = figure_k(s.k)
    images, shares = {}, {}
    for name, v in vectors.items():
        decoded = decode_vectors(network.decode, v.reshape(-1, v.shape[-1]), device)
        images[name] = decoded.reshape(*v.shape[:2], *decoded.shape[1:])
        shares[name] = paths.in_region_share(v.reshape(-1, v.shape[-1]), mu, hw, k).reshape(v.shape[:2])
    return table, path_plots.interpolations(images, shares, pairs, k)


def follow_ups(network: torch.nn.Module, z: np.ndarray, report: ls.LatentReport, s: LatentSettings, device, *,
               heldout: tuple[str, np.ndarray] | None, z_val: np.ndarray | None, progress: bool = False):
    """Compute and draw everything the end of training adds; nothing is written.

    :param heldout: (split name, its vectors) or None; :param z_val: encoded validation images for the
        interpolations, or None.
    :returns: the :class:`~analysis.latent.followups.FollowUps`, and artifact path → figure / table, metrics,
        summary entries.
    """
    split, z_held = heldout if heldout is not None else ("test", None)
    result: FollowUps = analyze_follow_ups(z, report, s, z_heldout=z_held, heldout_split=split, progress=progress)
    figures: dict[str, Any] = {tracking.LATENT_MAHALANOBIS_PNG: plots.mahalanobis_plot(
        result.mahalanobis_d2, result.dof, result.mahalanobis_ks)}
    tables: dict[str, Any] = {tracking.LATENT_MAHALANOBIS: result.mahalanobis,
                              tracking.LATENT_HIT_RATES_PCA: result.hits_pca}
    metrics = {tracking.LATENT_MAHALANOBIS_KS: result.mahalanobis_ks}
    summary: dict[str, Any] = {"mahalanobis_ks": result.mahalanobis_ks, "mahalanobis_dof": result.dof}
    if result.heldout is not None:
        tables[tracking.LATENT_HELDOUT] = result.heldout
        metrics.update({tracking.latent_test_region_metric(row.k): float(row.fraction)
                        for row in result.heldout.itertuples()})
        summary["heldout_split"] = split
    if z_val is not None:
        table, figure = interpolation_outputs(network, z_val, report, s, device)
        if table is not None:
            tables[tracking.LATENT_INTERPOLATIONS] = table
            figures[tracking.LATENT_INTERPOLATIONS_PNG] = figure
    return figures, tables, metrics, summary
