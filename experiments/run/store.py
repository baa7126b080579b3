"""Where runs live, and how a run is opened, resumed and ended.

* Store defaults: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlflow.db`` with artifacts under ``<cwd>/mlruns``.
* :func:`check_store`: a damaged or read-only local store, or (:func:`check_reachable`) a server that does not
  answer, is one line before anything is created. :func:`check_reachable`: fail within seconds, with one line, when a tracking server does not answer (MLflow's own
  client retries for minutes); :func:`apply_http_fail_fast` makes MLflow's retries short as well.
* Concurrent local stores: :func:`store_lock` (a fresh store is migrated by one process), :func:`enable_wal`,
  :func:`with_retries` (sqlite's "database is locked").
* Finding runs: :func:`find_run` (by id, of a kind), :func:`experiment_id_for` (created if missing).
* Ending runs: :func:`ended` — FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED with tag ``failure_reason``.
* Live runs: :class:`RunLock`, an ``flock`` beside a run's checkpoints held by the process training it (both locks
  live in :mod:`experiments.run.locks`); :func:`end_stuck_run` ends a run a crash left RUNNING, unless it is live.
* Resuming runs: :func:`plan_resume` checks everything before anything is written, and never picks a live run.

Launcher glue: imports MLflow (lazily, so that commands which fail on bad input return fast).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from analysis import tracking
from experiments.run.locks import RunLock, sqlite_path, store_lock  # noqa: F401 - part of this module's interface
from latentdream.errors import InputError, disk_full
from latentdream.names import check_name
from latentdream.stopping import StopRequested

T = TypeVar("T")

LAST_CHECKPOINT = "last.ckpt"  # <checkpoint_dir>/<run id>/last.ckpt: a run's resume point

# Client settings that make an unreachable server fail in seconds instead of minutes (MLflow's defaults: 7 retries,
# backoff factor 2, 120 s per request). A couple of retries still ride out a brief blip during a long training.
HTTP_FAIL_FAST_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


# --- where runs live ---------------------------------------------------------------------------------------------
def default_tracking_uri(base: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<abs base>/mlflow.db`` (base: current directory)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(base or Path.cwd()).resolve() / 'mlflow.db'}"


def default_artifact_root(tracking_uri: str, base: Path | None = None) -> str | None:
    """Artifacts go to ``<base>/mlruns`` for a local sqlite store; a tracking server decides for itself (None)."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    return str((base or Path.cwd()).resolve() / "mlruns")


def apply_http_fail_fast(environ: dict | None = None) -> None:
    """Put :data:`HTTP_FAIL_FAST_ENV` into ``environ`` (default ``os.environ``) where the user has not set them."""
    env = os.environ if environ is None else environ
    for key, value in HTTP_FAIL_FAST_ENV.items():
        env.setdefault(key, value)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Raise :class:`InputError` unless the tracking server at ``uri`` answers within ``timeout`` seconds.

    Only ``http(s)://`` URIs are checked (``GET <uri>/health``); any HTTP answer, even 401 or 404, counts as
    reachable — the server is there, and MLflow's own error will say what is wrong. Local stores pass.
    """
    if urlsplit(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as err:  # refused, DNS failure, timeout (TimeoutError is an OSError)
        reason = getattr(err, "reason", None) or err
        raise InputError(f"tracking server {uri} is not reachable: {reason}") from None


def check_store(uri: str) -> None:
    """Raise :class:`InputError` unless the store at ``uri`` can be used: a tracking server answers
    (:func:`check_reachable`), a local sqlite file is an sqlite database (or does not exist yet, in a writable folder)
    and takes a write. Checked first, so a broken store is one line before anything — a folder, a lock file, a run —
    is created.

    The write test takes the write lock (``BEGIN IMMEDIATE``), rewrites ``user_version`` with its own value and rolls
    back: a read-only file, folder or mount fails it even for root, for whom ``os.access`` says yes.
    """
    check_reachable(uri)
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.exists():
        if path.parent.is_dir():
            check_writable(path.parent, f"the folder of the store {uri}")
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=30)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and not tables & {"alembic_version", "experiments"}:  # (a store being created has the latter)
                raise InputError(f"the store {uri} is an sqlite file but not an MLflow store (no alembic_version "
                                 "table); point MLFLOW_TRACKING_URI or tracking.tracking_uri at another file")
            con.execute("BEGIN IMMEDIATE")
            version = int(con.execute("PRAGMA user_version").fetchone()[0])
            con.execute(f"PRAGMA user_version = {version}")
            con.rollback()
    except sqlite3.Error as err:
        if _is_locked(err):
            return  # busy with other writers for 30 s: usable, MLflow's own retries take over
        raise InputError(f"the store {uri} cannot be used: {err} (a damaged file, or a read-only file or folder); "
                         "nothing was written") from None


def client_for(tracking_uri: str | None = None) -> tuple[str, Any]:
    """``(uri, MlflowClient)`` for ``tracking_uri`` (default: :func:`default_tracking_uri`), checked usable
    (:func:`check_store`)."""
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    check_store(uri)
    return uri, mlflow.MlflowClient(uri)


def check_writable(folder: str | Path, key: str) -> None:
    """Raise :class:`InputError` naming ``key`` unless ``folder`` exists (or can be made) and takes a file.

    Writes and removes a probe file rather than asking ``os.access``, which says yes to root on a read-only mount.
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".latentdream-write-check-"):
            pass
    except OSError as err:
        raise InputError(f"{key}={str(folder)!r}: not a writable folder ({err.strerror or err})") from None


