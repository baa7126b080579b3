"""A real full disk: the checkpoints on a small tmpfs (root only; skipped elsewhere). The run that fills it ends
FAILED with one line naming the full disk and no ``*.tmp`` left; once there is space, ``resume=last`` passes over it
(it has no checkpoint to resume from) and resumes the older run it would otherwise have blocked."""

from __future__ import annotations

import shutil
import subprocess

import mlflow
import pytest

from analysis import tracking
from experiments.commands.cli import main

pytestmark = pytest.mark.slow

FAST = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "data.batch_size=16", "tracking.log_model=false", "oip.enabled=false", "dream.enabled=false",
        "tracking.system_metrics=false", "trainer.enable_progress_bar=false"]


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "ckpt"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)


def _resize(mount, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True, capture_output=True)


def test_a_full_disk_fails_the_run_in_one_line_and_resume_last_passes_over_it(tmp_path, small_disk, capsys,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["train", "cnn_mnist_bundled", *FAST, f"tracking.checkpoint_dir={small_disk}"]
    # an older run that can be resumed: NaN at global step 4 (epoch 1) leaves it FAILED with last.ckpt of epoch 0
    assert main([*args, "trainer.max_epochs=2", "trainer.inject_nan_at_step=4"]) == 1
    capsys.readouterr()
    (older,) = client.search_runs([client.get_experiment_by_name("cnn_mnist_bundled").experiment_id])
    assert (small_disk / older.info.run_id / "last.ckpt").is_file()

    _resize(small_disk, f"{shutil.disk_usage(small_disk).used + 256 * 1024}")  # no room for another checkpoint
    assert main([*args, "trainer.max_epochs=2"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"the disk holding {small_disk}/" in line and "is full (No space left on device)" in line, line
    runs = client.search_runs([older.info.experiment_id], order_by=["attributes.start_time DESC"])
    newer = runs[0]
    assert newer.info.status == "FAILED"
    assert newer.data.tags[tracking.TAG_FAILURE].startswith("DiskFullError: the disk holding")
    assert not list(small_disk.rglob("*.tmp"))

    _resize(small_disk, "64m")  # space is back
    assert main([*args, "trainer.max_epochs=2", "resume=last"]) == 0
    assert client.get_run(older.info.run_id).info.status == "FINISHED"  # the older run, not the one it passed over
    assert client.get_run(newer.info.run_id).info.status == "FAILED"
