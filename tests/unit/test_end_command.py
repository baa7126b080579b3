"""``latentdream end RUN_ID``: a run a crash left RUNNING is marked KILLED; refused while its lock is held (still
training), and for runs that have ended already."""

from __future__ import annotations

import mlflow
import pytest

from analysis import tracking
from experiments.commands.cli import main
from experiments.run.store import RunLock


@pytest.fixture
def stuck_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "mlruns").as_uri())
    run = client.create_run(exp, tags={tracking.TAG_KIND: tracking.KIND_CLASSIFIER,
                                       "tracking.checkpoint_dir": str(tmp_path / "ckpt")})
    return client, run.info.run_id, tmp_path / "ckpt"


def test_end_marks_a_stuck_run_killed(stuck_run, capsys):
    client, run_id, _ = stuck_run
    assert main(["end", run_id]) == 0
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and tracking.TAG_ENDED_BY in run.data.tags
    assert main(["end", run_id]) == 2  # ended already
    assert "is KILLED, not RUNNING" in capsys.readouterr().err


def test_end_is_refused_while_the_run_is_still_training(stuck_run, capsys):
    client, run_id, checkpoints = stuck_run
    lock = RunLock(checkpoints, run_id)  # the recorded tracking.checkpoint_dir: found without being told
    assert lock.acquire()
    try:
        assert main(["end", run_id]) == 2
        assert "still training (pid" in capsys.readouterr().err
        assert client.get_run(run_id).info.status == "RUNNING"
    finally:
        lock.release()
