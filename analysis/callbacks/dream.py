"""Deep dreams of a trained CNN on a photo, logged into its MLflow run (the reference's third post).

:func:`record_dreams` runs the configured modes (``seed``, ``octaves``, ``tiled``) and logs, per mode,
``dream/<mode>_<name>/panels.png``, ``final.png`` (the photo's full resolution), ``config.yaml`` and the metrics
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
from latentdream.stopping import check_stop, deferred

PANELS = {DreamMode.seed: plots.seed_panels, DreamMode.octaves: plots.octave_panels, DreamMode.tiled: plots.tiled_panels}


def read_photo(path: str | None) -> tuple[np.ndarray, str]:
    """The photo to dream on at its full resolution, grayscale (H, W) in [0, 1], and its name (the file's stem);
    with no path, the flower photo bundled with scikit-learn ("flower").

    :raises InputError: missing file, not an image, smaller than 28×28 (from :func:`analysis.dream.load_image`).
    """
    image = dreams.load_image(path) if path else dreams.default_image()
    return image.astype(np.float32), Path(path).stem if path else "flower"


def load_photo(path: str | None, max_side: int) -> tuple[np.ndarray, str]:
    """:func:`read_photo` shrunk to ``max_side``: the image the dreams work on, and its name."""
    image, name = read_photo(path)
    return dreams.shrink(image, max_side), name


@deferred()  # a signal only requests the stop: the units of work check it, a write is never cut
def record_dreams(
    writer: tracking.RunWriter, network: torch.nn.Module, settings: DreamSettings, step: int, progress: bool = True
) -> dict[str, float]:
    """Dream every mode of ``settings`` on its photo (shrunk to ``max_side``), then log the results; returns the
    logged metrics. ``final.png`` is the photo at its full resolution with the dream's change applied
    (:func:`analysis.dream.transfer_change`). Everything is computed before the first write."""
    full, name = read_photo(settings.image)
    image = dreams.shrink(full, settings.max_side)
    with eval_mode(network):
        results = {mode: run_dream(network, image, mode, settings, progress) for mode in settings.modes}
    finals = {mode: dreams.transfer_change(full, image, result.image) for mode, result in results.items()}
    panels = {mode: PANELS[mode](result) for mode, result in results.items()}
    metrics: dict[str, float] = {}
    check_stop()  # a stop requested while drawing: nothing of these dreams is written
    for mode, result in results.items():
        folder = tracking.dream_folder(mode, name)
        writer.figure(f"{folder}/panels.png", panels[mode])
        writer.image(f"{folder}/final.png", finals[mode])
        # the photo by its file name only: its full path (which may come from ${oc.env:...}) is never logged
        used = {**as_plain(settings), "image": Path(settings.image).name if settings.image else None,
                "mode": str(mode), "image_name": name, "image_shape": list(image.shape),
                "final_shape": list(full.shape)}
        writer.text(f"{folder}/config.yaml", yaml.safe_dump(used, sort_keys=True))
        metrics[tracking.dream_metric(mode, tracking.DREAM_OBJECTIVE_BEFORE)] = result.objective_before
        metrics[tracking.dream_metric(mode, tracking.DREAM_OBJECTIVE_AFTER)] = result.objective_after
        metrics[tracking.dream_metric(mode, tracking.DREAM_OBJECTIVE_GAIN)] = result.objective_gain
    writer.metrics(metrics, step=step)
    return metrics


class DreamLogger(PeriodicAnalysis):
    """Dreams with the trained CNN at the end of training (and every ``every_n_epochs`` epochs) into the run.

    :param settings: what to dream and when (the ``dream`` config section).
    """

    settings: DreamSettings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int,
               final: bool) -> None:
        record_dreams(writer, pl_module.network, self.settings, epoch, progress=trainer.progress_bar_callback is not None)
