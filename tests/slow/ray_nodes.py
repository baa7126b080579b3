"""A Ray cluster of real nodes on 127.0.0.1, as docs/scale.md starts one per machine: ``ray start --head`` and
``ray start --address``, each node one process group (``--block``) this test owns and always stops. Small: one CPU
per node, no dashboard, a 80 MB object store, its own temp folder; token authentication off (loopback only)."""

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


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    head = ["--include-dashboard=false", "--disable-usage-stats"] if "--head" in args else []
    with open(log, "wb") as out:
        return subprocess.Popen([RAY, "start", *args, *head, "--num-cpus=1", "--num-gpus=0",
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
    """Stop a node: its whole process group (raylet, GCS) and every process under it (Ray's workers have process
    groups of their own), SIGKILL if it lingers. ``signum=SIGKILL`` is a lost machine: everything dies at once."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.send_signal(signum)
    for sig, grace in ((signum, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


@contextlib.contextmanager
def ray_cluster(root: Path) -> Iterator[dict]:
    """A head and a worker node on 127.0.0.1; yields ``{"address", "env", "head", "worker"}`` (the node processes)."""
    root.mkdir(parents=True, exist_ok=True)
    env, port = ray_env(root), free_port()
    address = f"127.0.0.1:{port}"
    temp = f"/tmp/ldray-{os.getpid()}-{port}"  # short: Ray's socket paths must fit 107 bytes
    head = _start(["--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--temp-dir={temp}"], env,
                  root / "head.log")
    nodes = [head]
    try:
        deadline = time.monotonic() + 180
        while alive_nodes(address, env) < 1:
            assert head.poll() is None and time.monotonic() < deadline, (root / "head.log").read_text()[-3000:]
            time.sleep(1)
        worker = _start([f"--address={address}", "--node-ip-address=127.0.0.1"], env, root / "worker.log")
        nodes.append(worker)
        while alive_nodes(address, env) < 2:
            assert worker.poll() is None and time.monotonic() < deadline, (root / "worker.log").read_text()[-3000:]
            time.sleep(1)
        yield {"address": address, "env": env, "head": head, "worker": worker}
    finally:
        for proc in reversed(nodes):
            stop_node(proc)
        shutil.rmtree(temp, ignore_errors=True)  # Ray's session logs and sockets
