"""Search by Optuna: ``key=uniform(a,b)``, ``key=loguniform(a,b)``, ``key=int(a,b)``, ``key=choice(x,y)`` items →
Optuna distributions; the study (sampler, pruner, storage) a sweep asks its trials from; the record of its trials.

* :func:`split_distributions` — sweep items → (distributions, the other items: the grid's and plain overrides).
* :func:`open_study` — a new or (``--resume``) existing study named after the sweep's parent run, TPE or random
  sampler, a median pruner; its storage is :func:`study_storage`.
* :func:`trials_table` — ``sweep/trials.csv``: trial, params, state, value, epochs, run_id.
* :func:`figures` — Optuna's optimisation history and (past 8 trials) parameter importances, as matplotlib figures.

Optuna's ask/tell drives the sweep: the sweep asks a trial, trains it as one Ray task, and tells the study its final
value (or that it was pruned). The children only report intermediate values (:mod:`experiments.sweeps.pruning`).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.sweeps.grid import split_values
from latentdream.errors import InputError

_DISTRIBUTION = re.compile(r"^\s*(uniform|loguniform|int|choice)\((.*)\)\s*$", re.S)
IMPORTANCE_MIN_TRIALS = 9  # Optuna's parameter importances are drawn past 8 trials
STUDY_FILE = "study.db"  # the sqlite study beside the sweep (its checkpoint folder) when no server database is known


class Search(str, Enum):
    """How ``--search`` samples the distributions."""

    TPE = "tpe"
    RANDOM = "random"


def parse_distribution(key: str, text: str) -> Any | None:
    """``uniform(0.01,0.1)`` → ``FloatDistribution(0.01, 0.1)``; None if ``text`` is not a distribution.

    :raises InputError: bad bounds (not numbers, low >= high, loguniform <= 0, int bounds not integers) or a choice of
        fewer than two distinct values.
    """
    import optuna.distributions as d

    found = _DISTRIBUTION.match(text)
    if found is None:
        return None
    kind, inner = found.groups()
    values = split_values(inner) if inner.strip() else []
    if kind == "choice":
        if len(values) < 2 or len(set(values)) < len(values):
            raise InputError(f"sweep key {key}={text}: choice needs two or more distinct values, e.g. choice(a,b)")
        return d.CategoricalDistribution(values)
    if len(values) != 2:
        raise InputError(f"sweep key {key}={text}: {kind} takes two bounds, e.g. {kind}(1,10)")
    try:
        low, high = (int(v) for v in values) if kind == "int" else (float(v) for v in values)
    except ValueError:
        allowed = "integers" if kind == "int" else "numbers"
        raise InputError(f"sweep key {key}={text}: the bounds must be {allowed}") from None
    if not low < high:
        raise InputError(f"sweep key {key}={text}: the low bound must be below the high one")
    if kind == "loguniform" and low <= 0:
        raise InputError(f"sweep key {key}={text}: loguniform bounds must be > 0")
    if kind == "int":
        return d.IntDistribution(low, high)
    return d.FloatDistribution(low, high, log=kind == "loguniform")


def split_distributions(items: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Sweep items → (key → Optuna distribution, the remaining items in their order).

    :raises InputError: a bad distribution, or a key given both as a distribution and otherwise.
    """
    distributions: dict[str, Any] = {}
    rest: list[str] = []
    for item in items:
        key, sep, text = item.partition("=")
        distribution = parse_distribution(key.strip(), text) if sep else None
        if distribution is None:
            rest.append(item)
        elif key.strip() in distributions:
            raise InputError(f"sweep key {key.strip()} is given twice; give one distribution")
        else:
            distributions[key.strip()] = distribution
    given = {item.partition("=")[0].strip() for item in rest}
    if both := sorted(given & set(distributions)):
        raise InputError(f"sweep key {both[0]} is given both as a distribution and as values; give one")
    return distributions, rest


