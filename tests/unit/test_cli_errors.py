"""Bad input: one line on stderr, exit code 2, no traceback, and an existing store left byte-for-byte as it was."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.cli import main
from tests.conftest import write_idx


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def store_with_a_run(tmp_path, monkeypatch):
    """A store in tmp_path holding one finished run; the working directory is tmp_path (the default store)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("earlier", artifact_location=(tmp_path / "mlruns" / "earlier").as_uri())
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "val/loss", 0.5, step=0)
    client.log_text(run.info.run_id, "kept", "note.txt")
    client.set_terminated(run.info.run_id)
    return tmp_path


def _bad_folders(tmp: Path) -> dict[str, Path]:
    import numpy as np

    empty = tmp / "empty"
    empty.mkdir()
    wrong_magic = tmp / "wrong_magic"
    wrong_magic.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        write_idx(wrong_magic / name, np.zeros((4,), np.uint8))  # a 1-d labels file where images belong
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        write_idx(wrong_magic / name, np.zeros((4,), np.uint8))
    truncated = tmp / "truncated"
    truncated.mkdir()
    for name, arr in (("train-images-idx3-ubyte", np.zeros((4, 28, 28))), ("t10k-images-idx3-ubyte", np.zeros((4, 28, 28))),
                      ("train-labels-idx1-ubyte", np.zeros(4)), ("t10k-labels-idx1-ubyte", np.zeros(4))):
        path = write_idx(truncated / name, arr.astype(np.uint8))
        path.write_bytes(path.read_bytes()[:-10])
    return {"empty": empty, "wrong_magic": wrong_magic, "truncated": truncated}


CASES = [
    (["train", "no_such_experiment"], "unknown experiment"),
    (["train", "cnn_mnist_bundled", "optim.lrr=0.1"], "optim.lrr"),
    (["train", "cnn_mnist_bundled", "optim.lr=-1"], "optim.lr"),
    (["train", "cnn_mnist_bundled", "trainer.max_epochs=many"], "trainer.max_epochs"),
    (["train", "ae_case1_mnist_bundled", "data.image_size=30"], "data.image_size=30"),
    (["train", "cnn_mnist", "data.root={tmp}/missing"], "does not exist"),
    (["train", "cnn_mnist", "data.root={empty}"], "empty"),
    (["train", "cnn_mnist", "data.root={wrong_magic}"], "magic"),
    (["train", "cnn_mnist", "data.root={truncated}"], "truncated"),
    (["train", "ae_case1_celeba", "data.root={tmp}/missing"], "does not exist"),
    (["train", "ae_case1_celeba", "data.root={empty}"], "data.root"),
]


@pytest.mark.parametrize("argv,fragment", CASES, ids=[" ".join(a[1:]) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_store_untouched(argv, fragment, store_with_a_run, capsys):
    tmp = store_with_a_run
    (tmp / "inputs").mkdir()
    folders = _bad_folders(tmp / "inputs")
    before = _digest(tmp / "mlruns"), (tmp / "mlflow.db").read_bytes()
    argv = [a.format(tmp=tmp, **folders) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentdream: error: ") and "\n" not in err, err
    assert fragment.lower() in err.lower(), err
    assert "Traceback" not in err
    assert (_digest(tmp / "mlruns"), (tmp / "mlflow.db").read_bytes()) == before


def test_console_script_exits_2_without_traceback(tmp_path):
    script = Path(sys.executable).with_name("latentdream")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "experiments.cli"]
    proc = subprocess.run([*cmd, "train", "no_such_experiment"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "MLFLOW_TRACKING_URI": ""}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "unknown experiment 'no_such_experiment'" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
