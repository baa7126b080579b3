"""Latent-space analysis of an autoencoder, logged into its MLflow run (the reference's first post).

:func:`record_latent_analysis` is the whole job — encode, analyse, plot, log — shared by the callback (after
training, and every ``every_n_epochs``) and by ``latentdream analyze RUN_ID`` (into an earlier run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import latent as ls
from analysis import tracking
from analysis.callbacks.latent_followups import encode_held_out, follow_ups, traversal_figure
from analysis.callbacks.health import health_of
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.encode import decode_vectors, encode_dataset
from analysis.eval_mode import eval_mode
from analysis.plots import latent as plots
from analysis.plots.health import flag_unhealthy
from analysis.plots.images import image_grid
from analysis.settings import LatentSettings
from latentdream.stopping import check_stop, deferred

log = logging.getLogger("latentdream")

GENERATED_BOX_K = 2.0  # generated vectors count as "in the data region" inside mu ± 2·half_width


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
    out = {tracking.latent_metric(key): float(value) for key, value in report.summary.items()}
    for row in report.hits.itertuples():
        out[tracking.latent_hit_metric(row.b, row.k)] = float(row.fraction)
    data = report.radii[report.radii["source"] == "data"].iloc[0]
    out[tracking.latent_metric("radius_mean")] = float(data["mean"])
    out[tracking.latent_metric("radius_std")] = float(data["std"])
    out[tracking.latent_metric("pca_90")] = float(report.n_pca_90)
    return out


def _generated(network: torch.nn.Module, z: np.ndarray, report: ls.LatentReport, s: LatentSettings, device):
    """Decode vectors from the three generators; per generator its images and a title with the fraction inside the
    data's μ ± 2·hw region and the spread of its vectors and images next to the data's (:func:`ls.spread`): a
    decoder that gives every data vector the same image shows as an image spread near 0 for the data too."""
    rng = np.random.default_rng(s.seed)
    comp = report.components
    mean, cov = report.mean, report.cov
    vectors = {
        "uniform": ls.sample_uniform(s.n_generate, z.shape[1], s.generate_b, rng),
        "gaussian": ls.sample_component_gaussian(s.n_generate, comp["gauss_mu"].to_numpy(), comp["gauss_sigma"].to_numpy(), rng),
        "multivariate": ls.sample_multivariate(s.n_generate, mean, cov, rng),
    }
    data_z = z[np.sort(rng.choice(len(z), size=min(len(z), s.n_generate), replace=False))]
    mu, hw = comp["mu"].to_numpy(), comp["half_width"].to_numpy()
    images = {name: decode_vectors(network.decode, v, device) for name, v in vectors.items()}
    inside = {name: ls.region_fraction(v, mu, hw, GENERATED_BOX_K) for name, v in vectors.items()}
    data_spread = (ls.spread(data_z), ls.spread(decode_vectors(network.decode, data_z, device)))
    titles = {name: (f"decoded {name} vectors: {inside[name]:.0%} inside the data's mu ± {GENERATED_BOX_K:g} hw "
                     f"region\nspread of the vectors {ls.spread(v):.3g} (data: {data_spread[0]:.3g}), "
                     f"of the images {ls.spread(images[name]):.3g} (decoded data vectors: {data_spread[1]:.3g})")
              for name, v in vectors.items()}
    return images, inside, titles


@deferred()  # a signal only requests the stop: the units of work check it, a write is never cut
def record_latent_analysis(
    writer: tracking.RunWriter,
    network: torch.nn.Module,
    batches: Iterable,
    settings: LatentSettings,
    step: int,
    progress: bool = True,
    final: bool = True,
    *,
    heldout: tuple[str, Iterable] | None = None,
    val_batches: Iterable | None = None,
    health: str | None = None,
) -> ls.LatentReport:
    """Encode ``batches`` (the whole training set) with ``network.encode``, analyse z, and log it at ``step``.

    Everything is computed and drawn before the first write, so a failure leaves the run as it was.

    :param final: log everything; False (the analyses after an epoch, during training) logs only what changes over
        training — the summary metrics and the stepped histogram and traversal images — and skips decoding
        generated vectors and the follow-ups.
    :param heldout: (split name, its batches): the test split, or the validation split where there is none
        (:func:`heldout_split`), encoded at the end for ``latent/heldout.csv``.
    :param val_batches: validation batches; the interpolations take pairs from the first batch (or from the
        held-out vectors when those are the validation split).
    :param health: the run's health verdict (tag ``health``; None: unknown); one that is not ``ok`` heads every
        figure's title and is ``health`` in ``latent/summary.json``.
    """
    device = next(network.parameters()).device
    extra: tuple = ({}, {}, {}, {})
    with eval_mode(network):
        z = encode_dataset(network.encode, batches, device, progress)
        report = ls.analyze_latents(z, settings, value_range=covering_range(z, settings.range), progress=progress,
                                    with_uniform_counts=final)
        traversals = traversal_figure(network, z, report, device, step)
        images, inside, titles = _generated(network, z, report, settings, device) if final else ({}, {}, {})
        if final:
            held, z_val = encode_held_out(network, heldout, val_batches, device, progress)
            extra = follow_ups(network, z, report, settings, device, heldout=held, z_val=z_val, progress=progress)
    metrics = latent_metrics(report)
    metrics.update({tracking.latent_metric(f"generated_{name}_in_region"): frac for name, frac in inside.items()})
    histograms = flag_unhealthy(plots.all_histograms(report.edges, report.counts), health)
    if not final:
        check_stop()
        writer.figure(tracking.LATENT_HISTOGRAMS_PNG, histograms, step_key=tracking.LATENT_HISTOGRAMS_IMAGE, step=step)
        writer.figure(tracking.LATENT_TRAVERSALS_PNG, traversals, step_key=tracking.LATENT_TRAVERSALS_IMAGE, step=step)
        writer.metrics(metrics, step=step)
        return report
    extra_figures, extra_tables, extra_metrics, extra_summary = extra
    metrics.update(extra_metrics)

    figures = {tracking.LATENT_DOMINANT_FITS_PNG: plots.dominant_fits(report.edges, report.counts, report.components)}
    uniform = {b: report.radius_samples[ls.uniform_label(b)] for b in settings.b}
    analytic = {b: ls.uniform_radius_moments(b, z.shape[1]) for b in settings.b}
    figures[tracking.LATENT_RADIUS_PNG] = plots.radius_distributions(report.radius_samples["data"], uniform, analytic)
    i, j = report.top_two
    figures[tracking.LATENT_SCATTER_PNG] = plots.correlation_scatter(z[:, i], z[:, j], i, j,
                                                                     max_points=settings.n_scatter, seed=settings.seed)
    if len(report.dominant_idx) >= 2:
        figures[tracking.LATENT_HEATMAP_PNG] = plots.correlation_heatmap(report.correlation, report.dominant_idx)
    figures[tracking.LATENT_PCA_PNG] = plots.pca_spectrum_plot(report.pca_ratios, report.n_pca_90)
    figures[tracking.LATENT_UNIFORM_HISTOGRAMS_PNG] = plots.uniform_histograms(report.edges, report.uniform_counts,
                                                                               report.counts)
    for name, imgs in images.items():
        figures[tracking.latent_generated_png(name)] = image_grid(imgs, cmap="gray", suptitle=titles[name],
                                                                  normalize_each=False)
    summary = {**report.summary, "n_pca_90": int(report.n_pca_90), "n_vectors": int(len(z)), "z_dim": int(z.shape[1]),
               **{f"generated_{name}_in_region_k{GENERATED_BOX_K:g}": frac for name, frac in inside.items()},
               **extra_summary,
               **({tracking.TAG_HEALTH: health} if health is not None else {})}
    keep = np.sort(np.random.default_rng(settings.seed).choice(len(z), size=min(len(z), settings.z_sample), replace=False))

    check_stop()  # a stop requested while drawing: nothing of this analysis is written
    writer.npz(tracking.LATENT_HISTOGRAMS, edges=report.edges, counts=report.counts.astype(np.int64))
    writer.table(tracking.LATENT_COMPONENTS, report.components)
    writer.table(tracking.LATENT_HIT_RATES, report.hits)
    writer.table(tracking.LATENT_RADIUS, report.radii)
    writer.json(tracking.LATENT_SUMMARY, summary)
    writer.npy(tracking.LATENT_Z_SAMPLE, z[keep].astype(np.float32))
    writer.npy(tracking.LATENT_Z_SAMPLE_INDEX, keep.astype(np.int64))
    for path, table in extra_tables.items():
        writer.table(path, table)
    writer.figure(tracking.LATENT_HISTOGRAMS_PNG, histograms, step_key=tracking.LATENT_HISTOGRAMS_IMAGE, step=step)
    writer.figure(tracking.LATENT_TRAVERSALS_PNG, flag_unhealthy(traversals, health),
                  step_key=tracking.LATENT_TRAVERSALS_IMAGE, step=step)
    for path, figure in {**figures, **extra_figures}.items():
        writer.figure(path, flag_unhealthy(figure, health))
    writer.metrics(metrics, step=step)
    return report


def heldout_split(datamodule) -> str:
    """The split the held-out analysis encodes: ``test``, or ``val`` where the data have no test images."""
    return "test" if len(datamodule.dataset("test")) else "val"


class LatentStatsLogger(PeriodicAnalysis):
    """Analyses the autoencoder's latent space at the end of training (and every ``every_n_epochs`` epochs).

    Needs the launcher's MLflow logger (for the run) and a DataModule with ``images_dataloader(split, batch_size)``.

    :param settings: what to compute and when (the ``analysis`` config section).
    """

    settings: LatentSettings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int,
               final: bool) -> None:
        datamodule, size = trainer.datamodule, self.settings.batch_size
        loader = datamodule.images_dataloader("train", batch_size=size)
        split = heldout_split(datamodule)
        record_latent_analysis(writer, pl_module.network, loader, self.settings, step=epoch,
                               progress=trainer.progress_bar_callback is not None, final=final,
                               heldout=(split, datamodule.images_dataloader(split, batch_size=size)),
                               val_batches=datamodule.images_dataloader("val", batch_size=size),
                               health=health_of(trainer) if final else None)
