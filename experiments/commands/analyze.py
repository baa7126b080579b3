"""Analyses added to an earlier run: ``latentdream analyze|oip|dream RUN_ID [overrides]``.

Each command checks everything first — the run exists, it holds the right kind of model, the overrides are valid,
the data is still there — and computes the whole analysis before it writes anything, so a typo or a failing step
never leaves a run half-updated.

Trust boundary: the network is rebuilt from the run's ``config.yaml`` and only its weights are read, with
``torch.load(weights_only=True)`` (``checkpoints/weights.pt``, or the state dict of ``checkpoints/best.ckpt``), so a
planted pickle in the store runs no code here. The MLflow model (``runs:/<id>/model``) stays for
``mlflow.pytorch.load_model`` users, who unpickle it and must trust whoever can write the store.
The analysis runs on the accelerator the trainer would use (``trainer.accelerator``), in exact fp32.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch
from omegaconf import DictConfig

from analysis import tracking
from experiments.reports import publish as reports
from experiments.run import store
from experiments.mlflow_ui import views
from experiments.run.config import load_experiment, section
from latentdream import stopping
from latentdream.errors import InputError

log = logging.getLogger("latentdream")


@dataclass(frozen=True)
class LoggedRun:
    """An earlier run, its resolved config (with the new overrides applied) and a writer into it."""

    run_id: str
    cfg: DictConfig
    client: Any
    writer: tracking.RunWriter
    last_epoch: int

    @property
    def health(self) -> str | None:
        """The run's health verdict (its tag ``health``; None for a run trained before there was one)."""
        return self.client.get_run(self.run_id).data.tags.get(tracking.TAG_HEALTH)

    def publish_view(self) -> None:
        """Refresh the experiment's chart view in the MLflow UI with the metrics and images just logged."""
        views.try_publish_view(self.client, self.client.get_run(self.run_id).info.experiment_id)
        reports.try_publish_report(self.client, self.run_id)  # report.html with what was just added

    def load_network(self) -> torch.nn.Module:
        """The trained network, rebuilt from the run's config and its weights (never unpickled), in eval mode, on the
        accelerator the trainer would use.

        :raises InputError: the run holds neither ``checkpoints/weights.pt`` nor ``checkpoints/best.ckpt``.
        """
        from experiments.run.build import build_network

        channels = self.cfg.data.channels if self.cfg.data.name == "faces" else 1
        network = build_network(self.cfg, channels, self.cfg.data.image_size)
        network.load_state_dict(self._weights())
        return network.to(analysis_device(self.cfg.trainer.accelerator)).eval()

    def _weights(self) -> dict[str, torch.Tensor]:
        with tempfile.TemporaryDirectory() as tmp:
            for path in (tracking.WEIGHTS, f"{tracking.CHECKPOINT_DIR}/best.ckpt"):
                try:
                    local = self.client.download_artifacts(self.run_id, path, tmp)
                except Exception:  # noqa: BLE001 - not in this run: try the next source
                    continue
                try:
                    state = torch.load(local, map_location="cpu", weights_only=True)
                except Exception as err:  # noqa: BLE001 - an UnpicklingError for anything but plain tensors
                    raise InputError(f"run {self.run_id}: {path} is not a plain weights file ({type(err).__name__}); "
                                     "it is not loaded") from None
                if "state_dict" in state:  # a Lightning checkpoint of the LightningModule: keep the network's part
                    prefix = "network."
                    state = {k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
                return state
        raise InputError(f"run {self.run_id} has no {tracking.WEIGHTS} or checkpoint to load the network from")


def analysis_device(accelerator: str) -> torch.device:
    """Where analyses of a run compute: the GPU when the trainer would use one (``auto``, ``gpu``, ``cuda``) and one is
    present, else the CPU."""
    if str(accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def open_run(run_id: str, overrides: list[str], kind: str) -> LoggedRun:
    """Find ``run_id`` in the store and check it is a finished-model run of ``kind`` (autoencoder/classifier).

    :param run_id: a run id, or ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``: the registered version's source run.
    :raises InputError: unknown run, wrong kind, no logged model or config, invalid overrides.
    """
    from experiments.commands.registry import resolve_run_id

    uri, client = store.client_for()
    mlflow.set_tracking_uri(uri)
    run_id = resolve_run_id(client, run_id)
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
    from analysis.callbacks.latent import heldout_split, record_latent_analysis
    from experiments.run.build import build_datamodule

    logged = open_run(run_id, overrides, kind=tracking.KIND_AUTOENCODER)
    settings = section(logged.cfg, "analysis")
    datamodule = build_datamodule(logged.cfg)
    datamodule.prepare_data()
    network = logged.load_network()
    # encoded where the network runs: on a GPU the pixels go there once and the batches are made there
    device = next(network.parameters()).device

    def loader(split: str):
        return datamodule.images_dataloader(split, batch_size=settings.batch_size, device=device)

    split = heldout_split(datamodule)
    log.info("latent analysis of run %s (SIGTERM stops it between chunks) ...", logged.run_id)
    report = record_latent_analysis(logged.writer, network, loader("train"), settings, step=logged.last_epoch,
                                    heldout=(split, loader(split)), val_batches=loader("val"),
                                    health=logged.health)
    logged.publish_view()
    print(f"latent analysis of run {logged.run_id} logged at step {logged.last_epoch}: "
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
    log.info("dreaming with run %s (SIGTERM stops it between steps) ...", logged.run_id)
    if not settings.child_run:
        metrics = record_dreams(logged.writer, network, settings, step=logged.last_epoch)
        target = logged.run_id
    else:
        parent = logged.client.get_run(logged.run_id)
        with stopping.deferred():  # from its creation on, a SIGTERM ends the child run KILLED
            child = logged.client.create_run(parent.info.experiment_id, run_name=tracking.KIND_DREAM,
                                             tags={tracking.TAG_PARENT_RUN: logged.run_id,
                                                   tracking.TAG_KIND: tracking.KIND_DREAM})
            target = child.info.run_id
            with store.ended(logged.client, target):
                metrics = record_dreams(tracking.RunWriter(logged.client, target), network, settings,
                                        step=logged.last_epoch)
    for key, value in sorted(metrics.items()):
        print(f"  {key} = {value:.4f}")
    logged.publish_view()
    print(f"dreams logged into run {target}")


def oip(run_id: str, overrides: list[str]) -> None:
    """Render OIPs with a CNN run's network and log them into the run (``layer=conv3 init=fluct_7 maps=[1,2]``)."""
    from analysis.callbacks.oip import EXAMPLES_BATCH, record_oips
    from experiments.run.build import build_datamodule

    shorthand = _shorthand(overrides, "oip", {"layer": "layers", "init": "inits", "map": "maps"})
    logged = open_run(run_id, shorthand, kind=tracking.KIND_CLASSIFIER)
    settings = section(logged.cfg, "oip")
    network = logged.load_network()
    data = None
    if settings.examples > 0:  # the dataset examples search the run's validation images
        datamodule = build_datamodule(logged.cfg)
        datamodule.prepare_data()
        data = datamodule.images_dataloader("val", batch_size=EXAMPLES_BATCH, device=next(network.parameters()).device)
    log.info("rendering OIPs of run %s (SIGTERM stops it between steps) ...", logged.run_id)
    results = record_oips(logged.writer, network, settings, step=logged.last_epoch, data=data,
                          health=logged.health)
    for r in results:
        live = r.activation[~r.dead]  # empty when every map is dead (oip.preset=reference can do that)
        print(f"  {r.layer} {r.init}: {len(r.maps)} maps, mean activation {live.mean() if live.size else 0.0:.3f}, "
              f"{int(r.dead.sum())} dead")
    logged.publish_view()
    print(f"OIPs logged into run {logged.run_id}")
