"""``train(cfg)``: one experiment → one MLflow run, from data check to logged model.

The run is created only after the config and the data have been checked, so bad input never leaves an empty or
failed run behind. The run ends FINISHED, FAILED (tag ``failure_reason``) or KILLED (Ctrl-C), never RUNNING,
unless the process itself is killed.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.models import infer_signature
from omegaconf import DictConfig
from typing_extensions import override

from analysis import tracking
from experiments.build import build_callbacks, build_datamodule, build_module, build_network, is_autoencoder, trainer_kwargs
from experiments.config import flatten, to_yaml

log = logging.getLogger("latentdream")


class EpochMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that logs every metric at the *epoch* as its step, so runs of different batch sizes or data
    sizes line up epoch by epoch in the MLflow UI (Lightning puts the epoch into each metrics dict it logs)."""

    @override
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        super().log_metrics(metrics, step=int(epoch) if epoch is not None else step)


@dataclass(frozen=True)
class TrainResult:
    """What a training run leaves: its id, final metrics and the live objects (for tests and analyses)."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    module: Any
    datamodule: Any
    trainer: Any


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
        tracking.TAG_KIND: "autoencoder" if is_autoencoder(cfg) else "classifier",
        tracking.TAG_COMMAND: command or " ".join(sys.argv),
    }
    commit = git_commit()
    if commit:
        tags[tracking.TAG_GIT_COMMIT] = commit
    return tags


def _log_model(network: torch.nn.Module, datamodule: Any) -> None:
    """Log the plain network with an input/output signature, loadable by ``mlflow.pytorch.load_model``."""
    sample = next(iter(datamodule.val_dataloader()))
    x = (sample[0] if isinstance(sample, (tuple, list)) else sample)[:2]
    network = network.eval()
    device = next(network.parameters()).device
    with torch.no_grad():
        y = network(x.to(device)).cpu()
    signature = infer_signature(x.numpy(), y.numpy())
    # 'pickle' keeps the nn.Module with its methods (encode/decode, named conv layers) for later analyses.
    mlflow.pytorch.log_model(
        network.cpu(), name=tracking.MODEL_NAME, signature=signature, serialization_format="pickle", pip_requirements=[]
    )
    network.to(device)


def train(cfg: DictConfig, command: str | None = None) -> TrainResult:
    """Train ``cfg`` into a new MLflow run and return the run id and final metrics.

    :raises lightning_modules.errors.InputError: bad data (before any run is created).
    """
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()  # checks the data folder, builds caches: before a run exists
    datamodule.setup("fit")
    network = build_network(cfg, datamodule.in_channels, datamodule.image_size)
    module = build_module(cfg, network)

    uri = cfg.tracking.tracking_uri or tracking.default_tracking_uri()
    artifact_root = cfg.tracking.artifact_root or tracking.default_artifact_root(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment_id = tracking.experiment_id_for(client, cfg.tracking.experiment_name or cfg.name, artifact_root)

    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=cfg.tracking.run_name,
        tags=run_tags(cfg, command),
        log_system_metrics=cfg.tracking.system_metrics,
    )
    run_id = run.info.run_id
    try:
        mlflow.log_params(flatten(cfg))
        mlflow.log_text(to_yaml(cfg), tracking.CONFIG_ARTIFACT)
        checkpoint_dir = Path(cfg.tracking.checkpoint_dir or Path.cwd() / "checkpoints") / run_id
        checkpoint = ModelCheckpoint(
            dirpath=checkpoint_dir, filename="best", monitor=tracking.VAL_LOSS, mode="min", save_last=True
        )
        logger = EpochMLFlowLogger(experiment_name=cfg.tracking.experiment_name or cfg.name, tracking_uri=uri, run_id=run_id)
        trainer = L.Trainer(logger=logger, callbacks=[checkpoint, *build_callbacks(cfg)], **trainer_kwargs(cfg))
        trainer.fit(module, datamodule=datamodule)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = checkpoint.best_model_path
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        if best:
            mlflow.log_artifact(best, tracking.CHECKPOINT_DIR)
        if cfg.tracking.log_model:
            _log_model(module.network, datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException as err:
        mlflow.set_tag(tracking.TAG_FAILURE, f"{type(err).__name__}: {err}"[:5000])
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")
    return TrainResult(run_id, experiment_id, metrics, module, datamodule, trainer)
