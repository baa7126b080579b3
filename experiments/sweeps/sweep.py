"""``latentdream sweep EXPERIMENT key=a,b key2=x,y [trainer.seed=1,2,3] [--parallel N] [--random K]``.

Every point of the grid (or ``K`` random points of it), once per seed, is one ordinary :func:`experiments.run.train.train`
run (all callbacks), nested under one parent run (tag ``kind=sweep``) that records the sweep (params
``sweep.<key>``, artifact ``sweep/spec.json``) and, at the end, the seed statistics: ``sweep/summary.csv``, a figure
per swept key and the ``val/loss`` curves (mean ± std over seeds). A child keeps its kind, holds the swept keys
among its params and the tag ``sweep.point`` (MLflow's Group by pools the seeds).

* Everything is checked first: every run's config is loaded and its trainer settings checked, so a bad value
  anywhere in the grid starts nothing.
* ``parallel`` children train at once, each in its own process forked from a server that imported torch,
  Lightning and MLflow once (so a child starts in milliseconds), against the same store (sqlite or any server).
* SIGTERM or Ctrl-C: the sweep passes SIGTERM to the running children, which end KILLED (finished ones stay
  FINISHED), and the parent ends KILLED. ``resume=PARENT_ID`` (``--resume``) resumes the unfinished children in
  place (same run id, train's ``resume``) and trains only the missing runs.
* ``register``: the best child (``metric``, ``mode``) becomes a version of a registered model.

``run_sweep`` is the function to call from Python (the demo); the command line is a thin wrapper.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import sweep_stats, tracking
from analysis.plots import sweep as plots
from experiments.commands import registry
from experiments.reports import publish as reports
from experiments.run import store
from experiments.mlflow_ui import views
from experiments.run.config import load_experiment, recorded_config
from experiments.sweeps.grid import SEED_KEY, Grid, parse_grid, point_label, random_points
from experiments.run.store import RunInterrupted, with_retries
from latentdream.errors import InputError

log = logging.getLogger("latentdream")

STOP_TIMEOUT_S = 120.0  # how long a SIGTERMed child may take to end its run KILLED before it is SIGKILLed
EXIT_STATUS = {0: "FINISHED", 1: "FAILED", 2: "refused (bad input)", 130: "KILLED", 143: "KILLED"}  # a child's code
FIGURE_METRICS = (tracking.VAL_LOSS, tracking.VAL_ACC, tracking.TEST_LOSS, tracking.TEST_ACC, tracking.TRAIN_LOSS,
                  tracking.TRAIN_ACC)  # drawn first in the metric-vs-value figures; other summarised metrics follow


@dataclass(frozen=True)
class PlannedRun:
    """One child of the sweep: a grid point trained with one seed (``seed`` None: the config's own)."""

    index: int
    point: dict[str, str]
    seed: str | None
    config_seed: str = ""  # the seed its config resolves to (the override, or the config's own)

    @property
    def label(self) -> str:
        return point_label(self.point)

    @property
    def key(self) -> tuple[str, str]:
        """(point, seed): what identifies the run among the sweep's children (see :func:`child_key`)."""
        return self.label, self.config_seed

    @property
    def name(self) -> str:
        """The child's run name: its point and seed."""
        return f"{self.label} seed={self.seed}" if self.seed is not None else self.label

    def overrides(self, grid: Grid) -> list[str]:
        seed = [f"{SEED_KEY}={self.seed}"] if self.seed is not None else []
        return [*grid.fixed, *(f"{k}={v}" for k, v in self.point.items()), *seed]


class SweepInterrupted(RunInterrupted):
    """The sweep was stopped by SIGTERM or Ctrl-C: its running children and the parent are KILLED."""

    def __init__(self, signum: int, run_id: str) -> None:
        super().__init__(signum, run_id, None)
        self.message = (f"sweep {run_id} interrupted by {signal.Signals(signum).name}: finished runs stay FINISHED, "
                        f"running ones and the sweep are KILLED; continue it with --resume {run_id}")


class SweepFailed(RuntimeError):
    """Some children did not finish; the parent ends FAILED and ``--resume`` retries them."""


def plan(grid: Grid, random: int | None = None, random_seed: int = 0) -> list[PlannedRun]:
    """The sweep's runs, point-major and seed-minor: every grid point, or ``random`` of them drawn with
    ``random_seed``, once per seed."""
    points = grid.points()
    if random is not None:
        points = [points[i] for i in random_points(len(points), random, random_seed)]
    seeds = grid.seeds or [None]
    return [PlannedRun(i * len(seeds) + j, point, seed)
            for i, point in enumerate(points) for j, seed in enumerate(seeds)]


def spec_of(experiment: str, grid: Grid, runs: Sequence[PlannedRun], random: int | None, random_seed: int) -> dict:
    """``sweep/spec.json``: what defines the sweep (``--resume`` must find it unchanged) and its planned runs."""
    return {"experiment": experiment, **grid.spec(), "random": random, "random_seed": random_seed,
            "runs": [{"point": r.label, "seed": r.config_seed} for r in runs]}


def _defining(spec: Mapping[str, Any]) -> dict:
    """The parts of a spec a resumed sweep must share: all but the fixed overrides a resumed run may change."""
    fixed = [item for item in spec["fixed"] if item.partition("=")[0] not in store.RESUMABLE_KEYS]
    return {**spec, "fixed": sorted(fixed)}


def check_configs(experiment: str, grid: Grid, runs: Sequence[PlannedRun]) -> tuple[list[PlannedRun], list[Any]]:
    """Load and check every run's config (schema, values, trainer settings) before anything starts.

    :returns: the runs with their resolved seeds, and their configs.
    :raises InputError: naming the run's point and seed and the bad key; two runs that would be the same.
    """
    from experiments.run.train import check_trainer

    checked, cfgs = [], []
    for run in runs:
        try:
            cfg = load_experiment(experiment, run.overrides(grid))
            check_trainer(cfg)
        except InputError as err:
            raise InputError(f"sweep run {run.name}: {err}") from None
        checked.append(replace(run, config_seed=str(cfg.trainer.seed)))
        cfgs.append(cfg)
    if len({r.key for r in checked}) < len(checked):
        raise InputError(f"the sweep lists a run twice (seeds {', '.join(grid.seeds)} name the same seed?)")
    return checked, cfgs


# --- the children ------------------------------------------------------------------------------------------------
def _context() -> Any:
    """Children fork from a server process that imported the training stack once: a fresh interpreter per child
    would spend seconds importing torch, Lightning and MLflow, and a fork of this process would share its open
    database connections."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["experiments.sweeps.sweep", "experiments.run.train", "mlflow.pytorch"])
    from multiprocessing import forkserver

    forkserver.ensure_running()  # imports in the background while the grid is checked
    return context


def _train_child(experiment: str, overrides: list[str], swept: tuple[str, ...], tags: dict[str, str], name: str,
                 command: str, environ: dict[str, str], threads: int) -> None:
    """A child process: train one run. Exit code 0 FINISHED, 1 FAILED, 2 bad input, 143 KILLED by SIGTERM."""
    os.setpgrp()  # a terminal's Ctrl-C reaches only the sweep, which passes SIGTERM on: each child is stopped once
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # until train installs its own
    os.environ.clear()  # the fork server started with an older environment: take the sweep's current one
    os.environ.update(environ)
    os.environ.pop("MLFLOW_RUN_ID", None)  # a sweep under `mlflow run`: each child makes its own run
    import torch

    from experiments.run.reporting import quiet_libraries, reported
    from experiments.run.train import train

    quiet_libraries()  # the children print what `latentdream train` prints
    torch.set_num_threads(threads)

    def one_run() -> int:
        cfg = load_experiment(experiment, overrides)
        if cfg.tracking.run_name is None:
            cfg.tracking.run_name = name
        train(cfg, command=command, swept=swept, tags=tags, publish_view=False)  # the sweep publishes once
        return 0

    sys.exit(reported(one_run))


def children(client: Any, parent: Any) -> list[Any]:
    """Every child run of sweep ``parent`` (any status), oldest first."""
    found, token = [], None
    while True:
        page = with_retries(client.search_runs, [parent.info.experiment_id],
                            filter_string=f"tags.`{tracking.TAG_PARENT_RUN}` = '{parent.info.run_id}'",
                            order_by=["attributes.start_time ASC"], max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def child_key(run: Any) -> tuple[str, str]:
    """(point, seed) of a child run: what identifies it within its sweep."""
    return run.data.tags.get(tracking.TAG_SWEEP_POINT, ""), recorded_config(run).get(SEED_KEY, "")


def point_groups(client: Any, uri: str, run_ids: Sequence[str]) -> tuple[str, dict[str, list[Any]]] | None:
    """For the one id of a sweep's parent: (its id, grid point → the point's FINISHED runs, lowest seed first), the
    points in the order their first run started; None for anything else (runs to compare one by one).

    :raises InputError: the sweep has fewer than two points with a finished run.
    """
    ids = list(dict.fromkeys(run_ids))
    if len(ids) != 1:
        return None
    parent = store.find_run(client, uri, ids[0])
    if parent.data.tags.get(tracking.TAG_KIND) != tracking.KIND_SWEEP:
        return None
    groups: dict[str, list[Any]] = {}
    for child in children(client, parent):
        if child.info.status == "FINISHED":
            groups.setdefault(child.data.tags.get(tracking.TAG_SWEEP_POINT, ""), []).append(child)
    if len(groups) < 2:
        raise InputError(f"sweep {ids[0]} has {len(groups)} grid point(s) with a finished run; compare needs 2")
    return parent.info.run_id, {point: sorted(runs, key=_seed_order) for point, runs in groups.items()}


def _seed_order(run: Any) -> tuple[int, str]:
    """Seeds in numeric order (``2`` before ``10``)."""
    seed = child_key(run)[1]
    return len(seed), seed


class _Terminated(BaseException):
    """SIGTERM reached the sweep."""


@contextmanager
def _interrupts_stop(parent_id: str) -> Iterator[None]:
    """While the block runs, SIGTERM (like Ctrl-C) interrupts it; either leaves as :class:`SweepInterrupted`."""
    main = threading.current_thread() is threading.main_thread()
    saved = signal.getsignal(signal.SIGTERM) if main else None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise _Terminated()

    if main:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except (_Terminated, KeyboardInterrupt) as err:
        interrupted = SweepInterrupted(signal.SIGTERM if isinstance(err, _Terminated) else signal.SIGINT, parent_id)
        log.warning("latentdream: %s", interrupted)
        raise interrupted from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, saved if saved is not None else signal.SIG_DFL)


@dataclass
class _Job:
    run: PlannedRun
    resume: str | None  # the run id of an unfinished child to resume in place


class _Scheduler:
    """Runs the jobs ``parallel`` at a time, each in its own child process, and stops them all on an interrupt."""

    def __init__(self, context: Any, experiment: str, grid: Grid, tags: dict[str, str], command: str,
                 parallel: int) -> None:
        self.context, self.experiment, self.grid, self.tags, self.command = context, experiment, grid, tags, command
        self.parallel = parallel
        self.swept = (*grid.keys, *([SEED_KEY] if grid.seeds else []))
        self.threads = max(1, (os.cpu_count() or 1) // parallel)
        self.running: dict[Any, tuple[_Job, Any, float]] = {}

    def run(self, jobs: Sequence[_Job], total: int, on_done: Any) -> dict[int, int]:
        """Run ``jobs``; ``on_done(job, exitcode, seconds)`` after each. Returns run index → exit code."""
        pending, codes = deque(jobs), {}
        try:
            while pending or self.running:
                while pending and len(self.running) < self.parallel:
                    self._start(pending.popleft(), total)
                for sentinel in wait(list(self.running)):
                    job, process, began = self.running.pop(sentinel)
                    process.join()
                    codes[job.run.index] = process.exitcode
                    on_done(job, process.exitcode, time.perf_counter() - began)
        except BaseException:
            self.stop()
            raise
        return codes

    def _start(self, job: _Job, total: int) -> None:
        overrides = [*job.run.overrides(self.grid), *([f"resume={job.resume}"] if job.resume else [])]
        command = f"{self.command} [{job.run.index + 1}/{total}: {job.run.name}]"
        process = self.context.Process(
            target=_train_child, name=f"sweep-{job.run.index}",
            args=(self.experiment, overrides, self.swept, self.tags | {tracking.TAG_SWEEP_POINT: job.run.label},
                  job.run.name, command, dict(os.environ), self.threads))
        process.start()
        self.running[process.sentinel] = (job, process, time.perf_counter())
        verb = f"resume {job.resume}" if job.resume else "start"
        print(f"sweep {job.run.index + 1}/{total}: {verb} {job.run.name}", flush=True)

    def stop(self) -> None:
        """SIGTERM every running child, wait until each has ended its run KILLED (SIGKILL after a timeout)."""
        for _, process, _ in self.running.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, process, _ in self.running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self.running.clear()


# --- the parent --------------------------------------------------------------------------------------------------
def _open_parent(client: Any, experiment_id: str, cfg: Any, spec: dict, grid: Grid, command: str) -> str:
    from experiments.run.train import run_tags

    keys = grid.keys
    tags = {**run_tags(cfg, command), tracking.TAG_KIND: tracking.KIND_SWEEP}
    name = f"sweep {' × '.join(keys) or 'seeds'}"
    run = with_retries(client.create_run, experiment_id, run_name=name[:250], tags=tags)
    run_id = run.info.run_id
    params = {tracking.sweep_param(k): ",".join(v) for k, v in grid.axes.items()}
    if grid.seeds:
        params[tracking.sweep_param(SEED_KEY)] = ",".join(grid.seeds)
    if spec["random"] is not None:
        params[tracking.sweep_param("random")] = str(spec["random"])
        params[tracking.sweep_param("random_seed")] = str(spec["random_seed"])
    writer = tracking.RunWriter(client, run_id)
    try:
        for key, value in params.items():
            with_retries(client.log_param, run_id, key, value[:6000])
        writer.json(tracking.SWEEP_SPEC, spec)
    except BaseException:
        with_retries(client.set_terminated, run_id, "FAILED")
        raise
    return run_id


def _reopen_parent(client: Any, uri: str, parent_id: str, experiment_id: str, spec: dict) -> Any:
    """The sweep to resume, checked: a sweep of this experiment, not finished, with the same defining spec."""
    parent = store.find_run(client, uri, parent_id, kinds=(tracking.KIND_SWEEP,))
    if parent.info.experiment_id != experiment_id:
        raise InputError(f"--resume {parent_id}: the sweep belongs to another experiment "
                         f"(id {parent.info.experiment_id})")
    if parent.info.status == "FINISHED":
        raise InputError(f"--resume {parent_id}: the sweep is FINISHED; every run of it finished")
    with tempfile.TemporaryDirectory() as tmp:
        recorded = json.loads(Path(client.download_artifacts(parent_id, tracking.SWEEP_SPEC, tmp)).read_text())
    if _defining(recorded) != _defining(spec):
        raise InputError(f"--resume {parent_id}: the sweep was started with another grid; repeat its command: "
                         f"{parent.data.tags.get(tracking.TAG_COMMAND, '?')}")
    return parent


def _log_summary(client: Any, parent: Any, planned: Sequence[PlannedRun], grid: Grid) -> pd.DataFrame:
    """Seed statistics of the finished children into the parent: tables and figures (see the module docstring)."""
    by_key = {child_key(r): r for r in children(client, parent)}
    listing, values, histories = [], [], {}
    for run in planned:
        child = by_key.get(run.key)
        listing.append({"run_id": child.info.run_id if child else "", "point": run.label, "seed": run.config_seed,
                        "status": child.info.status if child else "MISSING"})
        if child is None or child.info.status != "FINISHED":
            continue
        values += [{"point": run.label, **run.point, "metric": k, "value": v}
                   for k, v in child.data.metrics.items() if tracking.is_sweep_summary_metric(k)]
        history = sorted((m.step, m.value) for m in with_retries(client.get_metric_history, child.info.run_id,
                                                                  tracking.VAL_LOSS))
        if history:
            histories.setdefault(run.label, []).append(tuple(zip(*history)))
    summary = sweep_stats.summarize(pd.DataFrame(values, columns=["point", *grid.keys, "metric", "value"]), grid.keys)
    writer = tracking.RunWriter(client, parent.info.run_id)
    writer.table(tracking.SWEEP_RUNS, pd.DataFrame(listing))
    writer.table(tracking.SWEEP_SUMMARY, summary)
    present = set(summary["metric"])
    metrics = [m for m in FIGURE_METRICS if m in present] + sorted(present - set(FIGURE_METRICS))
    for key in grid.keys:
        writer.figure(tracking.sweep_metric_png(key), plots.metric_vs_value(summary, key, metrics, grid.keys))
    if histories:
        curves = sweep_stats.curve_stats(histories)
        writer.figure(tracking.SWEEP_CURVES, plots.mean_std_curves(curves, tracking.VAL_LOSS))
    return summary


def run_sweep(experiment: str, items: Sequence[str], *, parallel: int = 1, random: int | None = None,
              random_seed: int = 0, resume: str | None = None, register: str | None = None,
              alias: str | None = None, metric: str = tracking.VAL_LOSS, mode: str = "min",
              command: str | None = None) -> str:
    """Train the sweep and return the parent run's id.

    :param experiment: experiment name or YAML path (as for ``latentdream train``).
    :param items: ``key=a,b,c`` (an axis of the grid), ``key=value`` (every run), ``trainer.seed=1,2,3`` (replicates).
    :param parallel: how many children train at once.
    :param random: train only this many grid points, drawn with ``random_seed``.
    :param resume: a KILLED or FAILED sweep's parent id: its unfinished children resume, the missing ones start.
    :param register: register the best child's model under this name (``alias`` optional), best by the final
        ``metric`` (``mode`` min or max).
    :raises InputError: anything wrong with the grid, a point's config, the store or the resume (nothing started).
    :raises SweepInterrupted: SIGTERM or Ctrl-C (a ``SystemExit`` with code 143/130); the parent is KILLED.
    :raises SweepFailed: some children ended FAILED or KILLED on their own; the parent is FAILED.
    """
    if parallel < 1:
        raise InputError(f"--parallel {parallel} is not allowed; it must be >= 1")
    if mode not in ("min", "max"):
        raise InputError(f"--mode {mode!r} is not allowed; allowed: min, max")
    grid = parse_grid(items)
    planned = plan(grid, random, random_seed)
    context = _context()
    planned, cfgs = check_configs(experiment, grid, planned)
    base = cfgs[0]
    if register and not all(cfg.tracking.log_model for cfg in cfgs):
        raise InputError("--register needs the runs' models: drop tracking.log_model=false")
    command = command or " ".join(["latentdream", "sweep", experiment, *items])
    spec = spec_of(experiment, grid, planned, random, random_seed)

    uri = base.tracking.tracking_uri or store.default_tracking_uri()
    store.check_reachable(uri)
    checkpoint_root = Path(base.tracking.checkpoint_dir or Path.cwd() / "checkpoints")
    store.check_writable(checkpoint_root, "tracking.checkpoint_dir")
    experiment_name = base.tracking.experiment_name or base.name
    import mlflow

    with store.store_lock(uri):
        client = mlflow.MlflowClient(uri)
        experiment_id = with_retries(store.experiment_id_for, client, experiment_name,
                                     base.tracking.artifact_root or store.default_artifact_root(uri))
        store.enable_wal(uri)
    parent = _reopen_parent(client, uri, resume, experiment_id, spec) if resume else None
    parent_id = resume or _open_parent(client, experiment_id, base, spec, grid, command)
    lock = store.RunLock(checkpoint_root, parent_id)
    if not lock.acquire():
        raise InputError(f"sweep {parent_id} is still running ({lock.holder()}); stop it first, or wait")
    try:
        jobs = _resume_jobs(client, parent, planned) if parent is not None else [_Job(run, None) for run in planned]
        if parent is not None:
            _restart_parent(client, parent)
        parent = with_retries(client.get_run, parent_id)
        with store.ended(client, parent_id), _interrupts_stop(parent_id):
            _train_children(context, client, parent, jobs, planned, grid, experiment, command, parallel)
            if register:
                _register_best(client, uri, parent, register, alias, metric, mode)
        reports.try_publish_report(client, parent_id)  # report.html of the sweep: its summary and figures
    finally:
        lock.release()
        views.try_publish_view(client, experiment_id)  # the children's curves and images in the UI's chart view
    return parent_id


def _restart_parent(client: Any, parent: Any) -> None:
    """A resumed sweep runs again: status RUNNING, ``resumed`` counted, a ``failure_reason`` moved to
    ``previous_failure`` (as train does for a resumed run)."""
    with_retries(client.update_run, parent.info.run_id, status="RUNNING")
    store.mark_resumed(client, parent)


def _resume_jobs(client: Any, parent: Any, planned: Sequence[PlannedRun]) -> list[_Job]:
    """The planned runs not yet FINISHED: unfinished children resume in place, missing ones start fresh."""
    by_key = {child_key(r): r for r in children(client, parent)}
    jobs = []
    for run in planned:
        child = by_key.get(run.key)
        if child is None:
            jobs.append(_Job(run, None))
        elif child.info.status != "FINISHED":
            jobs.append(_Job(run, child.info.run_id))
    return jobs


def _train_children(context: Any, client: Any, parent: Any, jobs: Sequence[_Job], planned: Sequence[PlannedRun],
                    grid: Grid, experiment: str, command: str, parallel: int) -> None:
    parent_id, total = parent.info.run_id, len(planned)
    began = time.perf_counter()
    print(f"sweep {parent_id}: {len(jobs)} of {total} runs to train, {parallel} at a time", flush=True)

    def on_done(job: _Job, code: int, seconds: float) -> None:
        what = EXIT_STATUS.get(code, f"exit {code}")
        print(f"sweep {job.run.index + 1}/{total}: {job.run.name} {what} in {seconds:.1f} s", flush=True)

    scheduler = _Scheduler(context, experiment, grid, {tracking.TAG_PARENT_RUN: parent_id}, command, parallel)
    codes = scheduler.run(jobs, total, on_done)
    summary = _log_summary(client, parent, planned, grid)
    failed = [job.run.name for job in jobs if codes.get(job.run.index) != 0]
    print(f"sweep {parent_id}: {len(jobs) - len(failed)} of {len(jobs)} runs finished in "
          f"{time.perf_counter() - began:.1f} s; {len(summary)} statistics in {tracking.SWEEP_SUMMARY}", flush=True)
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(jobs)} runs did not finish ({', '.join(failed)}); "
                          f"retry them with --resume {parent_id}")


def _register_best(client: Any, uri: str, parent: Any, name: str, alias: str | None, metric: str, mode: str) -> None:
    finished = [r for r in children(client, parent) if r.info.status == "FINISHED"]
    best = registry.best_run(finished, metric, mode)
    version = registry.register_run(client, uri, best.info.run_id, name, alias)
    client.set_tag(parent.info.run_id, tracking.TAG_REGISTERED, f"{name}/{version.version}")
    print(f"sweep {parent.info.run_id}: best run {best.info.run_id} ({metric} {best.data.metrics[metric]:.4g}) "
          f"registered as {name} version {version.version}{f' (alias {alias})' if alias else ''}", flush=True)
