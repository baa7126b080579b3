"""LightningModule for the convolutional autoencoders: reconstruction loss, per-epoch logging.

The losses are computed in float32 whatever the precision of the forward pass (``bf16-mixed`` autocast), and BCE
from the decoder's logits (``binary_cross_entropy_with_logits``): BCE on a sigmoid output is not autocast-safe
(torch refuses it under CUDA autocast) and loses precision where the sigmoid saturates.
"""

from __future__ import annotations

import torch

from lightning_modules.base import TrainableModule
from lightning_modules.data.arrays import images_of
from lightning_modules.losses import LOSS_FUNCTIONS, ReconstructionLoss


class AutoencoderModule(TrainableModule):
    """Trains an autoencoder (``network.encode``/``network.decode``) to reconstruct its input.

    Batches are image tensors (B, C, H, W) in [0, 1], or tuples whose first element is one (labels ignored).
    Logs per epoch ``train/loss``, ``val/loss``, ``test/loss``.

    :param loss: ``mse`` (default) or ``bce`` (the decoder ends in a sigmoid, so both apply; BCE is computed from
        the logits before it).
    Other arguments as :class:`~lightning_modules.base.TrainableModule`.
    """

    def __init__(self, *args, loss: ReconstructionLoss | str = ReconstructionLoss.mse, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if loss not in LOSS_FUNCTIONS:
            raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(ReconstructionLoss)}")
        self.loss_name = ReconstructionLoss(loss)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def reconstruction_loss(self, batch) -> torch.Tensor:
        """Mean reconstruction loss of a batch of images (B, C, H, W) in [0, 1]."""
        x = images_of(batch)
        return LOSS_FUNCTIONS[self.loss_name](self.network, x)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        loss = self.reconstruction_loss(batch)
        self.accumulate(stage, len(images_of(batch)), loss=loss)
        return loss
