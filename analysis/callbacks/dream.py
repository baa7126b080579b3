"""Deep dreams of a trained CNN on a photo, logged into its MLflow run (the reference's third post).

:func:`record_dreams` runs the configured modes (``seed``, ``octaves``, ``tiled``) and logs, per mode,
``dream/<mode>_<name>/panels.png``, ``final.png`` (full resolution), ``config.yaml`` and the metrics
``dream/<mode>/objective_gain`` (+ ``objective_before``/``objective_after``). Shared by :class:`DreamLogger` (end of
training) and ``latentdream dream RUN_ID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import dream as dreams
from analysis import tracking
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.plots import dream as plots


@dataclass(frozen=True)
class DreamSettings:
    """The ``dream`` config section as plain values (keys equal the config keys)."""

    modes: Sequence[str] = ("seed", "octaves", "tiled")
    image: str | None = None
    objective: str = "conv3:56"
    layer_objective: str = "conv3"
    layers: dict | None = None
    cycles: int = 4
    steps: int = 20
    steps_per_octave: int = 10
    lr: float | None = None
    octaves: int = 4
    octave_scale: float = 1.4
    max_loss: float | None = None
    window_stride: int = 14
    max_side: int = 256
    tile_batch: int = 256
    low_pct: float = 1.0
    high_pct: float = 99.0
    seed: int = 0


def load_photo(path: str | None, max_side: int) -> tuple[np.ndarray, str]:
    """The photo to dream on, grayscale (H, W) in [0, 1], shrunk so its longer side is at most ``max_side``
    (dreams scale with the pixel count); with no path, the flower photo bundled with scikit-learn.

    :raises InputError: missing file, not an image, smaller than 28×28 (from :func:`analysis.dream.load_image`).
    """
    image = dreams.load_image(path) if path else dreams.default_image()
    name = Path(path).stem if path else "flower"
    longer = max(image.shape)
    if longer > max_side:
        scale = max_side / longer
        shape = (max(28, round(image.shape[0] * scale)), max(28, round(image.shape[1] * scale)))
        image = dreams.to_array(dreams.resize(dreams.to_tensor(image), shape)).clip(0, 1)
    return image.astype(np.float32), name


def run_mode(network: torch.nn.Module, image: np.ndarray, mode: str, s: DreamSettings, progress: bool):
    """One dream mode with the settings' values (each mode keeps its own default step size when ``lr`` is None)."""
    lr = {} if s.lr is None else {"lr": s.lr}
    layers = dict(s.layers) if s.layers else s.layer_objective
    if mode == "seed":
        return dreams.dream_seed(network, image, s.objective, cycles=s.cycles, steps=s.steps, low_pct=s.low_pct,
                                 high_pct=s.high_pct, seed=s.seed, progress=progress, **lr)
    if mode == "octaves":
        return dreams.dream_octaves(network, image, layers, octaves=s.octaves, octave_scale=s.octave_scale,
                                    steps_per_octave=s.steps_per_octave, max_loss=s.max_loss,
                                    window_stride=s.window_stride, seed=s.seed, progress=progress, **lr)
    if mode == "tiled":
        return dreams.dream_tiled(network, image, layers, steps=s.steps, batch_tiles=s.tile_batch, seed=s.seed,
                                  progress=progress, **lr)
    raise ValueError(f"unknown dream mode {mode!r}")


PANELS = {"seed": plots.seed_panels, "octaves": plots.octave_panels, "tiled": plots.tiled_panels}


def record_dreams(
    writer: tracking.RunWriter, network: torch.nn.Module, settings: DreamSettings, step: int, progress: bool = True
) -> dict[str, float]:
    """Dream every mode of ``settings`` on its photo and log the results; returns the logged metrics."""
    image, name = load_photo(settings.image, settings.max_side)
    was_training = network.training
    network.eval()
    metrics: dict[str, float] = {}
    try:
        for mode in settings.modes:
            result = run_mode(network, image, mode, settings, progress)
            folder = f"{tracking.DREAM_DIR}/{mode}_{name}"
            writer.figure(f"{folder}/panels.png", PANELS[mode](result))
            writer.image(f"{folder}/final.png", result.image)
            used = asdict(settings)
            writer.text(f"{folder}/config.yaml", yaml.safe_dump({**used, "mode": mode, "image_name": name,
                                                                 "image_shape": list(image.shape)}, sort_keys=True))
            metrics[f"{tracking.DREAM_DIR}/{mode}/objective_before"] = result.objective_before
            metrics[f"{tracking.DREAM_DIR}/{mode}/objective_after"] = result.objective_after
            metrics[f"{tracking.DREAM_DIR}/{mode}/objective_gain"] = result.objective_gain
    finally:
        network.train(was_training)
    writer.metrics(metrics, step=step)
    return metrics


class DreamLogger(PeriodicAnalysis):
    """Dreams with the trained CNN at the end of training and logs the panels into the run.

    :param settings: what to dream (the ``dream`` config section).
    :raises ValueError: an unknown mode.
    """

    def __init__(self, settings: DreamSettings) -> None:
        super().__init__(every_n_epochs=0)
        unknown = set(settings.modes) - set(PANELS)
        if unknown:
            raise ValueError(f"unknown dream modes {sorted(unknown)}; allowed: {', '.join(PANELS)}")
        self.settings = settings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int) -> None:
        record_dreams(writer, pl_module.network, self.settings, epoch, progress=trainer.progress_bar_callback is not None)
