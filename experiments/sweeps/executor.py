"""Ray executes a sweep's children: the cluster to run on, each child's resources, and stopping them.

* :class:`RayCluster` — joins the cluster at ``--address`` (or Ray's own ``RAY_ADDRESS``), or starts a local Ray
  instance with this machine's cores (no dashboard, a small object store) and stops it at the end.
* :meth:`RayCluster.submit` — one child as one Ray task with ``cpus_per_run`` / ``gpus_per_run``; Ray retries it on
  another node if its node dies (the child then resumes its own run in place, see :mod:`experiments.sweeps.child`).
* :meth:`RayCluster.cancel` — the interrupt of a running child (Ray raises ``KeyboardInterrupt`` in it: the run ends
  KILLED with its last checkpoint); :meth:`RayCluster.kill` ends what did not stop in time.

Ray's own processes would die of a signal sent to the sweep's whole process group (``timeout``, a batch scheduler),
taking the children with them before they could end their runs: a local instance is started with SIGTERM blocked,
which its processes inherit, and the sweep alone decides when they stop.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from latentdream.errors import InputError

log = logging.getLogger("latentdream")

OBJECT_STORE_BYTES = 100 * 1024**2  # children return a few numbers: Ray's default (30 % of RAM) would waste memory
# What a child imports (about 5 s on a laptop core): Ray's workers, started with the instance, import it while the
# sweep opens its parent run, so the first child does not wait for it (a cluster of your own: docs/scale.md).
PRELOADED_MODULES = ("mlflow", "experiments.run.train", "experiments.sweeps.child")
MAX_RETRIES = 3  # Ray re-runs a child whose worker or node died this many times (the child resumes its run)


@dataclass(frozen=True)
class Capacity:
    """What the cluster holds: alive nodes, CPUs and GPUs in total."""

    nodes: int
    cpus: float
    gpus: float


@contextmanager
def _sigterm_blocked() -> Iterator[None]:
    """Block SIGTERM in this thread while Ray's processes start: they inherit the mask, so a signal to the process
    group reaches only the sweep, which then stops the children in order. (SIGINT Ray blocks itself.)"""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class RayCluster:
    """The Ray cluster a sweep runs on (a context manager: connected on enter, disconnected or stopped on exit).

    Args:
        address: a running cluster's address (``HOST:PORT`` or ``auto``); None: ``RAY_ADDRESS`` if set, else a local
            instance with ``local_cpus`` cores (default: this machine's).
        cpus_per_run: CPUs each child reserves (> 0).
        gpus_per_run: GPUs each child reserves; None: 1 where the cluster has GPUs, else 0.

    Raises:
        InputError: bad resources, an unreachable address, or resources no node of the cluster can offer.
    """

    def __init__(self, address: str | None, cpus_per_run: float = 1.0, gpus_per_run: float | None = None,
                 local_cpus: int | None = None) -> None:
        if not cpus_per_run > 0:
            raise InputError(f"--cpus-per-run {cpus_per_run} is not allowed; it must be > 0")
        if gpus_per_run is not None and gpus_per_run < 0:
            raise InputError(f"--gpus-per-run {gpus_per_run} is not allowed; it must be >= 0")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run
        self.local_cpus = local_cpus or os.cpu_count() or 1
        self.started_local = False
        self._remotes: dict[Callable[..., Any], Any] = {}

    def __enter__(self) -> RayCluster:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        # The children's own lines stay in Ray's session logs: forwarded, they interleave with the sweep's progress
        # lines in colour codes; the sweep reports each child's outcome itself.
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                  "configure_logging": True}
        # a local instance keeps Ray's token authentication on; its notice that it did so is no news to a user
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                with _sigterm_blocked():
                    ray.init(address="local", num_cpus=self.local_cpus, num_gpus=_local_gpus(), include_dashboard=False,
                             object_store_memory=OBJECT_STORE_BYTES,
                             _system_config={"preload_python_modules": list(PRELOADED_MODULES)}, **kwargs)
                self.started_local = True
        except (ConnectionError, RuntimeError, ValueError) as err:
            if not self.address:
                raise
            raise InputError(f"--address {self.address}: no Ray cluster answers there "
                             f"({str(err).splitlines()[0]})") from None
        try:
            self._check_resources()
        except BaseException:
            ray.shutdown()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        import ray

        if not self.started_local:
            ray.shutdown()  # a joined cluster keeps running
            return
        with _stopped_at_once():
            ray.shutdown()

    def capacity(self) -> Capacity:
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        total = ray.cluster_resources()
        return Capacity(len(nodes), float(total.get("CPU", 0)), float(total.get("GPU", 0)))

    @property
    def gpus(self) -> float:
        """GPUs each child reserves: as asked, else one where the cluster has GPUs (asked of Ray once)."""
        if self.gpus_per_run is None:
            self.gpus_per_run = 1.0 if self.capacity().gpus > 0 else 0.0
        return self.gpus_per_run

    def _check_resources(self) -> None:
        import ray

        fits = [n for n in ray.nodes() if n.get("Alive")
                and n["Resources"].get("CPU", 0) >= self.cpus_per_run and n["Resources"].get("GPU", 0) >= self.gpus]
        if not fits:
            raise InputError(f"--cpus-per-run {self.cpus_per_run:g} --gpus-per-run {self.gpus:g}: no node of the Ray "
                             "cluster has that much (give less, or add nodes)")

    def slots(self) -> int:
        """How many children the cluster can train at once with the resources each reserves."""
        capacity = self.capacity()
        slots = math.floor(capacity.cpus / self.cpus_per_run + 1e-9)
        if self.gpus > 0:
            slots = min(slots, math.floor(capacity.gpus / self.gpus + 1e-9))
        return max(1, slots)

    def submit(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` as one Ray task with the child's resources; returns its ObjectRef."""
        import ray

        if function not in self._remotes:  # made (and its function exported to the cluster) once per sweep
            self._remotes[function] = ray.remote(function).options(
                num_cpus=self.cpus_per_run, num_gpus=self.gpus, max_retries=MAX_RETRIES, retry_exceptions=False)
        return self._remotes[function].remote(*args)

    @staticmethod
    def wait(refs: Sequence[Any], timeout: float) -> list[Any]:
        """The refs among ``refs`` that are done, waiting at most ``timeout`` seconds for the first."""
        import ray

        if not refs:
            return []
        done, _ = ray.wait(list(refs), num_returns=1, timeout=timeout, fetch_local=False)
        if done:  # and any others done by now
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0, fetch_local=False)
        return done

    @staticmethod
    def result(ref: Any) -> Any:
        """A finished task's return value; the Ray error (cancelled, node lost past the retries) as an exception."""
        import ray

        return ray.get(ref)

    @staticmethod
    def cancel(refs: Sequence[Any]) -> None:
        """Interrupt running children (``KeyboardInterrupt`` in each: its run ends KILLED); queued ones never start."""
        import ray

        for ref in refs:
            ray.cancel(ref, force=False)

    @staticmethod
    def kill(refs: Sequence[Any]) -> None:
        """End children that did not stop when cancelled (their worker processes are killed)."""
        import ray

        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished
                pass


