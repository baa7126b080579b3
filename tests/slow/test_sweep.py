"""``latentdream sweep`` against a real sqlite store: a 2×2 grid with 2 seeds trained 2 at a time, its seed
statistics recomputed from the children, compare of its grid points, the best child registered and loaded back by
alias (also by the analyses), a bad grid value refused before anything starts, and SIGTERM mid-sweep then
``--resume`` without any run twice."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis import tracking
from experiments.commands import runs
from experiments.commands.analyze import open_run
from experiments.commands.cli import main
from experiments.sweeps.sweep import SweepFailed, SweepInterrupted, children, run_sweep
from latentdream.errors import InputError
from tests.conftest import TINY

pytestmark = pytest.mark.slow

LEAN = [*TINY, "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false", "tracking.system_metrics=false",
        "trainer.enable_progress_bar=false"]
GRID = ["optim.lr=0.02,0.05", "model.dropout=0,0.25", "trainer.seed=1,2"]


def _store(path: Path) -> list[str]:
    return [f"tracking.tracking_uri=sqlite:///{path / 'mlflow.db'}", f"tracking.artifact_root={path / 'mlruns'}",
            f"tracking.checkpoint_dir={path / 'checkpoints'}"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One sweep reused by the checks below: 4 points × 2 seeds, 2 epochs each, 2 at a time, best child registered."""
    path = tmp_path_factory.mktemp("sweep")
    began = time.perf_counter()
    parent_id = run_sweep("cnn_mnist_bundled", [*GRID, *LEAN, "trainer.max_epochs=2", *_store(path)], parallel=2,
                          register="digits", alias="champion")
    uri = f"sqlite:///{path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(parent_id)
    return {"path": path, "uri": uri, "client": client, "parent": parent, "children": children(client, parent),
            "seconds": time.perf_counter() - began}


def test_grid_with_seeds_makes_one_parent_and_eight_finished_children(sweep):
    parent, kids = sweep["parent"], sweep["children"]
    assert parent.info.status == "FINISHED" and parent.data.tags["kind"] == "sweep"
    assert parent.data.params == {"sweep.optim.lr": "0.02,0.05", "sweep.model.dropout": "0,0.25",
                                  "sweep.trainer.seed": "1,2"}
    spec = json.loads(Path(sweep["client"].download_artifacts(parent.info.run_id, tracking.SWEEP_SPEC,
                                                              str(sweep["path"]))).read_text())
    assert spec["axes"] == {"optim.lr": ["0.02", "0.05"], "model.dropout": ["0", "0.25"]} and len(spec["runs"]) == 8
    assert len(kids) == 8 and {r.info.status for r in kids} == {"FINISHED"}
    # the swept keys are params (resolved values: 0 → 0.0), each point once per seed
    assert {(r.data.params["optim.lr"], r.data.params["model.dropout"], r.data.params["trainer.seed"]) for r in kids} \
        == {(lr, d, s) for lr in ("0.02", "0.05") for d in ("0.0", "0.25") for s in ("1", "2")}
    for run in kids:
        tags, params = run.data.tags, run.data.params
        assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["kind"] == "classifier"
        dropout = "0" if params["model.dropout"] == "0.0" else params["model.dropout"]  # the point as given
        assert tags["sweep.point"] == f"optim.lr={params['optim.lr']} model.dropout={dropout}"
        assert run.info.run_name == f"{tags['sweep.point']} seed={params['trainer.seed']}"
        assert tags["optim.momentum"] and "optim.momentum" not in run.data.params  # other config values stay tags
        steps = [m.step for m in sweep["client"].get_metric_history(run.info.run_id, tracking.VAL_LOSS)]
        assert steps == [0, 1]
    # 2 at a time: some children overlapped in time
    spans = sorted((r.info.start_time, r.info.end_time) for r in kids)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    print(f"sweep of 8 runs: {sweep['seconds']:.1f} s")


