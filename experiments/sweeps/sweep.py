"""``latentdream sweep EXPERIMENT key=a,b key2=x,y [trainer.seed=1,2,3] [--parallel N] [--random K]``, or a search:
``latentdream sweep EXPERIMENT optim.lr=loguniform(1e-3,0.1) --search tpe --trials N [--prune]``.

Every point of the grid (or ``K`` random points of it), once per seed, or every trial of the search, is one ordinary
:func:`experiments.run.train.train` run (all callbacks), executed as a Ray task (:mod:`experiments.sweeps.executor`)
and nested under one parent run (tag ``kind=sweep``) that records the sweep (params ``sweep.<key>``, artifact
``sweep/spec.json``) and, at the end, the seed statistics: ``sweep/summary.csv``, a figure per swept key and the
``val/loss`` curves (mean ± std over seeds); a search adds ``sweep/trials.csv`` and Optuna's figures. A child keeps its
kind, holds the swept keys among its params and the tags ``sweep.point``, ``sweep.node`` and ``sweep.state``.

* Everything is checked first: every run's config is loaded and its trainer settings checked (a search: each
  distribution's bounds and choices), so a bad value anywhere starts nothing.
* Children train on the Ray cluster at ``--address`` (or ``RAY_ADDRESS``), or on a local Ray instance started for the
  sweep; at most ``parallel`` at once (default: what the cluster's CPUs/GPUs allow for ``--cpus-per-run`` /
  ``--gpus-per-run``). A local sqlite store is refused on a cluster of several nodes.
* SIGTERM or Ctrl-C (also to the whole process group): the running children are cancelled and end KILLED with their
  last checkpoint (finished ones stay FINISHED), and the parent ends KILLED. ``--resume PARENT_ID`` resumes the
  unfinished children in place (same run id, train's ``resume``), trains the missing ones and continues the study.
* ``register``: the best child (``metric``, ``mode``) becomes a version of a registered model.

``run_sweep`` is the function to call from Python (the demo); the command line is a thin wrapper.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
from experiments.run.grid_check import GridChecker
from experiments.sweeps import search as searching
from experiments.sweeps.executor import RayCluster, is_local_store
from experiments.sweeps.grid import MAX_RUNS, SEED_KEY, Grid, check_size, parse_grid, point_label, random_points
from experiments.sweeps.runner import SweepInterrupted, execute, interrupts_stop, stop_children  # noqa: F401 - re-exported
from experiments.sweeps.sources import GridSource, JobTemplate, TrialSource
from experiments.run.store import with_retries
from latentdream.errors import InputError

log = logging.getLogger("latentdream")

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


class SweepFailed(RuntimeError):
    """Some children did not finish; the parent ends FAILED and ``--resume`` retries them."""


def plan(grid: Grid, random: int | None = None, random_seed: int = 0) -> list[PlannedRun]:
    """The sweep's runs, point-major and seed-minor: every grid point, or ``random`` of them drawn with
    ``random_seed``, once per seed."""
    points = grid.points() if random is None else [grid.point(i) for i in random_points(grid.size, random, random_seed)]
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
    checker = GridChecker(experiment, (*grid.keys, SEED_KEY), check_trainer)  # once per distinct projection
    for run in runs:
        try:
            cfg = checker.load(run.overrides(grid))
        except InputError as err:
            raise InputError(f"sweep run {run.name}: {err}") from None
        checked.append(replace(run, config_seed=str(cfg.trainer.seed)))
        cfgs.append(cfg)
    if len({r.key for r in checked}) < len(checked):
        raise InputError(f"the sweep lists a run twice (seeds {', '.join(grid.seeds)} name the same seed?)")
    return checked, cfgs


# --- the children ------------------------------------------------------------------------------------------------
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


# --- the parent --------------------------------------------------------------------------------------------------
def _open_parent(client: Any, experiment_id: str, cfg: Any, spec: dict, grid: Grid, command: str) -> str:
    from experiments.run.train import run_tags

    keys = grid.keys
    tags = {**run_tags(cfg, command), tracking.TAG_KIND: tracking.KIND_SWEEP}
    name = f"sweep {' × '.join(keys) or 'seeds'}" if not spec.get("search") else \
        f"search {' × '.join(spec['distributions'])}"
    run = with_retries(client.create_run, experiment_id, run_name=name[:250], tags=tags)
    run_id = run.info.run_id
    params = {tracking.sweep_param(k): ",".join(v) for k, v in grid.axes.items()}
    if grid.seeds:
        params[tracking.sweep_param(SEED_KEY)] = ",".join(grid.seeds)
    for key, text in spec.get("distributions", {}).items():
        params[tracking.sweep_param(key)] = text
    for key in ("search", "trials", "metric", "mode", "prune"):
        if spec.get("search") and key in spec:
            params[tracking.sweep_param(key)] = str(spec[key])
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


def run_sweep(experiment: str, items: Sequence[str], *, parallel: int | None = None, random: int | None = None,
              random_seed: int = 0, resume: str | None = None, register: str | None = None,
              alias: str | None = None, metric: str = tracking.VAL_LOSS, mode: str = "min",
              command: str | None = None, address: str | None = None, cpus_per_run: float = 1.0,
              gpus_per_run: float | None = None, search: str | None = None, trials: int | None = None,
              prune: bool = False, storage: str | None = None, max_runs: int = MAX_RUNS) -> str:
    """Train the sweep and return the parent run's id.

    :param experiment: experiment name or YAML path (as for ``latentdream train``).
    :param items: ``key=a,b,c`` (an axis of the grid), ``key=value`` (every run), ``trainer.seed=1,2,3`` (replicates),
        ``key=uniform(a,b)|loguniform(a,b)|int(a,b)|choice(x,y)`` (a search's distributions).
    :param parallel: at most this many children train at once (default: what the cluster's resources allow).
    :param random: train only this many grid points, drawn with ``random_seed``.
    :param resume: a KILLED or FAILED sweep's parent id: its unfinished children resume, the missing ones start.
    :param register: register the best child's model under this name (``alias`` optional), best by the final
        ``metric`` (``mode`` min or max); ``metric``/``mode`` are also what a search optimises.
    :param address: the Ray cluster to run on (default ``RAY_ADDRESS``, else a local instance).
    :param cpus_per_run: CPUs each child reserves; ``gpus_per_run``: GPUs (default 1 where the cluster has GPUs).
    :param max_runs: refuse a sweep of more runs than this (grid points, or ``random`` of them, × seeds).
    :param search: ``tpe`` or ``random``: sample the distributions with Optuna, ``trials`` trials (seeded by
        ``random_seed``); ``prune`` stops weak trials after any epoch; ``storage``: the study's database URL.
    :raises InputError: anything wrong with the grid, a point's config, the store or the resume (nothing started).
    :raises SweepInterrupted: SIGTERM or Ctrl-C (a ``SystemExit`` with code 143/130); the parent is KILLED.
    :raises SweepFailed: some children ended FAILED or KILLED on their own; the parent is FAILED.
    """
    if parallel is not None and parallel < 1:
        raise InputError(f"--parallel {parallel} is not allowed; it must be >= 1")
    if mode not in ("min", "max"):
        raise InputError(f"--mode {mode!r} is not allowed; allowed: min, max")
    distributions, rest = searching.split_distributions(items)
    grid = parse_grid(rest)
    check_size(grid, random, max_runs)  # a huge grid: one line at once, before any point is listed
    if register:  # a refused name or alias stops before anything is trained
        registry.check_registration(register, alias)
    kind = _check_search(distributions, grid, search, trials, prune, random)
    command = command or " ".join(["latentdream", "sweep", experiment, *items])
    if kind is None:
        planned, cfgs = check_configs(experiment, grid, plan(grid, random, random_seed))
        spec = spec_of(experiment, grid, planned, random, random_seed)
    else:
        planned, cfgs = [], _check_bounds(experiment, grid, distributions)
        spec = {**spec_of(experiment, grid, [], None, random_seed), "distributions": searching.describe(distributions),
                "search": kind.value, "trials": trials, "metric": metric, "mode": mode, "prune": prune}
    base = cfgs[0]
    if register and not all(cfg.tracking.log_model for cfg in cfgs):
        raise InputError("--register needs the runs' models: drop tracking.log_model=false")

    uri = base.tracking.tracking_uri or store.default_tracking_uri()
    store.check_store(uri)
    checkpoint_root = Path(base.tracking.checkpoint_dir or Path.cwd() / "checkpoints").resolve()
    store.check_writable(checkpoint_root, "tracking.checkpoint_dir")
    experiment_name = base.tracking.experiment_name or base.name
    import mlflow

    def open_store() -> tuple[Any, str]:
        with store.store_lock(uri):
            client = mlflow.MlflowClient(uri)
            experiment_id = with_retries(store.experiment_id_for, client, experiment_name,
                                         base.tracking.artifact_root or store.default_artifact_root(uri))
            store.enable_wal(uri)
        return client, experiment_id

    parent = None
    if resume:  # checked before Ray starts: a refused resume touches nothing
        client, experiment_id = open_store()
        parent = _reopen_parent(client, uri, resume, experiment_id, spec)
        _check_no_live_child(client, parent, checkpoint_root)
    with RayCluster(address, cpus_per_run, gpus_per_run) as cluster:
        nodes = cluster.capacity().nodes
        if nodes > 1 and is_local_store(uri):
            raise InputError(f"the tracking store {uri} is a file on this machine, which the Ray cluster's other "
                             f"{nodes - 1} node(s) cannot reach: use a tracking server (docs/scale.md)")
        if not resume:
            client, experiment_id = open_store()
        parent_id = resume or _open_parent(client, experiment_id, base, spec, grid, command)
        lock = store.RunLock(checkpoint_root, parent_id)
        if not lock.acquire():
            raise InputError(f"sweep {parent_id} is still running ({lock.holder()}); stop it first, or wait")
        try:
            if parent is not None:
                _restart_parent(client, parent)
            parent = with_retries(client.get_run, parent_id)
            slots = cluster.slots()
            template = JobTemplate(experiment, tuple(grid.fixed), (*grid.keys, *distributions,
                                                                    *([SEED_KEY] if grid.seeds else [])),
                                   parent_id, uri, command, max(1, int(cpus_per_run)))
            with store.ended(client, parent_id), interrupts_stop(parent_id):
                if kind is None:
                    jobs = _resume_runs(client, parent, planned) if resume else planned
                    source: Any = GridSource(template, jobs, len(planned))
                else:
                    where = searching.study_storage(uri, checkpoint_root / parent_id, storage)
                    study = searching.open_study(parent_id, where, kind, mode, random_seed, resume is not None)
                    source = TrialSource(template, study, distributions, trials, metric, where, prune)
                _train_children(cluster, client, parent, source, planned, grid, min(parallel or slots, slots), kind)
                if register:
                    _register_best(client, uri, parent, register, alias, metric, mode)
            reports.try_publish_report(client, parent_id)  # report.html of the sweep: its summary and figures
        finally:
            lock.release()
            views.try_publish_view(client, experiment_id)  # the children's curves and images in the UI's chart view
    return parent_id


def _check_search(distributions: Mapping[str, Any], grid: Grid, search: str | None, trials: int | None, prune: bool,
                  random: int | None) -> searching.Search | None:
    """The search asked for (None: a grid), its options checked together."""
    if not distributions:
        for flag, given in (("--search", search), ("--trials", trials), ("--prune", prune)):
            if given:
                raise InputError(f"{flag} needs distributions to sample, e.g. optim.lr=loguniform(1e-3,0.1)")
        return None
    try:
        kind = searching.Search(search or "tpe")
    except ValueError:
        raise InputError(f"--search {search!r} is not allowed; allowed: tpe, random") from None
    if trials is None or trials < 1:
        raise InputError(f"--trials {trials} is not allowed: a search needs --trials N >= 1")
    if grid.axes or grid.seeds:
        key = next(iter(grid.axes), SEED_KEY)
        raise InputError(f"sweep key {key} lists values beside distributions: a search samples one run per trial; "
                         f"give {key}=choice(...) or one value")
    if random is not None:
        raise InputError("--random draws grid points; a search draws its trials: give --search random")
    return kind


def _check_bounds(experiment: str, grid: Grid, distributions: Mapping[str, Any]) -> list[Any]:
    """Load and check the config at each distribution's bounds (or choices), before anything starts."""
    from experiments.run.train import check_trainer
    import optuna.distributions as d

    cfgs = []
    for key, dist in distributions.items():
        values = dist.choices if isinstance(dist, d.CategoricalDistribution) else (dist.low, dist.high)
        for value in values:
            try:
                cfg = load_experiment(experiment, [*grid.fixed, *searching.trial_overrides({key: value})])
                check_trainer(cfg)
            except InputError as err:
                raise InputError(f"sweep key {key}={value}: {err}") from None
            cfgs.append(cfg)
    return cfgs


def _check_no_live_child(client: Any, parent: Any, checkpoint_root: Path) -> None:
    """A sweep whose children still train (their run locks are held) is not resumed; nothing is touched."""
    for child in children(client, parent):
        if child.info.status == "FINISHED":
            continue
        lock = store.RunLock(checkpoint_root, child.info.run_id)
        if not lock.acquire():
            raise InputError(f"--resume {parent.info.run_id}: its run {child.info.run_id} is still training "
                             f"({lock.holder()}); stop it first, or wait")
        lock.release()


def _restart_parent(client: Any, parent: Any) -> None:
    """A resumed sweep runs again: status RUNNING, ``resumed`` counted, a ``failure_reason`` moved to
    ``previous_failure`` (as train does for a resumed run)."""
    with_retries(client.update_run, parent.info.run_id, status="RUNNING")
    store.mark_resumed(client, parent)


def _resume_runs(client: Any, parent: Any, planned: Sequence[PlannedRun]) -> list[PlannedRun]:
    """The planned runs not yet FINISHED (each child finds and resumes its own unfinished run)."""
    finished = {child_key(r) for r in children(client, parent) if r.info.status == "FINISHED"}
    return [run for run in planned if run.key not in finished]


def _train_children(cluster: RayCluster, client: Any, parent: Any, source: Any, planned: Sequence[PlannedRun],
                    grid: Grid, parallel: int, kind: searching.Search | None) -> None:
    parent_id = parent.info.run_id
    began = time.perf_counter()
    what = f"{len(source.pending)} of {len(planned)} runs" if kind is None else f"{source.trials} trials"
    print(f"sweep {parent_id}: {what} to train on {cluster.capacity().nodes} Ray node(s), {parallel} at a time",
          flush=True)
    running: dict[Any, Any] = {}
    try:
        outcomes = execute(cluster, source, parallel, source.label, running)
    except BaseException:
        stop_children(cluster, running, client, lambda: children(client, parent))
        if kind is not None:
            _log_search(client, parent_id, source.study)
        raise
    if kind is None:
        summary = _log_summary(client, parent, planned, grid)
        detail = f"{len(summary)} statistics in {tracking.SWEEP_SUMMARY}"
    else:
        _log_search(client, parent_id, source.study)
        detail = f"trials in {tracking.SWEEP_TRIALS}"
    failed = [job.name for job, outcome in outcomes if outcome.code != 0]
    print(f"sweep {parent_id}: {len(outcomes) - len(failed)} of {len(outcomes)} runs finished in "
          f"{time.perf_counter() - began:.1f} s; {detail}", flush=True)
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(outcomes)} runs did not finish ({', '.join(failed)}); "
                          f"retry them with --resume {parent_id}")


def _log_search(client: Any, parent_id: str, study: Any) -> None:
    """``sweep/trials.csv`` and Optuna's figures into the parent."""
    import matplotlib.pyplot as plt

    writer = tracking.RunWriter(client, parent_id)
    writer.table(tracking.SWEEP_TRIALS, searching.trials_table(study))
    names = {"optimization_history": tracking.SWEEP_HISTORY, "param_importances": tracking.SWEEP_IMPORTANCES}
    for name, figure in searching.figures(study).items():
        writer.figure(names[name], figure)
        plt.close(figure)


def _register_best(client: Any, uri: str, parent: Any, name: str, alias: str | None, metric: str, mode: str) -> None:
    finished = [r for r in children(client, parent) if r.info.status == "FINISHED"]
    best = registry.best_run(finished, metric, mode)
    version = registry.register_run(client, uri, best.info.run_id, name, alias)
    client.set_tag(parent.info.run_id, tracking.TAG_REGISTERED, f"{name}/{version.version}")
    print(f"sweep {parent.info.run_id}: best run {best.info.run_id} ({metric} {best.data.metrics[metric]:.4g}) "
          f"registered as {name} version {version.version}{f' (alias {alias})' if alias else ''}", flush=True)
