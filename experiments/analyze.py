"""Analyses added to an earlier run: ``latentdream analyze|oip|dream RUN_ID [overrides]``.

Each command checks everything first — the run exists, it holds the right kind of model, the overrides are valid,
the data is still there — and computes the whole analysis before it writes anything, so a typo or a failing step
never leaves a run half-updated.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig

from analysis import tracking
from experiments import store
from experiments.config import load_experiment, section
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
    uri, client = store.client_for()
    mlflow.set_tracking_uri(uri)
    store.find_run(client, uri, run_id, kinds=(kind,))
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
    from analysis.callbacks.latent import record_latent_analysis
    from experiments.build import build_datamodule

    logged = open_run(run_id, overrides, kind=tracking.KIND_AUTOENCODER)
    settings = section(logged.cfg, "analysis")
    datamodule = build_datamodule(logged.cfg)
    datamodule.prepare_data()
    network = logged.load_network()
    loader = datamodule.images_dataloader("train", batch_size=settings.batch_size)
    report = record_latent_analysis(logged.writer, network, loader, settings, step=logged.last_epoch)
    print(f"latent analysis of run {run_id} logged at step {logged.last_epoch}: "
          f"{len(report.dominant_idx)} dominant components, PCA 90% = {report.n_pca_90}")


def _shorthand(overrides: list[str], section_name: str, lists: dict[str, str]) -> list[str]:
    """``layer=conv3`` → ``oip.layers=[conv3]``; a key without a dot belongs to ``section_name``."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key in lists:
            out.append(f"{section_name}.{lists[key]}={value if value.startswith('[') else f'[{value}]'}")
        elif sep and "." not in key:
            out.append(f"{section_name}.{key}={value}")
        else:
            out.append(item)
    return out


def dream(run_id: str, image: str | None, overrides: list[str]) -> None:
    """Dream with a CNN run's network on a photo and log the panels into the run (or a child run)."""
    from analysis.callbacks.dream import load_photo, record_dreams

    extra = [f"dream.image={image}"] if image else []
    logged = open_run(run_id, [*extra, *_shorthand(overrides, "dream", {"mode": "modes"})],
                      kind=tracking.KIND_CLASSIFIER)
    settings = section(logged.cfg, "dream")
    load_photo(settings.image, settings.max_side)  # a bad image fails here, before anything is written
    network = logged.load_network()
    if not settings.child_run:
        metrics = record_dreams(logged.writer, network, settings, step=logged.last_epoch)
        target = run_id
    else:
        parent = logged.client.get_run(run_id)
        child = logged.client.create_run(parent.info.experiment_id, run_name=tracking.KIND_DREAM,
                                         tags={tracking.TAG_PARENT_RUN: run_id, tracking.TAG_KIND: tracking.KIND_DREAM})
        target = child.info.run_id
        with store.ended(logged.client, target):
            metrics = record_dreams(tracking.RunWriter(logged.client, target), network, settings, step=logged.last_epoch)
    for key, value in sorted(metrics.items()):
        print(f"  {key} = {value:.4f}")
    print(f"dreams logged into run {target}")


def oip(run_id: str, overrides: list[str]) -> None:
    """Render OIPs with a CNN run's network and log them into the run (``layer=conv3 init=fluct_7 maps=[1,2]``)."""
    from analysis.callbacks.oip import record_oips

    shorthand = _shorthand(overrides, "oip", {"layer": "layers", "init": "inits", "map": "maps"})
    logged = open_run(run_id, shorthand, kind=tracking.KIND_CLASSIFIER)
    network = logged.load_network()
    results = record_oips(logged.writer, network, section(logged.cfg, "oip"), step=logged.last_epoch)
    for r in results:
        live = r.activation[~r.dead]  # empty when every map is dead (oip.preset=reference can do that)
        print(f"  {r.layer} {r.init}: {len(r.maps)} maps, mean activation {live.mean() if live.size else 0.0:.3f}, "
              f"{int(r.dead.sum())} dead")
    print(f"OIPs logged into run {run_id}")
