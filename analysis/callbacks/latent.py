"""Latent-space analysis of an autoencoder, logged into its MLflow run (the reference's first post).

:func:`record_latent_analysis` is the whole job — encode, analyse, plot, log — shared by the callback (after
training, and every ``every_n_epochs``) and by ``latentdream analyze RUN_ID`` (into an earlier run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import latent_stats as ls
from analysis import tracking
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.encode import decode_vectors, encode_dataset
from analysis.plots import latent as plots
from analysis.plots.images import image_grid

log = logging.getLogger("latentdream")

D = tracking.LATENT_DIR


@dataclass(frozen=True)
class LatentAnalysisSettings:
    """The ``analysis`` config section, as plain values (keys equal the config keys)."""

    n_bins: int = 100
    range: Sequence[float] = (-12.0, 12.0)
    mu_threshold: float = 0.25
    hw_threshold: float = 1.5
    b: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 12.0)
    k: Sequence[float] = (1.5, 2.0, 3.0, 12.0)
    n_random: int | None = None
    n_scatter: int = 1000
    n_generate: int = 64
    generate_b: float = 1.5
    z_sample: int = 20000
    batch_size: int = 256
    seed: int = 0


def covering_range(z: np.ndarray, value_range: Sequence[float]) -> tuple[float, float]:
    """The configured histogram range, widened symmetrically (to a whole number) when the data leave it.

    A barely trained encoder can put whole components outside [-12, 12]; their μ and half-width would be undefined
    and the analysis would fail at the end of a run. The range used is saved with the histograms (``edges``).
    """
    low, high = float(value_range[0]), float(value_range[1])
    z_low, z_high = float(z.min()), float(z.max())
    if low <= z_low and z_high <= high:
        return low, high
    reach = float(np.ceil(max(abs(z_low), abs(z_high), abs(low), abs(high))))
    log.warning("latent values span [%.2f, %.2f]: histogram range widened from [%g, %g] to [%g, %g]",
                z_low, z_high, low, high, -reach, reach)
    return -reach, reach


def latent_metrics(report: ls.LatentReport) -> dict[str, float]:
    """The comparison metrics: summary counts, hit fractions ``latent/hit_b{b}_k{k}``, data radius, PCA 90 %."""
    out = {f"{D}/{key}": float(value) for key, value in report.summary.items()}
    for row in report.hits.itertuples():
        out[f"{D}/hit_b{row.b:g}_k{row.k:g}"] = float(row.fraction)
    data = report.radii[report.radii["source"] == "data"].iloc[0]
    out[f"{D}/radius_mean"], out[f"{D}/radius_std"] = float(data["mean"]), float(data["std"])
    out[f"{D}/pca_90"] = float(report.n_pca_90)
    return out


def _generated(network: torch.nn.Module, z: np.ndarray, report: ls.LatentReport, s: LatentAnalysisSettings, device):
    """Decode vectors from the three generators; the fraction of each inside the data's μ ± 2·hw region."""
    rng = np.random.default_rng(s.seed)
    comp = report.components
    mean, cov = ls.latent_moments(z)
    vectors = {
        "uniform": ls.sample_uniform(s.n_generate, z.shape[1], s.generate_b, rng),
        "gaussian": ls.sample_component_gaussian(s.n_generate, comp["gauss_mu"].to_numpy(), comp["gauss_sigma"].to_numpy(), rng),
        "multivariate": ls.sample_multivariate(s.n_generate, mean, cov, rng),
    }
    mu, hw = comp["mu"].to_numpy(), comp["half_width"].to_numpy()
    images = {name: decode_vectors(network.decode, v, device) for name, v in vectors.items()}
    inside = {name: ls.region_fraction(v, mu, hw, 2.0) for name, v in vectors.items()}
    return images, inside


