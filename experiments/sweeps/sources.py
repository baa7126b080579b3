"""Where a sweep's children come from: a grid's planned runs (:class:`GridSource`) or an Optuna study's trials, asked
one at a time as slots free up (:class:`TrialSource`, Optuna's ask/tell). Both build :class:`ChildJob` s from a
:class:`JobTemplate`, what every child of one sweep shares.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from analysis import tracking
from experiments.sweeps.child import ChildJob, ChildOutcome, Pruning, STATE_PRUNED
from experiments.sweeps.grid import SEED_KEY
from experiments.sweeps.search import trial_overrides

_ENV_PREFIXES = ("MLFLOW_", "LATENTDREAM_", "AWS_", "GOOGLE_", "AZURE_")  # the store's settings reach the children


@dataclass(frozen=True)
class JobTemplate:
    """What every child of one sweep shares."""

    experiment: str
    fixed: tuple[str, ...]
    swept: tuple[str, ...]
    parent_id: str
    tracking_uri: str
    command: str
    threads: int

    def job(self, overrides: Sequence[str], name: str, tags: Mapping[str, str], match: Mapping[str, str],
            seed: str = "", pruning: Pruning | None = None) -> ChildJob:
        environ = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES) and k != "MLFLOW_RUN_ID"}
        environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        return ChildJob(self.experiment, (*self.fixed, *overrides), self.swept,
                        {tracking.TAG_PARENT_RUN: self.parent_id, **tags}, name, self.command, self.parent_id,
                        self.tracking_uri, dict(match), seed=seed, threads=self.threads, pruning=pruning,
                        environ=environ, cwd=os.getcwd())


class GridSource:
    """The planned runs of a grid (``runs``: :class:`experiments.sweeps.sweep.PlannedRun`), in order."""

    def __init__(self, template: JobTemplate, runs: Sequence[Any], total: int) -> None:
        self.total = total
        self.index: dict[int, Any] = {}
        self.pending = deque()
        for run in runs:
            seed = [f"{SEED_KEY}={run.seed}"] if run.seed is not None else []
            point = [f"{k}={v}" for k, v in run.point.items()]
            command = f"{template.command} [{run.index + 1}/{total}: {run.name}]"
            job = replace(template.job([*point, *seed], run.name, {tracking.TAG_SWEEP_POINT: run.label},
                                       {tracking.TAG_SWEEP_POINT: run.label}, seed=run.config_seed), command=command)
            self.index[id(job)] = run
            self.pending.append(job)

    def next_job(self) -> ChildJob | None:
        return self.pending.popleft() if self.pending else None

    def done(self, job: ChildJob, outcome: ChildOutcome) -> None:
        return None

    def label(self, job: ChildJob) -> str:
        return f"{self.index[id(job)].index + 1}/{self.total}: {job.name}"


class TrialSource:
    """Trials of ``study`` up to ``trials`` in all: unfinished ones of a resumed study first (their runs resume in
    place), then new ones asked from the sampler; each outcome is told back (value, pruned, or failed).

    :param pruning: ``(storage, metric)`` when ``--prune``: each child reports ``metric`` to the study every epoch.
    """

    def __init__(self, template: JobTemplate, study: Any, distributions: Mapping[str, Any], trials: int,
                 metric: str, storage: str, prune: bool) -> None:
        import optuna

        self.template, self.study, self.distributions = template, study, dict(distributions)
        self.trials, self.metric, self.storage, self.prune = trials, metric, storage, prune
        running = optuna.trial.TrialState.RUNNING
        self.trial_of: dict[int, Any] = {}
        self.pending = deque(optuna.trial.Trial(study, t._trial_id) for t in study.trials if t.state == running)

    def next_job(self) -> ChildJob | None:
        if self.pending:
            trial = self.pending.popleft()
        elif len(self.study.trials) < self.trials:
            trial = self.study.ask(self.distributions)
        else:
            return None
        params = {k: trial.params[k] for k in self.distributions}
        overrides = trial_overrides(params)
        label = " ".join(overrides)
        name = f"trial {trial.number}: {label}"
        pruning = Pruning(self.storage, self.study.study_name, trial._trial_id, self.metric) if self.prune else None
        tags = {tracking.TAG_SWEEP_POINT: label, tracking.TAG_SWEEP_TRIAL: str(trial.number)}
        job = replace(self.template.job(overrides, name, tags, {tracking.TAG_SWEEP_TRIAL: str(trial.number)},
                                        pruning=pruning),
                      metric=self.metric, command=f"{self.template.command} [trial {trial.number}]")
        self.trial_of[id(job)] = trial
        return job

    def done(self, job: ChildJob, outcome: ChildOutcome) -> None:
        import optuna

        trial = self.trial_of.pop(id(job))
        if outcome.code in (130, 143):
            return  # an interrupt: the trial stays RUNNING, and --resume continues its run
        if outcome.run_id:
            trial.set_user_attr("run_id", outcome.run_id)
        trial.set_user_attr("epochs", outcome.epochs)
        state = optuna.trial.TrialState
        if outcome.code == 0 and outcome.state == STATE_PRUNED:
            self.study.tell(trial, state=state.PRUNED)
        elif outcome.code == 0 and outcome.value is not None:
            self.study.tell(trial, outcome.value)
        else:
            self.study.tell(trial, state=state.FAIL)

    def label(self, job: ChildJob) -> str:
        return f"{self.trial_of[id(job)].number + 1}/{self.trials}: {job.name}" if id(job) in self.trial_of \
            else job.name
