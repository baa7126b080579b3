"""The three dream modes by name, and the one place that runs a mode with the ``dream`` settings."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from analysis.dream.common import DreamResult

if TYPE_CHECKING:
    from analysis.settings import DreamSettings


class DreamMode(StrEnum):
    """Dream modes (config key ``dream.modes``): the reference's 28×28 recipe, classical octaves, seamless tiles."""

    seed = "seed"
    octaves = "octaves"
    tiled = "tiled"


def run_dream(model: nn.Module, image: np.ndarray, mode: DreamMode | str, settings: DreamSettings,
              progress: bool = False) -> DreamResult:
    """Dream ``mode`` on ``image`` (H, W) in [0, 1] with ``model``, as ``settings`` say."""
    from analysis.dream.octaves import dream_octaves
    from analysis.dream.seed import dream_seed
    from analysis.dream.tiled import dream_tiled

    runs = {DreamMode.seed: dream_seed, DreamMode.octaves: dream_octaves, DreamMode.tiled: dream_tiled}
    return runs[DreamMode(mode)](model, image, settings, progress=progress)
