"""A Ray cluster of real nodes on 127.0.0.1, as docs/scale.md starts one per machine: ``ray start --head`` and
``ray start --address``, each node one process group (``--block``) this test owns and always stops. Small: one CPU
per node by default, no dashboard, a 80 MB object store, its own temp folder; token authentication off (loopback only)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.ui import free_port

RAY = str(Path(sys.executable).parent / "ray")


def ray_env(root: Path) -> dict[str, str]:
    """The environment of the nodes and of a driver joining them: this checkout importable, Ray kept small."""
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(Path(__file__).parents[2]),
               RAY_DEDUP_LOGS="0")
    env.pop("RAY_ADDRESS", None)
    return env


def _start(args: list[str], env: dict[str, str], log: Path, cpus: int = 1) -> subprocess.Popen:
    head = ["--include-dashboard=false", "--disable-usage-stats"] if "--head" in args else []
    with open(log, "wb") as out:
        return subprocess.Popen([RAY, "start", *args, *head, f"--num-cpus={cpus}", "--num-gpus=0",
                                 "--object-store-memory=80000000", "--block"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def alive_nodes(address: str, env: dict[str, str]) -> int:
    """How many nodes the cluster at ``address`` counts alive (asked from a fresh process: not this test's driver)."""
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))" % address)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    try:
        return int(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return 0


def worker_node_id(address: str, env: dict[str, str]) -> str:
    """The Ray node id of the (one) alive node that is not the head."""
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print([n['NodeID'] for n in ray.nodes() if n['Alive'] and "
            "'node:__internal_head__' not in n['Resources']][0])" % address)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    return done.stdout.strip().splitlines()[-1]


def stop_node(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """Stop a node and every process under it (Ray's workers have process groups of their own).

    SIGTERM goes to the ``ray start`` process alone, which drains the node and stops its own processes (sent to
    the whole group, the GCS died first and the head's drain then waited for it until the SIGKILL, 20 s later).
    ``signum=SIGKILL`` is a lost machine: everything dies at once. Whatever outlives the stop is killed."""
    import psutil

    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    if signum == signal.SIGKILL:
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


@contextlib.contextmanager
def ray_cluster(root: Path, workers: int = 1, cpus: int = 1) -> Iterator[dict]:
    """A head and ``workers`` worker nodes (0 or 1) on 127.0.0.1, ``cpus`` CPUs each; yields ``{"address", "env",
    "head", "worker"}`` (the node processes; ``worker`` None without one)."""
    root.mkdir(parents=True, exist_ok=True)
    env, port = ray_env(root), free_port()
    address = f"127.0.0.1:{port}"
    temp = f"/tmp/ldray-{os.getpid()}-{port}"  # short: Ray's socket paths must fit 107 bytes
    head = _start(["--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--temp-dir={temp}"], env,
                  root / "head.log", cpus)
    nodes = [head]
    try:
        deadline = time.monotonic() + 180
        while alive_nodes(address, env) < 1:
            assert head.poll() is None and time.monotonic() < deadline, (root / "head.log").read_text()[-3000:]
            time.sleep(1)
        worker = None
        if workers:
            worker = _start([f"--address={address}", "--node-ip-address=127.0.0.1"], env, root / "worker.log", cpus)
            nodes.append(worker)
        while workers and alive_nodes(address, env) < 2:
            assert worker.poll() is None and time.monotonic() < deadline, (root / "worker.log").read_text()[-3000:]
            time.sleep(1)
        yield {"address": address, "env": env, "head": head, "worker": worker}
    finally:
        for proc in reversed(nodes):
            stop_node(proc)
        shutil.rmtree(temp, ignore_errors=True)  # Ray's session logs and sockets
