"""Optimizers and LR schedules built from plain arguments, handed half-built to the LightningModules.

The modules receive two factories — ``optimizer_factory(param_groups)`` and
``scheduler_factory(optimizer, total_steps)`` — so swapping SGD for Adam, or step for one-cycle, is a config edit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[[list[dict]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int, int], dict[str, Any]]


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters so the L2 penalty hits weights only: tensors with ndim ≥ 2 (conv kernels, dense
    matrices) get ``weight_decay``; biases and norm scales (ndim 1) get none, as regularising them only shifts
    the activations' offsets."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer_factory(
    name: str, lr: float, momentum: float = 0.9, nesterov: bool = False, betas: Sequence[float] = (0.9, 0.999)
) -> OptimizerFactory:
    """Factory for ``sgd`` (with momentum), ``adam``, ``adamw`` or ``rmsprop`` taking parameter groups."""
    if name == "sgd":
        return partial(torch.optim.SGD, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adam":
        return partial(torch.optim.Adam, lr=lr, betas=tuple(betas))
    if name == "adamw":
        return partial(torch.optim.AdamW, lr=lr, betas=tuple(betas))
    if name == "rmsprop":
        return partial(torch.optim.RMSprop, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}")


def make_scheduler_factory(
    name: str,
    *,
    step_size: int = 4,
    gamma: float = 0.3,
    min_lr: float = 0.0,
    factor: float = 0.5,
    patience: int = 2,
    max_lr: float | None = None,
    pct_start: float = 0.3,
    monitor: str = "val/loss",
) -> SchedulerFactory | None:
    """Factory ``(optimizer, max_epochs, total_steps) -> Lightning lr_scheduler dict``, or None for ``none``.

    ``step``: LR × gamma every ``step_size`` epochs; ``cosine``: to ``min_lr`` over all epochs; ``plateau``: × factor
    after ``patience`` epochs without improvement of ``monitor``; ``onecycle``: per batch, peaking at ``max_lr``
    (default: the optimizer's LR) after ``pct_start`` of the steps.
    """
    if name == "none":
        return None

    def build(optimizer: torch.optim.Optimizer, max_epochs: int, total_steps: int) -> dict[str, Any]:
        sched = torch.optim.lr_scheduler
        if name == "step":
            return {"scheduler": sched.StepLR(optimizer, step_size=step_size, gamma=gamma), "interval": "epoch"}
        if name == "cosine":
            return {"scheduler": sched.CosineAnnealingLR(optimizer, T_max=max_epochs, eta_min=min_lr), "interval": "epoch"}
        if name == "plateau":
            plateau = sched.ReduceLROnPlateau(optimizer, factor=factor, patience=patience, min_lr=min_lr)
            return {"scheduler": plateau, "interval": "epoch", "monitor": monitor}
        if name == "onecycle":
            peak = max_lr or optimizer.param_groups[0]["lr"]
            cycle = sched.OneCycleLR(optimizer, max_lr=peak, total_steps=max(total_steps, 1), pct_start=pct_start)
            return {"scheduler": cycle, "interval": "step"}
        raise ValueError(f"unknown scheduler {name!r}")

    return build
