"""The NaN guard without a per-step host read: the bad batch never updates the weights, fit fails naming the step,
and training reads nothing back from the device per step (counted by wrapping every tensor→host conversion)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from experiments.run.config import load_experiment
from experiments.run.guards import RunGuard
from experiments.run.train import train
from latentdream.errors import NonFiniteLossError
from lightning_modules.classifier import ClassifierModule
from lightning_modules.data import modules
from lightning_modules.data.batches import EpochOrder, ResidentBatches, upload
from lightning_modules.data.modules import MnistDataModule
from lightning_modules.networks import MnistCNN
from lightning_modules.optim import OptimizerSettings, make_optimizer_factory

# Every way a tensor's value reaches Python: on a GPU each one waits for the device.
HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def fake_bundled(monkeypatch):
    images = np.random.default_rng(4).integers(0, 256, (400, 28, 28), dtype=np.uint8)
    labels = np.arange(400, dtype=np.int64) % 10
    monkeypatch.setattr(modules, "load_bundled_mnist", lambda: (images.copy(), labels.copy()))


@pytest.fixture
def host_reads(monkeypatch) -> dict:
    """Counts of each tensor→host conversion while the test runs (all threads)."""
    counts = dict.fromkeys(HOST_READS, 0)
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


class _Watch(L.Callback):
    """Weights before each step, how many steps started, and the weights when fit failed."""

    def __init__(self) -> None:
        self.before: dict[int, dict] = {}
        self.started = 0
        self.at_failure: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.started += 1
        self.before[trainer.global_step] = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_exception(self, trainer, pl_module, exception):
        self.at_failure = {k: v.clone() for k, v in pl_module.state_dict().items()}


def _fit_with_nan(optimizer: str, guard: RunGuard) -> _Watch:
    torch.manual_seed(0)
    module = ClassifierModule(MnistCNN(), make_optimizer_factory(OptimizerSettings(name=optimizer, lr=0.01)))
    watch = _Watch()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=8, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", callbacks=[guard, watch])
    with pytest.raises(NonFiniteLossError, match=r"^training loss is nan at epoch 0, global step 1; stopped before"):
        trainer.fit(module, datamodule=MnistDataModule(bundled=True, batch_size=16))
    return watch


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_a_nan_loss_is_skipped_on_the_device_and_raised_at_the_next_check(fake_bundled, optimizer):
    guard = RunGuard(inject_nan_at_step=1, check_every_n_steps=4)
    watch = _fit_with_nan(optimizer, guard)
    assert guard.skips_on_device
    assert watch.started == 4  # steps 0-3 ran; the window of 4 losses was read after step 3
    changed = any(not torch.equal(watch.before[0][k], watch.before[1][k]) for k in watch.before[0])
    assert changed  # step 0 trained ...
    for key, value in watch.at_failure.items():  # ... step 1 (NaN) and the two after it updated nothing
        assert torch.equal(value, watch.before[1][key]), key


def test_without_a_fused_optimizer_the_loss_is_read_before_each_update(fake_bundled):
    guard = RunGuard(inject_nan_at_step=1, check_every_n_steps=4)
    watch = _fit_with_nan("rmsprop", guard)  # torch has no fused RMSprop
    assert not guard.skips_on_device and watch.started == 2
    assert all(torch.equal(v, watch.before[1][k]) for k, v in watch.at_failure.items())


def test_the_guard_adds_no_host_read_per_training_step(fake_bundled, store, host_reads):
    """Two product runs (train(), MLflow logger, progress bar off) differing only in their number of training
    batches read the same number of values back: nothing is read per step, by our code or Lightning's."""
    def run(batches: int) -> dict:
        overrides = [*store["overrides"], "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}",
                     "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "data.batch_size=8",
                     "tracking.log_model=false", "oip.enabled=false", "dream.enabled=false"]
        cfg = load_experiment("cnn_mnist_bundled", overrides)
        before = dict(host_reads)
        result = train(cfg)
        assert result.trainer.global_step == batches
        return {k: host_reads[k] - before[k] for k in host_reads}

    run(2)  # first-call effects (imports, caches) out of the way
    assert run(4) == run(12)


def test_device_resident_batches_read_nothing_back_per_batch(fake_bundled, host_reads):
    dataset = MnistDataModule(bundled=True).dataset("train")
    loader = ResidentBatches(dataset, upload(dataset, torch.device("cpu")), 8, EpochOrder(len(dataset), 0))

    def reads(n: int) -> dict:
        before = dict(host_reads)
        for i, _ in zip(range(n), loader):
            pass
        return {k: host_reads[k] - before[k] for k in host_reads}

    assert reads(3) == reads(9)


def test_the_window_is_read_every_n_steps(fake_bundled, host_reads):
    class Count(L.Callback):
        reads: list = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.reads.append(host_reads["cpu"])

    count = Count()
    module = ClassifierModule(MnistCNN(), make_optimizer_factory(OptimizerSettings(name="sgd", lr=0.01)))
    trainer = L.Trainer(max_epochs=1, limit_train_batches=9, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", callbacks=[RunGuard(check_every_n_steps=3), count])
    trainer.fit(module, datamodule=MnistDataModule(bundled=True, batch_size=16))
    steps_with_a_read = [i for i in range(1, 9) if count.reads[i] > count.reads[i - 1]]
    assert steps_with_a_read == [2, 5, 8]  # after every third step (the callbacks after the guard see it)