@contextmanager
def _stopped_at_once() -> Iterator[None]:
    """``ray.shutdown`` of the local instance, its processes killed at once, and nothing of it left after.

    Ray's graceful stop sends each process SIGTERM and waits a second before it kills it; ours have SIGTERM blocked
    (:func:`_sigterm_blocked`), so every wait was in vain: five seconds of each local sweep. Killed at once, the
    raylet's agents outlive it (they wait for a GCS that is gone), so its descendants, noted first, are killed
    after. Where Ray's internals differ, its own stop runs unchanged."""
    import psutil
    from ray._private import ray_constants, worker

    node = getattr(worker, "_global_node", None)
    kill = getattr(node, "kill_all_processes", None)
    raylets = getattr(node, "all_processes", {}).get(ray_constants.PROCESS_TYPE_RAYLET, [])
    if kill is None or not raylets:
        yield
        return
    try:
        descendants = psutil.Process(raylets[0].process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []

    def kill_at_once(*args: Any, **kwargs: Any) -> Any:
        return kill(*args, **{**kwargs, "allow_graceful": False})

    node.kill_all_processes = kill_at_once
    try:
        yield
    finally:
        for process in descendants:  # (not waited for: with the raylet gone, init reaps them)
            try:
                process.kill()
            except psutil.Error:  # already gone
                pass


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0


def is_local_store(uri: str) -> bool:
    """A store only this machine can reach: a sqlite file, or a folder (a bare path or ``file://``)."""
    from experiments.run.store import local_path

    return uri.startswith("sqlite:") or local_path(uri) is not None
