"""``with eval_mode(network):`` — analyses run a network in eval mode and hand it back in the mode it came in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and restore its training flag afterwards, also after an error
    (a callback that left a network in eval mode would silently disable dropout for the rest of training)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
