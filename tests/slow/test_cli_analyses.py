"""``latentdream analyze | oip | dream`` through the command line (``experiments.commands.cli.main``, in-process) against one
2-epoch CNN run and one tiny autoencoder run: exit code 0, and the artifacts and metrics land in the run; a dream
whose later mode fails leaves nothing behind; every figure a run holds is at most 2,000 px on its long side."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import tracking
from experiments.commands.cli import main
from experiments.run.config import load_experiment
from experiments.run.train import train
from tests.conftest import TINY

pytestmark = pytest.mark.slow

QUIET = ["tracking.system_metrics=false", "trainer.enable_progress_bar=false"]
# the analyses during training, shrunk: they run (so their figures are checked below) but cost seconds
SMALL_ANALYSES = ["oip.steps=5", "oip.layers=[conv1,conv3]", "dream.steps=2", "dream.cycles=2",
                  "dream.steps_per_octave=2", "dream.octaves=2", "dream.max_side=64", "analysis.n_random=2000"]
# the same for `latentdream dream` (shorthand: keys without a dot belong to the dream section)
DREAM = ["steps=2", "cycles=2", "steps_per_octave=2", "octaves=2", "max_side=64"]
PHOTO_SHAPE = (80, 120)  # (H, W): larger than max_side, so final.png proves the full resolution


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One CNN run (2 epochs of 10 batches) and one autoencoder run (1 epoch of 2 batches) in one sqlite store; the
    commands find it through MLFLOW_TRACKING_URI, as a user's shell would."""
    path = tmp_path_factory.mktemp("cli_store")
    uri = f"sqlite:///{path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        cnn = train(load_experiment("cnn_mnist_bundled", [
            "trainer.max_epochs=2", "trainer.limit_train_batches=10", "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=1", "data.batch_size=32", *QUIET, *SMALL_ANALYSES]), command="pytest")
        ae = train(load_experiment("ae_case1_mnist_bundled", [*TINY, *QUIET, "analysis.n_random=2000"]),
                   command="pytest")
        yield {"cnn": cnn.run_id, "ae": ae.run_id, "client": mlflow.MlflowClient(uri), "path": path}


def _photo(folder, name: str) -> str:
    rng = np.random.default_rng(0)
    small = Image.fromarray((rng.random((8, 12)) * 255).astype(np.uint8))
    file = folder / f"{name}.png"
    small.resize(PHOTO_SHAPE[::-1], Image.BICUBIC).save(file)  # smooth, photo-like structure
    return str(file)


def _files(client, run_id: str, folder: str) -> set[str]:
    return {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, folder)}


