"""One child of a sweep, as Ray runs it: an ordinary :func:`experiments.run.train.train` run in a Ray worker.

The child finds its own run first: a run of the sweep with its key (grid point and seed, or trial number) that is
not FINISHED is resumed in place (``resume=RUN_ID``: same run id, no metric step logged twice), which is how Ray's
retry of a child whose node died, and ``--resume`` of a killed sweep, continue where it stopped; a FINISHED one is
not trained again. It tags its run with the node it runs on (``sweep.node``) and, at the end, ``sweep.state``
(``complete``, or ``pruned`` with ``sweep.pruned_epoch``). It returns a :class:`ChildOutcome`, never raises:
bad input, a failed run and an interrupt are exit codes, as for ``latentdream train``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from analysis import tracking

STATE_COMPLETE, STATE_PRUNED = "complete", "pruned"


@dataclass(frozen=True)
class Pruning:
    """Where the child reports its metric every epoch: the study's storage, name and the trial's storage id."""

    storage: str
    study: str
    trial_id: int
    metric: str


@dataclass(frozen=True)
class ChildJob:
    """Everything a Ray worker needs to train one child (picklable; no live objects)."""

    experiment: str
    overrides: tuple[str, ...]
    swept: tuple[str, ...]
    tags: dict[str, str]  # of a new run: the parent, sweep.point, sweep.trial
    name: str
    command: str
    parent_id: str
    tracking_uri: str
    match: dict[str, str]  # the tags that identify this child among the parent's runs
    seed: str = ""  # the config's resolved trainer.seed (part of a grid child's key)
    threads: int = 1
    pruning: Pruning | None = None
    metric: str = ""  # a search's objective: returned as the outcome's value
    environ: dict[str, str] = field(default_factory=dict)  # MLFLOW_* settings of the sweep's shell
    cwd: str = ""  # the sweep's folder: relative paths and the default store resolve there where it exists


@dataclass(frozen=True)
class ChildOutcome:
    """What a child reports back: exit code (0 FINISHED, 1 FAILED, 2 refused, 130/143 KILLED), its run, the node,
    ``complete``/``pruned``, epochs trained and its final value of the pruning metric (None without one)."""

    code: int
    run_id: str | None
    node: str
    state: str | None = None
    epochs: int = 0
    value: float | None = None


def node_id() -> str:
    """The Ray node this process runs on (``ray list nodes`` names it); empty outside Ray."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() or ""
    except Exception:  # noqa: BLE001 - not in a Ray worker
        return ""


def find_own_run(client: Any, job: ChildJob) -> Any | None:
    """This child's run among the parent's runs (same ``match`` tags and seed), if one was started before."""
    from experiments.run.config import recorded_config
    from experiments.run.store import with_retries
    from experiments.sweeps.grid import SEED_KEY

    parent = with_retries(client.get_run, job.parent_id)
    filters = [f"tags.`{tracking.TAG_PARENT_RUN}` = '{job.parent_id}'"]
    filters += [f"tags.`{k}` = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in job.match.items()]
    found = with_retries(client.search_runs, [parent.info.experiment_id], filter_string=" and ".join(filters),
                         order_by=["attributes.start_time ASC"], max_results=50)
    for run in found:
        if not job.seed or recorded_config(run).get(SEED_KEY, "") == job.seed:
            return run
    return None


def train_child(job: ChildJob) -> ChildOutcome:
    """Train (or resume, or skip as done) one child; the body of each Ray task."""
    os.environ.update(job.environ)
    if job.cwd and os.path.isdir(job.cwd):
        os.chdir(job.cwd)
    os.environ.pop("MLFLOW_RUN_ID", None)  # a sweep under `mlflow run`: each child makes its own run
    import mlflow
    import torch

    from experiments.run.reporting import quiet_libraries, reported

    quiet_libraries()  # the children print what `latentdream train` prints
    torch.set_num_threads(max(1, job.threads))
    node = node_id()
    client = mlflow.MlflowClient(job.tracking_uri)
    outcome: dict[str, Any] = {"run_id": None}

    def one_run() -> int:
        own = find_own_run(client, job)
        if own is not None and own.info.status == "FINISHED":
            outcome.update(run_id=own.info.run_id, state=own.data.tags.get(tracking.TAG_SWEEP_STATE))
            return 0
        resume = [f"resume={own.info.run_id}"] if own is not None else []
        if own is not None:  # the node it runs on now
            client.set_tag(own.info.run_id, tracking.TAG_SWEEP_NODE, node)
        outcome["run_id"] = own.info.run_id if own else None
        _train(job, [*job.overrides, *resume], node, outcome)
        return 0

    try:
        code = reported(one_run)
    except SystemExit as stop:  # an interrupt: the run ended KILLED (store.RunInterrupted)
        code = stop.code if isinstance(stop.code, int) else 1
    except KeyboardInterrupt:  # Ray's cancel arrived outside the run (before it opened, or after it ended)
        code = 130
    except Exception as err:  # noqa: BLE001 - a bug before any run existed: report, do not crash the worker
        print(f"latentdream: error: sweep run {job.name}: {type(err).__name__}: {err}", flush=True)
        code = 1
    run_id = outcome.get("run_id")
    if code == 0 and run_id and outcome.get("state") is None:
        state = STATE_PRUNED if outcome.get("pruned_epoch") is not None else STATE_COMPLETE
        client.set_tag(run_id, tracking.TAG_SWEEP_STATE, state)
        if state == STATE_PRUNED:
            client.set_tag(run_id, tracking.TAG_SWEEP_PRUNED_EPOCH, str(outcome["pruned_epoch"]))
        outcome["state"] = state
    return ChildOutcome(code, run_id, node, outcome.get("state"), outcome.get("epochs", 0), outcome.get("value"))


def _train(job: ChildJob, overrides: list[str], node: str, outcome: dict[str, Any]) -> None:
    from experiments.run.config import load_experiment
    from experiments.run.train import train
    from experiments.sweeps.pruning import TrialPruning

    cfg = load_experiment(job.experiment, overrides)
    if cfg.tracking.run_name is None:
        cfg.tracking.run_name = job.name
    callbacks = []
    if job.pruning is not None:
        p = job.pruning
        callbacks.append(TrialPruning(p.storage, p.study, p.trial_id, p.metric))
    result = train(cfg, command=job.command, swept=job.swept, tags={**job.tags, tracking.TAG_SWEEP_NODE: node},
                   publish_view=False, callbacks=callbacks)
    outcome["run_id"] = result.run_id
    outcome["epochs"] = int(result.trainer.current_epoch)
    if job.pruning is not None:
        outcome["pruned_epoch"] = callbacks[0].pruned_epoch
    if job.metric:
        value = result.metrics.get(job.metric)
        outcome["value"] = float(value) if value is not None else None
