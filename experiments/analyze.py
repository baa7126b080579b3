"""Analyses added to an earlier run: ``latentdream analyze|oip|dream RUN_ID [overrides]``.

Each command checks everything first — the run exists, it holds the right kind of model, the overrides are valid,
the data is still there — and only then writes into the run, so a typo never leaves a run half-updated.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig

from analysis import tracking
from experiments.config import load_experiment
from lightning_modules.errors import InputError


@dataclass(frozen=True)
class LoggedRun:
    """An earlier run, its resolved config (with the new overrides applied) and a writer into it."""

    run_id: str
    cfg: DictConfig
    client: Any
    writer: tracking.RunWriter
    last_epoch: int

    def load_network(self):
        """The trained network logged as ``runs:/<id>/model`` (an ``nn.Module``, in eval mode)."""
        return mlflow.pytorch.load_model(f"runs:/{self.run_id}/{tracking.MODEL_NAME}").eval()


def open_run(run_id: str, overrides: list[str], kind: str) -> LoggedRun:
    """Find ``run_id`` in the store and check it is a finished-model run of ``kind`` (autoencoder/classifier).

    :raises InputError: unknown run, wrong kind, no logged model or config, invalid overrides.
    """
    uri = tracking.default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"run {run_id!r} does not exist in {uri}") from None
    run_kind = run.data.tags.get(tracking.TAG_KIND)
    if run_kind != kind:
        raise InputError(f"run {run_id} is a {run_kind or 'non-latentdream'} run; this command needs a {kind} run")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, tracking.CONFIG_ARTIFACT, tmp)
        except Exception:  # noqa: BLE001 - any failure means the run has no config
            raise InputError(f"run {run_id} has no {tracking.CONFIG_ARTIFACT}; was it made by latentdream train?") from None
        cfg = load_experiment(str(Path(path)), overrides)
    history = client.get_metric_history(run_id, tracking.VAL_LOSS)
    last_epoch = max((m.step for m in history), default=0)
    return LoggedRun(run_id, cfg, client, tracking.RunWriter(client, run_id), last_epoch)


def analyze(run_id: str, overrides: list[str]) -> None:
    """Re-encode an autoencoder run's training set and log the latent analysis into that run."""
    from analysis.callbacks.latent import LatentAnalysisSettings, record_latent_analysis
    from experiments.build import build_datamodule

    logged = open_run(run_id, overrides, kind="autoencoder")
    settings = LatentAnalysisSettings.from_config(dict(logged.cfg.analysis))
    datamodule = build_datamodule(logged.cfg)
    datamodule.prepare_data()
    network = logged.load_network()
    loader = datamodule.images_dataloader("train", batch_size=settings.batch_size)
    report = record_latent_analysis(logged.writer, network, loader, settings, step=logged.last_epoch)
    print(f"latent analysis of run {run_id} logged at step {logged.last_epoch}: "
          f"{len(report.dominant_idx)} dominant components, PCA 90% = {report.n_pca_90}")
