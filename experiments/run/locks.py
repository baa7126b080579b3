"""File locks: :func:`store_lock` (a fresh local store is created by one process) and :class:`RunLock` (a run is
trained by one process). Both are ``flock``\ s, which the kernel releases the instant their holder dies.

Re-exported by :mod:`experiments.run.store`, where they are used.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` for a local sqlite store (no-op otherwise).

    Several processes creating one fresh store at once race in MLflow's schema migration; under this lock the
    first creates it and the others find it ready.
    """
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RunLock:
    """An exclusive ``flock`` on ``<checkpoint_dir>/<run id>.lock`` (beside the run's checkpoint folder, so that
    Lightning finds that folder as it left it), held by the process that trains the run.

    The kernel releases it the instant that process dies — also by SIGKILL or power loss — so a lock that cannot be
    taken means a live run (on this machine, or on another one sharing the checkpoint folder), and a dead run can be
    resumed at once. The file names the holder (pid and host) for the message.
    """

    def __init__(self, checkpoint_root: Path, run_id: str) -> None:
        self.path = Path(checkpoint_root) / f"{run_id}.lock"
        self._handle = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it (``pid 123 on host``)."""
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