def local_path(uri: str | None) -> Path | None:
    """The folder of a local artifact location (a plain path or ``file://`` URI); None for remote stores."""
    if not uri:
        return None
    parts = urlsplit(str(uri))
    if parts.scheme == "file":
        return Path(parts.path)
    return Path(uri) if parts.scheme == "" else None


# --- concurrent local stores -------------------------------------------------------------------------------------
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


def with_retries(fn: Callable[..., T], *args: Any, attempts: int = 8, base_delay: float = 0.2,
                 retry_if: Callable[[BaseException], bool] = _is_locked, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried with jittered exponential backoff while ``retry_if(error)`` holds (default:
    sqlite reports it is locked)."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - MLflow wraps sqlite's OperationalError in its own exceptions
            if attempt == attempts - 1 or not retry_if(err):
                raise
            time.sleep(base_delay * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


# --- finding runs and experiments ---------------------------------------------------------------------------------
def experiment_id_for(client: Any, name: str, artifact_root: str | None) -> str:
    """Id of experiment ``name``, created (with artifacts under ``artifact_root/<name>``) if missing.

    Two processes may create it at once; the loser of that race reads the winner's.
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    check_name("experiment name", name)  # its artifact folder is <artifact_root>/<name>: never a path out of it
    location = Path(artifact_root, name).as_uri() if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - RESOURCE_ALREADY_EXISTS from a concurrent creator
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def find_run(client: Any, uri: str, run_id: str, kinds: tuple[str, ...] | None = None) -> Any:
    """The run ``run_id``, which must exist, not be deleted, and (with ``kinds``) carry one of those ``kind`` tags.

    :raises InputError: unknown or deleted run, or a run of another kind.
    """
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise InputError(f"run {run_id!r} does not exist in {uri}") from None
    if run.info.lifecycle_stage == "deleted":
        raise InputError(f"run {run_id} is deleted; restore it (mlflow runs restore) or leave it out")
    kind = run.data.tags.get(tracking.TAG_KIND)
    if kinds is not None and kind not in kinds:
        raise InputError(f"run {run_id} is {_a(kind or 'non-latentdream')} run; "
                         f"this needs {' or '.join(_a(k) for k in kinds)} run")
    return run


# --- ending runs -------------------------------------------------------------------------------------------------
class RunInterrupted(StopRequested):
    """A training run was stopped by Ctrl-C (exit code 130) or SIGTERM (143) and marked KILLED.

    A :class:`~latentdream.stopping.StopRequested` (a :class:`SystemExit`), so that an uncaught one ends the process
    with that code and no traceback, and ``except Exception`` blocks do not swallow it.
    """

    def __init__(self, signum: int, run_id: str, checkpoint: Path | None) -> None:
        super().__init__(signum)
        self.run_id, self.checkpoint = run_id, checkpoint
        where = f"; last checkpoint {checkpoint}" if checkpoint else "; no epoch was completed"
        self.message = (f"run {run_id} interrupted by {signal.Signals(signum).name} and marked KILLED{where}; "
                        f"continue it with resume={run_id}")

    def __str__(self) -> str:
        return self.message


def failure_reason(err: BaseException) -> str:
    """The ``failure_reason`` tag of a run that ``err`` ended: ``"<Type>: <message>"``, at most 5,000 characters; a
    full disk anywhere in ``err``'s chain is named as such (``DiskFullError: the disk holding <folder> is full…``)."""
    err = disk_full(err) or err
    return f"{type(err).__name__}: {err}"[:5000]


def _recorded(err: BaseException, record: Callable[[], Any]) -> None:
    """Record how a run ended; when the store cannot take it (it may sit on the disk that just filled up), note
    that on ``err`` (the command line then says how to end the run later) instead of raising a second error."""
    try:
        record()
    except Exception as store_err:  # noqa: BLE001 - the original error is the one to report
        err.latentdream_unrecorded = failure_reason(store_err).splitlines()[0]


@contextlib.contextmanager
def ended(client: Any, run_id: str, end: Callable[[str], Any] | None = None) -> Iterator[None]:
    """End run ``run_id`` when the block exits: FINISHED; KILLED after Ctrl-C or a signal's
    :class:`~latentdream.stopping.StopRequested` (also :class:`RunInterrupted`); FAILED,
    with the tag ``failure_reason``, after any other error (which is re-raised).

    :param end: ``end(status)`` ends the run (default ``client.set_terminated``; the launcher passes
        ``mlflow.end_run``, which also stops the system-metrics monitor of its active run).
    """
    end = end or (lambda status: client.set_terminated(run_id, status))
    try:
        yield
    except (KeyboardInterrupt, StopRequested) as err:
        _recorded(err, lambda: with_retries(end, "KILLED"))
        err.latentdream_run_id = run_id  # the command line names the KILLED run
        raise
    except BaseException as err:
        def record() -> None:
            with_retries(client.set_tag, run_id, tracking.TAG_FAILURE, failure_reason(err))
            with contextlib.suppress(Exception):  # the traceback is a courtesy; the reason tag is the record
                client.log_text(run_id, "".join(traceback.format_exception(err)), tracking.FAILURE_TRACEBACK)
            with_retries(end, "FAILED")

        _recorded(err, record)
        err.latentdream_run_id = run_id  # the command line reports it as one line: the run holds the details
        raise
    with_retries(end, "FINISHED")


def end_stuck_run(client: Any, uri: str, run_id: str, checkpoint_root: Path | None = None) -> None:
    """Mark KILLED a run that a crash left RUNNING (SIGKILL, power loss, a store on a full disk that could not take
    the run's end), with the tag ``ended_by``; it stays resumable.

    :param checkpoint_root: where the run's lock lives (default: its recorded ``tracking.checkpoint_dir``, else
        ``./checkpoints``).
    :raises InputError: unknown run, a run that is not RUNNING, or one whose lock is held — still training.
    """
    run = find_run(client, uri, run_id)
    if run.info.status != "RUNNING":
        raise InputError(f"run {run_id} is {run.info.status}, not RUNNING: it has ended already")
    recorded = run.data.tags.get("tracking.checkpoint_dir") or run.data.params.get("tracking.checkpoint_dir")
    root = Path(checkpoint_root or (recorded if recorded not in (None, "None") else Path.cwd() / "checkpoints"))
    lock = RunLock(root, run_id)
    if lock.path.exists() and not lock.acquire():
        raise InputError(f"run {run_id} is still training ({lock.holder()}); stop that process first")
    try:
        with_retries(client.set_tag, run_id, tracking.TAG_ENDED_BY, "latentdream end (left RUNNING by a crash)")
        with_retries(client.set_terminated, run_id, "KILLED")
    finally:
        lock.release()


# --- resuming runs -----------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class ResumePlan:
    """What resuming a run needs: the run, its lock (held), its checkpoint, the changed keys and the metric steps
    already logged."""

    run: Any
    lock: RunLock
    checkpoint: Path | None
    changed: dict[str, str]
    new_keys: dict[str, str]
    logged_steps: dict[str, frozenset[int]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id


def compare_params(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split the differences between the flattened config a run recorded and a new one.

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


def unfinished_runs(client: Any, experiment_id: str) -> list[Any]:
    """The experiment's training runs that are not FINISHED, newest first (a sweep's parent or a dream's child run
    never is one): the candidates of ``resume=last``."""
    runs = client.search_runs([experiment_id], filter_string="attributes.status != 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1000)
    return [r for r in runs if r.data.tags.get(tracking.TAG_KIND) in tracking.TRAINED_KINDS]


def find_run_to_resume(client: Any, experiment_id: str, resume: str, checkpoint_root: Path) -> tuple[Any, RunLock]:
    """The run named by the run id ``resume`` and its lock, taken.

    :raises InputError: no such run, a run of another experiment or kind, a FINISHED run, or a run still training.
    """
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(resume)
    except MlflowException:
        raise InputError(f"resume={resume!r}: no such run in this store; give a run id or 'last'") from None
    if run.info.experiment_id != experiment_id:
        raise InputError(f"resume={resume!r}: the run belongs to another experiment (id {run.info.experiment_id})")
    if run.data.tags.get(tracking.TAG_KIND) not in tracking.TRAINED_KINDS:
        raise InputError(f"resume={resume!r}: the run is a {run.data.tags.get(tracking.TAG_KIND) or 'non-latentdream'} "
                         "run, not a training run")
    if run.info.status == "FINISHED":
        raise InputError(f"resume={resume!r}: the run is FINISHED; only killed, failed or unfinished runs resume")
    lock = RunLock(checkpoint_root, resume)
    if not lock.acquire():
        raise InputError(f"resume={resume}: the run is still training ({lock.holder()}); stop it first, or wait")
    return run, lock


def logged_steps(client: Any, run: Any) -> dict[str, frozenset[int]]:
    """Every (metric key → steps) the run holds, except the system metrics (MLflow resumes those itself)."""
    return {key: frozenset(m.step for m in with_retries(client.get_metric_history, run.info.run_id, key))
            for key in run.data.metrics if not key.startswith("system/")}


def plan_resume(client: Any, experiment_id: str, resume: str, config: Mapping[str, str],
                checkpoint_root: Path) -> ResumePlan:
    """Check everything about a resumption before anything is written (all problems are :class:`InputError`).

    ``resume=last`` takes the newest unfinished run that is not still training *and can be resumed*: a run whose
    config differs or whose checkpoint is missing (a disk that filled up before ``last.ckpt`` was written) is passed
    over, so it never blocks the older runs.

    :param config: the new flattened config, compared with the one the run recorded (its params and config tags).
    """
    if resume != "last":
        return _plan(client, *find_run_to_resume(client, experiment_id, resume, checkpoint_root), resume, config,
                     checkpoint_root)
    runs, skipped = unfinished_runs(client, experiment_id), []
    for run in runs:
        lock = RunLock(checkpoint_root, run.info.run_id)
        if not lock.acquire():
            skipped.append(f"{run.info.run_id} is still training")
            continue
        try:
            return _plan(client, run, lock, resume, config, checkpoint_root)
        except InputError as err:  # not resumable: the next older one may be
            skipped.append(f"{run.info.run_id}: {err}")
    why = f" ({len(skipped)} passed over; the newest: {skipped[0]})" if skipped else ""
    raise InputError(f"resume=last: this experiment has no killed, failed or unfinished run to resume{why}")


def _plan(client: Any, run: Any, lock: RunLock, resume: str, config: Mapping[str, str],
          checkpoint_root: Path) -> ResumePlan:
    """The plan for ``run``, whose lock is held (and released again when the run cannot be resumed)."""
    try:
        run_id = run.info.run_id
        from experiments.run.config import recorded_config  # the schema imports Lightning: only when resuming

        changed, added = compare_params(recorded_config(run), config)
        checkpoint = checkpoint_root / run_id / LAST_CHECKPOINT
        steps = logged_steps(client, run)
        if not checkpoint.is_file():
            if any(steps.values()):
                raise InputError(f"resume={resume}: run {run_id} has logged epochs but no checkpoint {checkpoint}; "
                                 "check tracking.checkpoint_dir")
            checkpoint = None  # killed during its first epoch: start that run again from scratch
    except BaseException:
        lock.release()
        raise
    return ResumePlan(run, lock, checkpoint, changed, added, steps)


def mark_resumed(client: Any, run: Any, tags: Mapping[str, str] | None = None) -> None:
    """Record that ``run`` runs again: the count ``resumed``, the given ``tags``, and its last ``failure_reason``
    moved to ``previous_failure`` (the run is no longer failed). Used for training runs and sweeps alike."""
    run_id, old = run.info.run_id, run.data.tags
    new = {tracking.TAG_RESUMED: str(int(old.get(tracking.TAG_RESUMED, "0")) + 1), **(tags or {})}
    if tracking.TAG_FAILURE in old:
        new[tracking.TAG_PREVIOUS_FAILURE] = old[tracking.TAG_FAILURE]
        with_retries(client.delete_tag, run_id, tracking.TAG_FAILURE)
    for key, value in new.items():
        with_retries(client.set_tag, run_id, key, value)


def start_resumed(client: Any, plan: ResumePlan) -> None:
    """Record a resumption in its run before training continues (:func:`mark_resumed`, with ``resume.<key>`` for
    each key that changed and config tags for keys the schema gained since); a logged model left PENDING by a kill
    is deleted."""
    changed = {tracking.TAG_RESUME_PREFIX + k: v for k, v in plan.changed.items()}
    mark_resumed(client, plan.run, {**plan.new_keys, **changed})
    from mlflow.entities import LoggedModelStatus

    models = client.search_logged_models([plan.run.info.experiment_id], filter_string=f"source_run_id = '{plan.run_id}'")
    for model in models:  # (MLflow's filter on status does not match PENDING; compare here)
        if model.status == LoggedModelStatus.PENDING:
            with_retries(client.delete_logged_model, model.model_id)
