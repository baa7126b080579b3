"""Run-lifecycle helpers for :func:`experiments.train.train`: resume, interrupts, non-finite losses, atomic
checkpoints, concurrent sqlite stores and DDP worker ranks.

The guarantees these implement are listed in ``docs/reliability.md``. Launcher glue: imports Lightning and MLflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from typing_extensions import override

from latentdream.errors import InputError, NonFiniteLossError

T = TypeVar("T")

RUN_ID_ENV = "LATENTDREAM_RUN_ID"
"""The parent of a DDP job passes its run id to the worker ranks it launches through this variable."""

LAST_CHECKPOINT = "last.ckpt"

RESUMABLE_KEYS = frozenset({
    "resume",
    "trainer.max_epochs",
    "trainer.enable_progress_bar",
    "trainer.sleep_per_batch",
    "trainer.inject_nan_at_step",
    "tracking.system_metrics",
    "tracking.log_model",
})
"""Config keys that may differ between a run and its resumption: they do not change what the finished epochs
mean. Their new values are recorded as ``resume.<key>`` tags (MLflow params are immutable)."""

TAG_RESUMED = "resumed"  # how many times the run was resumed
TAG_RESUME_PREFIX = "resume."


# --- exceptions ------------------------------------------------------------------------------------------------
class RunInterrupted(SystemExit):
    """Training was stopped by Ctrl-C (exit code 130) or SIGTERM (143); the run is marked KILLED.

    A :class:`SystemExit`, so that an uncaught one ends the process with that code and no traceback, and
    ``except Exception`` blocks do not swallow it.
    """

    def __init__(self, signum: int, run_id: str, checkpoint: Path | None) -> None:
        super().__init__(128 + int(signum))
        self.signum, self.run_id, self.checkpoint = int(signum), run_id, checkpoint
        where = f"; last checkpoint {checkpoint}" if checkpoint else "; no epoch was completed"
        self.message = (f"run {run_id} interrupted by {signal.Signals(signum).name} and marked KILLED{where}; "
                        f"continue it with resume={run_id}")

    def __str__(self) -> str:
        return self.message


# --- checkpoints -----------------------------------------------------------------------------------------------
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


# --- resume ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResumePlan:
    """What resuming a run needs: the run, its checkpoint, the changed keys and the metric steps already logged."""

    run_id: str
    checkpoint: Path | None
    changed: dict[str, str]
    new_params: dict[str, str]
    logged_steps: dict[str, frozenset[int]] = field(default_factory=dict)


def compare_params(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split the differences between a run's params and a new flattened config.

    :returns: (changed allowed keys → new value, keys missing from the run → value).
    :raises InputError: a key outside :data:`RESUMABLE_KEYS` has a different value.
    """
    changed, added = {}, {}
    for key, value in new.items():
        if key not in old:
            added[key] = value
        elif old[key] != value:
            if key not in RESUMABLE_KEYS:
                raise InputError(f"{key}={value!r} differs from the resumed run's {old[key]!r}; a resumed run keeps "
                                 f"its config (only {', '.join(sorted(RESUMABLE_KEYS))} may change)")
            changed[key] = value
    return changed, added


def find_run_to_resume(client: Any, experiment_id: str, resume: str) -> Any:
    """The run named by ``resume``: a run id, or ``last`` = the newest run of the experiment not FINISHED.

    :raises InputError: no such run, a run of another experiment, or a FINISHED run.
    """
    if resume == "last":
        runs = client.search_runs([experiment_id], filter_string="attributes.status != 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise InputError("resume=last: this experiment has no killed, failed or unfinished run to resume")
        return runs[0]
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(resume)
    except MlflowException:
        raise InputError(f"resume={resume!r}: no such run in this store; give a run id or 'last'") from None
    if run.info.experiment_id != experiment_id:
        raise InputError(f"resume={resume!r}: the run belongs to another experiment (id {run.info.experiment_id})")
    if run.info.status == "FINISHED":
        raise InputError(f"resume={resume!r}: the run is FINISHED; only killed, failed or unfinished runs resume")
    return run


def logged_steps(client: Any, run: Any) -> dict[str, frozenset[int]]:
    """Every (metric key → steps) the run holds, except the system metrics (MLflow resumes those itself)."""
    return {key: frozenset(m.step for m in with_retries(client.get_metric_history, run.info.run_id, key))
            for key in run.data.metrics if not key.startswith("system/")}


def plan_resume(client: Any, experiment_id: str, resume: str, params: Mapping[str, str],
                checkpoint_root: Path) -> ResumePlan:
    """Check everything about a resumption before anything is written (all problems are :class:`InputError`)."""
    run = find_run_to_resume(client, experiment_id, resume)
    run_id = run.info.run_id
    changed, added = compare_params(run.data.params, params)
    checkpoint = checkpoint_root / run_id / LAST_CHECKPOINT
    steps = logged_steps(client, run)
    if not checkpoint.is_file():
        if any(steps.values()):
            raise InputError(f"resume={resume}: run {run_id} has logged epochs but no checkpoint {checkpoint}; "
                             "check tracking.checkpoint_dir")
        checkpoint = None  # killed during its first epoch: start that run again from scratch
    return ResumePlan(run_id, checkpoint, changed, added, steps)


# --- stores ----------------------------------------------------------------------------------------------------
def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` for a local sqlite store (no-op otherwise).

    Several processes creating one fresh store at once race in MLflow's schema migration; under this lock the
    first creates it and the others find it ready.
    """
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def enable_wal(uri: str) -> None:
    """Switch a local sqlite store to write-ahead logging (persistent in the file): readers then never block the
    writer, so concurrent runs wait much less for ``database is locked``."""
    path = sqlite_path(uri)
    if path is None or not path.is_file():
        return
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as con:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")


def _is_locked(err: BaseException) -> bool:
    text = str(err).lower()
    return "database is locked" in text or "database table is locked" in text


def with_retries(fn: Callable[..., T], *args: Any, attempts: int = 8, base_delay: float = 0.2, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried with jittered exponential backoff while sqlite reports it is locked."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - MLflow wraps sqlite's OperationalError in its own exceptions
            if attempt == attempts - 1 or not _is_locked(err):
                raise
            time.sleep(base_delay * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


# --- DDP -------------------------------------------------------------------------------------------------------
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
