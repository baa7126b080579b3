"""SIGTERM in the phases after Lightning's last own signal check: the OIPs at the end of training end the run KILLED
with exit 143 within 30 s, keeping its logged epochs; ``latentdream oip`` exits 143 and leaves the source run's status
as it was; ``latentdream dream child_run=true`` ends its own child run KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pytest

from analysis import tracking

pytestmark = pytest.mark.slow

TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "data.batch_size=8", "tracking.system_metrics=false",
        "trainer.enable_progress_bar=false", "tracking.log_model=false", "dream.enabled=false"]


def _env(uri: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LATENTDREAM_"))}
    return {**env, "PYTHONPATH": str(Path(__file__).parents[2]), "MLFLOW_TRACKING_URI": uri}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.commands.cli", *args]


def _terminate_when(proc: subprocess.Popen, ready, timeout: float = 180) -> float:
    """SIGTERM ``proc`` two seconds after ``ready()`` holds; returns the seconds it took to exit after the signal."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the phase never started"
        time.sleep(0.2)
    time.sleep(2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the process did not stop within 60 s of SIGTERM") from None
    return time.monotonic() - sent


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return {"uri": uri, "path": tmp_path, "client": mlflow.MlflowClient(uri)}


def _only_run(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return runs[0] if len(runs) == 1 else None


def test_sigterm_during_the_final_oips_ends_the_run_killed_within_30_s(store):
    client = store["client"]
    # a million ascent steps: without the check between steps the OIPs would run for hours
    proc = subprocess.Popen(_cli("train", "cnn_mnist_bundled", *TINY, "oip.steps=1000000"), cwd=store["path"],
                            env=_env(store["uri"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def in_final_oips() -> bool:  # the epoch's validation loss is logged: fit is over, on_train_end renders OIPs
        run = _only_run(client, "cnn_mnist_bundled") if (store["path"] / "mlflow.db").exists() else None
        return run is not None and tracking.VAL_LOSS in run.data.metrics

    took = _terminate_when(proc, in_final_oips)
    err = proc.stderr.read()
    assert proc.returncode == 143, err
    assert took < 30
    assert "Traceback" not in err, err
    run = _only_run(client, "cnn_mnist_bundled")
    assert run.info.status == "KILLED"
    assert tracking.VAL_LOSS in run.data.metrics and tracking.TRAIN_LOSS in run.data.metrics  # kept
    assert not client.list_artifacts(run.info.run_id, tracking.OIP_DIR)  # no half-logged OIPs


def test_sigterm_during_oip_and_dream_commands_exits_143_and_only_owned_runs_end_killed(store):
    client = store["client"]
    done = subprocess.run(_cli("train", "cnn_mnist_bundled", *TINY, "oip.enabled=false"), cwd=store["path"],
                          env=_env(store["uri"]), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    source = _only_run(client, "cnn_mnist_bundled").info.run_id
    for args, started in ((("oip", source, "steps=1000000"), "rendering OIPs"),
                          (("dream", source, "mode=tiled", "steps=1000000", "child_run=true"), "dreaming with")):
        with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe nobody drains
            proc = subprocess.Popen(_cli(*args), cwd=store["path"], env=_env(store["uri"]), stdout=log,
                                    stderr=subprocess.STDOUT, text=True)

            def started_phase() -> bool:
                log.seek(0)
                return started in log.read()

            took = _terminate_when(proc, started_phase)
            log.seek(0)
            err = log.read()
        assert proc.returncode == 143, err
        assert took < 30
        assert "Traceback" not in err and "stopped by SIGTERM" in err, err
        assert client.get_run(source).info.status == "FINISHED"  # the source run is left as it was
    exp = client.get_experiment_by_name("cnn_mnist_bundled").experiment_id
    children = client.search_runs([exp], filter_string=f"tags.{tracking.TAG_KIND} = '{tracking.KIND_DREAM}'")
    assert [c.info.status for c in children] == ["KILLED"]
