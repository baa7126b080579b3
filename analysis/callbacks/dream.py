"""Deep dreams of a trained CNN on a photo, logged into its MLflow run (the reference's third post).

:func:`record_dreams` runs the configured modes (``seed``, ``octaves``, ``tiled``) and logs, per mode,
``dream/<mode>_<name>/panels.png``, ``final.png`` (full resolution), ``config.yaml`` and the metrics
``dream/<mode>/objective_gain`` (+ ``objective_before``/``objective_after``). Shared by :class:`DreamLogger` (end of
training) and ``latentdream dream RUN_ID``. Every mode is computed before anything is written, so a mode that fails
leaves no half-logged dream behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import dream as dreams
from analysis import tracking
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.dream import DreamMode, run_dream
from analysis.eval_mode import eval_mode
from analysis.plots import dream as plots
from analysis.settings import DreamSettings, as_plain

PANELS = {DreamMode.seed: plots.seed_panels, DreamMode.octaves: plots.octave_panels, DreamMode.tiled: plots.tiled_panels}


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


def record_dreams(
    writer: tracking.RunWriter, network: torch.nn.Module, settings: DreamSettings, step: int, progress: bool = True
) -> dict[str, float]:
    """Dream every mode of ``settings`` on its photo, then log the results; returns the logged metrics."""
    image, name = load_photo(settings.image, settings.max_side)
    with eval_mode(network):
        results = {mode: run_dream(network, image, mode, settings, progress) for mode in settings.modes}
    panels = {mode: PANELS[mode](result) for mode, result in results.items()}
    metrics: dict[str, float] = {}
    for mode, result in results.items():
        folder = tracking.dream_folder(mode, name)
        writer.figure(f"{folder}/panels.png", panels[mode])
        writer.image(f"{folder}/final.png", result.image)
        used = {**as_plain(settings), "mode": str(mode), "image_name": name, "image_shape": list(image.shape)}
        writer.text(f"{folder}/config.yaml", yaml.safe_dump(used, sort_keys=True))
        metrics[tracking.dream_metric(mode, "objective_before")] = result.objective_before
        metrics[tracking.dream_metric(mode, "objective_after")] = result.objective_after
        metrics[tracking.dream_metric(mode, "objective_gain")] = result.objective_gain
    writer.metrics(metrics, step=step)
    return metrics


class DreamLogger(PeriodicAnalysis):
    """Dreams with the trained CNN at the end of training (and every ``every_n_epochs`` epochs) into the run.

    :param settings: what to dream and when (the ``dream`` config section).
    """

    settings: DreamSettings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int) -> None:
        record_dreams(writer, pl_module.network, self.settings, epoch, progress=trainer.progress_bar_callback is not None)
