"""LightningModule for the MNIST CNN: cross-entropy, accuracy, per-epoch logging."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from lightning_modules.base import TrainableModule


class ClassifierModule(TrainableModule):
    """Trains a classifier network on (image, label) batches.

    Logs per epoch: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc`` (the
    learning rate is logged by the launcher). Arguments as :class:`~lightning_modules.base.TrainableModule`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def loss_and_accuracy(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy (in float32, whatever the forward pass's precision) and accuracy of an
        (images (B,1,H,W), labels (B,)) batch."""
        x, y = batch
        logits = self.network(x).float()
        return F.cross_entropy(logits, y), (logits.argmax(dim=1) == y).float().mean()

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        loss, acc = self.loss_and_accuracy(batch)
        self.accumulate(stage, len(batch[1]), loss=loss, acc=acc)
        return loss
