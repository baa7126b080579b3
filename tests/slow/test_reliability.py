"""Reliability of ``latentdream train``: SIGKILL + resume into the same run, SIGTERM → KILLED, NaN → FAILED,
concurrent runs into one sqlite store, separate artifact folders, DDP with one run.

Each test trains the bundled digits for a few 3-batch epochs; the kill tests use the test-only
``trainer.sleep_per_batch`` so that a signal reliably lands inside a chosen epoch.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from analysis import tracking
from experiments.commands.cli import main
from experiments.run.config import load_experiment
from experiments.run.store import LAST_CHECKPOINT
from latentdream.errors import NonFiniteLossError
from experiments.run.train import train
from latentdream.errors import InputError

pytestmark = pytest.mark.slow

FAST = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "data.batch_size=16", "tracking.log_model=false", "oip.enabled=false", "dream.enabled=false"]
EPOCH_KEYS = (tracking.TRAIN_LOSS, tracking.TRAIN_ACC, tracking.VAL_LOSS, tracking.VAL_ACC, tracking.LEARNING_RATE)


def _cli(store: dict, *overrides: str, name: str = "cnn_mnist_bundled") -> list[str]:
    return [sys.executable, "-m", "experiments.commands.cli", "train", name, *FAST, *store["overrides"], *overrides]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LATENTDREAM_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {**env, "PYTHONPATH": str(Path(__file__).parents[2])}


def _runs(store: dict, experiment: str = "cnn_mnist_bundled") -> list:
    client = mlflow.MlflowClient(store["uri"])
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _wait_for_epoch_metrics(store: dict, proc: subprocess.Popen, epoch: int, timeout: float = 120) -> str:
    """Poll the store until the (only) run holds ``train/loss`` at ``epoch``: that epoch is complete."""
    client = mlflow.MlflowClient(store["uri"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = _runs(store) if (store["path"] / "mlflow.db").exists() else []
        if runs and epoch in _steps(client, runs[0].info.run_id, tracking.TRAIN_LOSS):
            return runs[0].info.run_id
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"epoch {epoch} never finished")


def _load_last(store: dict, run_id: str) -> dict:
    return torch.load(store["path"] / "checkpoints" / run_id / LAST_CHECKPOINT, weights_only=True)


def test_sigkill_then_resume_continues_the_same_run_like_an_uninterrupted_one(store, capsys):
    proc = subprocess.Popen(_cli(store, "trainer.max_epochs=3", "trainer.sleep_per_batch=0.4"), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = _wait_for_epoch_metrics(store, proc, epoch=0)
    # while it trains, neither resume=last nor resume=<its id> may take it over
    for resume, message in (("last", f"no killed, failed or unfinished run to resume (1 passed over; the newest: {run_id} is still "
                                      "training)"),
                            (run_id, f"resume={run_id}: the run is still training (pid {proc.pid} on")):
        argv = ["train", "cnn_mnist_bundled", *FAST, *store["overrides"], "trainer.max_epochs=3", f"resume={resume}"]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert proc.poll() is None and mlflow.MlflowClient(store["uri"]).get_run(run_id).info.status == "RUNNING"
    time.sleep(0.3)  # inside epoch 1: its 3 batches take >= 1.2 s
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    client = mlflow.MlflowClient(store["uri"])
    assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL: nothing could mark it
    assert _load_last(store, run_id)["epoch"] == 0

    # resume=last finds it; the sleep knob may change (recorded as a resume.* tag; the config tags stay as logged)
    resumed = train(load_experiment("cnn_mnist_bundled", [*FAST, *store["overrides"], "trainer.max_epochs=3",
                                                          "resume=last"]), command="pytest")
    assert resumed.run_id == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["trainer.sleep_per_batch"] == "0.4" and run.data.tags["resume"] == "None"
    assert run.data.tags["resumed"] == "1" and run.data.tags["resume.trainer.sleep_per_batch"] == "None"
    for key in EPOCH_KEYS:
        assert _steps(client, run_id, key) == [0, 1, 2], key  # every epoch exactly once
    assert len(client.get_metric_history(run_id, tracking.TEST_ACC)) == 1
    assert [r.info.run_id for r in _runs(store)] == [run_id]

    reference = train(load_experiment("cnn_mnist_bundled", [*FAST, *store["overrides"], "trainer.max_epochs=3"]))
    # Same seed, same batches; only the dropout/shuffle RNG state after the restart may differ.
    assert resumed.metrics[tracking.VAL_LOSS] == pytest.approx(reference.metrics[tracking.VAL_LOSS], rel=0.05)
    assert resumed.metrics[tracking.TRAIN_LOSS] == pytest.approx(reference.metrics[tracking.TRAIN_LOSS], rel=0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_or_ctrl_c_marks_the_run_killed_keeps_the_checkpoint_and_exits_non_zero(store, signum):
    # A shell starts background jobs with SIGINT ignored and the child would inherit that: restore the default so
    # Python installs its Ctrl-C handler whatever started the test run.
    proc = subprocess.Popen(_cli(store, "trainer.max_epochs=5", "trainer.sleep_per_batch=0.4"), env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = _wait_for_epoch_metrics(store, proc, epoch=0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err  # 143 / 130, as shells report a death by that signal
    assert "Traceback" not in err, err
    run = mlflow.MlflowClient(store["uri"]).get_run(run_id)
    assert run.info.status == "KILLED"
    ckpt = _load_last(store, run_id)
    assert ckpt["epoch"] >= 0 and "state_dict" in ckpt
    assert not list((store["path"] / "checkpoints" / run_id).glob("*.tmp"))


def test_nan_loss_fails_the_run_keeps_the_last_good_checkpoint_and_the_run_resumes(store):
    # 3 batches per epoch: global step 4 is the second batch of epoch 1.
    overrides = [*FAST, *store["overrides"], "trainer.max_epochs=2"]
    with pytest.raises(NonFiniteLossError, match="nan"):
        train(load_experiment("cnn_mnist_bundled", [*overrides, "trainer.inject_nan_at_step=4"]))
    (run,) = _runs(store)
    client = mlflow.MlflowClient(store["uri"])
    assert run.info.status == "FAILED"
    assert run.data.tags[tracking.TAG_FAILURE].startswith("NonFiniteLossError")
    traceback_file = client.download_artifacts(run.info.run_id, tracking.FAILURE_TRACEBACK, str(store["path"]))
    assert "NonFiniteLossError" in Path(traceback_file).read_text()
    ckpt = _load_last(store, run.info.run_id)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert _steps(client, run.info.run_id, tracking.TRAIN_LOSS) == [0]  # epoch 1 never completed

    # A resumed run keeps its config: a changed hyperparameter is refused before anything is written ...
    with pytest.raises(InputError, match=r"optim\.lr=.*differs"):
        train(load_experiment("cnn_mnist_bundled", [*overrides, "optim.lr=0.5", f"resume={run.info.run_id}"]))
    # ... and without the poison the failed run completes into the same run; a model a kill left PENDING is dropped.
    pending = client.create_logged_model(run.info.experiment_id, name="model", source_run_id=run.info.run_id)
    result = train(load_experiment("cnn_mnist_bundled", [*overrides, f"resume={run.info.run_id}"]))
    assert [m.model_id for m in client.search_logged_models([run.info.experiment_id])] == []
    assert str(pending.status) == "PENDING"
    assert result.run_id == run.info.run_id
    resumed = client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED"
    # the finished run no longer reads as failed; the failure stays on record
    assert tracking.TAG_FAILURE not in resumed.data.tags
    assert resumed.data.tags[tracking.TAG_PREVIOUS_FAILURE].startswith("NonFiniteLossError")
    assert _steps(client, run.info.run_id, tracking.TRAIN_LOSS) == [0, 1]
    with pytest.raises(InputError, match="FINISHED"):
        train(load_experiment("cnn_mnist_bundled", [*overrides, f"resume={run.info.run_id}"]))


def test_four_concurrent_trainings_into_one_fresh_store_all_finish_with_every_metric(store):
    procs = [subprocess.Popen(_cli(store, "trainer.max_epochs=1", f"trainer.seed={i}"), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    runs = _runs(store)
    client = mlflow.MlflowClient(store["uri"])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        for key in EPOCH_KEYS:
            assert _steps(client, run.info.run_id, key) == [0], key
        assert tracking.TEST_ACC in run.data.metrics
        assert len(run.data.params) == len(runs[0].data.params)
    assert len({r.info.artifact_uri for r in runs}) == 4


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_later_run_never_overwrites_an_earlier_runs_artifacts(store):
    overrides = [*FAST, *store["overrides"], "trainer.max_epochs=1"]
    first = train(load_experiment("cnn_mnist_bundled", overrides))
    client = mlflow.MlflowClient(store["uri"])
    folder = Path(client.get_run(first.run_id).info.artifact_uri.removeprefix("file://"))
    before = _digest(folder)
    assert {"config.yaml", "checkpoints/best.ckpt"} <= set(before)
    second = train(load_experiment("cnn_mnist_bundled", [*overrides, "optim.lr=0.02"]))
    assert client.get_run(second.run_id).info.artifact_uri != client.get_run(first.run_id).info.artifact_uri
    assert _digest(folder) == before
    assert (store["path"] / "checkpoints" / first.run_id) != (store["path"] / "checkpoints" / second.run_id)


def test_ddp_on_two_cpu_processes_makes_exactly_one_run(store):
    proc = subprocess.run(_cli(store, "trainer.max_epochs=2", "trainer.strategy=ddp", "trainer.devices=2",
                               "trainer.accelerator=cpu"), env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(store)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    client = mlflow.MlflowClient(store["uri"])
    assert runs[0].info.status == "FINISHED"
    for key in (tracking.TRAIN_LOSS, tracking.VAL_LOSS):
        assert _steps(client, runs[0].info.run_id, key) == [0, 1], key
    assert len(client.get_metric_history(runs[0].info.run_id, tracking.TEST_ACC)) == 1
