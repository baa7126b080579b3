"""OIPs — input patterns that maximise each map of each conv layer — logged into a CNN's MLflow run.

:func:`record_oips` renders every configured (layer, init) as one batch per layer and logs
``oip/<layer>_<init>.png`` (grid; also a stepped image so the UI shows patterns forming over epochs),
``oip/<layer>_<init>.npz`` (patterns, initial, final, dead), ``oip/activation.csv`` and the metrics
``oip/<layer>/mean_final_activation`` and ``oip/<layer>/dead_maps``. Shared by :class:`OIPLogger` and
``latentdream oip RUN_ID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import tracking
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.eval_mode import eval_mode
from analysis.oip.render import OIPResult, oip_table, render_all
from analysis.plots.oip import oip_grid
from analysis.settings import OIPSettings
from latentdream.stopping import check_stop, deferred


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
    writer: tracking.RunWriter, network: torch.nn.Module, settings: OIPSettings, step: int, progress: bool = True
) -> list[OIPResult]:
    """Render the OIPs of ``settings`` with ``network`` and log them at ``step`` (all grids are drawn before the
    first write, so a failure leaves the run as it was)."""
    with eval_mode(network):
        results = render_all(network, settings, progress)
    grids = [oip_grid(r, shared_scale=settings.shared_scale) for r in results]
    check_stop()  # a stop requested while drawing: nothing of this analysis is written
    for r, grid in zip(results, grids):
        stem = tracking.oip_stem(r.layer, r.init)
        writer.figure(f"{stem}.png", grid, step_key=stem, step=step)
        writer.npz(f"{stem}.npz", patterns=r.patterns.astype(np.float32), initial=r.initial, final=r.final,
                   dead=r.dead, maps=r.maps)
    writer.table(tracking.OIP_ACTIVATION, oip_table(results))
    writer.metrics(oip_metrics(results), step=step)
    return results


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
        record_oips(writer, pl_module.network, settings, epoch, progress=trainer.progress_bar_callback is not None)
