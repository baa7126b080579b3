"""OIPs — input patterns that maximise each map of each conv layer — logged into a CNN's MLflow run.

:func:`record_oips` renders every configured (layer, init) as one batch per layer and logs
``oip/<layer>_<init>.png`` (grid; also a stepped image so the UI shows patterns forming over epochs),
``oip/<layer>_<init>.npz`` (patterns, initial, final, dead), ``oip/activation.csv`` and the metrics
``oip/<layer>/mean_final_activation`` and ``oip/<layer>/dead_maps``; with ``final``, also what the network sees in
each OIP, ``oip/predictions_<layer>.csv``, and — given the validation images — every map's most activating images
beside its OIP, ``oip/examples_<layer>.png`` + ``.npz`` (one pass over the data for all layers). Shared by
:class:`OIPLogger` and ``latentdream oip RUN_ID``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import tracking
from analysis.callbacks.health import health_of
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.eval_mode import eval_mode
from analysis.oip.examples import top_examples
from analysis.oip.predictions import class_probabilities, prediction_table
from analysis.oip.render import OIPResult, oip_table, render_all
from analysis.plots.health import flag_unhealthy
from analysis.plots.oip import examples_figure, oip_grid
from analysis.settings import OIPSettings
from latentdream.stopping import check_stop, deferred


EXAMPLES_BATCH = 500  # validation images per forward pass when the dataset examples are searched


def oip_metrics(results: Sequence[OIPResult]) -> dict[str, float]:
    """Per layer: mean achieved activation over its live maps, and the number of dead maps (over all inits)."""
    out = {}
    for layer in dict.fromkeys(r.layer for r in results):
        rows = [r for r in results if r.layer == layer]
        activation = np.concatenate([r.activation for r in rows])
        dead = np.concatenate([r.dead for r in rows])
        out[tracking.oip_metric(layer, "mean_final_activation")] = float(activation[~dead].mean()) if (~dead).any() else 0.0
        out[tracking.oip_metric(layer, "dead_maps")] = float(dead.sum())
    return out


@deferred()  # a signal only requests the stop: the units of work check it, a write is never cut
def record_oips(
    writer: tracking.RunWriter, network: torch.nn.Module, settings: OIPSettings, step: int, progress: bool = True,
    final: bool = True, data: Iterable | None = None, health: str | None = None,
) -> list[OIPResult]:
    """Render the OIPs of ``settings`` with ``network`` and log them at ``step`` (all figures are drawn before the
    first write, so a failure leaves the run as it was).

    :param final: also log the class probabilities of the OIPs and (with ``data``) the dataset examples; False
        (after an epoch, during training) logs only what steps over the epochs.
    :param data: the validation images in a fixed order (batches of (B, C, H, W) or tuples starting with them).
    :param health: the run's health verdict (tag ``health``); one that is not ``ok`` heads every grid's title.
    """
    with eval_mode(network):
        results = render_all(network, settings, progress)
        extra = _final_extras(network, settings, results, data) if final else {}
    grids = [flag_unhealthy(oip_grid(r, shared_scale=settings.shared_scale, preset=settings.preset), health)
             for r in results]
    check_stop()  # a stop requested while drawing: nothing of this analysis is written
    for r, grid in zip(results, grids):
        stem = tracking.oip_stem(r.layer, r.init)
        writer.figure(f"{stem}.png", grid, step_key=stem, step=step)
        writer.npz(f"{stem}.npz", patterns=r.patterns.astype(np.float32), initial=r.initial, final=r.final,
                   dead=r.dead, maps=r.maps)
    writer.table(tracking.OIP_ACTIVATION, oip_table(results))
    for path, (kind, value) in extra.items():
        if kind == "table":
            writer.table(path, value)
        elif kind == "npz":
            writer.npz(path, **value)
        else:
            writer.figure(path, value)
    writer.metrics(oip_metrics(results), step=step)
    return results


def _final_extras(network: torch.nn.Module, settings: OIPSettings, results: Sequence[OIPResult],
                  data: Iterable | None) -> dict[str, tuple[str, object]]:
    """Artifact path → (kind, content): ``oip/predictions_<layer>.csv`` per layer (every init's rows) and, with
    ``data`` and ``settings.examples`` > 0, ``oip/examples_<layer>.npz`` + ``.png`` beside the first init's OIPs."""
    out: dict[str, tuple[str, object]] = {}
    for layer in dict.fromkeys(r.layer for r in results):
        rows = [prediction_table(r.init, r.maps, class_probabilities(network, r.patterns), r.dead)
                for r in results if r.layer == layer]
        out[tracking.oip_predictions_csv(layer)] = ("table", pd.concat(rows, ignore_index=True))
    if data is None or settings.examples == 0:
        return out
    examples = top_examples(network, data, settings.layers, k=settings.examples)
    first = {r.layer: r for r in reversed(results)}  # each layer's OIPs of its first init
    for layer, ex in examples.items():
        out[tracking.oip_examples_npz(layer)] = ("npz", {"indices": ex.indices, "activations": ex.activations})
        out[tracking.oip_examples_png(layer)] = ("figure", examples_figure(layer, ex.images, first.get(layer),
                                                                        n_data=ex.n_images))
    return out


class OIPLogger(PeriodicAnalysis):
    """Renders OIPs at the end of training (and every ``every_n_epochs`` epochs) into the run.

    :param settings: what to render and when (the ``oip`` config section).
    """

    settings: OIPSettings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int,
               final: bool) -> None:
        settings = self.settings
        if not final and settings.epoch_steps is not None:  # during training: the cheaper render
            settings = replace(settings, steps=settings.epoch_steps)
        data = None
        if final and settings.examples > 0:
            data = trainer.datamodule.images_dataloader("val", batch_size=EXAMPLES_BATCH)  # on the trainer's device
        record_oips(writer, pl_module.network, settings, epoch, progress=trainer.progress_bar_callback is not None,
                    final=final, data=data, health=health_of(trainer) if final else None)
