"""What keeps a training run safe inside Lightning's loops: the non-finite-loss guard, atomic checkpoints, the
signal that stopped a fit, and DDP worker ranks joining their parent's run.

Opening, resuming and ending the run itself is :mod:`experiments.run.store`. The guarantees are listed in
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

from latentdream.errors import DiskFullError, NonFiniteLossError, disk_full
from latentdream.stopping import StopRequested
from lightning_modules.data.arrays import images_of

RUN_ID_ENV = "LATENTDREAM_RUN_ID"
"""The parent of a DDP job passes its run id to the worker ranks it launches through this variable."""


# --- checkpoints and the loss guard ------------------------------------------------------------------------------
class AtomicModelCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that writes ``<name>.tmp`` and renames it into place (``os.replace`` is atomic on one
    file system), so a process killed while saving leaves the previous checkpoint intact, never a torn file."""

    @override
    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        try:
            # trainer.save_checkpoint writes on global rank 0 only (and holds a barrier): rename there only.
            super()._save_checkpoint(trainer, tmp)
            if trainer.is_global_zero:
                os.replace(tmp, filepath)
        except BaseException as err:
            # an interrupt during the save stays an interrupt (the run ends KILLED), whatever space is left
            full = isinstance(err, Exception) and disk_is_full(err, os.path.dirname(filepath) or ".")
            with contextlib.suppress(OSError):
                os.remove(tmp)  # never leave a partial file behind (it may be what filled the disk)
            if full:
                raise DiskFullError(os.path.dirname(filepath), os.path.basename(filepath)) from err
            raise
        self._last_checkpoint_saved = filepath


def disk_is_full(err: BaseException, folder: str) -> bool:
    """Whether ``err`` (or an error it was raised from) is ENOSPC/EDQUOT, or ``folder``'s disk has no space left —
    torch reports a failed write as a ``RuntimeError`` ("file write failed") without the errno."""
    if disk_full(err) is not None:
        return True
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 64 * 1024


#: How many training steps the NaN guard lets pass between reads of the recorded losses (each read waits for the
#: device). It also checks at every epoch end, before validation and before any checkpoint is written.
CHECK_EVERY_N_STEPS = 100


class RunGuard(Callback):
    """Stops training at the first non-finite loss, remembers how fit ended, and carries two test-only knobs.

    Guarantee: a non-finite training loss never updates the weights, no checkpoint is written after it, and fit
    ends with :class:`~latentdream.errors.NonFiniteLossError` naming the loss, its epoch and its global step.

    How, without reading the loss back every step (which would make the CPU wait for the GPU each batch): each
    loss is copied into a small on-device window and checked there by the kernel GradScaler uses
    (``torch._amp_foreach_non_finite_check_and_unscale_``), which sets a float flag to 1 at a non-finite value and
    never resets it. The (fused) optimizers read that flag as their ``found_inf``: a fused SGD/Adam/AdamW skips its
    whole update on the device when it is set, and keeps skipping. The window is read on the host every
    ``check_every_n_steps`` steps, at each epoch end, before validation and before a checkpoint is saved; the
    first non-finite loss then raises. Training thus runs at most ``check_every_n_steps - 1`` steps past the bad
    one, all of them without an update. Where the update cannot be skipped on the device — an optimizer without
    a fused kernel (RMSprop), a GradScaler, or several DDP ranks (each sees only its own loss) — every loss is
    read at once, before its update, as before.

    :param inject_nan_at_step: TEST ONLY: at this global step the training batch is filled with NaN, so the
        forward pass yields a genuinely non-finite loss.
    :param sleep_per_batch: TEST ONLY: seconds to sleep after each training batch (makes kill timing reliable).
    :param check_every_n_steps: steps between host reads of the losses when the update can be skipped on the device.
    """

    def __init__(self, inject_nan_at_step: int | None = None, sleep_per_batch: float = 0.0,
                 check_every_n_steps: int = CHECK_EVERY_N_STEPS) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps={check_every_n_steps} must be >= 1")
        self.inject_nan_at_step = inject_nan_at_step
        self.sleep_per_batch = sleep_per_batch
        self.check_every_n_steps = check_every_n_steps
        self.exception: BaseException | None = None
        self.skips_on_device = False
        self._losses: torch.Tensor | None = None  # the window of recorded losses, on the module's device
        self._slots: list[torch.Tensor] = []  # its one-element views, made once (indexing per step costs a dispatch)
        self._where: list[tuple[int, int]] = []  # (epoch, global step) of each recorded loss
        self._found_inf: torch.Tensor | None = None
        self._optimizers: list = []

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for optimizer in self._optimizers:  # leave the optimizers as they were built
            optimizer.__dict__.pop("found_inf", None)
        self._optimizers = []

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.skips_on_device = _can_skip_on_device(trainer)
        window = self.check_every_n_steps if self.skips_on_device else 1
        self._losses = torch.empty(window, dtype=torch.float32, device=pl_module.device)
        self._slots = list(self._losses.split(1))
        self._where = []
        if self.skips_on_device:
            self._found_inf = torch.zeros((), dtype=torch.float32, device=pl_module.device)
            self._one = torch.ones((), dtype=torch.float32, device=pl_module.device)
            self._optimizers = list(trainer.optimizers)
            for optimizer in self._optimizers:
                optimizer.found_inf = self._found_inf

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.inject_nan_at_step is not None and trainer.global_step == self.inject_nan_at_step:
            images = images_of(batch)
            images.fill_(float("nan"))

    @override
    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
        if len(self._where) == len(self._losses):
            self._check()
        slot = self._slots[len(self._where)]
        slot.copy_(loss.detach())  # a scalar: Lightning's backward needs one
        self._where.append((trainer.current_epoch, trainer.global_step))
        if self.skips_on_device:  # two small kernels, no wait; multiplying the slot by 1 leaves it as it is
            torch._amp_foreach_non_finite_check_and_unscale_([slot], self._found_inf, self._one)
        else:
            self._check()  # before the update: no way to skip it on the device

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.sleep_per_batch > 0:
            time.sleep(self.sleep_per_batch)
        if len(self._where) >= self.check_every_n_steps:
            self._check()

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._check()

    @override
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._check()  # ModelCheckpoint saves when validation ends

    @override
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self._check()  # raising here keeps the file from being written

    @override
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._check()

    @override
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.exception = exception

    def _check(self) -> None:
        """Read the recorded losses (one wait for the device) and raise at the first non-finite one."""
        if not self._where:
            return
        losses, where = self._losses[: len(self._where)].cpu(), self._where
        self._where = []
        bad = torch.nonzero(~torch.isfinite(losses)).flatten().tolist()
        if bad:
            epoch, step = where[bad[0]]
            raise NonFiniteLossError(
                f"training loss is {losses[bad[0]].item()} at epoch {epoch}, global step {step}; "
                "stopped before the update (the last good checkpoint is kept)"
            )


