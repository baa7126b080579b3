"""The team setup of docs/runs.md, for real: PostgreSQL as the backend store, ``mlflow server --serve-artifacts``
in front of it, a sweep training two runs at once against it over HTTP, and everything read back through the server
(the client never touches the server's disk). PostgreSQL missing is a failure, not a skip."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from analysis import tracking
from experiments.sweeps.sweep import children, run_sweep
from tests.conftest import TINY
from tests.slow.servers import mlflow_team_server, postgres_server

pytestmark = pytest.mark.slow

LEAN = [*TINY, "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false", "tracking.log_model=false",
        "tracking.system_metrics=false", "trainer.enable_progress_bar=false"]


def test_parallel_sweep_into_postgres_through_mlflow_server(tmp_path, monkeypatch):
    with postgres_server() as db, mlflow_team_server(db, tmp_path / "served", tmp_path / "server.log") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # as a team member's shell has it
        parent_id = run_sweep("cnn_mnist_bundled", ["optim.lr=0.02,0.05", *LEAN,
                                                    f"tracking.checkpoint_dir={tmp_path / 'ck'}"], parallel=2)
        client = mlflow.MlflowClient(url)
        parent = client.get_run(parent_id)
        assert parent.info.status == "FINISHED" and parent.data.tags["kind"] == "sweep"
        runs = children(client, parent)
        assert sorted(r.data.params["optim.lr"] for r in runs) == ["0.02", "0.05"]
        for run in runs:
            assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
            steps = [m.step for m in client.get_metric_history(run.info.run_id, tracking.VAL_LOSS)]
            assert steps == [0] and tracking.TEST_ACC in run.data.metrics
            folder = tmp_path / run.info.run_id
            config = Path(client.download_artifacts(run.info.run_id, tracking.CONFIG_ARTIFACT, str(folder)))
            assert yaml.safe_load(config.read_text())["optim"]["lr"] == float(run.data.params["optim.lr"])
            weights = Path(client.download_artifacts(run.info.run_id, tracking.WEIGHTS, str(folder)))
            assert weights.stat().st_size > 1000
        summary = pd.read_csv(client.download_artifacts(parent_id, tracking.SWEEP_SUMMARY, str(tmp_path)))
        val = summary[summary["metric"] == tracking.VAL_LOSS].set_index("optim.lr")
        by_lr = {float(r.data.params["optim.lr"]): r.data.metrics[tracking.VAL_LOSS] for r in runs}
        assert val["mean"].to_dict() == pytest.approx(by_lr) and set(val["n"]) == {1}
        assert len(list((tmp_path / "served").rglob("weights.pt"))) == 2  # the server stored them, where it was told
        # the server refuses a Host header it was not told about (DNS rebinding)
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1",
                                         headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (400, 403)
