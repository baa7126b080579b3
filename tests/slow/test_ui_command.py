"""``latentdream ui`` as a real process over a sqlite store: it publishes the experiment's view, prints the links,
and SIGTERM or Ctrl-C stops the ``mlflow server`` it started together with every worker, freeing the port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import mlflow
import psutil
import pytest

from experiments.mlflow_ui import ui, views
from tests.ui import free_port, wait_until_answers

pytestmark = pytest.mark.slow


def _store_with_a_run(path) -> str:
    client = mlflow.MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    experiment_id = client.create_experiment("cnn", artifact_location=(path / "mlruns").as_uri())
    run_id = client.create_run(experiment_id).info.run_id
    for step in range(2):
        client.log_metric(run_id, "val/loss", 1.0 / (step + 1), step=step)
    client.set_terminated(run_id)
    return experiment_id


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_leaves_no_server_behind(tmp_path, signum):
    experiment_id = _store_with_a_run(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(tmp_path / "ui.out", "w") as out:  # a file, not a pipe: the server's output must never block it
        proc = subprocess.Popen([sys.executable, "-m", "experiments.commands.cli", "ui", "--port", str(port), "--workers", "1"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "mlflow server runs as a child process"
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
        ui.check_port("127.0.0.1", port)  # free again for a new server (TIME_WAIT connections may linger)
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "ui.out").read_text()
    assert views.experiment_url(f"http://127.0.0.1:{port}", experiment_id) in out
    tags = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment(experiment_id).tags
    assert views.VIEW_TAG in tags


def test_a_sigkilled_ui_leaves_no_server_behind(tmp_path):
    """SIGKILL cannot be handled by ``latentdream ui``: its watchdog sees the pipe close and stops the group."""
    _store_with_a_run(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(tmp_path / "ui.out", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "experiments.commands.cli", "ui", "--port", str(port),
                                 "--workers", "1"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2, "the watchdog and mlflow server run as child processes"
        proc.kill()
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()


def _publish_many(uri: str, experiment_id: str, times: int) -> None:
    client = mlflow.MlflowClient(uri)
    for i in range(times):
        client.log_metric(client.search_runs([experiment_id])[0].info.run_id, f"val/m{os.getpid()}_{i}", 1.0, step=1)
        views.publish_view(client, experiment_id)


def test_two_processes_publishing_at_once_leave_one_valid_view(tmp_path):
    experiment_id = _store_with_a_run(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = ("import sys; from tests.slow.test_ui_command import _publish_many; "
            "_publish_many(sys.argv[1], sys.argv[2], 5)")
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, experiment_id], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    client = mlflow.MlflowClient(uri)
    views.publish_view(client, experiment_id)  # the last writer sees every key
    state = views.decode_view(client.get_experiment(experiment_id).tags[views.VIEW_TAG])["state"]
    keys = {c["metricKey"] for c in state["compareRunCharts"]}
    assert len(keys) == 11 and "val/loss" in keys
