"""The autoencoders' reconstruction losses, computed in float32 whatever the precision of the forward pass, BCE from
the decoder's logits (plain torch: the schema reads the choices without importing Lightning)."""

from __future__ import annotations

from enum import StrEnum

import torch
from torch.nn import functional as F


class ReconstructionLoss(StrEnum):
    """The autoencoder's loss (config key ``model.loss``)."""

    mse = "mse"
    bce = "bce"


def _mse(network, x: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(network(x).float(), x)


def _bce(network, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(network.decode_logits(network.encode(x)).float(), x)


LOSS_FUNCTIONS = {ReconstructionLoss.mse: _mse, ReconstructionLoss.bce: _bce}
