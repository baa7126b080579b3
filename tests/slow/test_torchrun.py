"""Multi-node DDP under torchrun, for real: two "nodes" on 127.0.0.1 (``torchrun --nnodes 2 --node-rank R``), one
CPU process each, train one run together, logged by global rank 0 alone; without a launcher ``trainer.num_nodes=2``
stays refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from analysis import tracking
from experiments.commands.cli import main
from tests.conftest import TINY
from tests.ui import free_port

pytestmark = pytest.mark.slow

LEAN = [*TINY, "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false", "tracking.log_model=false",
        "tracking.system_metrics=false", "trainer.enable_progress_bar=false"]


def test_two_torchrun_nodes_train_one_run_logged_by_rank_zero(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["cnn_mnist_bundled", "trainer.strategy=ddp", "trainer.num_nodes=2", "trainer.devices=1",
            "trainer.accelerator=cpu", "trainer.max_epochs=2", *LEAN[1:], f"tracking.tracking_uri={uri}",
            f"tracking.artifact_root={tmp_path / 'mlruns'}", f"tracking.checkpoint_dir={tmp_path / 'checkpoints'}"]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    latentdream = str(Path(sys.executable).parent / "latentdream")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    port = free_port()
    nodes = [subprocess.Popen([torchrun, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                               "--master-addr", "127.0.0.1", "--master-port", str(port), latentdream, "train", *args],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=400)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_name for r in runs]  # rank 1 opened no run of its own
    run = runs[0]
    assert run.info.status == "FINISHED" and {**run.data.tags, **run.data.params}["trainer.num_nodes"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, tracking.VAL_LOSS)] == [0, 1]
    assert tracking.TEST_ACC in run.data.metrics


def test_num_nodes_without_a_launcher_stays_refused(tmp_path, capsys, monkeypatch):
    for key in ("MASTER_ADDR", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    assert main(["train", "cnn_mnist_bundled", "trainer.strategy=ddp", "trainer.num_nodes=2",
                 f"tracking.tracking_uri=sqlite:///{tmp_path / 'm.db'}"]) == 2
    assert "trainer.num_nodes=2 is not allowed here" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()
