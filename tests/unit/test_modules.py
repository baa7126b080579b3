"""LightningModules: a one-batch overfit for each, and a ``fast_dev_run`` of each shipped experiment's pieces."""

import lightning as L
import pytest
import torch

from experiments.run.build import build_datamodule, build_module, build_network
from experiments.run.config import load_experiment
from lightning_modules.autoencoder import AutoencoderModule
from lightning_modules.classifier import ClassifierModule
from lightning_modules.networks import ConvAutoencoder, MnistCNN
from lightning_modules.optim import OptimizerSettings, make_optimizer_factory


def _overfit(module, batch, steps, loss_fn):
    optimizer = module.optimizer_factory(list(module.network.parameters()))
    first = None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(batch)
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    return first, loss.item()


def test_classifier_overfits_one_batch():
    torch.manual_seed(0)
    x, y = torch.rand(10, 1, 28, 28), torch.arange(10)
    module = ClassifierModule(MnistCNN(), make_optimizer_factory(OptimizerSettings(name="adam", lr=3e-3)))
    first, last = _overfit(module, (x, y), 40, lambda b: module.loss_and_accuracy(b)[0])
    assert last < 0.05 * first
    assert (module(x).argmax(1) == y).all()


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_autoencoder_overfits_one_batch(loss):
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    x = torch.nn.functional.avg_pool2d(x, 5, 1, 2)  # smooth images an autoencoder can learn quickly
    # a slim case-I shape: the module's logic, not the architecture, is under test here
    net = ConvAutoencoder(1, 32, [8, 16, 32, 32], [3] * 4, [2] * 4, [32, 16, 8], [3] * 4, [2] * 4, z_dim=32)
    module = AutoencoderModule(net, make_optimizer_factory(OptimizerSettings(name="adam", lr=3e-3)), loss=loss)
    mse_before = torch.nn.functional.mse_loss(module(x), x).item()
    first, last = _overfit(module, x, 60, module.reconstruction_loss)
    assert last < first
    # BCE cannot fall below the targets' entropy, so judge both losses by the reconstruction error itself
    assert torch.nn.functional.mse_loss(module(x), x).item() < 0.3 * mse_before


@pytest.mark.parametrize(
    "name,extra",
    [
        ("cnn_mnist_bundled", []),
        ("ae_case1_mnist_bundled", []),
        ("cnn_mnist", ["data.root={mnist}"]),
        ("ae_case1_celeba", ["data.root={faces}", "data.image_size=32"]),
        ("ae_case2_celeba", ["data.root={faces}", "data.image_size=32", "model.act=selu"]),
    ],
)
def test_fast_dev_run_of_each_experiment(name, extra, mnist_dir, faces_dir, tmp_path):
    overrides = [e.format(mnist=mnist_dir, faces=faces_dir) for e in extra]
    if name.endswith("celeba"):
        overrides.append(f"data.cache_dir={tmp_path}")
    cfg = load_experiment(name, [*overrides, "data.batch_size=4"])
    L.seed_everything(0)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    module = build_module(cfg, build_network(cfg, dm.in_channels, dm.image_size))
    trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