def record_latent_analysis(
    writer: tracking.RunWriter,
    network: torch.nn.Module,
    batches: Iterable,
    settings: LatentAnalysisSettings,
    step: int,
    progress: bool = True,
) -> ls.LatentReport:
    """Encode ``batches`` (the whole training set) with ``network.encode``, analyse z, log everything at ``step``."""
    was_training = network.training
    network.eval()
    device = next(network.parameters()).device
    z = encode_dataset(network.encode, batches, device, progress)
    report = ls.analyze_latents(
        z, n_bins=settings.n_bins, value_range=covering_range(z, settings.range), mu_threshold=settings.mu_threshold,
        hw_threshold=settings.hw_threshold, b_values=settings.b, k_values=settings.k,
        n_random=settings.n_random or len(z), radius_n_random=min(len(z), 20000), seed=settings.seed, progress=progress,
    )
    images, inside = _generated(network, z, report, settings, device)
    network.train(was_training)

    writer.npz(f"{D}/histograms.npz", edges=report.edges, counts=report.counts.astype(np.int64))
    writer.table(f"{D}/components.csv", report.components)
    writer.table(f"{D}/hit_rates.csv", report.hits)
    writer.table(f"{D}/radius.csv", report.radii)
    summary = {**report.summary, "n_pca_90": int(report.n_pca_90), "n_vectors": int(len(z)), "z_dim": int(z.shape[1]),
               **{f"generated_{name}_in_region_k2": frac for name, frac in inside.items()}}
    writer.json(f"{D}/summary.json", summary)
    keep = np.sort(np.random.default_rng(settings.seed).choice(len(z), size=min(len(z), settings.z_sample), replace=False))
    writer.npy(f"{D}/z_sample.npy", z[keep].astype(np.float32))
    writer.npy(f"{D}/z_sample_index.npy", keep.astype(np.int64))

    writer.figure(f"{D}/histograms.png", plots.all_histograms(report.edges, report.counts), step_key=f"{D}/histograms", step=step)
    writer.figure(f"{D}/dominant_fits.png", plots.dominant_fits(report.edges, report.counts, report.components))
    uniform = {b: report.radius_samples[f"uniform_b{b:g}"] for b in settings.b}
    analytic = {b: ls.uniform_radius_moments(b, z.shape[1]) for b in settings.b}
    writer.figure(f"{D}/radius.png", plots.radius_distributions(report.radius_samples["data"], uniform, analytic))
    i, j = report.top_two
    writer.figure(f"{D}/correlation_scatter.png",
                  plots.correlation_scatter(z[:, i], z[:, j], i, j, max_points=settings.n_scatter, seed=settings.seed))
    if len(report.dominant_idx) >= 2:
        writer.figure(f"{D}/correlation_heatmap.png", plots.correlation_heatmap(report.correlation, report.dominant_idx))
    writer.figure(f"{D}/pca_spectrum.png", plots.pca_spectrum_plot(report.pca_ratios, report.n_pca_90))
    for name, imgs in images.items():
        title = f"decoded {name} vectors ({inside[name]:.0%} inside the data's mu ± 2 hw region)"
        writer.figure(f"{D}/generated_{name}.png", image_grid(imgs, cmap="gray", suptitle=title, normalize_each=False))

    metrics = latent_metrics(report)
    metrics.update({f"{D}/generated_{name}_in_region": frac for name, frac in inside.items()})
    writer.metrics(metrics, step=step)
    return report


class LatentStatsLogger(PeriodicAnalysis):
    """Analyses the autoencoder's latent space at the end of training (and every ``every_n_epochs`` epochs).

    Needs the launcher's MLflow logger (for the run) and a DataModule with ``images_dataloader(split, batch_size)``.

    :param settings: what to compute (the ``analysis`` config section).
    :param every_n_epochs: also analyse after every n-th training epoch (0: only at the end).
    """

    def __init__(self, settings: LatentAnalysisSettings, every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        self.settings = settings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int) -> None:
        loader = trainer.datamodule.images_dataloader("train", batch_size=self.settings.batch_size)
        record_latent_analysis(writer, pl_module.network, loader, self.settings, step=epoch,
                               progress=trainer.progress_bar_callback is not None)
