"""The store is not trusted with code: ``latentdream oip|dream|analyze`` rebuild the network from the run's config and
load weights only, so a pickle planted in the artifact store — as the MLflow model or as the weights — runs nothing."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mlflow
import pytest

from analysis import tracking
from experiments.commands.cli import main
from experiments.run.config import load_experiment
from experiments.run.train import train
from tests.conftest import TINY

pytestmark = pytest.mark.slow


class Exploit:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Exploit(marker)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    common = [*TINY, f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"tracking.artifact_root={root / 'mlruns'}",
              f"tracking.checkpoint_dir={root / 'ck'}", "tracking.system_metrics=false",
              "trainer.enable_progress_bar=false", "oip.enabled=false", "dream.enabled=false",
              "analysis.enabled=false"]
    cnn = train(load_experiment("cnn_mnist_bundled", common), command="pytest").run_id
    ae = train(load_experiment("ae_case1_mnist_bundled", common), command="pytest").run_id
    return {"root": root, "cnn": cnn, "ae": ae}


COMMANDS = {
    "oip": lambda run: ["oip", run["cnn"], "layer=conv3", "steps=2", "maps=[0,1]"],
    "dream": lambda run: ["dream", run["cnn"], "mode=seed", "cycles=1", "steps=1"],
    "analyze": lambda run: ["analyze", run["ae"], "analysis.n_random=100", "analysis.n_generate=4",
                            "analysis.z_sample=10"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_planted_model_pickle_is_never_unpickled(runs, command, monkeypatch, tmp_path):
    monkeypatch.chdir(runs["root"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{runs['root'] / 'mlflow.db'}")
    marker = tmp_path / "pwned"
    planted = list((runs["root"] / "mlruns").rglob("model.pth"))
    assert planted, "the runs logged no MLflow model to plant into"
    for path in planted:
        _plant(path, marker)
    assert main(COMMANDS[command](runs)) == 0
    assert not marker.exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_planted_weights_are_refused_in_one_line(runs, command, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(runs["root"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{runs['root'] / 'mlflow.db'}")
    marker = tmp_path / "pwned"
    run_id = runs["ae" if command == "analyze" else "cnn"]
    client = mlflow.MlflowClient(f"sqlite:///{runs['root'] / 'mlflow.db'}")
    weights = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / tracking.WEIGHTS
    original = weights.read_bytes()
    try:
        _plant(weights, marker)
        assert main(COMMANDS[command](runs)) == 2
    finally:
        weights.write_bytes(original)
    err = capsys.readouterr().err.strip()
    assert "is not a plain weights file" in err and "\n" not in err
    assert not marker.exists()
