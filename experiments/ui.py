"""``latentdream ui``: the MLflow UI over the project's store, bound to this machine unless asked otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys

from experiments import store


def server_command(host: str, port: int, tracking_uri: str | None = None) -> list[str]:
    """The ``mlflow server`` command line serving ``tracking_uri`` (default: the project's local store)."""
    uri = tracking_uri or store.default_tracking_uri()
    mlflow = shutil.which("mlflow") or f"{sys.executable} -m mlflow"
    cmd = [*mlflow.split(), "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    root = store.default_artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd


def serve(host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the UI in the foreground until Ctrl-C; returns the server's exit code."""
    cmd = server_command(host, port)
    print(f"MLflow UI on http://{host}:{port}  (store: {cmd[cmd.index('--backend-store-uri') + 1]}); Ctrl-C stops it")
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0
