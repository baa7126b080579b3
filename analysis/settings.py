"""One frozen dataclass per analysis — the config sections ``analysis`` (latent space), ``oip`` and ``dream``.

Each class is at once the schema of its section (``experiments/run/schema.py`` uses it as the section's type, so
OmegaConf checks keys, types and enum choices against it), the YAML keys, and the argument the analysis code reads
its settings from: a setting is one field here, with its default and its rule in ``__post_init__``. The launcher keys
``enabled`` and ``every_n_epochs`` are shared through :class:`PeriodicSettings`.

Rules that need the model (do the layers exist, is map 56 in range?) are checked by ``experiments.run.config``.
Pure: imports neither Lightning nor MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any, ClassVar, Optional

from analysis.dream.images import MIN_SIDE
from analysis.dream.modes import DreamMode
from analysis.oip.ascent import AscentOptimizer
from analysis.oip.objectives import Response, parse_target
from analysis.oip.params import Init
from analysis.oip.presets import OIPPreset
from analysis.oip.presets import resolve as resolve_preset
from latentdream.errors import require


def as_plain(value: Any) -> Any:
    """``value`` with every dataclass turned into a dict and every enum into its name: what YAML, JSON and MLflow
    accept (an Enum would make ``yaml.safe_dump`` fail)."""
    if isinstance(value, Enum):
        return value.name
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: as_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_plain(v) for v in value]
    return value


def _positive_list(key: str, values: list[float]) -> None:
    require(len(values) > 0 and all(math.isfinite(v) and v > 0 for v in values), key, list(values),
            "give a non-empty list of values > 0")


@dataclass(frozen=True)
class PeriodicSettings:
    """When the launcher runs an analysis during training: at all (``enabled``), and after every n-th epoch
    (``every_n_epochs``; 0 = only once, at the end of training)."""

    SECTION: ClassVar[str] = ""

    enabled: bool = True
    every_n_epochs: int = 0

    def __post_init__(self) -> None:
        require(self.every_n_epochs >= 0, f"{self.SECTION}.every_n_epochs", self.every_n_epochs, "it must be >= 0")


@dataclass(frozen=True)
class LatentSettings(PeriodicSettings):
    """Latent-space analysis of an autoencoder (the reference's first post).

    ``n_bins`` equal bins over ``range`` per component; dominant components have |mu| >= ``mu_threshold`` or
    half_width >= ``hw_threshold``; ``n_random`` uniform vectors in [-b, b]^N per ``b`` (null: as many as encoded
    training images) are tested against the boxes mu ± k·half_width for every ``k``; ``n_scatter`` points in the
    correlation scatter; ``n_generate`` faces decoded per generator (uniform in [-generate_b, generate_b]^N,
    per-component Gaussian, multivariate Gaussian); ``z_sample`` latent vectors saved; ``batch_size`` images per
    encoder pass; ``seed`` for every random draw.
    """

    SECTION: ClassVar[str] = "analysis"

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

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("n_bins", "n_scatter", "n_generate", "z_sample", "batch_size", "generate_b"):
            require(getattr(self, key) > 0, f"analysis.{key}", getattr(self, key), "it must be > 0")
        require(len(self.range) == 2 and self.range[0] < self.range[1], "analysis.range", list(self.range),
                "give [low, high], low < high")
        _positive_list("analysis.b", self.b)
        _positive_list("analysis.k", self.k)
        require(self.n_random is None or self.n_random > 0, "analysis.n_random", self.n_random,
                "it must be > 0 (or null)")


@dataclass(frozen=True)
class OIPSettings(PeriodicSettings):
    """OIPs: gradient ascent on the input to maximise each map of each conv layer (the reference's second post).

    For every ``layers`` × ``inits``: all ``maps`` (null: every map) of the layer as one batch, ``steps`` steps (after
    every ``every_n_epochs``-th epoch during training: ``epoch_steps``; null: ``steps``) of ``optimizer``
    (``adam`` or ``normalized``) with step size ``lr``; before each forward pass a random shift of up to
    ``jitter`` px; every ``blur_every`` steps a Gaussian blur of ``blur_sigma`` px; after each step a decay towards 0
    by ``l2_decay`` and, with ``clip``, a clamp to [0, 1]. ``rectify`` maximises the map's post-ReLU mean (what the
    network passes on; false: the pre-ReLU mean); ``redirect`` gives that objective a gradient while the map is
    silent everywhere (a redirected ReLU), false leaves a silent map without gradient: dead. ``seed`` fixes starts
    and shifts. ``shared_scale`` draws the grid's panels on one colour scale instead of each on its own min..max.
    ``examples``: at the end, the validation images that activate each map most, this many a map, drawn beside its
    OIP (0: none).

    ``preset`` names the recipe (:class:`~analysis.oip.presets.OIPPreset`: ``lucent`` or the reference's plain
    ``reference``); the recipe's settings (``optimizer``, ``lr``, ``jitter``, ``blur_every``, ``clip``,
    ``redirect``) are null by default, meaning the preset's value, and filled in from
    :data:`~analysis.oip.presets.PRESET_VALUES` by :meth:`resolved` where they are used; a value given explicitly
    wins.
    """

    SECTION: ClassVar[str] = "oip"

    layers: list[str] = field(default_factory=lambda: ["conv1", "conv2", "conv3"])
    maps: Optional[list[int]] = None
    inits: list[Init] = field(default_factory=lambda: [Init.random])
    preset: OIPPreset = OIPPreset.lucent
    steps: int = 150
    epoch_steps: Optional[int] = None
    lr: Optional[float] = None
    optimizer: Optional[AscentOptimizer] = None
    jitter: Optional[int] = None
    blur_every: Optional[int] = None
    blur_sigma: float = 0.5
    l2_decay: float = 0.0
    clip: Optional[bool] = None
    rectify: bool = True
    redirect: Optional[bool] = None
    shared_scale: bool = False
    seed: int = 0
    examples: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.examples >= 0, "oip.examples", self.examples, "it must be >= 0 (0: no dataset examples)")
        require(len(self.layers) > 0, "oip.layers", list(self.layers), "name at least one conv layer")
        require(len(self.inits) > 0, "oip.inits", list(self.inits), f"give at least one of {', '.join(Init)}")
        require(self.maps is None or (len(self.maps) > 0 and min(self.maps) >= 0), "oip.maps", self.maps,
                "give map indices >= 0 (or null for all maps)")
        require(self.lr is None or 0 < self.lr < math.inf, "oip.lr", self.lr,
                "it must be a finite number > 0 (or null: the preset's)")
        for key in ("steps", "epoch_steps", "jitter", "blur_every", "blur_sigma"):
            value = getattr(self, key)
            require(value is None or value >= 0, f"oip.{key}", value, "it must be >= 0")
        require(0 <= self.l2_decay < 1, "oip.l2_decay", self.l2_decay, "it must be in [0, 1)")

    def resolved(self) -> OIPSettings:
        """These settings with the preset's value in place of every null recipe setting: what the renderer runs.

        (The nulls stay in the settings themselves: they are also the schema's defaults, which must stay null so
        that ``oip.preset=reference`` can change them.)
        """
        return replace(self, **resolve_preset(self.preset, {f.name: getattr(self, f.name) for f in fields(self)}))


@dataclass(frozen=True)
class DreamSettings(PeriodicSettings):
    """Deep dreams of the MNIST CNN on a photo (the reference's third post).

    ``modes`` to run on ``image`` (null: the flower photo scikit-learn ships), shrunk to at most ``max_side`` px.
    Every mode maximises the ``response`` of its objective: ``post_relu`` (default; the mean activation the network
    passes on, as the OIPs and classical DeepDream: amplifies what the net already sees; a map that is off
    everywhere gets the pre-ReLU gradient until it fires) or ``pre_relu`` (the conv output, which an ascent can also
    raise by darkening). ``seed`` mode: ``objective`` (``layer:map``), ``cycles`` rounds of ``steps`` ascent steps at
    28×28, the final image contrast-stretched between the ``low_pct`` and ``high_pct`` percentiles. ``octaves`` and
    ``tiled``: the whole layer ``layer_objective`` (or the weighted set ``layers``, e.g. ``{conv2: 0.5, conv3: 1.0}``);
    ``octaves`` pyramid levels ``octave_scale`` apart with ``steps_per_octave`` steps each through 28×28 windows
    ``window_stride`` px apart (rounded to a multiple of the layers' pooling: 14 → 16 for conv3), stopping an octave
    once the objective exceeds ``max_loss``; ``tiled``: ``steps`` steps on 28×28 tiles, ``tile_batch`` tiles per pass. ``lr`` null takes each mode's own step size.
    ``child_run`` puts ``latentdream dream``'s results into a nested run. ``seed`` fixes the jitter and offsets.
    """

    SECTION: ClassVar[str] = "dream"

    modes: list[DreamMode] = field(default_factory=lambda: [DreamMode.seed, DreamMode.octaves, DreamMode.tiled])
    image: Optional[str] = None
    objective: str = "conv3:56"
    layer_objective: str = "conv3"
    layers: Optional[dict[str, float]] = None
    response: Response = Response.post_relu
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

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.modes) > 0, "dream.modes", list(self.modes), f"give at least one of {', '.join(DreamMode)}")
        for key in ("objective", "layer_objective"):
            parse_target(getattr(self, key))
        require(not self.layers or all(w > 0 for w in self.layers.values()), "dream.layers", self.layers,
                "give {layer: weight > 0}")
        for key in ("cycles", "octaves", "window_stride", "tile_batch"):
            require(getattr(self, key) >= 1, f"dream.{key}", getattr(self, key), "it must be >= 1")
        for key in ("steps", "steps_per_octave"):
            require(getattr(self, key) >= 0, f"dream.{key}", getattr(self, key), "it must be >= 0")
        require(self.lr is None or 0 < self.lr < math.inf, "dream.lr", self.lr,
                "it must be a finite number > 0 (or null: each mode's own)")
        require(1.0 < self.octave_scale <= 2.0, "dream.octave_scale", self.octave_scale, "it must be in (1, 2]")
        require(self.max_side >= MIN_SIDE, "dream.max_side", self.max_side, f"it must be >= {MIN_SIDE}")
        require(0 <= self.low_pct < self.high_pct <= 100, "dream.low_pct/high_pct", [self.low_pct, self.high_pct],
                "need 0 <= low_pct < high_pct <= 100")

    @property
    def layer_target(self) -> str | dict[str, float]:
        """What the octaves and tiled modes maximise: the weighted ``layers`` if given, else ``layer_objective``."""
        return dict(self.layers) if self.layers else self.layer_objective
