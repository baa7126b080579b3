"""The learning rate each epoch trains with, logged as ``train/lr`` at the epoch as step."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer
from typing_extensions import override

from analysis import tracking


class EpochLearningRate(Callback):
    """Logs the first parameter group's learning rate at the start of every training epoch.

    Lightning's ``LearningRateMonitor`` logs at the global step; our runs step by epoch, and the schedules step at
    epoch end, so the value at an epoch's start is the one the whole epoch trains with (one-cycle aside).
    """

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.optimizers:
            pl_module.log(tracking.LEARNING_RATE, trainer.optimizers[0].param_groups[0]["lr"], on_step=False,
                          on_epoch=True)
