"""Sweeps on a real two-node Ray cluster (``ray start --head`` and ``ray start --address`` on 127.0.0.1) against the
suite's real PostgreSQL store, nothing mocked: a 2 × 2 grid whose children land on both nodes; a TPE search with
pruning whose study lives in the same PostgreSQL; a worker node killed while a child trains (the child resumes in
place on the head); and, on a local Ray the sweep starts itself, SIGTERM to the sweep's whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import mlflow
import pandas as pd
import pytest
import sqlalchemy

from analysis import tracking
from experiments.run import store
from experiments.sweeps.sweep import children, run_sweep
from tests.conftest import TINY
from tests.slow.ray_nodes import ray_cluster, ray_env, stop_node, worker_node_id
from tests.slow.servers import postgres_server

pytestmark = pytest.mark.slow

LEAN = [*TINY, "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false", "tracking.log_model=false",
        "tracking.system_metrics=false", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """PostgreSQL as the tracking store, and the two Ray nodes; the driver (this process) joins them."""
    root = tmp_path_factory.mktemp("ray")
    with postgres_server() as db, ray_cluster(root / "nodes") as nodes:
        saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "PYTHONPATH")}
        os.environ.update({k: nodes["env"][k] for k in saved})
        try:
            yield {**nodes, "db": db, "root": root,
                   "store": [f"tracking.tracking_uri={db}", f"tracking.artifact_root={root / 'artifacts'}",
                             f"tracking.checkpoint_dir={root / 'checkpoints'}"]}
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def test_grid_children_land_on_both_nodes(cluster):
    parent_id = run_sweep("cnn_mnist_bundled", ["optim.lr=0.02,0.05", "model.dropout=0,0.25", *LEAN,
                                                *cluster["store"]], address=cluster["address"])
    client = mlflow.MlflowClient(cluster["db"])
    kids = children(client, client.get_run(parent_id))
    assert len(kids) == 4 and {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.tags[tracking.TAG_SWEEP_STATE] for r in kids} == {"complete"}
    assert len({r.data.tags[tracking.TAG_SWEEP_NODE] for r in kids}) == 2  # both nodes trained


def test_tpe_search_with_pruning_keeps_its_study_in_the_postgres_store(cluster):
    # tiny rates barely move the loss in 6 batches, large ones lower it: the median pruner stops the tiny ones
    parent_id = run_sweep("cnn_mnist_bundled", ["optim.lr=loguniform(1e-5,0.3)", *LEAN, "trainer.max_epochs=3",
                                                "trainer.limit_train_batches=6", "trainer.limit_val_batches=4",
                                                "data.batch_size=16", *cluster["store"]],
                          address=cluster["address"], search="tpe", trials=8, prune=True, random_seed=3)
    client = mlflow.MlflowClient(cluster["db"])
    kids = children(client, client.get_run(parent_id))
    states = {r.data.tags["sweep.trial"]: r.data.tags[tracking.TAG_SWEEP_STATE] for r in kids}
    assert len(kids) == 8 and {r.info.status for r in kids} == {"FINISHED"}
    pruned = [r for r in kids if r.data.tags[tracking.TAG_SWEEP_STATE] == "pruned"]
    assert pruned, states
    for run in pruned:  # stopped after the epoch the tag names (never the first: the pruner's warm-up)
        epoch = int(run.data.tags[tracking.TAG_SWEEP_PRUNED_EPOCH])
        assert [m.step for m in client.get_metric_history(run.info.run_id, tracking.VAL_LOSS)] == \
            list(range(epoch + 1)) and 1 <= epoch <= 2
    trials = pd.read_csv(client.download_artifacts(parent_id, tracking.SWEEP_TRIALS, str(cluster["root"])))
    assert sorted(trials["run_id"]) == sorted(r.info.run_id for r in kids)
    assert (trials["state"] == "PRUNED").sum() == len(pruned) and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert tracking.SWEEP_HISTORY in {f.path for f in client.list_artifacts(parent_id, tracking.SWEEP_DIR)}
    engine = sqlalchemy.create_engine(cluster["db"])
    with engine.connect() as connection:  # Optuna's tables, in their own schema of the tracking database
        names = connection.execute(sqlalchemy.text("select study_name from optuna.studies")).scalars().all()
    engine.dispose()
    assert parent_id in names


def test_a_lost_worker_node_retries_its_child_on_the_head_in_place(cluster):
    """Last of the cluster tests: it kills the worker node (its raylet and workers, SIGKILL)."""
    client = mlflow.MlflowClient(cluster["db"])
    worker = worker_node_id(cluster["address"], cluster["env"])
    items = ["optim.lr=0.02,0.05", *LEAN, "trainer.max_epochs=4", "trainer.sleep_per_batch=1.5", *cluster["store"]]
    killed: dict[str, str] = {}

    def kill_the_worker_once_its_child_logged_an_epoch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            experiment = client.get_experiment_by_name("cnn_mnist_bundled")
            found = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'") if experiment else []
            for run in found:
                if run.data.tags.get(tracking.TAG_SWEEP_NODE) == worker and client.get_metric_history(
                        run.info.run_id, tracking.VAL_LOSS):
                    killed["run"] = run.info.run_id
                    stop_node(cluster["worker"], signal.SIGKILL)
                    return
            time.sleep(0.5)

    watcher = threading.Thread(target=kill_the_worker_once_its_child_logged_an_epoch, daemon=True)
    watcher.start()
    parent_id = run_sweep("cnn_mnist_bundled", items, address=cluster["address"])
    watcher.join()
    assert killed, "no child trained an epoch on the worker node"
    kids = {r.info.run_id: r for r in children(client, client.get_run(parent_id))}
    assert len(kids) == 2 and {r.info.status for r in kids.values()} == {"FINISHED"}
    moved = kids[killed["run"]]  # the same run, resumed in place on the head
    assert moved.data.tags[tracking.TAG_SWEEP_NODE] != worker and moved.data.tags["resumed"] == "1"
    for run in kids.values():  # nothing lost, no step twice
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, tracking.VAL_LOSS)) == [0, 1, 2, 3]


def _sweep_processes(sid: int) -> list[str]:
    """Every process still in session ``sid`` (the sweep's: it was started with a new session)."""
    out = subprocess.run(["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split(None, 1)[0] == str(sid)]


def test_sigterm_to_the_sweeps_process_group_kills_children_and_parent_and_leaves_no_process(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    places = [f"tracking.tracking_uri={uri}", f"tracking.artifact_root={tmp_path / 'mlruns'}",
              f"tracking.checkpoint_dir={tmp_path / 'checkpoints'}"]
    command = [sys.executable, "-m", "experiments.commands.cli", "sweep", "cnn_mnist_bundled", "optim.lr=0.02,0.05",
               *LEAN, "trainer.max_epochs=20", "trainer.sleep_per_batch=0.3", *places]
    env = ray_env(tmp_path)
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    client = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # both children trained an epoch
        if (tmp_path / "mlflow.db").exists():
            if client is None:
                with store.store_lock(uri):  # not while the sweep creates the store
                    client = mlflow.MlflowClient(uri)
            kids = [r for r in client.search_runs(client.search_experiments()[0:1] and
                                                  [e.experiment_id for e in client.search_experiments()])
                    if tracking.TAG_SWEEP_POINT in r.data.tags]
            if len(kids) == 2 and all(client.get_metric_history(r.info.run_id, tracking.VAL_LOSS) for r in kids):
                break
        time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read()
    signalled = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` or a batch scheduler's time limit does
    output, _ = proc.communicate(timeout=90)
    ended = time.monotonic() - signalled
    assert proc.returncode == 143, output
    deadline = time.monotonic() + max(0.0, 60 - ended)
    while _sweep_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _sweep_processes(proc.pid) == [] and time.monotonic() - signalled <= 60, output
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = next(r for r in runs if r.data.tags.get("kind") == "sweep")
    kids = [r for r in runs if tracking.TAG_SWEEP_POINT in r.data.tags]
    assert parent.info.status == "KILLED" and len(kids) == 2
    assert {r.info.status for r in kids} == {"KILLED"}, output
    for run in kids:
        assert (tmp_path / "checkpoints" / run.info.run_id / "last.ckpt").is_file()
