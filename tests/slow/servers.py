"""A real PostgreSQL and an ``mlflow server`` on it, as docs/runs.md sets up a team's tracking server; both are
always stopped, also when the test fails."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui import free_port, wait_until_answers


def _postgres_bin() -> Path:
    """The newest Debian PostgreSQL's bin folder; a missing install fails (CI must not skip this test)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run "
                    "`apt-get install postgresql` (make test's apt step installs it)")
    return Path(found[-1]).parent


def _as_postgres() -> list[str]:
    """initdb and the server refuse to run as root: run them as the ``postgres`` user the Debian package made
    (``runuser`` lives in sbin, which a minimal PATH such as CI's may lack)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser") or next((p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()),
                                              "runuser")
    return [runuser, "-u", "postgres", "--"]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (trust auth, loopback only, a free port) with a database ``mlflow``; yields
    its SQLAlchemy URI ``postgresql+psycopg2://postgres@127.0.0.1:<port>/mlflow`` (the driver named: SQLAlchemy
    2.1 would pick psycopg 3 for a bare ``postgresql://``) and always stops and deletes the cluster.

    The cluster lives under /tmp, not in pytest's tmp_path: that is root-only, and the server runs as ``postgres``.
    """
    bindir = _postgres_bin()
    try:
        import psycopg2  # noqa: F401 - the driver the mlflow server needs, from the `server` extra
    except ImportError:
        pytest.fail("psycopg2 is not installed: pip install -e '.[server]' (make test installs it)")
    root = Path(tempfile.mkdtemp(prefix="latentdream-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*_as_postgres(), *cmd], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off", "start")
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*_as_postgres(), str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_team_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    """``mlflow server`` as docs/runs.md runs it for a team: the database as backend store, artifacts proxied
    (``--serve-artifacts``: clients need no shared disk), only this Host header allowed; one worker (2 shared
    cores). Yields its URL; always stopped: SIGTERM to its process group, then SIGKILL."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri, "--serve-artifacts",
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
           "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}", "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_answers(f"{url}/health", proc, timeout=120)
        except (RuntimeError, TimeoutError) as err:
            raise AssertionError(f"{err}; its log ends:\n{log.read_text(errors='replace')[-3000:]}") from None
        yield url
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group (uvicorn forks workers), SIGKILL if it is still there 15 s later."""
    for signum, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return
