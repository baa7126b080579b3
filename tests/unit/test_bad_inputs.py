"""Bad input, table-driven: each case gives one line on stderr naming the problem, no traceback, exit code 2, and
leaves an existing store (sqlite file and artifact tree) byte-for-byte unchanged.

Cases run in-process through ``experiments.commands.cli.main``; the store holds a FINISHED and a FAILED run of the
``cnn_mnist_bundled`` experiment, so the resume checks have something to refuse.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.commands.cli import main
from tests.conftest import write_idx

# Any case that wrongly reaches training stays small (and must not leave anything behind).
TINY_RUN = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1", "data.batch_size=8", "tracking.log_model=false",
            "trainer.enable_progress_bar=false", "tracking.system_metrics=false", "oip.enabled=false"]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def template_store(tmp_path_factory) -> dict:
    """A store with a FINISHED and a FAILED cnn_mnist_bundled run, made once (MLflow's schema setup takes
    seconds); each test works on a copy of its sqlite file, the artifact tree is shared and digested."""
    import mlflow

    root = tmp_path_factory.mktemp("template_store")
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.create_experiment("cnn_mnist_bundled", artifact_location=(root / "mlruns" / "cnn").as_uri())
    trained = {"kind": "classifier"}
    finished = client.create_run(exp, tags=trained).info.run_id
    client.log_metric(finished, "val/loss", 0.5, step=0)
    client.log_text(finished, "kept", "note.txt")
    client.set_terminated(finished)
    failed = client.create_run(exp, tags=trained).info.run_id  # logged an epoch, but its checkpoint is gone
    client.log_metric(failed, "val/loss", 0.7, step=0)
    client.set_terminated(failed, "FAILED")
    sweep = client.create_run(exp, tags={"kind": "sweep"}).info.run_id  # a killed sweep's parent: trained nothing
    client.set_terminated(sweep, "KILLED")
    return {"root": root, "finished": finished, "failed": failed, "sweep": sweep}


@pytest.fixture
def store(template_store, tmp_path, monkeypatch) -> dict:
    """A copy of the template store as the default store of tmp_path (the working directory), plus the bad
    inputs the cases point at."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(template_store["root"] / "mlflow.db", tmp_path / "mlflow.db")
    finished, failed, sweep = template_store["finished"], template_store["failed"], template_store["sweep"]

    inputs = tmp_path / "inputs"
    (inputs / "empty").mkdir(parents=True)
    wrong_magic = inputs / "wrong_magic"
    wrong_magic.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-labels-idx1-ubyte"):
        write_idx(wrong_magic / name, np.zeros((4,), np.uint8))  # a 1-d labels file where images belong
    truncated = inputs / "truncated"
    truncated.mkdir()
    for name, shape in (("train-images-idx3-ubyte", (4, 28, 28)), ("t10k-images-idx3-ubyte", (4, 28, 28)),
                        ("train-labels-idx1-ubyte", (4,)), ("t10k-labels-idx1-ubyte", (4,))):
        path = write_idx(truncated / name, np.zeros(shape, np.uint8))
        path.write_bytes(path.read_bytes()[:-10])
    bad_gzip = inputs / "bad_gzip"
    bad_gzip.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (bad_gzip / f"{name}.gz").write_bytes(b"this is not gzip at all")
    corrupt = inputs / "corrupt_faces" / "img_align_celeba"
    corrupt.mkdir(parents=True)
    (corrupt / "000001.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    (inputs / "notes.jpg").write_text("a text file named like an image\n")
    unlisted = inputs / "unlisted_faces"
    (unlisted / "img_align_celeba").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(unlisted / "img_align_celeba" / f"{i:06d}.jpg")
    (unlisted / "list_eval_partition.txt").write_text("other_000001.jpg 0\nother_000002.jpg 1\n")
    (inputs / "a_file").write_text("not a folder\n")
    folders = {"tmp": tmp_path, "empty": inputs / "empty", "wrong_magic": wrong_magic, "truncated": truncated,
               "bad_gzip": bad_gzip, "corrupt_faces": corrupt.parent, "text_image": inputs / "notes.jpg",
               "unlisted_faces": unlisted, "under_a_file": inputs / "a_file" / "sub",
               "finished": finished, "failed": failed, "sweep": sweep}
    return {"db": tmp_path / "mlflow.db", "artifacts": template_store["root"] / "mlruns", "folders": folders}



CASES = [
    # (id, argv, fragment of the message, marks)
    ("missing folder", ["train", "cnn_mnist", "data.root={tmp}/missing"], "does not exist", ()),
    ("empty folder", ["train", "cnn_mnist", "data.root={empty}"], "empty", ()),
    ("missing faces folder", ["train", "ae_case1_celeba", "data.root={tmp}/missing"], "does not exist", ()),
    ("empty faces folder", ["train", "ae_case1_celeba", "data.root={empty}"], "data.root", ()),
    ("corrupt JPEG", ["train", "ae_case1_celeba", "data.root={corrupt_faces}"], "readable", ()),
    ("truncated IDX", ["train", "cnn_mnist", "data.root={truncated}"], "truncated", ()),
    ("wrong IDX magic", ["train", "cnn_mnist", "data.root={wrong_magic}"], "magic", ()),
    ("not gzip", ["train", "cnn_mnist", "data.root={bad_gzip}"], "gzip", ()),
    ("unknown experiment", ["train", "no_such_experiment"], "unknown experiment", ()),
    ("unknown key", ["train", "cnn_mnist_bundled", "optim.lrr=0.1"], "optim.lrr", ()),
    ("wrong type", ["train", "cnn_mnist_bundled", "trainer.max_epochs=many"], "trainer.max_epochs", ()),
    ("not key=value", ["train", "cnn_mnist_bundled", "optim.lr"], "key=value", ()),
    ("negative lr", ["train", "cnn_mnist_bundled", "optim.lr=-1"], "optim.lr", ()),
    ("zero batch size", ["train", "cnn_mnist_bundled", "data.batch_size=0"], "data.batch_size", ()),
    ("unknown optimizer", ["train", "cnn_mnist_bundled", "optim.name=lbfgs"], "optim.name", ()),
    ("val fraction 1.5", ["train", "cnn_mnist_bundled", "data.val_fraction=1.5"], "data.val_fraction", ()),
    ("no validation", ["train", "cnn_mnist_bundled", "data.val_fraction=0"], "data.val_fraction=0.0", ()),
    ("image size 30", ["train", "ae_case1_mnist_bundled", "data.image_size=30"], "data.image_size=30", ()),
    ("unknown layer", ["train", "cnn_mnist_bundled", "oip.layers=[conv9]"], "oip.layers", ()),
    ("map 999", ["train", "cnn_mnist_bundled", "oip.maps=[999]"], "oip.maps", ()),
    ("negative examples", ["train", "cnn_mnist_bundled", "oip.examples=-1"], "oip.examples=-1", ()),
    ("missing image", ["train", "cnn_mnist_bundled", "dream.image=/nope.jpg", *TINY_RUN], "/nope.jpg", ()),
    ("text file as image", ["train", "cnn_mnist_bundled", "dream.image={text_image}", *TINY_RUN], "notes.jpg", ()),
    ("negative sleep", ["train", "cnn_mnist_bundled", "trainer.sleep_per_batch=-1"], "trainer.sleep_per_batch", ()),
    ("negative NaN step", ["train", "cnn_mnist_bundled", "trainer.inject_nan_at_step=-2"], "inject_nan_at_step", ()),
    ("16-bit mixed precision", ["train", "cnn_mnist_bundled", "trainer.precision=16-mixed"],
     "trainer.precision='16-mixed' is not allowed; allowed: 32-true, bf16-mixed", ()),
    ("on_device not a bool", ["train", "cnn_mnist_bundled", "data.on_device=auto"], "data.on_device", ()),
    ("analyze unknown run", ["analyze", "0123456789abcdef0123456789abcdef"], "does not exist", ()),
    ("resume unknown run", ["train", "cnn_mnist_bundled", "resume=0123456789abcdef", *TINY_RUN], "no such run", ()),
    ("resume finished run", ["train", "cnn_mnist_bundled", "resume={finished}", *TINY_RUN], "FINISHED", ()),
    ("resume a sweep's parent", ["train", "cnn_mnist_bundled", "resume={sweep}", *TINY_RUN], "not a training run", ()),
    ("resume without checkpoint", ["train", "cnn_mnist_bundled", "resume={failed}", *TINY_RUN], "no checkpoint", ()),
    ("resume another experiment", ["train", "ae_case1_mnist_bundled", "resume={failed}", *TINY_RUN],
     "does not exist", ()),
    # what lightning.Trainer would reject, or accept and then overrun the machine with
    ("bogus precision", ["train", "cnn_mnist_bundled", "trainer.precision=bogus"], "precision", ()),
    ("negative batch limit", ["train", "cnn_mnist_bundled", "trainer.limit_train_batches=-1"], "limit_train_batches", ()),
    ("missing accelerator", ["train", "cnn_mnist_bundled", "trainer.accelerator=tpu"], "accelerator='tpu'", ()),
    ("999 CPU processes", ["train", "cnn_mnist_bundled", "trainer.accelerator=cpu", "trainer.devices=999"],
     "trainer.devices=999", ()),
    ("nodes without a cluster", ["train", "cnn_mnist_bundled", "trainer.num_nodes=3"], "trainer.num_nodes=3", ()),
    ("unset environment variable", ["train", "cnn_mnist_bundled", "trainer.max_epochs=${{oc.env:LATENTDREAM_NOPE}}"],
     "LATENTDREAM_NOPE", ()),
    ("infinite lr", ["train", "cnn_mnist_bundled", "optim.lr=inf"], "optim.lr=inf", ()),
    ("huge faces", ["train", "ae_case1_celeba", "data.root={corrupt_faces}", "data.image_size=100000"],
     "data.image_size", ()),
    ("huge digits", ["train", "ae_case1_mnist_bundled", "data.image_size=100000"], "data.image_size", ()),
    ("partition lists no image", ["train", "ae_case1_celeba", "data.root={unlisted_faces}", "data.image_size=32"],
     "list_eval_partition", ()),
    ("checkpoint folder not writable", ["train", "cnn_mnist_bundled", "tracking.checkpoint_dir={under_a_file}",
                                        *TINY_RUN], "tracking.checkpoint_dir", ()),
    ("artifact folder not writable", ["train", "cnn_mnist_bundled", "tracking.artifact_root={under_a_file}",
                                      "tracking.experiment_name=fresh", *TINY_RUN], "tracking.artifact_root", ()),
    ("image is a directory", ["train", "cnn_mnist_bundled", "dream.image={empty}", *TINY_RUN], "is a directory", ()),
]


@pytest.mark.parametrize("argv,fragment", [pytest.param(a, f, id=i, marks=m) for i, a, f, m in CASES])
def test_bad_input_is_one_line_exit_2_and_the_store_is_untouched(argv, fragment, store, capsys):
    def state() -> tuple:
        return _digest(store["artifacts"]), store["db"].read_bytes()

    before = state()
    argv = [a.format(**store["folders"]) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentdream: error: ") and "\n" not in err, err
    assert fragment.lower() in err.lower(), err
    assert "Traceback" not in err
    assert state() == before


def test_there_are_at_least_15_cases():
    assert len(CASES) >= 15


def test_console_script_exits_2_without_traceback(tmp_path):
    script = Path(sys.executable).with_name("latentdream")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "experiments.commands.cli"]
    proc = subprocess.run([*cmd, "train", "no_such_experiment"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "MLFLOW_TRACKING_URI": ""}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "unknown experiment 'no_such_experiment'" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_999_devices_are_refused_before_any_trainer_process_or_run_exists(store, monkeypatch, capsys):
    import lightning
    import psutil

    def no_trainer(*args, **kwargs):
        raise AssertionError("a lightning.Trainer was built")

    monkeypatch.setattr(lightning.Trainer, "__init__", no_trainer)
    before = store["db"].read_bytes()
    children = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. a sweep test's fork server
    assert main(["train", "cnn_mnist_bundled", "trainer.accelerator=cpu", "trainer.devices=999", *TINY_RUN]) == 2
    assert "trainer.devices=999 is not allowed: this machine has" in capsys.readouterr().err
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= children  # no process was started
    assert store["db"].read_bytes() == before