def _can_skip_on_device(trainer: Any) -> bool:
    """Whether every optimizer can skip its update on the device (fused, read ``found_inf``), nothing else sets
    that flag (a GradScaler), and one rank decides alone."""
    fused = all(getattr(opt, "_step_supports_amp_scaling", False) and all(g.get("fused") for g in opt.param_groups)
                for opt in trainer.optimizers)
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    return bool(trainer.optimizers) and fused and scaler is None and trainer.world_size == 1


def interrupt_signal(exc: BaseException, guard: RunGuard) -> int | None:
    """The signal that stopped training, if ``exc`` (or the exception Lightning saw first) is an interrupt.

    Lightning turns Ctrl-C inside ``fit`` into ``sys.exit(1)`` and SIGTERM into a ``SIGTERMException`` (both
    ``SystemExit``); the guard's ``on_exception`` saw the original. A SIGTERM seen by a unit of work outside
    Lightning's loops (the analyses at the end of training, the phases after fit) is a
    :class:`~latentdream.stopping.StopRequested`.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    for candidate in (exc, guard.exception):
        if isinstance(candidate, StopRequested):  # a unit of work after Lightning's last check saw the signal
            return candidate.signum
        if isinstance(candidate, KeyboardInterrupt):
            return int(signal.SIGINT)
        if isinstance(candidate, SIGTERMException):
            return int(signal.SIGTERM)
    return None


# --- DDP --------------------------------------------------------------------------------------------------------
def ddp_worker_run_id() -> str | None:
    """The parent's run id when this process is a DDP worker rank (> 0) launched by Lightning, else None; under
    torchrun (several nodes), any global rank > 0 is a worker, which trains in step and logs nothing.

    Lightning's subprocess launcher re-executes the command line with ``LOCAL_RANK``/``NODE_RANK`` set; the
    parent exports :data:`RUN_ID_ENV` before it launches them.
    """
    run_id = os.environ.get(RUN_ID_ENV)
    if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun started every rank itself: global rank 0 alone opens the run
        rank = int(os.environ.get("RANK", "0") or 0)
        return (run_id or f"torchrun-rank-{rank}") if rank > 0 else None  # the checkpoint folder comes from rank 0
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
