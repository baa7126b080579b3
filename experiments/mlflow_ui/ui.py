"""``latentdream ui``: the MLflow UI over the project's store, bound to this machine unless asked otherwise.

Before ``mlflow server`` starts, the port is checked (a busy one is an :class:`InputError` naming ``--port``) and a
host other than loopback gets a warning; while it starts, each experiment's chart view is published
(:mod:`experiments.mlflow_ui.views`) so that the printed links open it. The server runs in its own process group; SIGINT (Ctrl-C), SIGTERM and SIGHUP to
``latentdream ui`` stop that whole group (the server and its uvicorn workers), never leaving it serving orphaned;
so does a SIGKILL of ``latentdream ui``, through :mod:`experiments.mlflow_ui.watchdog`, which leads the group.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

from experiments.run import store
from experiments.mlflow_ui import views
from experiments.mlflow_ui.watchdog import GRACE_S
from latentdream.errors import InputError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_LISTED = 20  # experiments whose links are printed
WORKERS = 2  # uvicorn workers: one user's browser (MLflow's default of 4 starts slowly on small machines)
# MLflow's job runner (a consumer process per GenAI job type) serves nothing latentdream logs; set it to true to
# have it anyway.
# The server's Starlette warns twice per start that MLflow calls its deprecated run_until_first_complete: MLflow's
# business, not the user's (PYTHONWARNINGS set by the user is kept, ours is appended after it).
SERVER_ENV_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
SERVER_WARNING_FILTERS = "ignore:run_until_first_complete is deprecated"


def server_env(environ: dict[str, str]) -> dict[str, str]:
    """The environment of the ``mlflow server`` process: :data:`SERVER_ENV_DEFAULTS` under ``environ``, plus the
    warning filter :data:`SERVER_WARNING_FILTERS`."""
    env = {**SERVER_ENV_DEFAULTS, **environ}
    env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), SERVER_WARNING_FILTERS) if w)
    return env


def server_command(host: str, port: int, tracking_uri: str | None = None, allowed_hosts: str | None = None,
                   workers: int = WORKERS) -> list[str]:
    """The ``mlflow server`` command line serving ``tracking_uri`` (default: the project's local store), run by
    this interpreter so that it is the MLflow of this environment."""
    uri = tracking_uri or store.default_tracking_uri()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", str(workers)]
    root = store.default_artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd


def _addresses(host: str, port: int) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise InputError(f"--host {host!r} is not an address of this machine: {err.strerror}") from None


def check_port(host: str, port: int) -> None:
    """Bind ``(host, port)`` as the server will (with ``SO_REUSEADDR``, as uvicorn does) and let go again.

    :raises InputError: the port is taken or not allowed, or ``host`` does not resolve.
    """
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port; use 1..65535")
    family, kind, proto, _, address = _addresses(host, port)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is already in use (another latentdream ui or mlflow "
                                 f"server?); stop it or choose another with --port, e.g. --port {port + 1}") from None
            raise InputError(f"cannot listen on {host}:{port}: {err.strerror}; "
                             "choose another --port or --host") from None


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address (only this machine can connect)."""
    return all(ipaddress.ip_address(a[4][0].split("%")[0]).is_loopback for a in _addresses(host, 0))


def network_warning(host: str, port: int) -> str:
    """What binding to a non-loopback ``host`` means, and how ``--allowed-hosts`` limits it."""
    return (f"latentdream: warning: --host {host} opens the store to the network: anyone who can reach this machine "
            f"on port {port} can read, change and delete every run (MLflow has no login here). MLflow's "
            "--allowed-hosts (latentdream ui --allowed-hosts NAME:PORT,...) answers only requests addressed to "
            "those names; by default it accepts localhost and private addresses. Keep a firewall in front.")


def browse_host(host: str) -> str:
    """The host to put in links: loopback for a wildcard bind, brackets around IPv6."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def experiment_links(base_url: str, tracking_uri: str) -> list[tuple[str, str]]:
    """``(experiment name, chart-view URL)`` for every active experiment with runs (at most :data:`MAX_LISTED`),
    publishing each one's view first; an empty list for a local store that does not exist yet."""
    path = store.sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        return []
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    links = []
    for experiment in client.search_experiments(max_results=MAX_LISTED, order_by=["last_update_time DESC"]):
        if not client.search_runs([experiment.experiment_id], max_results=1):
            continue
        key = views.try_publish_view(client, experiment.experiment_id)
        links.append((experiment.name, views.experiment_url(base_url, experiment.experiment_id, view=key is not None)))
    return links


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise KeyboardInterrupt like SIGINT does (restored on exit)."""
    def interrupt(signum, frame):  # noqa: ARG001 - the signal handler's signature
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_group(proc: subprocess.Popen, grace: float = GRACE_S) -> int:
    """SIGTERM the process group led by ``proc``, wait up to ``grace`` seconds, then SIGKILL it; the exit code."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def serve(host: str = "127.0.0.1", port: int = 5000, allowed_hosts: str | None = None,
          workers: int = WORKERS) -> int:
    """Run the UI in the foreground until it is stopped (Ctrl-C, SIGTERM, SIGHUP: exit 0) or the server exits (its
    exit code).

    :raises InputError: the port is taken, ``host`` does not resolve, ``workers`` < 1.
    """
    if workers < 1:
        raise InputError(f"--workers {workers}: give at least 1")
    check_port(host, port)
    if not is_loopback(host):
        print(network_warning(host, port), file=sys.stderr)
    uri = store.default_tracking_uri()
    store.check_store(uri)  # a damaged or read-only store: one line, not a server that fails in the background
    cmd = server_command(host, port, uri, allowed_hosts, workers)
    base = f"http://{browse_host(host)}:{port}"
    with _stop_signals_raise():
        # its own process group: uvicorn forks workers, and the whole group must stop with us — also when we are
        # SIGKILLed: the watchdog leading the group stops it when the pipe we hold (its stdin) closes
        proc = subprocess.Popen([sys.executable, "-m", "experiments.mlflow_ui.watchdog", *cmd], start_new_session=True,
                                stdin=subprocess.PIPE, env=server_env(dict(os.environ)))
        try:
            print(f"MLflow UI on {base}  (store: {uri}); Ctrl-C stops it")
            print(f"  experiments: {views.experiments_url(base)}")
            for name, url in experiment_links(base, uri):  # while the server starts
                print(f"  {name}: {url}")
            sys.stdout.flush()
            return proc.wait()
        except KeyboardInterrupt:
            stop_group(proc)
            return 0
        finally:
            if proc.poll() is None:
                stop_group(proc)
