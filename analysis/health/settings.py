"""The ``health`` config section: the thresholds of the health verdict (:mod:`analysis.health.verdict`).

Defaults measured on the bundled digits (README, "Did the network learn?"): healthy runs lie far from each
threshold, broken ones (``optim.lr=1e-9``, a decoder stuck at black, a conv layer whose maps never fire) far beyond.
Pure: no torch, Lightning or MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from latentdream.errors import require


@dataclass(frozen=True)
class HealthSettings:
    """When a trained network counts as unhealthy; checked once at the end of every ``train`` (``enabled``).

    * ``not_learning``: with at least ``min_epochs`` epochs, ``val/loss`` moved by less than ``min_loss_change``
      (relative: (max − min) / max over the epochs' values);
    * ``saturated`` (autoencoders): at least ``max_saturated`` of the decoder's outputs on validation images lie
      within ``saturation_margin`` of 0 or 1 (a sigmoid stuck there has no gradient);
    * ``collapsed`` (autoencoders): the first principal component of the validation images' latent vectors
      explains at least ``max_pc1_share`` of their variance;
    * ``silent`` (CNNs): at least ``max_silent`` of a conv layer's maps are ≤ 0 at every position of every
      validation image (their ReLU never passes anything on).

    The probe reads at most ``max_images`` validation images (null: all), ``batch_size`` at a time.
    """

    SECTION: ClassVar[str] = "health"

    enabled: bool = True
    min_epochs: int = 3
    min_loss_change: float = 0.001
    saturation_margin: float = 0.001
    max_saturated: float = 0.99
    max_pc1_share: float = 0.8
    max_silent: float = 0.5
    max_images: Optional[int] = 10000
    batch_size: int = 256

    def __post_init__(self) -> None:
        for key in ("min_epochs", "batch_size"):
            require(getattr(self, key) >= 1, f"health.{key}", getattr(self, key), "it must be >= 1")
        require(self.max_images is None or self.max_images >= 1, "health.max_images", self.max_images,
                "it must be >= 1 (or null: every validation image)")
        require(0 <= self.min_loss_change < math.inf, "health.min_loss_change", self.min_loss_change,
                "it must be a finite number >= 0")
        require(0 < self.saturation_margin < 0.5, "health.saturation_margin", self.saturation_margin,
                "it must be in (0, 0.5)")
        for key in ("max_saturated", "max_pc1_share", "max_silent"):
            require(0 < getattr(self, key) <= 1, f"health.{key}", getattr(self, key), "it must be in (0, 1]")
