"""Values from ${oc.env:...} are never logged resolved: params, tags (flatten) and config.yaml (to_yaml) hold the
interpolation text; names (run, experiment, `name`) must be literal; an error message never repeats the value."""

from __future__ import annotations

import pytest

from experiments.run.config import flatten, load_experiment, section, to_yaml
from experiments.run.train import run_tags
from latentdream.errors import InputError

SECRET = "hunter2-s3cr3t"


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    monkeypatch.setenv("SECRET_NUMBER", "7")


@pytest.mark.parametrize("override, key", [
    ("data.root=${oc.env:SECRET_TOKEN}", "data.root"),  # a plain section
    ("data.root=/data/${oc.env:SECRET_TOKEN}/mnist", "data.root"),  # inside a longer text
    ("oip.steps=${oc.env:SECRET_NUMBER}", "oip.steps"),  # a frozen settings section, typed int
    ("analysis.b=[1,'${oc.env:SECRET_NUMBER}']", "analysis.b"),  # inside a list
    ("tracking.checkpoint_dir=${data.root}", "tracking.checkpoint_dir"),  # through another key
])
def test_the_code_sees_the_value_the_store_sees_the_text(override, key):
    extra = ["data.root=${oc.env:SECRET_TOKEN}"] if "${data.root}" in override else []
    cfg = load_experiment("cnn_mnist_bundled", [*extra, override])
    logged = flatten(cfg)
    assert "${" in logged[key]
    assert SECRET not in str(logged) and "'7'" not in logged.get("analysis.b", "")
    assert SECRET not in to_yaml(cfg) and SECRET not in str(run_tags(cfg, "latentdream train"))
    assert load_experiment("cnn_mnist_bundled", [*extra, override]) is not None
    if key == "oip.steps":
        assert section(cfg, "oip").steps == 7
    if key == "analysis.b":
        assert list(section(cfg, "analysis").b) == [1.0, 7.0]
    if key == "data.root":
        assert SECRET in cfg.data.root  # resolved where the code reads it


@pytest.mark.parametrize("key", ["tracking.run_name", "tracking.experiment_name", "name"])
def test_a_name_from_the_environment_is_refused(key):
    with pytest.raises(InputError, match=f"^{key}=.*given literally") as caught:
        load_experiment("cnn_mnist_bundled", [f"{key}=${{oc.env:SECRET_TOKEN}}"])
    assert SECRET not in str(caught.value)


def test_an_error_message_never_repeats_the_resolved_value():
    with pytest.raises(InputError) as caught:
        load_experiment("cnn_mnist_bundled", ["oip.steps=${oc.env:SECRET_TOKEN}"])
    assert SECRET not in str(caught.value) and "oip.steps" in str(caught.value)


def test_an_unset_variable_is_still_refused_before_a_run_exists(monkeypatch):
    monkeypatch.delenv("SECRET_TOKEN")
    with pytest.raises(InputError, match="SECRET_TOKEN"):
        load_experiment("cnn_mnist_bundled", ["data.root=${oc.env:SECRET_TOKEN}"])


def test_a_logged_config_yaml_loads_again_and_resolves_from_the_environment(tmp_path):
    cfg = load_experiment("cnn_mnist_bundled", ["oip.steps=${oc.env:SECRET_NUMBER}"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert section(load_experiment(str(path)), "oip").steps == 7
