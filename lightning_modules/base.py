"""What both LightningModules share: optimizer/scheduler wiring, per-epoch metric means, the input memory layout
(the precisions their losses are safe in: :mod:`lightning_modules.precision`)."""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
import torch
from torch import nn

from lightning_modules.optim import OptimizerFactory, SchedulerFactory, weight_decay_groups

class TrainableModule(L.LightningModule):
    """Holds ``network`` (a plain ``nn.Module``) and builds its optimizer from half-built factories.

    :param network: the network to train.
    :param optimizer_factory: ``param_groups -> Optimizer`` (see :mod:`lightning_modules.optim`).
    :param scheduler_factory: ``(optimizer, max_epochs, total_steps) -> lr_scheduler dict`` or None.
    :param weight_decay: L2 regularisation of the weights (not biases).
    :param channels_last: keep the network's conv weights and every batch's images in channels-last (NHWC)
        memory layout, which tensor-core convolutions prefer (``model.channels_last``); values are unchanged.
    """

    def __init__(
        self,
        network: nn.Module,
        optimizer_factory: OptimizerFactory,
        scheduler_factory: SchedulerFactory | None = None,
        weight_decay: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.network = network.to(memory_format=torch.channels_last) if channels_last else network
        self.channels_last = channels_last
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.weight_decay = weight_decay
        self._sums: dict[str, dict[str, torch.Tensor]] = {}
        self._counts: dict[str, int] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets ``_current_fx_name`` around every hook call, about 40 times a training step, and
        # nn.Module.__setattr__ first searches parameters, buffers and submodules: a plain attribute skips that
        # (0.2-0.4 ms a step on a CPU, time a GPU would otherwise wait for).
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def laid_out(self, batch: Any) -> Any:
        """The batch with its images in the network's memory layout (a no-op unless ``channels_last``).

        Done in the step rather than in ``on_after_batch_transfer``, which Lightning warns about when a DataModule
        is in use too."""
        if not self.channels_last:
            return batch
        if isinstance(batch, (tuple, list)):
            return type(batch)([batch[0].contiguous(memory_format=torch.channels_last), *batch[1:]])
        return batch.contiguous(memory_format=torch.channels_last)

    def _shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        """The loss of ``batch``, its metrics accumulated for ``stage`` (``train``, ``val`` or ``test``)."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._shared_step(self.laid_out(batch), "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(self.laid_out(batch), "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(self.laid_out(batch), "test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(weight_decay_groups(self.network, self.weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        schedule = self.scheduler_factory(optimizer, self.trainer.max_epochs, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def accumulate(self, stage: str, n: int, **batch_means: torch.Tensor) -> None:
        """Add a batch's means (weighted by its ``n`` samples) to the epoch's running sums; they are logged once,
        as ``stage/name``, when the epoch ends.

        Why not ``self.log(..., on_epoch=True)`` per step: its bookkeeping costs about a millisecond of Python per
        call on every training batch, a few percent of a small CNN's step on a CPU; two in-place adds cost microseconds.
        """
        sums = self._sums.setdefault(stage, {})
        for name, value in batch_means.items():
            if name in sums:
                sums[name].add_(value.detach(), alpha=n)  # one kernel: on a GPU each launch counts
            else:
                sums[name] = value.detach().float() * n
        self._counts[stage] = self._counts.get(stage, 0) + n

    def _log_epoch_means(self, stage: str) -> None:
        sums, n = self._sums.pop(stage, {}), self._counts.pop(stage, 0)
        if n:
            means = {f"{stage}/{name}": total / n for name, total in sums.items()}
            self.log_dict(means, on_step=False, on_epoch=True, sync_dist=True, prog_bar=stage != "train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_means("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_means("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_means("test")


# Lightning inspects training_step's signature on every step (inspect.getfullargspec, 0.1-0.2 ms a step on a CPU);
# inspect returns a function's __signature__ first when it has one.
TrainableModule.training_step.__signature__ = inspect.signature(TrainableModule.training_step)
