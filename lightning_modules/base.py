"""What both LightningModules share: optimizer/scheduler wiring and learning-rate logging."""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import nn

from lightning_modules.optim import OptimizerFactory, SchedulerFactory, weight_decay_groups


class TrainableModule(L.LightningModule):
    """Holds ``network`` (a plain ``nn.Module``) and builds its optimizer from half-built factories.

    :param network: the network to train.
    :param optimizer_factory: ``param_groups -> Optimizer`` (see :mod:`lightning_modules.optim`).
    :param scheduler_factory: ``(optimizer, max_epochs, total_steps) -> lr_scheduler dict`` or None.
    :param weight_decay: L2 regularisation of the weights (not biases).
    """

    def __init__(
        self,
        network: nn.Module,
        optimizer_factory: OptimizerFactory,
        scheduler_factory: SchedulerFactory | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.network = network
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.weight_decay = weight_decay

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(weight_decay_groups(self.network, self.weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        schedule = self.scheduler_factory(optimizer, self.trainer.max_epochs, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_train_epoch_start(self) -> None:
        # The LR the epoch trains with, at the epoch as step (the schedule steps at epoch end).
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)
