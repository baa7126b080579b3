"""A sweep's search items (Optuna distributions), the study's storage and its trials table; the sweep figure when
no child finished. Known answers, a real Optuna sqlite study in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from analysis.plots.sweep import metric_vs_value
from experiments.sweeps import search
from experiments.sweeps.executor import RayCluster, is_local_store
from latentdream.errors import InputError


@pytest.mark.parametrize("text, expected", [
    ("uniform(0.1,0.5)", FloatDistribution(0.1, 0.5)),
    ("loguniform(1e-4, 0.1)", FloatDistribution(1e-4, 0.1, log=True)),
    ("int(2,8)", IntDistribution(2, 8)),
    ("choice(adam,sgd)", CategoricalDistribution(["adam", "sgd"])),
    ("choice('[1,2]','[3]')", CategoricalDistribution(["[1,2]", "[3]"])),
])
def test_distributions_parse_to_optuna_distributions(text, expected):
    assert search.parse_distribution("k", text) == expected


@pytest.mark.parametrize("text", ["0.1", "0.1,0.2", "[1,2]", "adam"])
def test_plain_values_are_not_distributions(text):
    assert search.parse_distribution("k", text) is None


@pytest.mark.parametrize("text, message", [
    ("uniform(0.5,0.1)", "low bound must be below"),
    ("uniform(1)", "takes two bounds"),
    ("loguniform(0,1)", "loguniform bounds must be > 0"),
    ("int(1.5,3)", "must be integers"),
    ("uniform(a,b)", "must be numbers"),
    ("choice(a)", "two or more distinct"),
    ("choice(a,a)", "two or more distinct"),
])
def test_bad_distributions_are_refused_in_one_line(text, message):
    with pytest.raises(InputError, match=message):
        search.parse_distribution("optim.lr", text)


def test_split_distributions_keeps_the_other_items_in_order():
    dists, rest = search.split_distributions(["optim.lr=loguniform(1e-3,0.1)", "model.dropout=0,0.2",
                                              "trainer.max_epochs=2", "data.batch_size=int(8,32)"])
    assert list(dists) == ["optim.lr", "data.batch_size"] and rest == ["model.dropout=0,0.2", "trainer.max_epochs=2"]
    assert search.describe(dists) == {"optim.lr": "loguniform(0.001,0.1)", "data.batch_size": "int(8,32)"}
    with pytest.raises(InputError, match="given both"):
        search.split_distributions(["optim.lr=uniform(0.1,0.2)", "optim.lr=0.3"])
    with pytest.raises(InputError, match="given twice"):
        search.split_distributions(["optim.lr=uniform(0.1,0.2)", "optim.lr=uniform(0.1,0.3)"])


def test_trial_overrides_keep_full_float_precision():
    assert search.trial_overrides({"optim.lr": 0.1 / 3, "b": 4, "c": "sgd"}) == \
        [f"optim.lr={0.1 / 3!r}", "b=4", "c=sgd"]


def test_study_storage_prefers_the_given_url_then_postgres_then_a_sqlite_file(tmp_path):
    assert search.study_storage("sqlite:///x.db", tmp_path, "mysql://db/o") == "mysql://db/o"
    assert search.study_storage("postgresql+psycopg2://u@h:5/mlflow", tmp_path) == \
        "postgresql+psycopg2://u@h:5/mlflow?options=-csearch_path%3Doptuna"
    assert search.study_storage("http://server:5000", tmp_path / "s") == f"sqlite:///{tmp_path / 's' / 'study.db'}"
    assert is_local_store("sqlite:////tmp/m.db") and not is_local_store("http://server:5000")


def test_trials_table_lists_every_trial_with_state_value_epochs_and_run(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = search.open_study("s1", storage, search.Search.RANDOM, "min", seed=0, resume=False)
    dists = {"optim.lr": FloatDistribution(0.01, 0.1)}
    done = study.ask(dists)
    done.set_user_attr("run_id", "r0")
    done.set_user_attr("epochs", 3)
    study.tell(done, 0.5)
    pruned = study.ask(dists)
    pruned.report(0.9, 0)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.ask(dists)  # still running
    table = search.trials_table(search.open_study("s1", storage, search.Search.TPE, "min", seed=0, resume=True))
    assert list(table.columns) == ["trial", "params", "state", "value", "epochs", "run_id"]
    assert table["state"].tolist() == ["COMPLETE", "PRUNED", "RUNNING"]
    assert table["value"].tolist()[:2] == [0.5, 0.9] and table["epochs"].tolist() == [3, 1, 0]
    assert json.loads(table["params"][0]) == {"optim.lr": done.params["optim.lr"]}
    assert set(search.figures(study)) == {"optimization_history"}  # importances only past 8 trials
    with pytest.raises(InputError, match="not in"):
        search.open_study("missing", storage, search.Search.TPE, "min", seed=0, resume=True)


def test_ray_resources_are_checked_before_anything_starts():
    with pytest.raises(InputError, match="--cpus-per-run 0"):
        RayCluster(None, cpus_per_run=0)
    with pytest.raises(InputError, match="--gpus-per-run -1"):
        RayCluster(None, gpus_per_run=-1)


def test_metric_vs_value_of_a_sweep_without_a_finished_run_is_an_empty_figure():
    summary = pd.DataFrame(columns=["point", "optim.lr", "metric", "n", "mean", "std"])
    figure = metric_vs_value(summary, "optim.lr", ["val/loss"], ["optim.lr"])
    assert "no finished run" in [t.get_text() for t in figure.axes[0].texts]


@pytest.mark.parametrize("items, options, message", [
    (["optim.lr=0.1,0.2"], {"trials": 4}, "--trials needs distributions"),
    (["optim.lr=0.1,0.2"], {"prune": True}, "--prune needs distributions"),
    (["optim.lr=uniform(0.01,0.1)"], {}, "a search needs --trials"),
    (["optim.lr=uniform(0.01,0.1)", "model.dropout=0,0.2"], {"trials": 2}, "model.dropout lists values"),
    (["optim.lr=uniform(0.01,0.1)"], {"trials": 2, "random": 2}, "--random draws grid points"),
    (["optim.lr=uniform(0.01,0.1)"], {"trials": 2, "search": "grid"}, "--search 'grid' is not allowed"),
    (["model.dropout=uniform(0,1.5)"], {"trials": 2}, r"sweep key model.dropout=1.5: model.dropout=1.5 is not"),
])
def test_bad_search_options_stop_before_ray_or_the_store_start(tmp_path, items, options, message):
    from experiments.sweeps.sweep import run_sweep

    with pytest.raises(InputError, match=message):
        run_sweep("cnn_mnist_bundled", [*items, f"tracking.tracking_uri=sqlite:///{tmp_path / 'm.db'}"], **options)
    assert not (tmp_path / "m.db").exists()


def test_resume_of_a_sweep_whose_child_still_trains_is_refused_and_touches_nothing(tmp_path):
    import mlflow

    from analysis import tracking
    from experiments.run import store
    from experiments.sweeps.grid import parse_grid
    from experiments.sweeps.sweep import check_configs, plan, run_sweep, spec_of

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    items = ["optim.lr=0.01,0.02", f"tracking.tracking_uri={uri}", f"tracking.artifact_root={tmp_path / 'mlruns'}",
             f"tracking.checkpoint_dir={tmp_path / 'checkpoints'}"]
    grid = parse_grid(items)
    planned, _ = check_configs("cnn_mnist_bundled", grid, plan(grid))
    client = mlflow.MlflowClient(uri)
    experiment_id = store.experiment_id_for(client, "cnn_mnist_bundled", str(tmp_path / "mlruns"))
    parent = client.create_run(experiment_id, tags={"kind": "sweep"}).info.run_id
    tracking.RunWriter(client, parent).json(tracking.SWEEP_SPEC, spec_of("cnn_mnist_bundled", grid, planned, None, 0))
    client.set_terminated(parent, "KILLED")
    child = client.create_run(experiment_id, tags={tracking.TAG_PARENT_RUN: parent,
                                                   tracking.TAG_SWEEP_POINT: "optim.lr=0.01"}).info.run_id
    lock = store.RunLock(tmp_path / "checkpoints", child)  # the child's trainer, still alive
    assert lock.acquire()
    try:
        with pytest.raises(InputError, match=f"its run {child} is still training"):
            run_sweep("cnn_mnist_bundled", items, resume=parent)
    finally:
        lock.release()
    after = client.get_run(parent)
    assert after.info.status == "KILLED" and "resumed" not in after.data.tags
    assert client.get_run(child).info.status == "RUNNING"


def test_parameter_importances_appear_past_eight_trials_and_rank_the_key_that_matters():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists = {"optim.lr": FloatDistribution(1e-4, 0.1, log=True), "model.dropout": FloatDistribution(0, 0.5)}
    for n in range(10):
        trial = study.ask(dists)
        study.tell(trial, -0.1 * float(np.log10(trial.params["optim.lr"])) + 0.001 * trial.params["model.dropout"])
        if n == 7:
            assert set(search.figures(study)) == {"optimization_history"}  # 8 trials: no importances yet
    figure = search.figures(study)["param_importances"]
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels[-1] == "optim.lr"  # Optuna draws the most important parameter on top
