"""The analyses after an epoch during training are the cheaper ones: the latent analysis logs only what changes over
training (histograms, traversals, summary metrics), the OIPs render with ``oip.epoch_steps``; the end of training logs all."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from analysis import tracking
from analysis.callbacks import oip as oip_callback
from analysis.callbacks.latent import record_latent_analysis
from analysis.callbacks.oip import OIPLogger
from analysis.settings import LatentSettings, OIPSettings
from lightning_modules.networks import ConvAutoencoder
from tests.unit.test_figures import CapturingClient


class MetricClient(CapturingClient):
    def __init__(self) -> None:
        super().__init__()
        self.metric_keys: set[str] = set()

    def log_batch(self, run_id, metrics=(), **kwargs):
        self.metric_keys |= {m.key for m in metrics}


def _latent(final: bool) -> MetricClient:
    torch.manual_seed(0)
    ae = ConvAutoencoder(in_channels=1, image_size=32, encoder_filters=[4, 8], encoder_kernels=[3, 3],
                         encoder_strides=[2, 2], decoder_filters=[8], decoder_kernels=[3, 3], decoder_strides=[2, 2],
                         z_dim=16).eval()
    batches = [torch.rand(32, 1, 32, 32) for _ in range(4)]
    client = MetricClient()
    settings = LatentSettings(n_random=200, n_generate=4, z_sample=10, n_scatter=20)
    held_out = [torch.rand(16, 1, 32, 32) for _ in range(2)]
    record_latent_analysis(tracking.RunWriter(client, "run"), ae, batches, settings, step=0, progress=False,
                           final=final, heldout=("test", held_out), val_batches=held_out[::-1])
    return client


def test_a_latent_analysis_during_training_logs_only_histograms_traversals_and_metrics():
    during, end = _latent(final=False), _latent(final=True)
    # besides the two figures, only the stepped images' files under MLflow's images/ folder
    assert {f for f in during.files if not f.startswith((f"{tracking.IMAGES_DIR}/", "tag:"))} == {
        tracking.LATENT_HISTOGRAMS_PNG, tracking.LATENT_TRAVERSALS_PNG}
    assert tracking.latent_metric("pca_90") in during.metric_keys
    assert {tracking.LATENT_COMPONENTS, tracking.LATENT_UNIFORM_HISTOGRAMS_PNG, tracking.latent_generated_png("uniform"),
            tracking.LATENT_TRAVERSALS_PNG, tracking.LATENT_INTERPOLATIONS_PNG, tracking.LATENT_INTERPOLATIONS,
            tracking.LATENT_MAHALANOBIS_PNG, tracking.LATENT_MAHALANOBIS, tracking.LATENT_HELDOUT,
            tracking.LATENT_HIT_RATES_PCA} <= set(end.files)
    # the end adds the generators' in-region fractions, the KS statistic and the held-out shares
    assert during.metric_keys < end.metric_keys
    assert {tracking.LATENT_MAHALANOBIS_KS, tracking.latent_test_region_metric(2.0)} <= end.metric_keys - during.metric_keys


def test_oips_during_training_render_with_epoch_steps(monkeypatch):
    from analysis.callbacks.health import HealthCheck
    from analysis.health.settings import HealthSettings
    from analysis.health.verdict import HealthNumbers, judge

    seen = []
    monkeypatch.setattr(oip_callback, "record_oips",
                        lambda writer, network, settings, epoch, progress, final, data, health:
                        seen.append((settings.steps, final, data, health)))
    logger = OIPLogger(OIPSettings(steps=150, epoch_steps=30, every_n_epochs=1))
    check = HealthCheck(HealthSettings())  # the verdict exists at the end of training, before the final render
    check.verdict = judge(HealthNumbers(silent_maps={"conv3": 1.0}), check.settings)
    val = SimpleNamespace(images_dataloader=lambda split, batch_size: (split, batch_size))
    trainer = SimpleNamespace(progress_bar_callback=None, datamodule=val, callbacks=[check, logger])
    logger.record(trainer, SimpleNamespace(network=None), writer=None, epoch=0, final=False)
    logger.record(trainer, SimpleNamespace(network=None), writer=None, epoch=1, final=True)
    # the dataset examples search the validation images, once, at the end; the final render carries the verdict
    assert seen == [(30, False, None, None), (150, True, ("val", oip_callback.EXAMPLES_BATCH),
                                              "silent: 100 % of conv3's maps never fire on validation data")]
