"""Training throughput of Lightning + MLflow logging over a bare PyTorch loop, side by side in one process.

Same network (the reference MNIST CNN), same batches (the product's loader over the bundled digits, batch 64,
same seed), same optimizer
(SGD with momentum, weight decay on weights). The Lightning side trains through :class:`ClassifierModule` with the
launcher's MLflow logger writing into a temporary sqlite store, per-epoch metrics, learning-rate logging and the
progress bar off (a bar redraw is terminal I/O, not tracking). Validation is off on both sides. Timed: the
training epochs only (the callback measures from the first batch to the last). The machine is a shared VM whose
speed varies by tens of percent from second to second, and noise only ever adds time: so the script runs many
short rounds, alternating which side goes first, and compares the fastest round of each side.

    python benchmarks/train_overhead.py [--epochs 1] [--repeats 9] [--batches 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from experiments.train import EpochMLFlowLogger
from lightning_modules.classifier import ClassifierModule
from lightning_modules.data.arrays import ImageArrayDataset, collate_samples
from lightning_modules.data.modules import MnistDataModule
from lightning_modules.networks import MnistCNN
from lightning_modules.optim import OptimizerSettings, make_optimizer_factory, weight_decay_groups


def make_loader(n_batches: int, batch_size: int = 64) -> DataLoader:
    """The product's own training loader (bundled digits, seeded shuffling), cut to ``n_batches`` batches."""
    datamodule = MnistDataModule(bundled=True, batch_size=batch_size, seed=0)
    datamodule.setup("fit")
    train = datamodule.dataset("train")
    n = min(len(train), n_batches * batch_size) if n_batches else len(train)
    subset = ImageArrayDataset(train._array(), train.indices[:n], train.labels)
    return DataLoader(subset, batch_size=batch_size, shuffle=True, collate_fn=collate_samples,
                      generator=torch.Generator().manual_seed(0))


def bare_loop(loader: DataLoader, epochs: int) -> float:
    """Seconds for ``epochs`` epochs of a plain PyTorch training loop."""
    torch.manual_seed(0)
    net = MnistCNN()
    opt = make_optimizer_factory(OptimizerSettings(name="sgd", lr=0.05, momentum=0.9))(weight_decay_groups(net, 5e-4))
    net.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


class _EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.start:
            self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()


def lightning_mlflow(loader: DataLoader, epochs: int, store: Path) -> float:
    """Seconds for ``epochs`` epochs through Lightning with the launcher's MLflow logger."""
    torch.manual_seed(0)
    module = ClassifierModule(MnistCNN(), make_optimizer_factory(OptimizerSettings(name="sgd", lr=0.05, momentum=0.9)), weight_decay=5e-4)
    logger = EpochMLFlowLogger(experiment_name="overhead", tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
                               artifact_location=(store / "mlruns").as_uri())
    timer = _EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, logger=logger, callbacks=[timer], enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                        accelerator="cpu", devices=1)
    trainer.fit(module, train_dataloaders=loader)
    return timer.end - timer.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batches", type=int, default=0,
                        help="batches of 64 per epoch (default 0: the whole bundled training split, as `train` runs it)")
    args = parser.parse_args()
    loader = make_loader(args.batches)
    images = args.epochs * len(loader.dataset)
    bare, tracked = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bare_loop(loader, 1)  # warm-up: first-call kernel selection and allocator growth
        for i in range(args.repeats):
            if i % 2:
                tracked.append(lightning_mlflow(loader, args.epochs, Path(tmp)))
                bare.append(bare_loop(loader, args.epochs))
            else:
                bare.append(bare_loop(loader, args.epochs))
                tracked.append(lightning_mlflow(loader, args.epochs, Path(tmp)))
    b, t = min(bare), min(tracked)
    print(f"bare PyTorch loop      : {images / b:8.1f} img/s  (best of {args.repeats}: {b:.2f} s)")
    print(f"Lightning + MLflow     : {images / t:8.1f} img/s  (best of {args.repeats}: {t:.2f} s)")
    print(f"throughput ratio (Lightning+MLflow / bare) = {b / t:.3f}   (goal >= 0.95)")
    paired = sorted(x / y for x, y in zip(bare, tracked))
    print(f"median of the {len(paired)} paired rounds' ratios = {paired[len(paired) // 2]:.3f} (noisy; for reference)")


if __name__ == "__main__":
    main()
