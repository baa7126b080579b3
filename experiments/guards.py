"""What keeps a training run safe inside Lightning's loops: the non-finite-loss guard, atomic checkpoints, the
signal that stopped a fit, and DDP worker ranks joining their parent's run.

Opening, resuming and ending the run itself is :mod:`experiments.store`. The guarantees are listed in
``docs/reliability.md``. Launcher glue: imports Lightning.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from typing_extensions import override

from latentdream.errors import NonFiniteLossError

RUN_ID_ENV = "LATENTDREAM_RUN_ID"
"""The parent of a DDP job passes its run id to the worker ranks it launches through this variable."""


# --- checkpoints and the loss guard ------------------------------------------------------------------------------
class AtomicModelCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that writes ``<name>.tmp`` and renames it into place (``os.replace`` is atomic on one
    file system), so a process killed while saving leaves the previous checkpoint intact, never a torn file."""

    @override
    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        # trainer.save_checkpoint writes on global rank 0 only (and holds a barrier): rename there only.
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        self._last_checkpoint_saved = filepath


class RunGuard(Callback):
    """Stops training at the first non-finite loss, remembers how fit ended, and carries two test-only knobs.

    The loss is checked in ``on_before_backward``, i.e. before a NaN gradient can reach the weights, so the last
    checkpoint (and the weights in memory) stay those of the last good step.

    :param inject_nan_at_step: TEST ONLY: at this global step the training batch is filled with NaN, so the
        forward pass yields a genuinely non-finite loss.
    :param sleep_per_batch: TEST ONLY: seconds to sleep after each training batch (makes kill timing reliable).
    """

    def __init__(self, inject_nan_at_step: int | None = None, sleep_per_batch: float = 0.0) -> None:
        self.inject_nan_at_step = inject_nan_at_step
        self.sleep_per_batch = sleep_per_batch
        self.exception: BaseException | None = None
        self.in_loop = False  # inside fit/test, where Lightning's own SIGTERM handling applies

    @override
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.in_loop = True

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.in_loop = False

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.inject_nan_at_step is not None and trainer.global_step == self.inject_nan_at_step:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            images.fill_(float("nan"))

    @override
    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(
                f"training loss is {loss.detach().float().mean().item()} at epoch {trainer.current_epoch}, "
                f"global step {trainer.global_step}; stopped before the update (the last good checkpoint is kept)"
            )

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.sleep_per_batch > 0:
            time.sleep(self.sleep_per_batch)

    @override
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.exception = exception


def interrupt_signal(exc: BaseException, guard: RunGuard) -> int | None:
    """The signal that stopped training, if ``exc`` (or the exception Lightning saw first) is an interrupt.

    Lightning turns Ctrl-C inside ``fit`` into ``sys.exit(1)`` and SIGTERM into a ``SIGTERMException`` (both
    ``SystemExit``); the guard's ``on_exception`` saw the original.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    for candidate in (exc, guard.exception):
        if isinstance(candidate, KeyboardInterrupt):
            return int(signal.SIGINT)
        if isinstance(candidate, SIGTERMException):
            return int(signal.SIGTERM)
    return None


# --- DDP --------------------------------------------------------------------------------------------------------
def ddp_worker_run_id() -> str | None:
    """The parent's run id when this process is a DDP worker rank (> 0) launched by Lightning, else None.

    Lightning's subprocess launcher re-executes the command line with ``LOCAL_RANK``/``NODE_RANK`` set; the
    parent exports :data:`RUN_ID_ENV` before it launches them.
    """
    run_id = os.environ.get(RUN_ID_ENV)
    rank = int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)
    return run_id if run_id and rank > 0 else None


@contextlib.contextmanager
def exported_run_id(run_id: str) -> Iterator[None]:
    """Export :data:`RUN_ID_ENV` while the trainer launches its worker ranks; restore the environment after."""
    old = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = run_id
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = old
