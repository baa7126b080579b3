"""The sweep's dispatch loop: children from a source (a grid's planned runs, or a study's trials) are handed to Ray at
most ``parallel`` at a time, their outcomes handed back to the source; an interrupt stops every child in order.

* :class:`Source` — what the loop asks: ``next_job()`` (None: nothing more now), ``done(job, outcome)``.
* :func:`execute` — run the source dry; returns every outcome.
* :func:`interrupts_stop` — SIGTERM and Ctrl-C leave the sweep as :class:`SweepInterrupted`.
* :func:`stop_children` — cancel the running children (each ends its run KILLED with its last checkpoint), wait for
  their runs to end, kill what did not stop and mark its run KILLED.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from experiments.run.store import RunInterrupted, with_retries
from experiments.sweeps.child import ChildJob, ChildOutcome, train_child
from experiments.sweeps.executor import RayCluster

log = logging.getLogger("latentdream")

STOP_TIMEOUT_S = 45.0  # how long cancelled children may take to end their runs KILLED before they are killed
POLL_S = 0.5
EXIT_STATUS = {0: "FINISHED", 1: "FAILED", 2: "refused (bad input)", 130: "KILLED", 143: "KILLED"}  # a child's code


class SweepInterrupted(RunInterrupted):
    """The sweep was stopped by SIGTERM or Ctrl-C: its running children and the parent are KILLED."""

    def __init__(self, signum: int, run_id: str) -> None:
        super().__init__(signum, run_id, None)
        self.message = (f"sweep {run_id} interrupted by {signal.Signals(signum).name}: finished runs stay FINISHED, "
                        f"running ones and the sweep are KILLED; continue it with --resume {run_id}")


class _Terminated(BaseException):
    """SIGTERM or Ctrl-C reached the sweep (raised by the dispatch loop, never inside Ray's own calls)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_REQUESTED: list[int] = []  # signals received while the dispatch loop runs; it stops at its next turn


def _check_requested() -> None:
    if _REQUESTED:
        raise _Terminated(_REQUESTED[0])


@contextmanager
def interrupts_stop(parent_id: str) -> Iterator[None]:
    """While the block runs, SIGTERM and Ctrl-C interrupt it; either leaves as :class:`SweepInterrupted`.

    The handlers only note the signal: an exception raised inside Ray's compiled calls (``ray.wait``) would come out
    as a ``SystemError``; the dispatch loop raises it at its next turn (within :data:`POLL_S`)."""
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    _REQUESTED.clear()
    for sig in saved:
        signal.signal(sig, lambda signum, frame: _REQUESTED.append(signum))
    try:
        yield
        _check_requested()  # a signal in the last turn of the loop
    except (_Terminated, KeyboardInterrupt) as err:
        signum = err.signum if isinstance(err, _Terminated) else signal.SIGINT
        interrupted = SweepInterrupted(signum, parent_id)
        log.warning("latentdream: %s", interrupted)
        raise interrupted from None
    finally:
        _REQUESTED.clear()
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class Source(Protocol):
    def next_job(self) -> ChildJob | None: ...

    def done(self, job: ChildJob, outcome: ChildOutcome) -> None: ...


def execute(cluster: RayCluster, source: Source, parallel: int, label: Callable[[ChildJob], str],
            running: dict[Any, tuple[ChildJob, float]]) -> list[tuple[ChildJob, ChildOutcome]]:
    """Submit ``source``'s jobs, ``parallel`` at a time, until it has none left and none runs.

    :param label: ``label(job)`` → how the job is printed (``3/8: optim.lr=0.1 seed=1``).
    :param running: filled with ref → (job, start time) while they run (the caller stops them on an interrupt).
    """
    outcomes: list[tuple[ChildJob, ChildOutcome]] = []
    exhausted = False
    while True:
        _check_requested()
        while not exhausted and len(running) < parallel:
            job = source.next_job()
            if job is None:
                exhausted = True
                break
            running[cluster.submit(train_child, job)] = (job, time.perf_counter())
            print(f"sweep {label(job)}: start", flush=True)
        if not running:
            return outcomes
        _check_requested()
        for ref in cluster.wait(list(running), timeout=POLL_S):
            job, began = running.pop(ref)
            outcome = _outcome(cluster, ref)
            where = f" on node {outcome.node[:12]}" if outcome.node else ""
            state = f" ({outcome.state})" if outcome.state and outcome.state != "complete" else ""
            print(f"sweep {label(job)}: {EXIT_STATUS.get(outcome.code, f'exit {outcome.code}')}{state}{where} "
                  f"in {time.perf_counter() - began:.1f} s", flush=True)
            outcomes.append((job, outcome))
            source.done(job, outcome)
            exhausted = False  # a finished trial may let a search ask the next one


def _outcome(cluster: RayCluster, ref: Any) -> ChildOutcome:
    """The child's outcome; a Ray error (its node lost past the retries, a crash of its worker) is a failure."""
    try:
        return cluster.result(ref)
    except Exception as err:  # noqa: BLE001 - ray.exceptions.*: reported as the child's failure
        log.debug("%s", err)
        lines = [line for line in str(err).splitlines() if line.strip()]
        log.warning("latentdream: a sweep run was lost: %s", lines[-1] if lines else type(err).__name__)
        return ChildOutcome(1, None, "")


def stop_children(cluster: RayCluster, running: dict[Any, tuple[ChildJob, float]], client: Any,
                  live_children: Callable[[], list[Any]]) -> None:
    """Cancel every running child and wait (up to :data:`STOP_TIMEOUT_S`) until none of the sweep's runs is still
    RUNNING; then kill the tasks left and mark their runs KILLED (their last checkpoints stay)."""
    refs = list(running)
    if not refs:
        return
    if threading.current_thread() is threading.main_thread():  # a second signal must not cut the stop short
        for signum in (signal.SIGTERM, signal.SIGINT):  # (interrupts_stop restores both)
            signal.signal(signum, signal.SIG_IGN)
    print(f"sweep: stopping {len(refs)} running run(s)", flush=True)
    cluster.cancel(refs)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if not any(run.info.status == "RUNNING" for run in live_children()):
                break
        except Exception:  # noqa: BLE001 - a store blip: ask again
            pass
        time.sleep(POLL_S)
    cluster.kill(refs)
    for run in live_children():
        if run.info.status == "RUNNING":  # its process was killed before it could end the run
            with_retries(client.set_terminated, run.info.run_id, "KILLED")
    running.clear()
