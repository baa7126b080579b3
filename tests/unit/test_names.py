"""Names that are paths: every name a user gives (experiment, run, registered model — tests/unit/test_registry.py) is
refused if it carries a separator or '..'; the name of a dream's image is mapped to one safe path segment."""

from __future__ import annotations

import pytest

from analysis import tracking
from experiments.commands.cli import main
from experiments.run import store
from experiments.run.config import load_experiment
from latentdream.errors import InputError
from latentdream.names import check_name, safe_segment

PATHS = ["../../../x", "/abs/dir", "a/b", "a\\b", "..", "x/..", "a..b", "", "tab\there", "n" * 300]


@pytest.mark.parametrize("value", PATHS)
def test_a_name_that_is_a_path_is_refused(value):
    with pytest.raises(InputError, match="must not be a path"):
        check_name("tracking.experiment_name", value)


@pytest.mark.parametrize("key", ["tracking.experiment_name", "tracking.run_name", "name"])
@pytest.mark.parametrize("value", ["../../../x", "/abs/dir", "a\\\\b"])
def test_config_names_are_refused_before_a_run_exists(key, value):
    with pytest.raises(InputError, match=f"^{key}=.* must not be a path"):
        load_experiment("cnn_mnist_bundled", [f"{key}='{value}'"])


def test_a_name_set_inside_an_experiment_file_is_checked_too(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("defaults: [model/mnist_cnn, data/mnist_bundled]\nname: ../../outside\n")
    with pytest.raises(InputError, match="^name='../../outside'"):
        load_experiment(str(path))


def test_train_with_a_path_as_experiment_name_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["train", "cnn_mnist_bundled", "tracking.experiment_name=../../../x"]) == 2
    assert list(tmp_path.iterdir()) == []
    assert "must not be a path" in capsys.readouterr().err


def test_a_store_never_creates_an_experiment_whose_name_is_a_path(tmp_path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(InputError, match="must not be a path"):
        store.experiment_id_for(client, "../escape", str(tmp_path / "mlruns"))
    assert [e.name for e in client.search_experiments()] == ["Default"]


@pytest.mark.parametrize("stem, segment", [("flower", "flower"), ("../../etc/passwd", "_etc_passwd"),
                                           ("..", "image"), ("a b\\c", "a_b_c"), (".hidden", "hidden"),
                                           ("photo..v2", "photo_v2")])
def test_an_image_name_becomes_one_safe_segment(stem, segment):
    assert safe_segment(stem) == segment
    folder = tracking.dream_folder("seed", stem)
    assert folder == f"dream/seed_{segment}" and ".." not in folder and folder.count("/") == 1