def _all_artifacts(client, run_id: str, folder: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, folder):
        out.extend(_all_artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return out


def test_analyze_logs_the_latent_analysis_into_the_run(runs):
    client, run_id = runs["client"], runs["ae"]
    assert main(["analyze", run_id, "analysis.n_random=1000", "analysis.b=[1,2]"]) == 0
    names = _files(client, run_id, tracking.LATENT_DIR)
    assert {"uniform_histograms.png", "histograms.png", "radius.png", "generated_gaussian.png", "components.csv",
            "hit_rates.csv"} <= names
    assert {"latent/pca_90", "latent/hit_b2_k2", "latent/n_mu_ge_0.25"} <= set(client.get_run(run_id).data.metrics)
    header = open(client.download_artifacts(run_id, tracking.LATENT_COMPONENTS, str(runs["path"]))).readline()
    assert header.strip().split(",")[3:6] == ["mu", "mode", "half_width"]


@pytest.mark.parametrize("overrides,stems", [
    (["layer=conv1", "init=fluct_7", "maps=[0,3]", "steps=5"], ["conv1_fluct_7"]),
    (["layer=[conv2,conv3]", "init=[random]", "maps=[1]", "steps=3", "preset=reference", "shared_scale=true"],
     ["conv2_random", "conv3_random"]),
])
def test_oip_logs_grids_arrays_and_metrics(runs, overrides, stems):
    client, run_id = runs["client"], runs["cnn"]
    assert main(["oip", run_id, *overrides]) == 0
    names = _files(client, run_id, tracking.OIP_DIR)
    metrics = client.get_run(run_id).data.metrics
    for stem in stems:
        assert {f"{stem}.png", f"{stem}.npz"} <= names
        layer = stem.split("_")[0]
        assert {tracking.oip_metric(layer, name) for name in ("dead_maps", "mean_final_activation")} <= set(metrics)
    npz = np.load(client.download_artifacts(run_id, f"oip/{stems[-1]}.npz", str(runs["path"])))
    assert npz["maps"].tolist() == ([0, 3] if len(stems) == 1 else [1])
    for layer in {stem.split("_")[0] for stem in stems}:  # every map's dataset examples, the OIPs' predictions
        assert {f"examples_{layer}.png", f"examples_{layer}.npz", f"predictions_{layer}.csv"} <= names
        examples = np.load(client.download_artifacts(run_id, tracking.oip_examples_npz(layer), str(runs["path"])))
        n_maps = {"conv1": 32, "conv2": 64, "conv3": 128}[layer]
        assert examples["indices"].shape == examples["activations"].shape == (n_maps, 8)
        assert np.all(np.diff(examples["activations"], axis=1) <= 0)
        predictions = pd.read_csv(client.download_artifacts(run_id, tracking.oip_predictions_csv(layer),
                                                            str(runs["path"])))
        assert predictions["map"].tolist() == npz["maps"].tolist()
        assert predictions[[f"p_{c}" for c in range(10)]].sum(axis=1).to_numpy() == pytest.approx(1.0)


@pytest.mark.parametrize("order", ["image_first", "image_last"])
@pytest.mark.parametrize("mode", ["seed", "octaves", "tiled"])
def test_dream_each_mode_in_both_argument_orders(runs, tmp_path, mode, order):
    client, run_id = runs["client"], runs["cnn"]
    photo = _photo(tmp_path, f"photo_{mode}_{order}")
    argv = (["dream", run_id, "--image", photo, f"mode={mode}", *DREAM] if order == "image_first"
            else ["dream", run_id, f"mode={mode}", *DREAM, "--image", photo])
    assert main(argv) == 0
    folder = tracking.dream_folder(mode, f"photo_{mode}_{order}")
    assert _files(client, run_id, folder) == {"panels.png", "final.png", "config.yaml"}
    final = Image.open(client.download_artifacts(run_id, f"{folder}/final.png", str(tmp_path)))
    assert final.size == PHOTO_SHAPE[::-1]  # the photo's own resolution, though the dream ran at 64 px
    metrics = client.get_run(run_id).data.metrics
    assert tracking.dream_metric(mode, tracking.DREAM_OBJECTIVE_GAIN) in metrics
    assert metrics[tracking.dream_metric(mode, tracking.DREAM_OBJECTIVE_BEFORE)] >= 0  # post-ReLU in every mode


def test_dream_on_the_default_photo_runs_every_mode(runs, tmp_path):
    client, run_id = runs["client"], runs["cnn"]
    assert main(["dream", run_id, *DREAM]) == 0
    for mode in ("seed", "octaves", "tiled"):
        folder = tracking.dream_folder(mode, "flower")
        assert _files(client, run_id, folder) == {"panels.png", "final.png", "config.yaml"}
    final = Image.open(client.download_artifacts(run_id, "dream/octaves_flower/final.png", str(tmp_path)))
    assert final.size == (640, 427)  # scikit-learn's flower at full resolution


def test_a_dream_whose_later_mode_fails_leaves_nothing_behind(runs, tmp_path, monkeypatch):
    import analysis.callbacks.dream as dream_callback

    client, run_id = runs["client"], runs["cnn"]
    real = dream_callback.run_dream
    calls = []

    def tiled_fails(network, image, mode, settings, progress=False):
        calls.append(str(mode))
        if mode == "tiled":
            raise RuntimeError("tiled broke")
        return real(network, image, mode, settings, progress)

    monkeypatch.setattr(dream_callback, "run_dream", tiled_fails)
    before = client.get_run(run_id).data.metrics
    photo = _photo(tmp_path, "half_done")
    with pytest.raises(RuntimeError, match="tiled broke"):
        main(["dream", run_id, "--image", photo, "mode=[seed,tiled]", *DREAM])
    assert calls == ["seed", "tiled"]  # the seed dream was computed ...
    assert not [p for p in _all_artifacts(client, run_id, tracking.DREAM_DIR) if "half_done" in p]  # ... not logged
    assert client.get_run(run_id).data.metrics == before


def test_every_figure_in_the_runs_fits_2000_px(runs):
    """Everything the training callbacks and the commands above logged (final.png, at the photo's resolution, and
    MLflow's own images/ are exempt)."""
    client = runs["client"]
    checked = 0
    for run_id in (runs["cnn"], runs["ae"]):
        for path in _all_artifacts(client, run_id):
            if not path.endswith(".png") or path.endswith("final.png") or path.startswith("images/"):
                continue
            size = Image.open(client.download_artifacts(run_id, path, str(runs["path"] / "dl"))).size
            assert max(size) <= tracking.MAX_FIGURE_PX, (path, size)
            checked += 1
    assert checked >= 15  # latent, OIP and dream figures were all there