def test_summary_statistics_equal_those_recomputed_from_the_children(sweep):
    client, parent_id = sweep["client"], sweep["parent"].info.run_id
    summary = pd.read_csv(client.download_artifacts(parent_id, tracking.SWEEP_SUMMARY, str(sweep["path"])),
                          dtype={"optim.lr": str, "model.dropout": str})
    assert list(summary.columns) == ["point", "optim.lr", "model.dropout", "metric", "n", "mean", "std"]
    assert len(summary) == 4 * 6  # 4 points × train/val/test loss and acc
    for row in summary.itertuples(index=False):
        values = [r.data.metrics[row.metric] for r in sweep["children"] if r.data.tags["sweep.point"] == row.point]
        assert row.n == len(values) == 2
        assert row.mean == pytest.approx(np.mean(values), rel=1e-9, abs=1e-12)
        assert row.std == pytest.approx(np.std(values, ddof=1), rel=1e-9, abs=1e-12)
    files = {f.path for f in client.list_artifacts(parent_id, tracking.SWEEP_DIR)}
    figures = {tracking.sweep_metric_png("optim.lr"), tracking.sweep_metric_png("model.dropout"), tracking.SWEEP_CURVES}
    assert figures < files and tracking.SWEEP_RUNS in files
    for name in figures:
        with Image.open(client.download_artifacts(parent_id, name, str(sweep["path"]))) as image:
            assert max(image.size) <= 2000


def test_compare_of_the_parent_compares_its_grid_points(sweep):
    client, parent_id = sweep["client"], sweep["parent"].info.run_id
    comparison = runs.compare_runs([parent_id], sweep["uri"])
    run = client.get_run(comparison)
    assert run.data.tags["compared_runs"] == parent_id and run.data.tags["compared_kind"] == "classifier"
    metrics = pd.read_csv(client.download_artifacts(comparison, tracking.COMPARE_FINAL_METRICS,
                                                    str(sweep["path"] / "cmp"))).set_index("metric")
    points = sorted({r.data.tags["sweep.point"] for r in sweep["children"]})
    assert sorted(metrics.columns) == points
    point = points[0]
    expected = np.mean([r.data.metrics["val/loss"] for r in sweep["children"] if r.data.tags["sweep.point"] == point])
    assert metrics.loc["val/loss", point] == pytest.approx(expected)
    summary = json.loads(Path(client.download_artifacts(comparison, tracking.COMPARE_SUMMARY,
                                                        str(sweep["path"] / "cmp"))).read_text())
    assert sorted(summary["groups"]) == points and all(len(ids) == 2 for ids in summary["groups"].values())
    assert tracking.COMPARE_LOSS_CURVES in summary["figures"]


def test_best_child_is_registered_and_loads_by_alias_like_the_run_and_the_analyses(sweep, monkeypatch):
    client, kids = sweep["client"], sweep["children"]
    best = min(kids, key=lambda r: r.data.metrics["val/loss"])
    assert sweep["parent"].data.tags["registered_model"] == "digits/1"
    assert client.get_model_version_by_alias("digits", "champion").run_id == best.info.run_id
    mlflow.set_tracking_uri(sweep["uri"])
    champion = mlflow.pytorch.load_model("models:/digits@champion").eval()
    logged = mlflow.pytorch.load_model(f"runs:/{best.info.run_id}/model").eval()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_array_equal(champion(x).numpy(), logged(x).numpy())
    # `latentdream register` another child as version 2; the analyses take both references (weights only)
    other = next(r for r in kids if r.info.run_id != best.info.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep["uri"])
    assert main(["register", other.info.run_id, "--name", "digits"]) == 0
    assert client.get_model_version("digits", "2").run_id == other.info.run_id
    for reference, run in (("models:/digits@champion", best), ("models:/digits/2", other)):
        network = open_run(reference, [], kind=tracking.KIND_CLASSIFIER).load_network().cpu()
        expected = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model").eval()
        with torch.no_grad():
            np.testing.assert_allclose(network(x).numpy(), expected(x).numpy(), atol=1e-6)
    assert main(["oip", "models:/digits@champion", "layer=conv1", "maps=[0,1]", "steps=2"]) == 0
    assert "oip/conv1_random.png" in {f.path for f in client.list_artifacts(best.info.run_id, "oip")}
    assert main(["register", other.info.run_id, "--name", "digits", "--alias", "bad alias!"]) == 2


def test_a_bad_value_anywhere_in_the_grid_starts_nothing(tmp_path):
    for items, message in ((["model.dropout=0,1.5"], r"sweep run model\.dropout=1\.5: model\.dropout=1\.5 is not allowed"),
                           (["trainer.devices=1,999", "trainer.accelerator=cpu"], "trainer.devices=999"),
                           (["optim.lr=0.1,0.2", "tracking.log_model=false"], "--register needs the runs' models")):
        with pytest.raises(InputError, match=message):
            run_sweep("cnn_mnist_bundled", [*items, *LEAN, *_store(tmp_path)], register="digits")
    assert not (tmp_path / "mlflow.db").exists()  # not even the store was created


