"""A full disk (ENOSPC injected at the file-write seam: the trainer's checkpoint write; the real thing is
tests/slow/test_full_disk.py on a small tmpfs): the partial ``*.tmp`` is removed, the error names the full disk, the run
records it — and where the store itself cannot be written, the command still says one line and how to end the run."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from experiments.run.guards import AtomicModelCheckpoint
from experiments.run.reporting import reported
from experiments.run.store import ended, failure_reason
from latentdream.errors import DiskFullError, disk_full


class FullDiskTrainer:
    """The seam Lightning's ModelCheckpoint writes through: writes part of the file, then the disk is full."""

    is_global_zero = True
    global_step = 3

    def save_checkpoint(self, filepath, weights_only=False, storage_options=None):
        Path(filepath).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))


def test_a_checkpoint_write_on_a_full_disk_leaves_no_tmp_and_names_the_folder(tmp_path):
    callback = AtomicModelCheckpoint(dirpath=tmp_path, filename="best", save_last=True)
    with pytest.raises(DiskFullError, match=f"the disk holding {tmp_path} is full .* while writing last.ckpt"):
        callback._save_checkpoint(FullDiskTrainer(), str(tmp_path / "last.ckpt"))
    assert list(tmp_path.iterdir()) == []  # neither last.ckpt.tmp nor last.ckpt


def test_torchs_errno_less_write_error_raised_from_enospc_is_recognised():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/mnt/small/run/last.ckpt.tmp")
        except OSError as inner:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed") from inner
    except RuntimeError as err:
        assert str(disk_full(err)).startswith("the disk holding /mnt/small/run is full")
        assert failure_reason(err).startswith("DiskFullError: the disk holding /mnt/small/run is full")
    assert disk_full(RuntimeError("other")) is None
    assert "store" in str(disk_full(RuntimeError("(sqlite3.OperationalError) database or disk is full")))


class FullStoreClient:
    """A store on the full disk: nothing can be recorded."""

    def set_tag(self, *args):
        raise RuntimeError("(sqlite3.OperationalError) database or disk is full")

    def log_text(self, *args):
        raise RuntimeError("(sqlite3.OperationalError) database or disk is full")

    def set_terminated(self, *args):
        raise RuntimeError("(sqlite3.OperationalError) database or disk is full")


def test_a_store_that_cannot_record_the_failure_still_gives_one_line_naming_the_disk_and_the_way_out(capsys):
    def command() -> int:
        with ended(FullStoreClient(), "run7"):
            raise DiskFullError("/mnt/small/run7", "last.ckpt")

    assert reported(command) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("latentdream: error: run run7 failed: DiskFullError: the disk holding /mnt/small/run7 is full")
    assert "the store could not record it" in line and "latentdream end run7" in line
