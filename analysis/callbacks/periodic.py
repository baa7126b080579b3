"""The timing shared by the analysis callbacks: after every n-th training epoch and once at the end of training."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from lightning import Callback, LightningModule, Trainer
from typing_extensions import override

from analysis import tracking


S = TypeVar("S")


def settings_from(cls: type[S], section: Mapping[str, Any]) -> S:
    """Build a settings dataclass from a config section, keeping the keys it knows (e.g. ``every_n_epochs`` and
    ``enabled`` belong to the launcher, not to the analysis)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in dict(section).items() if k in names})


class PeriodicAnalysis(Callback):
    """Calls :meth:`record` with a writer into the run at the end of training, and after every ``every_n_epochs``-th
    epoch, at most once per epoch; nothing on ranks > 0, in the sanity check, or without an MLflow logger.

    :param every_n_epochs: also record after every n-th training epoch (0: only at the end).
    :raises ValueError: ``every_n_epochs`` < 0.
    """

    def __init__(self, every_n_epochs: int = 0) -> None:
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self._last_epoch: int | None = None

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0 and epoch + 1 < trainer.max_epochs:
            self._maybe_record(trainer, pl_module, epoch)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # current_epoch has already moved past the last completed epoch here
        self._maybe_record(trainer, pl_module, max(trainer.current_epoch - 1, 0))

    def _maybe_record(self, trainer: Trainer, pl_module: LightningModule, epoch: int) -> None:
        writer = tracking.writer_for(trainer)
        if writer is None or self._last_epoch == epoch:
            return
        self._last_epoch = epoch
        self.record(trainer, pl_module, writer, epoch)

    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int) -> None:
        """Compute and log the analysis at step ``epoch``."""
        raise NotImplementedError
