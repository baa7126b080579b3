"""Turn each config section into plain constructor arguments or its settings object; no object below sees the
config tree."""

from __future__ import annotations

from dataclasses import asdict

from omegaconf import DictConfig
from torch import nn

from analysis import tracking
from experiments.run.config import section
from lightning_modules.autoencoder import AutoencoderModule
from lightning_modules.base import TrainableModule
from lightning_modules.classifier import ClassifierModule
from lightning_modules.networks import ConvAutoencoder, MnistCNN
from lightning_modules.optim import make_optimizer_factory, make_scheduler_factory


def _kwargs(cfg: DictConfig, name: str) -> dict:
    """A section as constructor keyword arguments."""
    return asdict(section(cfg, name))


def is_autoencoder(cfg: DictConfig) -> bool:
    return cfg.model.name == "conv_autoencoder"


def build_datamodule(cfg: DictConfig):
    """The DataModule for ``cfg.data``; autoencoders get images without labels."""
    from lightning_modules.data.modules import FacesDataModule, MnistDataModule

    data = _kwargs(cfg, "data")
    name = data.pop("name")
    seed = cfg.trainer.seed
    if name == "faces":
        return FacesDataModule(**data, seed=seed)
    return MnistDataModule(**data, bundled=name == "mnist_bundled", seed=seed, with_labels=not is_autoencoder(cfg))


def build_network(cfg: DictConfig, in_channels: int, image_size: int,
                  pixel_means: list[float] | None = None) -> nn.Module:
    """The plain network for ``cfg.model``, sized for the data (channels, side length).

    :param pixel_means: the training data's mean pixel per channel (``datamodule.train_pixel_means()``): an
        autoencoder's output starts there. ``None`` (a network whose weights are loaded next) → bias 0."""
    model = _kwargs(cfg, "model")
    name = model.pop("name")
    model.pop("channels_last")  # the module's concern: it lays out the weights and the batches
    if name == "conv_autoencoder":
        model.pop("loss")
        return ConvAutoencoder(in_channels=in_channels, image_size=image_size, output_mean=pixel_means, **model)
    return MnistCNN(in_channels=in_channels, image_size=image_size, **model)


def build_module(cfg: DictConfig, network: nn.Module) -> TrainableModule:
    """The LightningModule training ``network`` with the optimizer and schedule of ``cfg``."""
    optim = section(cfg, "optim")
    factories = dict(
        optimizer_factory=make_optimizer_factory(optim),
        scheduler_factory=make_scheduler_factory(section(cfg, "scheduler"), monitor=tracking.VAL_LOSS),
        weight_decay=optim.weight_decay,
        channels_last=cfg.model.channels_last,
    )
    if is_autoencoder(cfg):
        return AutoencoderModule(network, loss=cfg.model.loss, **factories)
    return ClassifierModule(network, **factories)


def trainer_kwargs(cfg: DictConfig) -> dict:
    """``lightning.Trainer`` arguments from ``cfg.trainer`` (seed removed, unset limits dropped)."""
    kwargs = _kwargs(cfg, "trainer")
    kwargs.pop("seed")
    kwargs["precision"] = str(kwargs["precision"])  # Lightning's own name for it, not our Enum
    return {k: v for k, v in kwargs.items() if v is not None}


def build_callbacks(cfg: DictConfig) -> list:
    """The analysis callbacks that fit ``cfg``'s model (latent statistics for autoencoders; OIPs and dreams for the
    CNN), each given its section's settings; first the health check, whose verdict their final figures carry."""
    callbacks = []
    if cfg.health.enabled:
        from analysis.callbacks.health import HealthCheck

        callbacks.append(HealthCheck(section(cfg, "health")))
    if is_autoencoder(cfg) and cfg.analysis.enabled:
        from analysis.callbacks.latent import LatentStatsLogger

        callbacks.append(LatentStatsLogger(section(cfg, "analysis")))
    if not is_autoencoder(cfg) and cfg.oip.enabled:
        from analysis.callbacks.oip import OIPLogger

        callbacks.append(OIPLogger(section(cfg, "oip")))
    if not is_autoencoder(cfg) and cfg.dream.enabled:
        from analysis.callbacks.dream import DreamLogger

        callbacks.append(DreamLogger(section(cfg, "dream")))
    return callbacks
