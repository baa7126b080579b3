"""On a CUDA GPU (marker ``gpu``; skipped without one — the only tests allowed to skip): on-device batches equal the
CPU path's bit for bit, training steps of the product path make no host sync, a NaN loss never updates the
weights, and bf16-mixed + channels_last train all three networks through ``train``.

Run them with ``pytest -m gpu`` (``benchmarks/gpu_check.sh`` does, on a lent GPU machine).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import lightning as L
import mlflow
import numpy as np
import pytest
import torch

from analysis.encode import encode_dataset
from experiments.run.config import load_experiment
from experiments.run.guards import RunGuard
from experiments.run.train import train
from latentdream.errors import NonFiniteLossError
from lightning_modules.base import TrainableModule
from lightning_modules.classifier import ClassifierModule
from lightning_modules.data import modules
from lightning_modules.data.batches import ResidentBatches
from lightning_modules.data.modules import FacesDataModule, MnistDataModule
from lightning_modules.networks import MnistCNN
from lightning_modules.optim import OptimizerSettings, make_optimizer_factory

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda", 0)
QUICK = ["trainer.max_epochs=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
         "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false"]


@pytest.fixture
def fake_bundled(monkeypatch):
    images = np.random.default_rng(5).integers(0, 256, (1003, 28, 28), dtype=np.uint8)
    labels = np.arange(1003, dtype=np.int64) % 10
    monkeypatch.setattr(modules, "load_bundled_mnist", lambda: (images.copy(), labels.copy()))


def _on_gpu(dm):
    """Attach a stand-in trainer on the GPU, as Lightning does during fit."""
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=CUDA), global_rank=0, world_size=1)
    return dm


def _same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        x, y = (x, y) if isinstance(x, (tuple, list)) else ((x,), (y,))
        for p, q in zip(x, y, strict=True):
            assert p.device.type == "cuda" and q.device.type == "cpu"
            assert torch.equal(p.cpu(), q) and p.dtype == q.dtype


def test_gpu_batches_equal_the_dataloaders_bit_for_bit(fake_bundled, faces_dir, tmp_path):
    gpu, cpu = _on_gpu(MnistDataModule(bundled=True, batch_size=64, seed=3)), MnistDataModule(
        bundled=True, batch_size=64, seed=3, on_device=False)
    assert isinstance(gpu.train_dataloader(), ResidentBatches)  # auto: 0.8 MB fits
    for split in ("train", "val", "test"):
        for _ in range(2):  # two epochs: the order advances alike
            _same(list(getattr(gpu, f"{split}_dataloader")()), list(getattr(cpu, f"{split}_dataloader")()))
    faces = lambda **kw: FacesDataModule(str(faces_dir), image_size=32, batch_size=4,  # noqa: E731
                                         cache_dir=str(tmp_path), **kw)
    gpu_faces, cpu_faces = _on_gpu(faces()), faces(on_device=False)
    for _ in range(2):
        _same(list(gpu_faces.train_dataloader()), list(cpu_faces.train_dataloader()))


def _sync_warnings(fn) -> int:
    """How many synchronizing CUDA calls ``fn()`` makes (torch's sync debug mode, 'warn')."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def _strict(monkeypatch, cls, name: str) -> None:
    """Make ``cls.name`` raise on any synchronizing CUDA call made while it runs."""
    original = getattr(cls, name)

    def strict(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return original(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(cls, name, strict)


def _run(store, name: str, batches: int):
    overrides = [*store["overrides"], *QUICK, f"trainer.limit_train_batches={batches}", "data.batch_size=16",
                 "tracking.log_model=false"]
    return lambda: train(load_experiment(name, overrides))


@pytest.mark.parametrize("name", ["cnn_mnist_bundled", "ae_case1_mnist_bundled"])
def test_our_per_step_code_makes_no_host_sync(fake_bundled, store, monkeypatch, name):
    """The module's training step, the guard's per-step hooks and the batch gathering raise at any sync."""
    for cls, hook in ((TrainableModule, "training_step"), (RunGuard, "on_before_backward"),
                      (RunGuard, "on_train_batch_start"), (ResidentBatches, "_batch")):
        _strict(monkeypatch, cls, hook)
    assert _run(store, name, 12)().trainer.global_step == 12


@pytest.mark.parametrize("name", ["cnn_mnist_bundled", "ae_case1_mnist_bundled"])
def test_the_whole_training_loop_syncs_per_epoch_not_per_step(fake_bundled, store, name):
    """Everyone's syncs counted (Lightning's, MLflow's, ours): 40 training steps sync no more often than 10."""
    _run(store, name, 3)()  # first-call effects out of the way
    assert _sync_warnings(_run(store, name, 10)) == _sync_warnings(_run(store, name, 40))


class _Watch(L.Callback):
    def __init__(self) -> None:
        self.before: dict[int, dict] = {}
        self.at_failure: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before[trainer.global_step] = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_exception(self, trainer, pl_module, exception):
        self.at_failure = {k: v.clone() for k, v in pl_module.state_dict().items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_nan_loss_never_updates_the_weights_on_the_gpu(fake_bundled, optimizer):
    torch.manual_seed(0)
    module = ClassifierModule(MnistCNN(), make_optimizer_factory(OptimizerSettings(name=optimizer, lr=0.01)))
    guard, watch = RunGuard(inject_nan_at_step=2, check_every_n_steps=5), _Watch()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=20, limit_val_batches=0, logger=False, accelerator="gpu",
                        devices=1, enable_checkpointing=False, enable_progress_bar=False, callbacks=[guard, watch])
    with pytest.raises(NonFiniteLossError, match="training loss is nan at epoch 0, global step 2"):
        trainer.fit(module, datamodule=MnistDataModule(bundled=True, batch_size=16))
    assert guard.skips_on_device and max(watch.before) == 4  # read after the 5th step, as configured
    assert all(torch.equal(v, watch.before[2][k]) for k, v in watch.at_failure.items())


def test_a_nan_run_fails_keeping_the_last_good_checkpoint(fake_bundled, store):
    overrides = [*store["overrides"], *QUICK, "trainer.max_epochs=2", "trainer.limit_train_batches=3",
                 "data.batch_size=16", "tracking.log_model=false", "trainer.inject_nan_at_step=4"]
    with pytest.raises(NonFiniteLossError, match="global step 4"):
        train(load_experiment("cnn_mnist_bundled", overrides))
    (run,) = mlflow.MlflowClient(store["uri"]).search_runs(
        [mlflow.MlflowClient(store["uri"]).get_experiment_by_name("cnn_mnist_bundled").experiment_id])
    assert run.info.status == "FAILED"
    ckpt = torch.load(store["path"] / "checkpoints" / run.info.run_id / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


@pytest.mark.parametrize("name,extra", [
    ("cnn_mnist_bundled", []),
    ("ae_case1_celeba", ["data.root={faces}", "data.cache_dir={tmp}", "data.image_size=32"]),
    ("ae_case2_celeba", ["data.root={faces}", "data.cache_dir={tmp}", "data.image_size=32", "model.loss=bce"]),
])
def test_bf16_mixed_and_channels_last_train_each_network_on_the_gpu(name, extra, faces_dir, store, tmp_path):
    overrides = [*store["overrides"], *QUICK, "trainer.limit_train_batches=4", "data.batch_size=8",
                 "trainer.precision=bf16-mixed", "model.channels_last=true",
                 *[e.format(faces=faces_dir, tmp=tmp_path) for e in extra]]
    result = train(load_experiment(name, overrides))  # logs the model too: its sample comes off the GPU
    run = mlflow.MlflowClient(store["uri"]).get_run(result.run_id)
    assert run.info.status == "FINISHED" and np.isfinite(run.data.metrics["train/loss"])
    assert result.datamodule._pixels["train"].is_cuda  # auto put the data on the GPU
    conv = next(m for m in result.module.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_cuda and conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_encoding_streams_from_gpu_resident_data(fake_bundled):
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 6)).to(CUDA)
    resident = MnistDataModule(bundled=True).images_dataloader(batch_size=100, device=CUDA)
    host = MnistDataModule(bundled=True, on_device=False).images_dataloader(batch_size=100)
    assert isinstance(resident, ResidentBatches) and next(iter(resident)).is_cuda
    z_resident, z_host = encode_dataset(encoder, resident, CUDA, False), encode_dataset(encoder, host, CUDA, False)
    np.testing.assert_allclose(z_resident, z_host, rtol=1e-6, atol=1e-6)
