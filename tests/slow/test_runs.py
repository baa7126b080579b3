"""Runs as a first-class path against real stores: list, compare, download, reload the model, ``mlflow run``, and a
real tracking server over HTTP."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from analysis import latent as ls
from analysis import tracking
from analysis.settings import LatentSettings
from experiments.commands import runs
from experiments.run import store
from experiments.run.config import load_experiment
from experiments.run.train import train
from latentdream.errors import InputError
from lightning_modules.networks import MnistCNN
from tests.conftest import TINY
from tests.ui import mlflow_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Tiny CNN runs without the after-training analyses (OIPs, dreams): those have their own tests.
LEAN = [*TINY, "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false"]


def _overrides(path: Path, uri: str) -> list[str]:
    return [f"tracking.tracking_uri={uri}", f"tracking.artifact_root={path / 'mlruns'}",
            f"tracking.checkpoint_dir={path / 'checkpoints'}", "tracking.system_metrics=false",
            "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def cnn_store(tmp_path_factory):
    """Two finished tiny CNN runs (lr 0.05 with a logged model, lr 0.01 without) and two autoencoder runs whose
    ``latent/`` files come from the real analysis of random latents (no training: the files are the point)."""
    path = tmp_path_factory.mktemp("runs_store")
    uri = f"sqlite:///{path / 'mlflow.db'}"
    a = train(load_experiment("cnn_mnist_bundled", [*LEAN, *_overrides(path, uri), "optim.lr=0.05"]), command="pytest")
    b = train(load_experiment("cnn_mnist_bundled", [*LEAN, *_overrides(path, uri), "optim.lr=0.01",
                                                    "tracking.log_model=false"]), command="pytest")
    client = mlflow.MlflowClient(uri)
    for i, result in enumerate((a, b)):  # what the OIP callback leaves (it is wired elsewhere): conv1 OIPs
        writer = tracking.RunWriter(client, result.run_id)
        rng = np.random.default_rng(i)
        writer.npz("oip/conv1_random.npz", patterns=rng.random((4, 28, 28)).astype(np.float32),
                   initial=np.zeros(4), final=np.ones(4), dead=np.array([False, False, i == 1, False]))
    ae_exp = store.experiment_id_for(client, "ae_fake", str(path / "mlruns"))
    ae_ids = []
    for i, scale in enumerate((1.0, 2.5)):
        run = client.create_run(ae_exp, tags={tracking.TAG_KIND: "autoencoder"})
        z = np.random.default_rng(i).normal(0, 1, (400, 6)) * np.array([scale, 0.1, 2.0, 0.1, 1.0, 0.1])
        settings = LatentSettings(n_bins=30, range=[-8.0, 8.0], b=[1.0, 3.0], k=[1.5, 3.0], n_random=2000)
        report = ls.analyze_latents(z, settings)
        writer = tracking.RunWriter(client, run.info.run_id)
        writer.npz(tracking.LATENT_HISTOGRAMS, edges=report.edges, counts=report.counts.astype(np.int64))
        writer.table(tracking.LATENT_COMPONENTS, report.components)
        writer.table(tracking.LATENT_HIT_RATES, report.hits)
        client.log_param(run.info.run_id, "model.latent_dim", str(6 + i))
        client.log_metric(run.info.run_id, tracking.VAL_LOSS, 0.1 * (i + 1))
        client.set_terminated(run.info.run_id, "FINISHED")
        ae_ids.append(run.info.run_id)
    return {"path": path, "uri": uri, "client": client, "cnn": [a, b], "ae": ae_ids}


def _comparison_count(client) -> int:
    found = client.get_experiment_by_name(runs.COMPARISON_EXPERIMENT)
    return 0 if found is None else len(client.search_runs([found.experiment_id]))


def test_runs_table_lists_status_params_metrics(cnn_store, capsys):
    a, b = cnn_store["cnn"]
    table = runs.runs_table("cnn_mnist_bundled", cnn_store["uri"])
    assert list(table["run_id"]) == [b.run_id, a.run_id]  # newest first
    assert set(table["status"]) == {"FINISHED"} and set(table["kind"]) == {"classifier"}
    assert list(table["optim.lr"]) == ["0.01", "0.05"]
    assert table["val/loss"].tolist() == pytest.approx([b.metrics["val/loss"], a.metrics["val/loss"]])
    assert len(runs.runs_table(None, cnn_store["uri"])) >= 4
    runs.print_runs("cnn_mnist_bundled", cnn_store["uri"])
    out = capsys.readouterr().out
    assert a.run_id in out and "FINISHED" in out and "val/loss" in out
    with pytest.raises(InputError, match=r"unknown experiment 'cnn_mnist' in .*; existing: .*ae_fake, cnn_mnist_bundled"):
        runs.runs_table("cnn_mnist", cnn_store["uri"])


def test_compare_cnn_runs_holds_diff_metrics_and_oips_side_by_side(cnn_store, tmp_path):
    a, b = cnn_store["cnn"]
    client = cnn_store["client"]
    comparison = runs.compare_runs([a.run_id, b.run_id], cnn_store["uri"])
    run = client.get_run(comparison)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "comparisons"
    assert run.data.tags["kind"] == "comparison" and run.data.tags["compared_runs"] == f"{a.run_id},{b.run_id}"
    local = Path(mlflow.artifacts.download_artifacts(run_id=comparison, artifact_path="compare",
                                                     tracking_uri=cnn_store["uri"], dst_path=str(tmp_path)))
    # same seed and model: the runs began from the same weights, so the index-order pages stay beside the matching
    assert sorted(p.name for p in local.iterdir()) == [
        "cka.csv", "cka.png", "final_metrics.csv", "loss_curves.png", "map_matching_conv1.csv",
        "map_matching_conv2.csv", "map_matching_conv3.csv", "oip_conv1_random_maps0-3.png",
        "oip_conv1_random_matched.png", "params_diff.csv", "summary.json"]
    matching = pd.read_csv(local / "map_matching_conv1.csv")
    assert list(matching.columns) == ["map_a", "map_b", "correlation"]
    assert sorted(matching["map_a"]) == sorted(matching["map_b"]) == list(range(32))
    assert (np.diff(matching["correlation"]) <= 0).all()
    cka = pd.read_csv(local / "cka.csv")
    assert len(cka) == 9 and set(cka["layer_a"]) == {"conv1", "conv2", "conv3"}
    assert {"compare/cka/conv1", "compare/cka/conv3"} <= set(run.data.metrics)
    diff = pd.read_csv(local / "params_diff.csv", dtype=str, keep_default_na=False).set_index("param")
    assert diff.loc["optim.lr"].tolist() == ["0.05", "0.01"] and diff.loc["tracking.log_model"].tolist() == ["True", "False"]
    assert "optim.name" not in diff.index  # equal params are left out
    metrics = pd.read_csv(local / "final_metrics.csv").set_index("metric")
    assert metrics.loc["val/loss", a.run_id] == pytest.approx(a.metrics["val/loss"])


def test_a_network_with_permuted_maps_is_matched_back_by_compare(cnn_store, tmp_path):
    from tests.unit.test_map_comparison import permuted_state

    a, _ = cnn_store["cnn"]
    client = cnn_store["client"]
    state = torch.load(client.download_artifacts(a.run_id, tracking.WEIGHTS, str(tmp_path)), weights_only=True)
    names = ["conv1", "conv2", "conv3"]
    permuted, perms = permuted_state(state, names, seed=3)
    twin = client.create_run(client.get_run(a.run_id).info.experiment_id, tags={tracking.TAG_KIND: "classifier"})
    twin_id = twin.info.run_id
    client.log_artifact(twin_id, client.download_artifacts(a.run_id, tracking.CONFIG_ARTIFACT, str(tmp_path)))
    torch.save(permuted, tmp_path / "weights.pt")
    client.log_artifact(twin_id, str(tmp_path / "weights.pt"), artifact_path=tracking.CHECKPOINT_DIR)
    client.set_terminated(twin_id, "FINISHED")
    comparison = runs.compare_runs([a.run_id, twin_id], cnn_store["uri"])
    metrics = client.get_run(comparison).data.metrics
    for name in names:
        matching = pd.read_csv(client.download_artifacts(comparison, tracking.compare_map_matching_csv(name),
                                                         str(tmp_path / name)))
        live = matching["correlation"] > 0  # a map silent on every probe image correlates with nothing
        assert live.mean() > 0.5
        assert np.array_equal(perms[name][matching["map_b"][live]], matching["map_a"][live])  # B's j is A's perm[j]
        assert matching["correlation"][live].to_numpy() == pytest.approx(1.0, abs=1e-4)
        assert metrics[tracking.compare_cka_metric(name)] == pytest.approx(1.0, abs=1e-5)
    files = {f.path for f in client.list_artifacts(comparison, "compare")}
    assert not any("_maps" in f for f in files)  # different starts (the twin records no seed): no index order


def test_compare_autoencoders_draws_histograms_and_hit_rates(cnn_store, tmp_path):
    client = cnn_store["client"]
    comparison = runs.compare_runs(cnn_store["ae"], cnn_store["uri"])
    names = sorted(f.path for f in client.list_artifacts(comparison, "compare"))
    assert names == [f"compare/{n}" for n in ("final_metrics.csv", "hit_rates.png", "latent_histograms.png",
                                              "loss_curves.png", "params_diff.csv", "summary.json")]
    assert client.get_run(comparison).data.tags["compared_kind"] == "autoencoder"


def test_compare_under_mlflow_run_writes_into_the_given_run(cnn_store, monkeypatch):
    client = cnn_store["client"]
    outer = client.create_run(client.get_experiment_by_name("ae_fake").experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)  # what `mlflow run . -e compare` hands its command
    before = _comparison_count(client)
    assert runs.compare_runs(cnn_store["ae"], cnn_store["uri"]) == outer
    assert _comparison_count(client) == before
    assert client.get_run(outer).data.tags["kind"] == "comparison"
    assert "compare/hit_rates.png" in [f.path for f in client.list_artifacts(outer, "compare")]


def test_bad_compare_input_creates_nothing(cnn_store):
    a, _ = cnn_store["cnn"]
    client = cnn_store["client"]
    before = _comparison_count(client)
    for ids, message in [([a.run_id, cnn_store["ae"][0]], "cannot compare runs of different kinds"),
                         ([a.run_id, "0" * 32], f"run '{'0' * 32}' does not exist"),
                         ([a.run_id], "at least 2 different run ids")]:
        with pytest.raises(InputError, match=message):
            runs.compare_runs(ids, cnn_store["uri"])
    assert _comparison_count(client) == before


def test_downloaded_artifacts_reread_and_model_predicts_like_the_checkpoint(cnn_store, tmp_path):
    a, _ = cnn_store["cnn"]
    out = Path(mlflow.artifacts.download_artifacts(run_id=a.run_id, artifact_path="", tracking_uri=cnn_store["uri"],
                                                   dst_path=str(tmp_path / "out")))
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"] == 0.05
    with np.load(out / "oip" / "conv1_random.npz") as npz:
        assert npz["patterns"].shape == (4, 28, 28)
    state = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    fresh = MnistCNN()
    fresh.load_state_dict({k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")})
    mlflow.set_tracking_uri(cnn_store["uri"])
    logged = mlflow.pytorch.load_model(f"runs:/{a.run_id}/model").eval()
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(logged(x).numpy(), fresh.eval()(x).numpy(), atol=1e-6)


def test_mlflow_run_train_entry_point_makes_one_finished_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = " ".join([*LEAN, "tracking.log_model=false", f"tracking.checkpoint_dir={tmp_path / 'ck'}",
                          "tracking.system_metrics=false", "trainer.enable_progress_bar=false"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.monotonic()
    # cwd=tmp_path: the experiment `mlflow run` creates keeps its artifacts in ./mlruns, i.e. in tmp_path
    done = subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "train", "-P",
                           "experiment=cnn_mnist_bundled", "-P", f"overrides={overrides}",
                           "--experiment-name", "cnn_mnist_bundled", "--env-manager", "local"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(found) == 1, [(r.info.experiment_id, r.info.status) for r in found]  # train resumed mlflow run's run
    run = found[0]
    assert run.info.status == "FINISHED" and time.monotonic() - start < 240
    assert client.get_experiment(run.info.experiment_id).name == "cnn_mnist_bundled"
    assert run.data.tags["mlflow.project.entryPoint"] == "train" and run.data.tags["kind"] == "classifier"
    # MLflow logs the shell-quoted value it substituted into the command line
    assert run.data.params["overrides"] == f"'{overrides}'" and run.data.params["trainer.max_epochs"] == "1"
    assert tracking.VAL_LOSS in run.data.metrics
    assert "config.yaml" in [f.path for f in client.list_artifacts(run.info.run_id)]


def test_tracking_server_round_trip_over_http(tmp_path):
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "served", tmp_path / "server.log") as url:
        store.check_reachable(url)
        cfg = load_experiment("cnn_mnist_bundled", [*LEAN, "tracking.log_model=false", f"tracking.tracking_uri={url}",
                                                    f"tracking.checkpoint_dir={tmp_path / 'ck'}",
                                                    "tracking.system_metrics=false", "trainer.enable_progress_bar=false"])
        result = train(cfg, command="pytest")
        client = mlflow.MlflowClient(url)
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED" and run.data.params["optim.name"] == "sgd"
        assert run.data.metrics[tracking.VAL_LOSS] == pytest.approx(result.metrics[tracking.VAL_LOSS])
        text = mlflow.artifacts.load_text(f"runs:/{result.run_id}/config.yaml")
        assert yaml.safe_load(io.StringIO(text))["name"] == "cnn_mnist_bundled"
        assert any((tmp_path / "served").rglob("best.ckpt"))  # the server stored the artifact, not the client
        table = runs.runs_table("cnn_mnist_bundled", url)
        assert list(table["run_id"]) == [result.run_id]
