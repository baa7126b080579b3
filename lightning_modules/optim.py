"""Optimizers and LR schedules: their settings (the config sections ``optim`` and ``scheduler``) and the half-built
factories the LightningModules receive.

The modules receive two factories — ``optimizer_factory(param_groups)`` and
``scheduler_factory(optimizer, max_epochs, total_steps)`` — so swapping SGD for Adam, or step for one-cycle, is a
config edit.

SGD, Adam and AdamW are built with ``fused=True`` where torch has fused kernels for the parameters' device
(:data:`FUSED_DEVICES`): one kernel per step instead of a dozen launches on a GPU, and a fused optimizer skips its
update on the device when its ``found_inf`` flag is set, which the NaN guard uses
(:class:`experiments.run.guards.RunGuard`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from latentdream.errors import require

OptimizerFactory = Callable[[list[dict]], torch.optim.Optimizer]
#: Device types whose fused SGD/Adam/AdamW kernels these optimizers use (torch has them for both since 2.4).
FUSED_DEVICES = ("cuda", "cpu")
SchedulerFactory = Callable[[torch.optim.Optimizer, int, int], dict[str, Any]]


class Optimizer(StrEnum):
    """Training optimizers (config key ``optim.name``)."""

    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"
    rmsprop = "rmsprop"


class Schedule(StrEnum):
    """Learning-rate schedules (config key ``scheduler.name``)."""

    none = "none"
    step = "step"
    cosine = "cosine"
    plateau = "plateau"
    onecycle = "onecycle"


@dataclass(frozen=True)
class OptimizerSettings:
    """The ``optim`` section. ``weight_decay`` is the L2 regulariser, applied to weights only (not biases or norms);
    ``momentum`` is SGD's and RMSprop's, ``betas`` Adam's."""

    SECTION: ClassVar[str] = "optim"

    name: Optimizer = Optimizer.sgd
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])

    def __post_init__(self) -> None:
        require(0 < self.lr < math.inf, "optim.lr", self.lr, "it must be a finite number > 0")
        for key in ("momentum", "weight_decay"):
            value = getattr(self, key)
            require(value >= 0, f"optim.{key}", value, "it must be >= 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas", list(self.betas),
                "give [beta1, beta2], each in [0, 1)")


@dataclass(frozen=True)
class ScheduleSettings:
    """The ``scheduler`` section. ``step``: LR × gamma every ``step_size`` epochs; ``cosine``: to ``min_lr`` over all
    epochs; ``plateau``: × factor after ``patience`` epochs without improvement; ``onecycle``: per batch, peaking at
    ``max_lr`` (null: the optimizer's LR) after ``pct_start`` of the steps."""

    SECTION: ClassVar[str] = "scheduler"

    name: Schedule = Schedule.none
    step_size: int = 4
    gamma: float = 0.3
    min_lr: float = 0.0
    factor: float = 0.5
    patience: int = 2
    max_lr: Optional[float] = None
    pct_start: float = 0.3

    def __post_init__(self) -> None:
        require(self.step_size > 0, "scheduler.step_size", self.step_size, "it must be > 0")
        require(self.gamma > 0, "scheduler.gamma", self.gamma, "it must be > 0")
        require(0 < self.factor < 1, "scheduler.factor", self.factor, "it must be in (0, 1)")
        require(0 < self.pct_start < 1, "scheduler.pct_start", self.pct_start, "it must be in (0, 1)")
        require(self.min_lr >= 0, "scheduler.min_lr", self.min_lr, "it must be >= 0")
        require(self.patience >= 0, "scheduler.patience", self.patience, "it must be >= 0")


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters so the L2 penalty hits weights only: tensors with ndim ≥ 2 (conv kernels, dense
    matrices) get ``weight_decay``; biases and norm scales (ndim 1) get none, as regularising them only shifts
    the activations' offsets."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _build(cls: type, kwargs: dict, params: list) -> torch.optim.Optimizer:
    """``cls(params, **kwargs)``, with ``fused=True`` when all ``params`` (tensors or param-group dicts) sit on one
    :data:`FUSED_DEVICES` device; otherwise torch's default (foreach) implementation."""
    devices = {p.device.type for g in params for p in (g["params"] if isinstance(g, dict) else [g])}
    fused = len(devices) == 1 and devices <= set(FUSED_DEVICES)
    return cls(params, **kwargs, **({"fused": True} if fused else {}))


def make_optimizer_factory(settings: OptimizerSettings) -> OptimizerFactory:
    """Factory ``param_groups -> Optimizer`` for ``settings.name`` (the groups carry the weight decay)."""
    s = settings
    if s.name == Optimizer.sgd:
        nesterov = s.nesterov and s.momentum > 0
        return partial(_build, torch.optim.SGD, dict(lr=s.lr, momentum=s.momentum, nesterov=nesterov))
    if s.name == Optimizer.adam:
        return partial(_build, torch.optim.Adam, dict(lr=s.lr, betas=tuple(s.betas)))
    if s.name == Optimizer.adamw:
        return partial(_build, torch.optim.AdamW, dict(lr=s.lr, betas=tuple(s.betas)))
    if s.name == Optimizer.rmsprop:  # torch has no fused RMSprop
        return partial(torch.optim.RMSprop, lr=s.lr, momentum=s.momentum)
    raise ValueError(f"unknown optimizer {s.name!r}; allowed: {', '.join(Optimizer)}")


def make_scheduler_factory(settings: ScheduleSettings, monitor: str) -> SchedulerFactory | None:
    """Factory ``(optimizer, max_epochs, total_steps) -> Lightning lr_scheduler dict``, or None for ``none``.

    :param monitor: the metric ``plateau`` watches (the launcher passes the validation loss's key).
    """
    s = settings
    if s.name == Schedule.none:
        return None
    if s.name not in set(Schedule):
        raise ValueError(f"unknown schedule {s.name!r}; allowed: {', '.join(Schedule)}")

    def build(optimizer: torch.optim.Optimizer, max_epochs: int, total_steps: int) -> dict[str, Any]:
        sched = torch.optim.lr_scheduler
        if s.name == Schedule.step:
            return {"scheduler": sched.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma), "interval": "epoch"}
        if s.name == Schedule.cosine:
            return {"scheduler": sched.CosineAnnealingLR(optimizer, T_max=max_epochs, eta_min=s.min_lr),
                    "interval": "epoch"}
        if s.name == Schedule.plateau:
            plateau = sched.ReduceLROnPlateau(optimizer, factor=s.factor, patience=s.patience, min_lr=s.min_lr)
            return {"scheduler": plateau, "interval": "epoch", "monitor": monitor}
        peak = s.max_lr or optimizer.param_groups[0]["lr"]  # onecycle
        cycle = sched.OneCycleLR(optimizer, max_lr=peak, total_steps=max(total_steps, 1), pct_start=s.pct_start)
        return {"scheduler": cycle, "interval": "step"}

    return build
