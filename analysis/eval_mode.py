"""``with eval_mode(network):`` — how analyses run a network: in eval mode and in exact fp32, handing it back as it
came in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and restore its training flag afterwards, also after an error (a
    callback that left a network in eval mode would silently disable dropout for the rest of training).

    TF32 is switched off for the block (and restored): on an Ampere-or-later GPU convolutions and matmuls otherwise
    round to 10-bit mantissas, and a batch of OIPs then no longer equals the same OIPs one at a time; analyses are
    measurements, not training, and stay exact fp32. No effect on a CPU.
    """
    was_training = module.training
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    module.eval()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield module
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        module.train(was_training)
