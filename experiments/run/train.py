"""``train(cfg)``: one experiment → one MLflow run, from data check to logged model.

The run is created only after the config and the data have been checked, so bad input never leaves an empty or
failed run behind. The run ends FINISHED, FAILED (tag ``failure_reason``) or KILLED (Ctrl-C, SIGTERM), never
RUNNING, unless the process itself is killed (SIGKILL, power loss): such a run stays RUNNING and resumable.
``resume=RUN_ID|last`` continues a killed or failed run from its last checkpoint into the same run. The
guarantees are listed in ``docs/reliability.md``; the run is opened and ended by :mod:`experiments.run.store`, and
:mod:`experiments.run.guards` keeps the training loop safe.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from mlflow.models import infer_signature
from omegaconf import DictConfig, ListConfig
from typing_extensions import override

from analysis import tracking
from analysis.callbacks.health import health_of
from analysis.callbacks.learning_rate import EpochLearningRate
from analysis.eval_mode import eval_mode
from experiments.run import guards, store
from experiments.mlflow_ui import views
from experiments.reports import publish as reports
from experiments.run.build import build_callbacks, build_datamodule, build_module, build_network, is_autoencoder, trainer_kwargs
from experiments.run.config import flatten, split_params, to_yaml
from experiments.run.guards import RunGuard
from experiments.run.store import RunInterrupted, with_retries
from latentdream import stopping
from experiments.run.system_metrics import start_system_metrics
from latentdream.errors import InputError

log = logging.getLogger("latentdream")

# Trainer-section keys that are ours, not lightning.Trainer arguments (test-only knobs of RunGuard).
_GUARD_KEYS = ("sleep_per_batch", "inject_nan_at_step")


class EpochMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that logs every metric at the *epoch* as its step, so runs of different batch sizes or data
    sizes line up epoch by epoch in the MLflow UI (Lightning puts the epoch into each metrics dict it logs).

    :param skip_steps: metric key → steps the run already holds (a resumed run): those are not logged again, so
        an epoch redone after a kill never appears twice.

    It never ends the run (``finalize`` is a no-op): :func:`train` owns the run's final status, which must not
    turn FINISHED before the test metrics and the model are logged.
    """

    def __init__(self, *args: Any, skip_steps: Mapping[str, frozenset[int]] | None = None,
                 after_first_log: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip = {key: set(steps) for key, steps in (skip_steps or {}).items()}
        self._after_first_log = after_first_log

    @override
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        step = int(epoch) if epoch is not None else (step or 0)
        # the headline metrics first: MLflow's Compare page and runs table take the keys in the order stored
        metrics = {k: metrics[k] for k in sorted(metrics, key=tracking.headline_first)
                   if step not in self._skip.get(k, ())}
        if metrics:
            with_retries(super().log_metrics, metrics, step=step)
            if self._after_first_log is not None:  # e.g. start the system metrics, now that ours lead
                self._after_first_log()
                self._after_first_log = None

    @override
    def finalize(self, status: str = "success") -> None:
        return None


@dataclass(frozen=True)
class TrainResult:
    """What a training run leaves: its id, final metrics and the live objects (for tests and analyses)."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    module: Any
    datamodule: Any
    trainer: Any
    rank: int = 0  # > 0 in a DDP worker process: it logged nothing, the parent (rank 0) reports the run
    health: str | None = None  # the run's tag ``health``: ``ok`` or why not (None: not checked, health.enabled=false)


def git_commit() -> str | None:
    """The commit of the code being run, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_tags(cfg: DictConfig, command: str | None) -> dict[str, str]:
    tags = {
        tracking.TAG_MODEL: cfg.model.name if not is_autoencoder(cfg) else f"conv_autoencoder_{cfg.model.encoder_filters[0]}",
        tracking.TAG_DATASET: cfg.data.name,
        tracking.TAG_EXPERIMENT: cfg.name,
        tracking.TAG_KIND: tracking.KIND_AUTOENCODER if is_autoencoder(cfg) else tracking.KIND_CLASSIFIER,
        tracking.TAG_COMMAND: command or " ".join(sys.argv),
    }
    commit = git_commit()
    if commit:
        tags[tracking.TAG_GIT_COMMIT] = commit
    return tags


def _log_weights(network: torch.nn.Module) -> None:
    """The network's weights as a plain state dict (``checkpoints/weights.pt``): what ``latentdream analyze|oip|dream``
    load — with ``weights_only=True``, into a network rebuilt from ``config.yaml`` — instead of unpickling a model."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(tracking.WEIGHTS).name
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, path)
        mlflow.log_artifact(str(path), str(Path(tracking.WEIGHTS).parent))


def _log_model(network: torch.nn.Module, datamodule: Any) -> None:
    """Log the plain network with an input/output signature, loadable by ``mlflow.pytorch.load_model``."""
    sample = next(iter(datamodule.val_dataloader()))
    x = (sample[0] if isinstance(sample, (tuple, list)) else sample)[:2].cpu()  # on the GPU with data.on_device
    device = next(network.parameters()).device
    with eval_mode(network), torch.no_grad():
        y = network(x.to(device)).cpu()
    signature = infer_signature(x.numpy(), y.numpy())
    # 'pickle' keeps the nn.Module with its methods (encode/decode, named conv layers) for later analyses.
    with eval_mode(network):  # saved in eval mode, as mlflow.pytorch.load_model users expect it
        mlflow.pytorch.log_model(network.cpu(), name=tracking.MODEL_NAME, signature=signature,
                                 serialization_format="pickle", pip_requirements=[])
    network.to(device)


def _lightning_kwargs(cfg: DictConfig) -> dict:
    """``lightning.Trainer`` arguments of ``cfg.trainer`` without our test-only knobs."""
    kwargs = trainer_kwargs(cfg)
    for key in _GUARD_KEYS:
        kwargs.pop(key, None)
    kwargs.setdefault("enable_progress_bar", sys.stderr.isatty())  # unset: bars on a terminal, none in a pipe
    return kwargs


def check_trainer(cfg: DictConfig) -> None:
    """Everything about the ``trainer`` section that can be known before a run exists: the test-only knobs, what
    ``lightning.Trainer`` itself rejects (a bogus precision, accelerator or limit), and what it would accept but the
    machine cannot hold — more CPU processes than cores, more nodes than a cluster provides.

    :raises InputError: one line naming the key and what is allowed; no Trainer, process or run is left behind.
    """
    sleep, step = cfg.trainer.sleep_per_batch, cfg.trainer.inject_nan_at_step
    if sleep is not None and not sleep >= 0:
        raise InputError(f"trainer.sleep_per_batch={sleep!r} is not allowed; it must be >= 0 seconds (test-only)")
    if step is not None and step < 0:
        raise InputError(f"trainer.inject_nan_at_step={step!r} is not allowed; it must be >= 0 (test-only)")
    _check_devices(cfg)
    kwargs = _lightning_kwargs(cfg)
    try:  # building a Trainer validates its arguments and starts nothing (processes start in fit)
        trainer = L.Trainer(**{**kwargs, "logger": False, "enable_checkpointing": False,
                                "enable_progress_bar": False, "enable_model_summary": False})
    except (MisconfigurationException, ValueError, TypeError, ImportError, RuntimeError) as err:
        raise InputError(f"trainer settings {_shown(kwargs)} are not allowed: {str(err).splitlines()[0]}") from None
    if trainer.num_nodes > 1 and isinstance(trainer._accelerator_connector.cluster_environment, LightningEnvironment) \
            and "MASTER_ADDR" not in os.environ:
        raise InputError(f"trainer.num_nodes={trainer.num_nodes} is not allowed here: no cluster environment (SLURM, "
                         "torchrun, MASTER_ADDR) provides the other nodes")


def _check_devices(cfg: DictConfig) -> None:
    """``trainer.devices`` against what this machine has — before any Trainer exists, since each device is one
    training process (``devices=999`` on a CPU would start 999)."""
    devices, accelerator = cfg.trainer.devices, str(cfg.trainer.accelerator)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, str) and "," in devices:
        devices = [d for d in devices.split(",") if d.strip()]
    if devices == "auto" or devices == -1:
        return  # Lightning takes what there is
    wanted = len(devices) if isinstance(devices, (list, tuple, ListConfig)) else devices
    if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
        raise InputError(f"trainer.devices={cfg.trainer.devices!r} is not allowed; give a number >= 1, a list of "
                         "device ids, -1 or auto")
    gpus = torch.cuda.device_count()
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    have, what = (gpus, "GPUs") if on_gpu else (os.cpu_count() or 1, "CPU cores (each device is one process)")
    if wanted > have:
        raise InputError(f"trainer.devices={cfg.trainer.devices!r} is not allowed: this machine has {have} {what}")


def _shown(kwargs: dict) -> str:
    keys = ("accelerator", "devices", "strategy", "num_nodes", "precision")
    return ", ".join(f"{k}={kwargs[k]!r}" for k in keys if k in kwargs)


def _trainer(cfg: DictConfig, guard: RunGuard, checkpoint: guards.AtomicModelCheckpoint, logger: Any,
             extra: Sequence[L.Callback] = ()) -> L.Trainer:
    kwargs = _lightning_kwargs(cfg)
    callbacks = [guard, checkpoint, EpochLearningRate(), *build_callbacks(cfg), *extra]
    return L.Trainer(logger=logger, callbacks=callbacks, **kwargs)


def _checkpoint_callback(checkpoint_dir: Path) -> guards.AtomicModelCheckpoint:
    # best.ckpt (lowest val/loss) and last.ckpt (every epoch, the resume point), both written atomically.
    return guards.AtomicModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor=tracking.VAL_LOSS, mode="min", save_last=True
    )


def _guard(cfg: DictConfig) -> RunGuard:
    return RunGuard(inject_nan_at_step=cfg.trainer.inject_nan_at_step, sleep_per_batch=cfg.trainer.sleep_per_batch or 0.0)


@contextmanager
def _signals_handled() -> Iterator[None]:
    """For the run's whole lifetime a SIGTERM requests a stop (:mod:`latentdream.stopping`): Lightning's loops (whose
    handler calls ours too) stop at the end of the batch, the analyses between their units of work, the phases after
    fit between phases. SIGINT's handler is restored after (Lightning ignores SIGINT for good after a Ctrl-C; a caller
    training several runs needs it back)."""
    main = threading.current_thread() is threading.main_thread()
    saved = signal.getsignal(signal.SIGINT) if main else None
    try:
        with stopping.handle_signals(), stopping.deferred():
            yield
    finally:
        if saved is not None:
            signal.signal(signal.SIGINT, saved)


def _train_worker(cfg: DictConfig, module: Any, datamodule: Any, run_id: str) -> TrainResult:
    """A DDP worker rank (> 0): train in step with rank 0, create and log nothing (rank 0 owns the run)."""
    checkpoint_dir = Path(cfg.tracking.checkpoint_dir or Path.cwd() / "checkpoints") / run_id
    last = checkpoint_dir / store.LAST_CHECKPOINT
    uri = cfg.tracking.tracking_uri or store.default_tracking_uri()
    guard, checkpoint = _guard(cfg), _checkpoint_callback(checkpoint_dir)
    # Same logger class as rank 0 so every rank runs the same hooks; Lightning makes its logging rank-0-only.
    with store.store_lock(uri):  # the logger opens the store: not while rank 0 creates it (torchrun starts both)
        logger = EpochMLFlowLogger(experiment_name=cfg.tracking.experiment_name or cfg.name, tracking_uri=uri,
                                   run_id=run_id)
    trainer = _trainer(cfg, guard, checkpoint, logger)
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if cfg.resume and last.is_file() else None,
                weights_only=True)
    trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path or None, verbose=False,
                 weights_only=True)
    _leave_process_group(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return TrainResult(run_id, "", metrics, module, datamodule, trainer, rank=max(1, trainer.global_rank))


def _leave_process_group(trainer: L.Trainer) -> None:
    """Every rank leaves the DDP process group together, right after the last collective (the test loop's).

    Left to Lightning's exit handler, a worker rank destroys its end of the group at exit while rank 0 still logs
    the run's artifacts; under torchrun that worker then aborted now and then ("terminate called without an active
    exception", SIGABRT) and the launcher on rank 0's node waited 300 s for it at its exit barrier."""
    import torch.distributed as dist

    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        trainer.strategy.barrier("leave_process_group")
        dist.destroy_process_group()


def train(cfg: DictConfig, command: str | None = None, swept: tuple[str, ...] = (),
          tags: Mapping[str, str] | None = None, publish_view: bool = True,
          callbacks: Sequence[L.Callback] = ()) -> TrainResult:
    """Train ``cfg`` into a new MLflow run (or, with ``cfg.resume``, continue an earlier one) and return the run
    id and final metrics.

    :param swept: config keys a sweep varies: logged as params beside :data:`analysis.tracking.PARAM_KEYS`.
    :param tags: extra tags of a new run (a sweep's ``mlflow.parentRunId`` and ``sweep.point``).
    :param publish_view: refresh the experiment's chart view in the MLflow UI afterwards (a sweep does it once for
        all its runs instead).
    :param callbacks: extra Lightning callbacks (a sweep's trial pruning).

    :raises latentdream.errors.InputError: bad data or an impossible resume (before any run is touched).
    :raises experiments.run.store.RunInterrupted: Ctrl-C or SIGTERM (a ``SystemExit`` with code 130/143);
        the run is KILLED and its checkpoints kept.
    :raises latentdream.errors.NonFiniteLossError: the loss became NaN/inf; the run is FAILED.
    """
    check_trainer(cfg)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()  # checks the data folder, builds caches: before a run exists
    datamodule.setup("fit")
    means = datamodule.train_pixel_means() if is_autoencoder(cfg) else None
    network = build_network(cfg, datamodule.in_channels, datamodule.image_size, means)
    module = build_module(cfg, network)

    worker_run_id = guards.ddp_worker_run_id()
    if worker_run_id is not None:
        return _train_worker(cfg, module, datamodule, worker_run_id)

    opened = _open_run(cfg, command, tags)
    try:
        result = _fit_into_run(cfg, opened, swept, module, datamodule, callbacks)
    finally:
        opened.lock.release()
    reports.try_publish_report(opened.client, result.run_id)  # report.html: the finished run in one page
    if publish_view:  # the UI's chart view: curves first, images uncaptioned
        views.try_publish_view(opened.client, opened.experiment_id)
    return result


@dataclass(frozen=True)
class _OpenedRun:
    """A started MLflow run and what training into it needs: the store, the experiment, the resume plan (None for a
    new run), the run's checkpoint folder and its lock (held)."""

    client: Any
    uri: str
    run: Any
    experiment_id: str
    experiment_name: str
    plan: store.ResumePlan | None
    checkpoint_dir: Path
    lock: store.RunLock

    @property
    def run_id(self) -> str:
        return self.run.info.run_id


def _open_run(cfg: DictConfig, command: str | None, tags: Mapping[str, str] | None) -> _OpenedRun:
    """Check the store and the folders, then start the run: a new one, the one ``mlflow run`` made, or (``resume``)
    the dead run to continue, whose lock is then held.

    :raises InputError: an unreachable server, an unwritable folder, an impossible resume — before any run starts.
    """
    uri = cfg.tracking.tracking_uri or store.default_tracking_uri()
    store.check_store(uri)  # an unreachable server, a damaged or read-only store: one line, before anything else
    artifact_root = cfg.tracking.artifact_root or store.default_artifact_root(uri)
    experiment_name = cfg.tracking.experiment_name or cfg.name
    checkpoint_root = Path(cfg.tracking.checkpoint_dir or Path.cwd() / "checkpoints")
    store.check_writable(checkpoint_root, "tracking.checkpoint_dir")
    if store.local_path(artifact_root) is not None:
        store.check_writable(store.local_path(artifact_root), "tracking.artifact_root")
    mlflow.set_tracking_uri(uri)
    plan = None
    outer_run_id = os.environ.get("MLFLOW_RUN_ID")  # set by `mlflow run`, which made the run we must log into
    if outer_run_id and cfg.resume:
        raise InputError(f"resume={cfg.resume} cannot be combined with `mlflow run` (MLFLOW_RUN_ID={outer_run_id})")
    with store.store_lock(uri):  # a fresh store is created (schema migration) by one process, not four at once
        client = mlflow.MlflowClient(uri)
        if outer_run_id:
            experiment_id = with_retries(client.get_run, outer_run_id).info.experiment_id
            experiment_name = with_retries(client.get_experiment, experiment_id).name
        elif cfg.resume:
            found = with_retries(client.get_experiment_by_name, experiment_name)
            if found is None:
                raise InputError(f"resume={cfg.resume}: experiment {experiment_name!r} does not exist in {uri}")
            experiment_id = found.experiment_id
            plan = store.plan_resume(client, experiment_id, cfg.resume, flatten(cfg), checkpoint_root)
        else:
            experiment_id = with_retries(store.experiment_id_for, client, experiment_name, artifact_root)
        store.enable_wal(uri)
    try:
        location = store.local_path(with_retries(client.get_experiment, experiment_id).artifact_location)
        if location is not None:  # an existing experiment keeps its own artifact folder
            store.check_writable(location, f"the artifact folder of experiment {experiment_name!r}")
        new_tags = {**run_tags(cfg, command), **(tags or {})}
        if plan is not None:
            run = with_retries(mlflow.start_run, run_id=plan.run_id, log_system_metrics=False)
        elif outer_run_id:
            run = with_retries(mlflow.start_run, run_id=outer_run_id, tags=new_tags,
                               log_system_metrics=False)
        else:
            run = with_retries(mlflow.start_run, experiment_id=experiment_id, run_name=cfg.tracking.run_name,
                               tags=new_tags, log_system_metrics=False)
    except BaseException:
        if plan is not None:
            plan.lock.release()
        raise
    lock = plan.lock if plan is not None else store.RunLock(checkpoint_root, run.info.run_id)
    if plan is None and not lock.acquire():  # only `mlflow run` hands us a run id another process could hold
        with_retries(mlflow.end_run, "FAILED")
        raise InputError(f"run {run.info.run_id} is already being trained ({lock.holder()})")
    return _OpenedRun(client, uri, run, experiment_id, experiment_name, plan, checkpoint_root / run.info.run_id, lock)


def _fit_into_run(cfg: DictConfig, opened: _OpenedRun, swept: tuple[str, ...], module: Any,
                  datamodule: Any, callbacks: Sequence[L.Callback] = ()) -> TrainResult:
    """Fit, test and log into the started run; it ends FINISHED, FAILED or KILLED (see :func:`store.ended`)."""
    run_id, plan, checkpoint_dir = opened.run_id, opened.plan, opened.checkpoint_dir
    guard = _guard(cfg)
    with _signals_handled(), store.ended(opened.client, run_id, end=mlflow.end_run):
        try:
            if plan is not None:
                store.start_resumed(opened.client, plan)
                log.info("resuming run %s from %s", run_id, plan.checkpoint or "its start")
            else:
                params, config_tags = split_params(flatten(cfg), swept)
                with_retries(mlflow.log_params, params)
                with_retries(mlflow.set_tags, config_tags)
                with_retries(mlflow.log_text, to_yaml(cfg), tracking.CONFIG_ARTIFACT)
            checkpoint = _checkpoint_callback(checkpoint_dir)
            start = partial(start_system_metrics, run_id, resume=plan is not None) if cfg.tracking.system_metrics else None
            logger = EpochMLFlowLogger(experiment_name=opened.experiment_name, tracking_uri=opened.uri, run_id=run_id,
                                       skip_steps=plan.logged_steps if plan else None, after_first_log=start)
            trainer = _trainer(cfg, guard, checkpoint, logger, callbacks)
            with guards.exported_run_id(run_id):  # DDP worker ranks join this run instead of making their own
                trainer.fit(module, datamodule=datamodule, ckpt_path=plan.checkpoint if plan else None,
                            weights_only=True)
            if trainer.interrupted:
                raise KeyboardInterrupt()  # an interrupt Lightning swallowed: treat like Ctrl-C
            stopping.check_stop()  # between phases: fit, test, the checkpoint, the weights, the model
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            best = checkpoint.best_model_path
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True)
            _leave_process_group(trainer)
            stopping.check_stop()
            if best:
                with_retries(mlflow.log_artifact, best, tracking.CHECKPOINT_DIR)
            with_retries(_log_weights, module.network)
            stopping.check_stop()
            if cfg.tracking.log_model:
                with_retries(_log_model, module.network, datamodule)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        except BaseException as err:  # noqa: BLE001 - an interrupt ends the run KILLED, with its exit code
            signum = guards.interrupt_signal(err, guard)
            if signum is None:
                raise
            last = checkpoint_dir / store.LAST_CHECKPOINT
            interrupted = RunInterrupted(signum, run_id, last if last.is_file() else None)
            log.warning("latentdream: %s", interrupted)
            raise interrupted from None
    return TrainResult(run_id, opened.experiment_id, metrics, module, datamodule, trainer, health=health_of(trainer))
