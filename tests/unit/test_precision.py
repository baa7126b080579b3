"""trainer.precision=bf16-mixed and model.channels_last=true for all three networks: bf16 forward passes, float32
losses and weights, channels-last weights and batches, the same values as the default layout."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.nn import functional as F

from experiments.run.build import build_datamodule, build_module, build_network, trainer_kwargs
from experiments.run.config import load_experiment
from latentdream.errors import InputError

CHANNELS_LAST = torch.channels_last
EXPERIMENTS = [
    ("cnn_mnist_bundled", []),
    ("ae_case1_celeba", ["data.root={faces}", "data.cache_dir={tmp}", "data.image_size=32"]),
    ("ae_case2_celeba", ["data.root={faces}", "data.cache_dir={tmp}", "data.image_size=32", "model.loss=bce"]),
]


class _Dtypes(L.Callback):
    """The dtype of the first conv's output and of the loss in the first training step."""

    def on_train_start(self, trainer, pl_module):
        conv = next(m for m in pl_module.network.modules() if isinstance(m, torch.nn.Conv2d))
        self.conv_out = None
        conv.register_forward_hook(lambda m, i, out: setattr(self, "conv_out", self.conv_out or out.dtype))

    def on_before_backward(self, trainer, pl_module, loss):
        self.loss = loss.dtype


@pytest.mark.parametrize("name,extra", EXPERIMENTS)
def test_bf16_mixed_and_channels_last_train_each_network(name, extra, faces_dir, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("BCE on a sigmoid output is not autocast-safe")

    monkeypatch.setattr(F, "binary_cross_entropy", refuse)
    overrides = [e.format(faces=faces_dir, tmp=tmp_path) for e in extra]
    cfg = load_experiment(name, [*overrides, "data.batch_size=4",
                                 "trainer.precision=bf16-mixed", "model.channels_last=true"])
    L.seed_everything(0)
    dm = build_datamodule(cfg)
    module = build_module(cfg, build_network(cfg, dm.in_channels, dm.image_size))
    convs = [m for m in module.network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert all(c.weight.is_contiguous(memory_format=CHANNELS_LAST) for c in convs)
    dtypes = _Dtypes()
    trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, precision=trainer_kwargs(cfg)["precision"], callbacks=[dtypes])
    trainer.fit(module, datamodule=dm)
    assert dtypes.conv_out == torch.bfloat16 and dtypes.loss == torch.float32
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert all(c.weight.is_contiguous(memory_format=CHANNELS_LAST) for c in convs)  # still, after the updates


@pytest.mark.parametrize("name,extra", EXPERIMENTS)
def test_channels_last_changes_the_layout_not_the_values(name, extra, faces_dir, tmp_path):
    overrides = [*[e.format(faces=faces_dir, tmp=tmp_path) for e in extra], "data.batch_size=4"]
    modules = []
    for layout in ("false", "true"):
        cfg = load_experiment(name, [*overrides, f"model.channels_last={layout}"])
        dm = build_datamodule(cfg)
        torch.manual_seed(0)
        modules.append(build_module(cfg, build_network(cfg, dm.in_channels, dm.image_size)))
    batch = next(iter(dm.train_dataloader()))
    laid_out = modules[1].laid_out(batch)
    images = laid_out[0] if isinstance(laid_out, (tuple, list)) else laid_out
    assert images.is_contiguous(memory_format=CHANNELS_LAST)
    losses = [m._shared_step(m.laid_out(batch), "train") for m in modules]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)


def test_bce_from_logits_equals_bce_of_the_sigmoid_output():
    from lightning_modules.networks import ConvAutoencoder

    torch.manual_seed(0)
    net = ConvAutoencoder(1, 16, [4, 8], [3, 3], [2, 2], [4], [3, 3], [2, 2], z_dim=8)
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(torch.sigmoid(net.decode_logits(net.encode(x))), net(x))
    from lightning_modules.autoencoder import AutoencoderModule

    module = AutoencoderModule(net, lambda p: None, loss="bce")
    torch.testing.assert_close(module.reconstruction_loss(x), F.binary_cross_entropy(net(x), x))


@pytest.mark.parametrize("override,message", [
    ("trainer.precision=16-mixed", "trainer.precision='16-mixed' is not allowed; allowed: 32-true, bf16-mixed"),
    ("trainer.precision=bf16", "trainer.precision='bf16' is not allowed; allowed: 32-true, bf16-mixed"),
    ("model.channels_last=sideways", "model.channels_last"),
    ("data.on_device=auto", "data.on_device"),
])
def test_bad_precision_layout_or_placement_is_one_line_naming_the_key(override, message):
    with pytest.raises(InputError) as err:
        load_experiment("cnn_mnist_bundled", [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_defaults_keep_float32_the_default_layout_and_auto_placement():
    cfg = load_experiment("ae_case1_mnist_bundled")
    assert cfg.trainer.precision == "32-true" and trainer_kwargs(cfg)["precision"] == "32-true"
    assert cfg.model.channels_last is False and cfg.data.on_device is None
    assert build_datamodule(cfg).on_device is None
