"""A tiny real training into a sqlite MLflow store, read back: params, per-epoch metrics, config, model."""

import mlflow
import numpy as np
import pytest
import torch
import yaml

from analysis import tracking
from experiments.run.config import flatten, load_experiment, recorded_config
from experiments.run.train import train
from tests.conftest import TINY

pytestmark = pytest.mark.slow


NO_ANALYSIS = ["oip.enabled=false", "dream.enabled=false", "analysis.enabled=false"]


def _run(store, name, extra=()):
    cfg = load_experiment(name, [*TINY, *store["overrides"], *NO_ANALYSIS, *extra])
    result = train(cfg, command="pytest")
    client = mlflow.MlflowClient(store["uri"])
    return result, client, client.get_run(result.run_id)


def test_cnn_run_holds_params_metrics_config_checkpoint_and_model(store):
    result, client, run = _run(store, "cnn_mnist_bundled", ["trainer.max_epochs=2"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "cnn_mnist_bundled"
    # a few short params (the MLflow UI captions every image card with them); every other value is a config tag
    assert set(run.data.params) == set(tracking.PARAM_KEYS)
    assert len(", ".join(f"{k}={v}" for k, v in run.data.params.items())) <= 120
    assert run.data.params["optim.name"] == "sgd" and run.data.params["trainer.max_epochs"] == "2"
    assert run.data.tags["model.conv_filters"] == "[32, 64, 128]" and run.data.tags["optim.momentum"] == "0.9"
    assert recorded_config(run) == flatten(load_experiment("cnn_mnist_bundled", [
        *TINY, *store["overrides"], *NO_ANALYSIS, "trainer.max_epochs=2"]))
    # tags for filtering and provenance
    tags = run.data.tags
    assert tags["experiment"] == "cnn_mnist_bundled" and tags["dataset"] == "mnist_bundled"
    assert tags["model"] == "mnist_cnn" and tags["command"] == "pytest"
    # per-epoch metrics at the epoch as step
    for key in (tracking.TRAIN_LOSS, tracking.VAL_LOSS, tracking.VAL_ACC, tracking.LEARNING_RATE):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
    assert tracking.TEST_ACC in run.data.metrics
    # the full YAML, reloadable into the same config
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="config.yaml",
                                               tracking_uri=store["uri"], dst_path=str(store["path"] / "dl"))
    logged = yaml.safe_load(open(path))
    assert logged["model"]["conv_filters"] == [32, 64, 128] and logged["name"] == "cnn_mnist_bundled"
    # best checkpoint, and the network's weights alone (what the analysis commands load)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt",
                                                                                      tracking.WEIGHTS]
    # the model reloads and predicts exactly like the trained network
    mlflow.set_tracking_uri(store["uri"])
    model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x).numpy(), result.module.network.eval()(x).numpy(), atol=1e-6)
    assert model.map_counts() == {"conv1": 32, "conv2": 64, "conv3": 128}


def test_autoencoder_run_logs_loss_and_a_model_with_encode(store):
    result, client, run = _run(store, "ae_case1_mnist_bundled")
    assert run.info.status == "FINISHED"
    assert run.data.tags["model.encoder_filters"] == "[32, 64, 128, 256]"
    assert [m.step for m in client.get_metric_history(run.info.run_id, tracking.VAL_LOSS)] == [0]
    mlflow.set_tracking_uri(store["uri"])
    model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    assert model.encode(torch.rand(3, 1, 32, 32)).shape == (3, 256)


def test_same_seed_repeats_exactly_on_cpu(store):
    a, *_ = _run(store, "cnn_mnist_bundled", ["tracking.log_model=false"])
    b, *_ = _run(store, "cnn_mnist_bundled", ["tracking.log_model=false"])
    assert a.run_id != b.run_id
    assert a.metrics["train/loss"] == pytest.approx(b.metrics["train/loss"], abs=1e-6)


def test_cnn_run_logs_oips_and_dreams_under_their_contract_names(store):
    """The OIP and dream callbacks at the end of CNN training (small settings: the names and contents matter)."""
    extra = ["oip.enabled=true", "oip.layers=[conv1,conv3]", "oip.steps=15", "oip.inits=[random,fluct_7]",
             "dream.enabled=true", "dream.steps=3", "dream.cycles=2", "dream.steps_per_octave=2", "dream.max_side=96",
             "tracking.log_model=false"]
    _, client, run = _run(store, "cnn_mnist_bundled", extra)
    run_id = run.info.run_id
    oip = {a.path for a in client.list_artifacts(run_id, "oip")}
    for name in ("conv1_random", "conv1_fluct_7", "conv3_random", "conv3_fluct_7"):
        assert {f"oip/{name}.png", f"oip/{name}.npz"} <= oip
    assert "oip/activation.csv" in oip
    for layer in ("conv1", "conv3"):  # the final render adds the dataset examples and the OIPs' predictions
        assert {f"oip/examples_{layer}.png", f"oip/examples_{layer}.npz", f"oip/predictions_{layer}.csv"} <= oip
    npz = np.load(client.download_artifacts(run_id, "oip/conv3_fluct_7.npz", str(store["path"])))
    assert npz["patterns"].shape == (128, 28, 28) and npz["patterns"].dtype == np.float32
    assert npz["initial"].shape == npz["final"].shape == npz["dead"].shape == (128,)
    assert npz["dead"].dtype == bool
    live = ~npz["dead"]
    assert (npz["final"][live] >= npz["initial"][live]).mean() > 0.9  # the ascent raised nearly every live map
    metrics = run.data.metrics
    assert {"oip/conv1/mean_final_activation", "oip/conv1/dead_maps", "oip/conv3/dead_maps"} <= set(metrics)
    dream = {a.path for a in client.list_artifacts(run_id, "dream")}
    assert dream == {"dream/seed_flower", "dream/octaves_flower", "dream/tiled_flower"}
    for mode in ("seed", "octaves", "tiled"):
        files = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, f"dream/{mode}_flower")}
        assert files == {"panels.png", "final.png", "config.yaml"}
        assert f"dream/{mode}/objective_gain" in metrics
    final = client.download_artifacts(run_id, "dream/seed_flower/final.png", str(store["path"]))
    from PIL import Image

    assert Image.open(final).size == (640, 427)  # the photo at its full resolution, though dreamt at 96 px