def describe(distributions: Mapping[str, Any]) -> dict[str, str]:
    """key → the distribution as given (``loguniform(0.001,0.1)``): the parent's ``sweep.<key>`` params."""
    import optuna.distributions as d

    out = {}
    for key, dist in distributions.items():
        if isinstance(dist, d.CategoricalDistribution):
            out[key] = f"choice({','.join(map(str, dist.choices))})"
        elif isinstance(dist, d.IntDistribution):
            out[key] = f"int({dist.low},{dist.high})"
        else:
            out[key] = f"{'loguniform' if dist.log else 'uniform'}({dist.low:g},{dist.high:g})"
    return out


def study_storage(tracking_uri: str, sweep_dir: Path, storage: str | None = None) -> str:
    """Where the study lives: ``storage`` if given; the tracking store's own database when it is a server database
    (PostgreSQL: in schema ``optuna``, since Optuna and MLflow both keep an ``alembic_version`` table); else the
    sqlite file :data:`STUDY_FILE` in ``sweep_dir`` (beside the sweep's checkpoints)."""
    if storage:
        return storage
    if tracking_uri.startswith("postgresql"):
        separator = "&" if "?" in tracking_uri else "?"
        return f"{tracking_uri}{separator}options=-csearch_path%3Doptuna"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"


def _prepare(storage: str) -> Any:
    """Optuna's RDB storage on ``storage``; on PostgreSQL the schema ``optuna`` is made first."""
    import optuna
    import sqlalchemy

    if storage.startswith("postgresql") and "search_path%3Doptuna" in storage:
        engine = sqlalchemy.create_engine(storage.split("?")[0])
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE SCHEMA IF NOT EXISTS optuna"))
        engine.dispose()
    kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(storage, engine_kwargs=kwargs)


def make_pruner() -> Any:
    """The sweep's pruner: Optuna's median pruner, idle until 2 trials finished and in a trial's first epoch. (A
    pruner is not stored with the study: the children, which ask it, build the same one.)"""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)


def open_study(name: str, storage: str, search: Search, mode: str, seed: int, resume: bool) -> Any:
    """The sweep's study: created (or, ``resume``, loaded) in ``storage`` with a TPE or random sampler seeded by
    ``seed`` and a median pruner (no pruning before 2 finished trials or in a trial's first epoch).

    :raises InputError: ``resume`` and the study does not exist in ``storage``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=seed, n_startup_trials=4) if search == Search.TPE
               else optuna.samplers.RandomSampler(seed=seed))
    pruner = make_pruner()
    rdb = _prepare(storage)
    if resume:
        try:
            return optuna.load_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner)
        except KeyError:
            raise InputError(f"--resume {name}: its study is not in {storage.split('?')[0]}") from None
    direction = "minimize" if mode == "min" else "maximize"
    return optuna.create_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner, direction=direction)


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    """A trial's params as ``key=value`` overrides (floats in full precision)."""
    return [f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]


def trials_table(study: Any) -> pd.DataFrame:
    """``sweep/trials.csv``: one row per trial — its number, params (JSON), state (COMPLETE, PRUNED, FAIL,
    RUNNING), final value (a pruned trial: its last reported one), epochs trained and the child run's id."""
    rows = [{"trial": t.number, "params": json.dumps(t.params, sort_keys=True), "state": t.state.name,
             "value": t.value if t.values else float("nan"),
             "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
             "run_id": t.user_attrs.get("run_id", "")} for t in study.trials]
    return pd.DataFrame(rows, columns=["trial", "params", "state", "value", "epochs", "run_id"])


def figures(study: Any) -> dict[str, Any]:
    """name → matplotlib Figure: ``optimization_history`` (any finished trial) and ``param_importances`` (past 8
    finished trials and more than one parameter varied); Optuna's own matplotlib plots."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    out: dict[str, Any] = {}
    if not done:
        return out
    from optuna.visualization import matplotlib as plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        out["optimization_history"] = _sized(plots.plot_optimization_history(study).figure)
        if len(study.trials) >= IMPORTANCE_MIN_TRIALS and len(done) >= 2:
            # fANOVA, seeded: Optuna's default evaluator ranks by its best 10 % of trials, one trial in a small sweep
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            out["param_importances"] = _sized(plots.plot_param_importances(study, evaluator=evaluator).figure)
    return out


def _sized(fig: Any) -> Any:
    fig.set_size_inches(8, 5)
    fig.set_layout_engine("constrained")
    return fig
