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
from analysis.callbacks.periodic import settings_from
from experiments.config import load_experiment
from latentdream.errors import InputError


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
    from experiments.runs import check_tracking_reachable

    uri = tracking.default_tracking_uri()
    check_tracking_reachable(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"run {run_id!r} does not exist in {uri}") from None
    run_kind = run.data.tags.get(tracking.TAG_KIND)
    if run_kind != kind:
        found = run_kind or "non-latentdream"
        raise InputError(f"run {run_id} is {'an' if found[0] in 'aeiou' else 'a'} {found} run; "
                         f"this command needs {'an' if kind[0] in 'aeiou' else 'a'} {kind} run")
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
    settings = settings_from(LatentAnalysisSettings, dict(logged.cfg.analysis))
    datamodule = build_datamodule(logged.cfg)
    datamodule.prepare_data()
    network = logged.load_network()
    loader = datamodule.images_dataloader("train", batch_size=settings.batch_size)
    report = record_latent_analysis(logged.writer, network, loader, settings, step=logged.last_epoch)
    print(f"latent analysis of run {run_id} logged at step {logged.last_epoch}: "
          f"{len(report.dominant_idx)} dominant components, PCA 90% = {report.n_pca_90}")


def _shorthand(overrides: list[str], section: str, lists: dict[str, str]) -> list[str]:
    """``layer=conv3`` → ``oip.layers=[conv3]``; a key without a dot belongs to ``section``."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key in lists:
            out.append(f"{section}.{lists[key]}={value if value.startswith('[') else f'[{value}]'}")
        elif sep and "." not in key:
            out.append(f"{section}.{key}={value}")
        else:
            out.append(item)
    return out


def _child_writer(logged: LoggedRun, name: str) -> tracking.RunWriter:
    """A nested run under ``logged`` (tag ``mlflow.parentRunId``) to hold one analysis apart from the training."""
    parent = logged.client.get_run(logged.run_id)
    child = logged.client.create_run(parent.info.experiment_id, run_name=name,
                                     tags={"mlflow.parentRunId": logged.run_id, tracking.TAG_KIND: name})
    logged.client.set_terminated(child.info.run_id)
    return tracking.RunWriter(logged.client, child.info.run_id)


def dream(run_id: str, image: str | None, overrides: list[str]) -> None:
    """Dream with a CNN run's network on a photo and log the panels into the run (or a child run)."""
    from analysis.callbacks.dream import DreamSettings, load_photo, record_dreams

    extra = [f"dream.image={image}"] if image else []
    logged = open_run(run_id, [*extra, *_shorthand(overrides, "dream", {"mode": "modes"})], kind="classifier")
    settings = settings_from(DreamSettings, dict(logged.cfg.dream))
    load_photo(settings.image, settings.max_side)  # a bad image fails here, before anything is written
    network = logged.load_network()
    writer = _child_writer(logged, "dream") if logged.cfg.dream.child_run else logged.writer
    metrics = record_dreams(writer, network, settings, step=logged.last_epoch)
    for key, value in sorted(metrics.items()):
        print(f"  {key} = {value:.4f}")
    print(f"dreams logged into run {writer.run_id}")


def oip(run_id: str, overrides: list[str]) -> None:
    """Render OIPs with a CNN run's network and log them into the run (``layer=conv3 init=fluct_7 maps=[1,2]``)."""
    from analysis.callbacks.oip import OIPSettings, record_oips

    shorthand = _shorthand(overrides, "oip", {"layer": "layers", "init": "inits", "map": "maps"})
    logged = open_run(run_id, shorthand, kind="classifier")
    network = logged.load_network()
    results = record_oips(logged.writer, network, settings_from(OIPSettings, dict(logged.cfg.oip)), step=logged.last_epoch)
    for r in results:
        print(f"  {r.layer} {r.init}: {len(r.maps)} maps, mean activation {r.activation[~r.dead].mean():.3f}, "
              f"{int(r.dead.sum())} dead")
    print(f"OIPs logged into run {run_id}")
