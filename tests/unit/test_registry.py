"""Registered-model references resolve to their source run; the best run of a sweep by a metric."""

from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from experiments.commands.registry import best_run, resolve_run_id
from latentdream.errors import InputError


class FakeRegistry:
    """Version 1 of ``digits`` comes from run ``r1`` (alias champion); version 2 only names a logged model."""

    def get_model_version_by_alias(self, name, alias):
        if (name, alias) != ("digits", "champion"):
            raise MlflowException("not found")
        return SimpleNamespace(version="1", run_id="r1", model_id="m-1")

    def get_model_version(self, name, version):
        if (name, version) != ("digits", "2"):
            raise MlflowException("not found")
        return SimpleNamespace(version="2", run_id=None, model_id="m-2")

    def get_logged_model(self, model_id):
        return SimpleNamespace(source_run_id={"m-2": "r2"}[model_id])


@pytest.mark.parametrize("reference, run_id", [("abc123", "abc123"), ("models:/digits@champion", "r1"),
                                               ("models:/digits/2", "r2")])
def test_references_resolve_to_the_source_run(reference, run_id):
    assert resolve_run_id(FakeRegistry(), reference) == run_id


@pytest.mark.parametrize("reference, message", [
    ("models:/digits@staging", "no model 'digits' with alias 'staging'"),
    ("models:/digits/7", "no model 'digits' with version 7"),
    ("models:/digits", "give models:/NAME@ALIAS or models:/NAME/VERSION"),
    ("models:/digits/latest", "give models:/NAME@ALIAS"),
])
def test_unknown_or_malformed_references_are_one_line(reference, message):
    with pytest.raises(InputError, match=message):
        resolve_run_id(FakeRegistry(), reference)


def _run(run_id, **metrics):
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(metrics=metrics))


def test_best_run_by_min_or_max_skips_missing_and_nan():
    runs = [_run("a", **{"val/loss": 0.5, "val/acc": 0.9}), _run("b", **{"val/loss": 0.2, "val/acc": 0.7}),
            _run("c", **{"val/loss": float("nan")}), _run("d")]
    assert best_run(runs, "val/loss", "min").info.run_id == "b"
    assert best_run(runs, "val/acc", "max").info.run_id == "a"
    with pytest.raises(InputError, match="no finished run holds it"):
        best_run(runs, "test/acc", "min")
    with pytest.raises(InputError, match="allowed: min, max"):
        best_run(runs, "val/loss", "lowest")


@pytest.fixture(scope="module")
def registry_store(tmp_path_factory):
    """A real sqlite store with one training run (no model needed: the checks come before any lookup)."""
    import mlflow

    path = tmp_path_factory.mktemp("registry")
    client = mlflow.MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    return path, client, client.create_run(client.create_experiment("e"), tags={"kind": "classifier"})


@pytest.mark.parametrize("args, message", [
    (["--name", "digits", "--alias", "v1"], "reserved by MLflow"),
    (["--name", "digits", "--alias", "V12"], "reserved by MLflow"),
    (["--name", "digits", "--alias", "Latest"], "reserved by MLflow"),
    (["--name", "digits", "--alias", "a/b"], "use letters, digits"),
    (["--name", "digits", "--alias", ""], "use letters, digits"),
    (["--name", "../../x"], "must not be a path"),
    (["--name", "a\\b"], "must not be a path"),
    (["--name", "a:b"], "carries ':'"),
])
def test_register_validates_name_and_alias_first_and_leaves_nothing_behind(registry_store, monkeypatch, capsys,
                                                                            args, message):
    from experiments.commands.cli import main

    path, client, run = registry_store
    monkeypatch.chdir(path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path / 'mlflow.db'}")
    assert main(["register", run.info.run_id, *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line, line
    assert client.search_registered_models() == []  # no registered model, no (deleted) version
    assert "registered_model" not in client.get_run(run.info.run_id).data.tags
