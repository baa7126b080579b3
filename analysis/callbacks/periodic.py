"""The timing shared by the analysis callbacks: after every n-th training epoch and once at the end of training."""

from __future__ import annotations

import logging
import time

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import MLFlowLogger
from typing_extensions import override

from analysis import tracking
from analysis.settings import PeriodicSettings

log = logging.getLogger("latentdream")
TITLES = {"analysis": "latent analysis", "oip": "OIPs", "dream": "dreams"}  # by settings section, for the log line


def writer_for(trainer: Trainer) -> tracking.RunWriter | None:
    """A :class:`~analysis.tracking.RunWriter` for the MLflow run that ``trainer`` logs to, or None where nothing
    should be written: on ranks other than 0, during the sanity check, or without an MLflow logger (e.g.
    ``fast_dev_run``)."""
    if trainer.global_rank != 0 or trainer.sanity_checking:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger) and logger.run_id:
            return tracking.RunWriter(logger.experiment, logger.run_id)
    return None


class PeriodicAnalysis(Callback):
    """Calls :meth:`record` with a writer into the run at the end of training, and after every ``every_n_epochs``-th
    epoch, at most once per epoch; nothing on ranks > 0, in the sanity check, or without an MLflow logger.

    :param settings: the analysis' settings; their ``every_n_epochs`` (0: only at the end) sets the timing.
    """

    def __init__(self, settings: PeriodicSettings) -> None:
        self.settings = settings
        self._last_epoch: int | None = None

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        every = self.settings.every_n_epochs
        if every and (epoch + 1) % every == 0 and epoch + 1 < trainer.max_epochs:
            self._maybe_record(trainer, pl_module, epoch, final=False)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # current_epoch has already moved past the last completed epoch here
        self._maybe_record(trainer, pl_module, max(trainer.current_epoch - 1, 0), final=True)

    def _maybe_record(self, trainer: Trainer, pl_module: LightningModule, epoch: int, final: bool) -> None:
        writer = writer_for(trainer)
        if writer is None or self._last_epoch == epoch:
            return
        self._last_epoch = epoch
        start = time.perf_counter()
        self.record(trainer, pl_module, writer, epoch, final)
        title = TITLES.get(self.settings.SECTION, self.settings.SECTION)
        log.info("  %s after epoch %d: %.1f s", title, epoch, time.perf_counter() - start)

    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int,
               final: bool) -> None:
        """Compute and log the analysis at step ``epoch``; ``final`` at the end of training (the full analysis),
        else after an epoch during training (what changes over training, at the settings' reduced cost)."""
        raise NotImplementedError
