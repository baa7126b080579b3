"""The MLflow contract and one small writer for a run.

Every metric key, tag and artifact path that latentdream writes or reads is defined here, because they are a
contract: comparison scripts, the README and other people's notebooks read runs by these names. Nothing else names
them; where a name depends on a value (a layer, a mode, b and k) a function here builds it. :class:`RunWriter` is
how analyses write into a run; the store (where runs live, opening and ending them) is ``experiments.run.store``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from latentdream.names import safe_segment

# --- metric keys (step = epoch); the LightningModules log their epoch means as ``<stage>/<name>`` -----------------
TRAIN_LOSS, VAL_LOSS, TEST_LOSS = "train/loss", "val/loss", "test/loss"
TRAIN_ACC, VAL_ACC, TEST_ACC = "train/acc", "val/acc", "test/acc"
LEARNING_RATE = "train/lr"
# what runs are compared by: stored first in every run (MLflow's Compare page and runs table take the first keys)
HEADLINE_METRICS = (VAL_LOSS, VAL_ACC)


def headline_first(key: str) -> int:
    """Sort key putting :data:`HEADLINE_METRICS` first, in their order (a stable sort keeps the others')."""
    return HEADLINE_METRICS.index(key) if key in HEADLINE_METRICS else len(HEADLINE_METRICS)



# --- artifact paths ----------------------------------------------------------------------------------------------
CONFIG_ARTIFACT = "config.yaml"
FAILURE_TRACEBACK = "failure_traceback.txt"  # beside the tag failure_reason of a FAILED run
CHECKPOINT_DIR = "checkpoints"  # best.ckpt
WEIGHTS = f"{CHECKPOINT_DIR}/weights.pt"  # the trained network's state dict (loaded with weights_only=True)
MODEL_NAME = "model"  # runs:/<id>/model

LATENT_DIR = "latent"
LATENT_HISTOGRAMS = f"{LATENT_DIR}/histograms.npz"  # edges, counts (z_dim × n_bins)
LATENT_COMPONENTS = f"{LATENT_DIR}/components.csv"
LATENT_HIT_RATES = f"{LATENT_DIR}/hit_rates.csv"
LATENT_RADIUS = f"{LATENT_DIR}/radius.csv"
LATENT_SUMMARY = f"{LATENT_DIR}/summary.json"
LATENT_Z_SAMPLE = f"{LATENT_DIR}/z_sample.npy"
LATENT_Z_SAMPLE_INDEX = f"{LATENT_DIR}/z_sample_index.npy"
LATENT_HISTOGRAMS_PNG = f"{LATENT_DIR}/histograms.png"  # also the stepped image LATENT_HISTOGRAMS_IMAGE
LATENT_HISTOGRAMS_IMAGE = f"{LATENT_DIR}/histograms"
LATENT_DOMINANT_FITS_PNG = f"{LATENT_DIR}/dominant_fits.png"
LATENT_RADIUS_PNG = f"{LATENT_DIR}/radius.png"
LATENT_SCATTER_PNG = f"{LATENT_DIR}/correlation_scatter.png"
LATENT_HEATMAP_PNG = f"{LATENT_DIR}/correlation_heatmap.png"
LATENT_PCA_PNG = f"{LATENT_DIR}/pca_spectrum.png"
LATENT_UNIFORM_HISTOGRAMS_PNG = f"{LATENT_DIR}/uniform_histograms.png"  # components of the uniform vectors per b
LATENT_TRAVERSALS_PNG = f"{LATENT_DIR}/traversals.png"  # also the stepped image LATENT_TRAVERSALS_IMAGE
LATENT_TRAVERSALS_IMAGE = f"{LATENT_DIR}/traversals"
LATENT_INTERPOLATIONS_PNG = f"{LATENT_DIR}/interpolations.png"
LATENT_INTERPOLATIONS = f"{LATENT_DIR}/interpolations.csv"  # pair, path, step, t, k, in_region_share, radius
LATENT_MAHALANOBIS_PNG = f"{LATENT_DIR}/mahalanobis.png"
LATENT_MAHALANOBIS = f"{LATENT_DIR}/mahalanobis.csv"  # quantile, observed, chi2, dof
LATENT_MAHALANOBIS_KS = f"{LATENT_DIR}/mahalanobis_ks"  # metric: KS statistic of the d² against χ²_N
LATENT_HELDOUT = f"{LATENT_DIR}/heldout.csv"  # the test split (or val, column split) against the training region
LATENT_HIT_RATES_PCA = f"{LATENT_DIR}/hit_rates_pca.csv"  # the hit grid in centred principal axes


def latent_generated_png(generator: str) -> str:
    """``latent/generated_<uniform|gaussian|multivariate>.png``: faces decoded from one generator's vectors."""
    return f"{LATENT_DIR}/generated_{generator}.png"


OIP_DIR = "oip"
OIP_ACTIVATION = f"{OIP_DIR}/activation.csv"


def oip_stem(layer: str, init: str) -> str:
    """``oip/<layer>_<init>``: the stepped image key; with ``.png`` the grid, with ``.npz`` the arrays."""
    return f"{OIP_DIR}/{layer}_{init}"


def oip_examples_png(layer: str) -> str:
    """``oip/examples_<layer>.png``: every map's OIP beside the validation images that activate it most."""
    return f"{OIP_DIR}/examples_{layer}.png"


def oip_examples_npz(layer: str) -> str:
    """``oip/examples_<layer>.npz``: ``indices`` and ``activations`` (maps × examples) of those images."""
    return f"{OIP_DIR}/examples_{layer}.npz"


def oip_predictions_csv(layer: str) -> str:
    """``oip/predictions_<layer>.csv``: the class probabilities of each map's OIP (init, map, p_0.., predicted)."""
    return f"{OIP_DIR}/predictions_{layer}.csv"


DREAM_DIR = "dream"
HEALTH_DIR = "health"  # the health verdict's metrics: health/<name>


def dream_folder(mode: str, image_name: str) -> str:
    """``dream/<mode>_<image>``: holds ``panels.png``, ``final.png`` (full resolution) and ``config.yaml``; the image's
    name is mapped to one safe path segment (:func:`latentdream.names.safe_segment`), never a path."""
    return f"{DREAM_DIR}/{mode}_{safe_segment(image_name)}"


COMPARE_DIR = "compare"
COMPARE_PARAMS_DIFF = f"{COMPARE_DIR}/params_diff.csv"
COMPARE_FINAL_METRICS = f"{COMPARE_DIR}/final_metrics.csv"
COMPARE_SUMMARY = f"{COMPARE_DIR}/summary.json"
COMPARE_LOSS_CURVES = f"{COMPARE_DIR}/loss_curves.png"
COMPARE_LATENT_HISTOGRAMS = f"{COMPARE_DIR}/latent_histograms.png"
COMPARE_HIT_RATES = f"{COMPARE_DIR}/hit_rates.png"


COMPARE_CKA = f"{COMPARE_DIR}/cka.csv"  # layer_a, layer_b, cka: linear CKA between every pair of layers
COMPARE_CKA_PNG = f"{COMPARE_DIR}/cka.png"


def compare_oip_png(stem_name: str, page: str) -> str:
    """``compare/oip_<layer>_<init>_maps<first>-<last>.png``: the runs' OIPs of one layer and init in index order,
    map k beside map k — drawn only for runs from the same initial weights (same seed and model), where map k of
    each began as the same filter."""
    return f"{COMPARE_DIR}/oip_{stem_name}_{page}.png"


def compare_oip_matched_png(stem_name: str) -> str:
    """``compare/oip_<layer>_<init>_matched.png``: the two runs' OIPs paired by map matching, by correlation."""
    return f"{COMPARE_DIR}/oip_{stem_name}_matched.png"


def compare_map_matching_csv(layer: str) -> str:
    """``compare/map_matching_<layer>.csv``: map_a, map_b, correlation of the optimal one-to-one matching."""
    return f"{COMPARE_DIR}/map_matching_{layer}.csv"


def compare_cka_metric(layer: str) -> str:
    """``compare/cka/<layer>``: linear CKA of the two runs' layers of the same name."""
    return f"{COMPARE_DIR}/cka/{layer}"


SWEEP_DIR = "sweep"  # in a sweep's parent run
SWEEP_SPEC = f"{SWEEP_DIR}/spec.json"  # experiment, axes, fixed overrides, seeds, random draw, the planned runs
SWEEP_RUNS = f"{SWEEP_DIR}/runs.csv"  # run_id, point, seed, status of every child
SWEEP_SUMMARY = f"{SWEEP_DIR}/summary.csv"  # point, the swept keys' values, metric, n, mean, std (ddof=1)
SWEEP_CURVES = f"{SWEEP_DIR}/val_loss_curves.png"  # per-epoch val/loss, mean ± std over seeds, one line per point
SWEEP_TRIALS = f"{SWEEP_DIR}/trials.csv"  # a search's trials: trial, params (JSON), state, value, epochs, run_id
SWEEP_HISTORY = f"{SWEEP_DIR}/optimization_history.png"  # Optuna's optimisation history of a search
SWEEP_IMPORTANCES = f"{SWEEP_DIR}/param_importances.png"  # Optuna's parameter importances (past 8 trials)


def sweep_metric_png(key: str) -> str:
    """``sweep/metric_vs_<key>.png``: each summarised metric's mean ± std against one swept key's value."""
    return f"{SWEEP_DIR}/metric_vs_{key}.png"


# --- analysis metric keys ----------------------------------------------------------------------------------------
def latent_metric(name: str) -> str:
    """``latent/<name>``: a latent-analysis summary (``n_mu_ge_0.25``, ``radius_mean``, ``pca_90``, …)."""
    return f"{LATENT_DIR}/{name}"


def latent_hit_metric(b: float, k: float) -> str:
    """``latent/hit_b{b}_k{k}``: the fraction of uniform vectors in [-b, b]^N inside mu ± k·half_width."""
    return f"{LATENT_DIR}/hit_b{b:g}_k{k:g}"


def latent_test_region_metric(k: float) -> str:
    """``latent/test_region_k{k}``: the fraction of held-out vectors (test split, else validation) inside the
    training data's mu ± k·half_width."""
    return f"{LATENT_DIR}/test_region_k{k:g}"


def oip_metric(layer: str, name: str) -> str:
    """``oip/<layer>/<mean_final_activation|dead_maps>``."""
    return f"{OIP_DIR}/{layer}/{name}"


# the names of ``dream/<mode>/<name>``: the objective (``dream.response`` of the mode's objective, post-ReLU by
# default, so >= 0) on the photo as the mode's network sees it, on the dream, and after − before
DREAM_OBJECTIVE_BEFORE, DREAM_OBJECTIVE_AFTER, DREAM_OBJECTIVE_GAIN = "objective_before", "objective_after", "objective_gain"


def dream_metric(mode: str, name: str) -> str:
    """``dream/<mode>/<objective_before|objective_after|objective_gain>`` (:data:`DREAM_OBJECTIVE_BEFORE`, …)."""
    return f"{DREAM_DIR}/{mode}/{name}"


def health_metric(name: str) -> str:
    """``health/<name>``: a number behind the health verdict (``ok``, ``val_loss_change``, ``saturated_outputs``,
    ``pc1_share``, ``silent_maps_<layer>``), logged once at the end of training."""
    return f"{HEALTH_DIR}/{name}"


def is_sweep_summary_metric(key: str) -> bool:
    """Whether a sweep's seed statistics pool ``key``: the final losses and accuracies, every ``latent/*`` summary,
    ``oip/<layer>/dead_maps`` and ``dream/<mode>/objective_gain``."""
    parts = key.split("/")
    return (key in (TRAIN_LOSS, VAL_LOSS, TEST_LOSS, TRAIN_ACC, VAL_ACC, TEST_ACC) or parts[0] == LATENT_DIR
            or (parts[0] == OIP_DIR and parts[-1] == "dead_maps")
            or (parts[0] == DREAM_DIR and parts[-1] == DREAM_OBJECTIVE_GAIN))


# --- params: few and short, since the MLflow UI captions every image card with all of them; every other config
# value is a tag of the same key (``optim.momentum``), and a sweep adds the keys it varies -------------------------
PARAM_KEYS = ("optim.name", "optim.lr", "trainer.max_epochs", "data.batch_size")  # model and data: the tags

# --- tags --------------------------------------------------------------------------------------------------------
TAG_GIT_COMMIT = "mlflow.source.git.commit"  # the key the MLflow UI shows as the run's source version
TAG_PARENT_RUN = "mlflow.parentRunId"  # MLflow nests a run under this one in its runs table
TAG_COMMAND = "command"
TAG_MODEL, TAG_DATASET, TAG_EXPERIMENT, TAG_KIND = "model", "dataset", "experiment", "kind"
TAG_FAILURE = "failure_reason"
TAG_HEALTH = "health"  # the health verdict of a trained run: HEALTH_OK or its reasons ("saturated: …; collapsed: …")
HEALTH_OK = "ok"
TAG_PREVIOUS_FAILURE = "previous_failure"  # a resumed run's last failure_reason
TAG_RESUMED = "resumed"  # how many times the run was resumed
TAG_ENDED_BY = "ended_by"  # a run a crash left RUNNING, ended by `latentdream end`
TAG_RESUME_PREFIX = "resume."  # resume.<key>: a value that changed on resume (params are immutable)
TAG_COMPARED = "compared_runs"  # comma-separated run ids, in the order given
TAG_COMPARED_KIND = "compared_kind"

TAG_SWEEP_NODE = "sweep.node"  # a sweep child's Ray node id (the node it last trained on)
TAG_SWEEP_STATE = "sweep.state"  # a sweep child's end: complete, or pruned (by the search's Optuna pruner)
TAG_SWEEP_PRUNED_EPOCH = "sweep.pruned_epoch"  # a pruned child: the epoch after which the pruner stopped it
TAG_SWEEP_TRIAL = "sweep.trial"  # a search's child: its Optuna trial number
TAG_SWEEP_POINT = "sweep.point"  # a sweep child's grid point, ``key=value key2=value2`` (seeds pooled): Group by
TAG_REGISTERED = "registered_model"  # ``NAME/VERSION`` a run (or a sweep's best child) was registered as
SWEEP_PARAM_PREFIX = "sweep."  # a sweep parent's params: sweep.<key> = the values swept, sweep.random, ...


def sweep_param(key: str) -> str:
    """``sweep.<key>``: a sweep parent's param listing the values of one swept key (``sweep.trainer.seed``: seeds)."""
    return f"{SWEEP_PARAM_PREFIX}{key}"


# values of TAG_KIND
KIND_AUTOENCODER, KIND_CLASSIFIER, KIND_COMPARISON, KIND_DREAM = "autoencoder", "classifier", "comparison", "dream"
TRAINED_KINDS = (KIND_AUTOENCODER, KIND_CLASSIFIER)  # runs that trained a network: resumable, comparable, registrable
KIND_SWEEP = "sweep"  # a sweep's parent run; its children keep their own kind


IMAGES_DIR = "images"  # MLflow's folder of stepped images (log_image with a key)
TAG_LOGGED_IMAGES = "mlflow.loggedImages"  # MLflow's run tag: the run has stepped images
THUMBNAIL_PX = 1200  # the long side of the image a UI card shows (MLflow's own log_image makes it 256 px)
REPORT = "report.html"  # at a run's root: the self-contained report (experiments/reports)
FIGURE_DPI = 110  # the resolution of logged figures ...
MAX_FIGURE_PX = 2000  # ... unless that would make the long side larger than this: then the dpi shrinks


def figure_dpi(figure: Any) -> float:
    """The dpi a logged figure is saved at: :data:`FIGURE_DPI`, lowered so that the long side of the PNG is at most
    :data:`MAX_FIGURE_PX` px (the plot functions size their figures so that this rarely applies)."""
    width, height = figure.get_size_inches()
    return min(FIGURE_DPI, MAX_FIGURE_PX / max(width, height))


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
        """Save ``figure`` as a PNG at ``artifact_path`` (at :func:`figure_dpi`: at most :data:`MAX_FIGURE_PX` on
        the long side); with ``step_key`` also as a stepped image, so the UI's image view steps through the figure's
        versions over epochs."""
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=figure_dpi(figure))
        self._log_bytes(artifact_path, buf.getvalue())
        if step_key is not None:
            self.stepped_image(step_key, step or 0, buf.getvalue())

    def stepped_image(self, key: str, step: int, png: bytes) -> None:
        """A PNG as the stepped image ``key`` at ``step``, as ``MlflowClient.log_image(key=, step=)`` stores it —
        the full image and the WebP the UI's image cards show — but with that WebP at the image's own size (up to
        :data:`THUMBNAIL_PX`) instead of MLflow's fixed 256 px, which makes a grid of small panels unreadable.

        MLflow's UI finds the pair by name (``images/<key, / as ~>+step+<n>+timestamp+<ms>+<uuid>.png`` and the same
        stem ``+compressed.webp``) and by the run tag :data:`TAG_LOGGED_IMAGES`."""
        import uuid

        from PIL import Image

        image = Image.open(io.BytesIO(png)).convert("RGB")
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))  # keeps the aspect; never enlarges
        thumb = io.BytesIO()
        image.save(thumb, format="WEBP", lossless=True)
        stamp = f"step+{int(step)}+timestamp+{int(time.time() * 1000)}+{uuid.uuid4()}"
        stem = f"{IMAGES_DIR}/{key.replace('/', '~')}+{stamp}"
        self._log_bytes(f"{stem}.png", png)
        self._log_bytes(f"{stem}+compressed.webp", thumb.getvalue())
        self.client.set_tag(self.run_id, TAG_LOGGED_IMAGES, "true")

    def tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        """All ``values`` in one batch at ``step``; non-finite numbers are kept (MLflow stores NaN)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key=k, value=float(v), timestamp=now, step=int(step)) for k, v in values.items()]
        for start in range(0, len(batch), 1000):  # MLflow's per-request metric limit
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])