def test_a_failing_run_fails_the_sweep_but_not_the_other_runs(tmp_path):
    # global step 1 is the second batch of epoch 0: that run ends FAILED (NaN loss), the other finishes
    items = ["trainer.inject_nan_at_step=1,1000", *LEAN, "tracking.log_model=false", *_store(tmp_path)]
    with pytest.raises(SweepFailed, match=r"1 of 2 runs did not finish \(trainer.inject_nan_at_step=1\)"):
        run_sweep("cnn_mnist_bundled", items, parallel=2)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = [r for r in client.search_runs([client.get_experiment_by_name("cnn_mnist_bundled").experiment_id])
                 if r.data.tags["kind"] == "sweep"]
    assert parent.info.status == "FAILED" and parent.data.tags["failure_reason"].startswith("SweepFailed: 1 of 2")
    statuses = {r.data.tags["sweep.point"]: r.info.status for r in children(client, parent)}
    assert statuses == {"trainer.inject_nan_at_step=1": "FAILED", "trainer.inject_nan_at_step=1000": "FINISHED"}
    summary = pd.read_csv(client.download_artifacts(parent.info.run_id, tracking.SWEEP_SUMMARY, str(tmp_path)))
    assert set(summary["point"]) == {"trainer.inject_nan_at_step=1000"}  # statistics of the finished runs


def _kill_when(uri: str, ready, timeout: float = 120) -> threading.Thread:
    """SIGTERM to this process (where the sweep runs) once ``ready(client, runs)`` holds for the experiment's runs;
    never, if it does not within ``timeout`` (the test then fails for want of the interrupt)."""
    def watch() -> None:
        client = mlflow.MlflowClient(uri)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = client.get_experiment_by_name("cnn_mnist_bundled") if Path(uri[10:]).exists() else None
            if found is not None and ready(client, client.search_runs([found.experiment_id])):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_sigterm_mid_sweep_then_resume_completes_without_any_run_twice(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    items = ["optim.lr=0.01,0.02,0.03", *LEAN, "tracking.log_model=false", "trainer.max_epochs=2", *_store(tmp_path)]

    def first_done_second_in_epoch_1(client, found) -> bool:
        kids = {r.data.tags.get("sweep.point"): r for r in found if "sweep.point" in r.data.tags}
        second = kids.get("optim.lr=0.02")
        return (kids.get("optim.lr=0.01") is not None and kids["optim.lr=0.01"].info.status == "FINISHED"
                and second is not None and any(m.step == 0 for m in client.get_metric_history(
                    second.info.run_id, tracking.TRAIN_LOSS)))

    watcher = _kill_when(uri, first_done_second_in_epoch_1)
    with pytest.raises(SweepInterrupted) as stopped:
        run_sweep("cnn_mnist_bundled", [*items, "trainer.sleep_per_batch=0.5"], parallel=1)  # epoch 1 takes >= 1 s
    watcher.join()
    assert stopped.value.code == 143
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(stopped.value.run_id)
    before = {r.data.tags["sweep.point"]: r for r in children(client, parent)}
    assert parent.info.status == "KILLED"
    assert {p: r.info.status for p, r in before.items()} == {"optim.lr=0.01": "FINISHED", "optim.lr=0.02": "KILLED"}

    # the sleep knob may change on resume (as for train's resume); the grid may not
    with pytest.raises(InputError, match="started with another grid"):
        run_sweep("cnn_mnist_bundled", ["optim.lr=0.01,0.02", *items[1:]], resume=parent.info.run_id)
    assert run_sweep("cnn_mnist_bundled", items, resume=parent.info.run_id, parallel=2) == parent.info.run_id
    parent = client.get_run(parent.info.run_id)
    after = {r.data.tags["sweep.point"]: r for r in children(client, parent)}
    assert parent.info.status == "FINISHED" and parent.data.tags["resumed"] == "1"
    assert len(children(client, parent)) == 3 and {r.info.status for r in after.values()} == {"FINISHED"}
    for point in ("optim.lr=0.01", "optim.lr=0.02"):
        assert after[point].info.run_id == before[point].info.run_id  # in place
    assert "resumed" not in after["optim.lr=0.01"].data.tags and after["optim.lr=0.02"].data.tags["resumed"] == "1"
    for run in after.values():
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, tracking.TRAIN_LOSS)) == [0, 1]
    summary = pd.read_csv(client.download_artifacts(parent.info.run_id, tracking.SWEEP_SUMMARY, str(tmp_path)))
    assert len(set(summary["point"])) == 3 and set(summary["n"]) == {1}
    with pytest.raises(InputError, match="the sweep is FINISHED"):
        run_sweep("cnn_mnist_bundled", items, resume=parent.info.run_id)
