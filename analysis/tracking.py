"""The MLflow module: where runs live, the names other scripts read, and one small writer for a run.

Metric keys and artifact paths are constants here because they are a contract: comparison scripts, the README and
other people's notebooks read runs by these names. Nothing outside this module (and the launcher) talks to MLflow.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# --- the contract: metric keys -------------------------------------------------------------------------------
TRAIN_LOSS, VAL_LOSS, TEST_LOSS = "train/loss", "val/loss", "test/loss"
TRAIN_ACC, VAL_ACC, TEST_ACC = "train/acc", "val/acc", "test/acc"
LEARNING_RATE = "train/lr"

# --- the contract: artifact paths ------------------------------------------------------------------------------
CONFIG_ARTIFACT = "config.yaml"
CHECKPOINT_DIR = "checkpoints"  # best.ckpt
MODEL_NAME = "model"  # runs:/<id>/model

LATENT_DIR = "latent"
OIP_DIR = "oip"
DREAM_DIR = "dream"

# --- the contract: tags ----------------------------------------------------------------------------------------
TAG_GIT_COMMIT = "mlflow.source.git.commit"  # the key the MLflow UI shows as the run's source version
TAG_COMMAND = "command"
TAG_MODEL, TAG_DATASET, TAG_EXPERIMENT, TAG_KIND = "model", "dataset", "experiment", "kind"
TAG_FAILURE = "failure_reason"


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


def experiment_id_for(client: Any, name: str, artifact_root: str | None) -> str:
    """Id of experiment ``name``, created (with artifacts under ``artifact_root/<name>``) if missing.

    Two processes may create it at once; the loser of that race reads the winner's.
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = Path(artifact_root, name).as_uri() if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - RESOURCE_ALREADY_EXISTS from a concurrent creator
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


class RunWriter:
    """Writes figures, arrays, tables and metrics into one existing run, by artifact path.

    :param client: an ``mlflow.MlflowClient`` for the run's tracking URI.
    :param run_id: the run to write into (it may be finished: analyses can be added to old runs).
    """

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def _log_bytes(self, artifact_path: str, data: bytes) -> None:
        folder, name = os.path.split(artifact_path)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, name)
            local.write_bytes(data)
            self.client.log_artifact(self.run_id, str(local), artifact_path=folder or None)

    def text(self, artifact_path: str, text: str) -> None:
        self._log_bytes(artifact_path, text.encode())

    def json(self, artifact_path: str, obj: Mapping[str, Any]) -> None:
        self.text(artifact_path, json.dumps(obj, indent=2, sort_keys=True, default=float))

    def table(self, artifact_path: str, frame: Any) -> None:
        """A pandas DataFrame as CSV (no index column)."""
        self.text(artifact_path, frame.to_csv(index=False))

    def npz(self, artifact_path: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        self._log_bytes(artifact_path, buf.getvalue())

    def npy(self, artifact_path: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, array)
        self._log_bytes(artifact_path, buf.getvalue())

    def image(self, artifact_path: str, image: np.ndarray) -> None:
        """An image array in [0, 1] ((H, W) gray or (H, W, 3) RGB) as a lossless 8-bit PNG at full resolution."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(buf, format="PNG")
        self._log_bytes(artifact_path, buf.getvalue())

    def figure(self, artifact_path: str, figure: Any, *, step_key: str | None = None, step: int | None = None) -> None:
        """Save ``figure`` as a PNG at ``artifact_path``; with ``step_key`` also as a stepped image, so the UI's
        image view steps through the figure's versions over epochs."""
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=110)
        self._log_bytes(artifact_path, buf.getvalue())
        if step_key is not None:
            from PIL import Image

            buf.seek(0)
            self.client.log_image(self.run_id, Image.open(buf).convert("RGB"), key=step_key, step=step or 0)

    def file(self, local_path: str | Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path=artifact_dir)

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        """All ``values`` in one batch at ``step``; non-finite numbers are kept (MLflow stores NaN)."""
        from mlflow.entities import Metric

        import time

        now = int(time.time() * 1000)
        batch = [Metric(key=k, value=float(v), timestamp=now, step=int(step)) for k, v in values.items()]
        for start in range(0, len(batch), 1000):  # MLflow's per-request metric limit
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])


def writer_for(trainer: Any) -> RunWriter | None:
    """A :class:`RunWriter` for the MLflow run that ``trainer`` logs to, or None where nothing should be written:
    on ranks other than 0, during the sanity check, or without an MLflow logger (e.g. ``fast_dev_run``)."""
    if getattr(trainer, "global_rank", 0) != 0 or getattr(trainer, "sanity_checking", False):
        return None
    for logger in getattr(trainer, "loggers", []):
        run_id = getattr(logger, "run_id", None)
        if run_id and type(logger).__name__.endswith("MLFlowLogger"):
            return RunWriter(logger.experiment, run_id)
    return None
