"""A damaged or read-only ``mlflow.db``: every command says so in one line, exits 2, and creates nothing (no folder,
no lock file, no run)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from experiments.commands.cli import main

COMMANDS = [["runs"], ["train", "cnn_mnist_bundled", "trainer.max_epochs=1"], ["oip", "0123abcd"],
            ["compare", "0123abcd", "4567ef01"], ["register", "0123abcd", "--name", "m"]]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _assert_refused(folder: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = _listing(folder)
    for argv in COMMANDS:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "mlflow.db cannot be used" in err[0], (argv, err)
        assert _listing(folder) == before, argv  # nothing created: no checkpoints/, mlruns/, lock file


@pytest.mark.parametrize("damage", ["random bytes", "truncated header", "another sqlite file"])
def test_a_damaged_store_is_one_line_exit_2_and_nothing_is_created(tmp_path, capsys, monkeypatch, damage):
    db = tmp_path / "mlflow.db"
    if damage == "random bytes":
        db.write_bytes(os.urandom(20000))
    elif damage == "truncated header":
        with contextlib.closing(sqlite3.connect(db)) as con:
            con.execute("CREATE TABLE alembic_version (v TEXT)")
            con.commit()
        db.write_bytes(db.read_bytes()[:50])
    else:
        with contextlib.closing(sqlite3.connect(db)) as con:
            con.execute("CREATE TABLE notes (text TEXT)")
            con.commit()
    if damage == "another sqlite file":
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["runs"]) == 2
        assert "not an MLflow store" in capsys.readouterr().err
        return
    _assert_refused(tmp_path, capsys, monkeypatch)


@pytest.fixture
def read_only_store(tmp_path):
    """A folder holding a valid (empty) MLflow-looking store, bind-mounted read-only (root can write through
    permissions, not through a read-only mount). Skipped where mounting is not allowed."""
    source, mounted = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    mounted.mkdir()
    with contextlib.closing(sqlite3.connect(source / "mlflow.db")) as con:
        con.execute("CREATE TABLE alembic_version (version_num TEXT)")
        con.commit()
    try:
        subprocess.run(["mount", "--bind", str(source), str(mounted)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], check=True, capture_output=True)
        yield mounted
    finally:
        subprocess.run(["umount", str(mounted)], check=False, capture_output=True)


def test_a_read_only_store_is_one_line_exit_2_and_nothing_is_created(read_only_store, capsys, monkeypatch):
    _assert_refused(read_only_store, capsys, monkeypatch)
