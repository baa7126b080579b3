"""The health verdict of a training run, at the end of training and before the analyses draw their figures.

:class:`HealthCheck` makes one cheap pass over validation images where the model runs
(:mod:`analysis.health.probe`), reads the ``val/loss`` of every epoch back from the run, judges them
(:func:`analysis.health.verdict.judge`) and logs the tag ``health`` and the ``health/*`` metrics. The analysis
callbacks after it in the trainer's list read the verdict with :func:`health_of` and put it in their titles.
"""

from __future__ import annotations

import logging
import time

from lightning import Callback, LightningModule, Trainer
from typing_extensions import override

from analysis import tracking
from analysis.callbacks.periodic import writer_for
from analysis.eval_mode import eval_mode
from analysis.health.probe import probe_autoencoder, probe_conv_maps
from analysis.health.settings import HealthSettings
from analysis.health.verdict import HealthNumbers, Verdict, judge

log = logging.getLogger("latentdream")


class HealthCheck(Callback):
    """Judges whether the trained network learned anything, once, at the end of training (rank 0, with an MLflow
    logger); :attr:`verdict` holds the result (None before, or where nothing is logged).

    Put it before the analysis callbacks: Lightning calls ``on_train_end`` in the order of the list.

    :param settings: the thresholds (the ``health`` config section).
    """

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self.verdict: Verdict | None = None

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = writer_for(trainer)
        if writer is None:
            return
        start = time.perf_counter()
        self.verdict = judge(self._numbers(trainer, pl_module, writer), self.settings)
        epoch = max(trainer.current_epoch - 1, 0)  # current_epoch has moved past the last completed epoch here
        writer.tag(tracking.TAG_HEALTH, self.verdict.tag)
        writer.metrics(self.verdict.metrics(), step=epoch)
        log.info("  health check after epoch %d: %.1f s, %s", epoch, time.perf_counter() - start, self.verdict.tag)

    def _numbers(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter) -> HealthNumbers:
        history = sorted(writer.client.get_metric_history(writer.run_id, tracking.VAL_LOSS), key=lambda m: m.step)
        network, s = pl_module.network, self.settings
        device = next(network.parameters()).device
        batches = trainer.datamodule.images_dataloader("val", batch_size=s.batch_size, device=device)
        with eval_mode(network):
            if hasattr(network, "encode") and hasattr(network, "decode"):
                found = probe_autoencoder(network, batches, device, s.saturation_margin, s.max_images)
                return HealthNumbers([m.value for m in history], found.get("saturated_outputs"),
                                     found.get("pc1_share"))
            silent = probe_conv_maps(network, batches, device, s.max_images)
        return HealthNumbers([m.value for m in history], silent_maps=silent)


def health_of(trainer: Trainer) -> str | None:
    """The value of the tag ``health`` that the trainer's :class:`HealthCheck` logged (None: none has, yet)."""
    for callback in trainer.callbacks:
        if isinstance(callback, HealthCheck) and callback.verdict is not None:
            return callback.verdict.tag
    return None
