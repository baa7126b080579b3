"""OIPs — input patterns that maximise each map of each conv layer — logged into a CNN's MLflow run.

:func:`record_oips` renders every configured (layer, init) as one batch per layer and logs
``oip/<layer>_<init>.png`` (grid; also a stepped image so the UI shows patterns forming over epochs),
``oip/<layer>_<init>.npz`` (patterns, initial, final, dead), ``oip/activation.csv`` and the metrics
``oip/<layer>/mean_final_activation`` and ``oip/<layer>/dead_maps``. Shared by :class:`OIPLogger` and
``latentdream oip RUN_ID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from lightning import LightningModule, Trainer
from typing_extensions import override

from analysis import tracking
from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.oip.render import OIPResult, oip_table, render_oips
from analysis.plots.oip import oip_grid

D = tracking.OIP_DIR


@dataclass(frozen=True)
class OIPSettings:
    """The ``oip`` config section as plain values (keys equal the config keys)."""

    layers: Sequence[str] = ("conv1", "conv2", "conv3")
    maps: Sequence[int] | None = None
    inits: Sequence[str] = ("random",)
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


def render_all(network: torch.nn.Module, s: OIPSettings, progress: bool = True) -> list[OIPResult]:
    """OIPs of the selected maps of every (layer, init) of ``s``, all maps of a layer in one batch."""
    return [
        render_oips(network, layer, s.maps, init, steps=s.steps, seed=s.seed, lr=s.lr, optimizer=s.optimizer,
                    jitter=s.jitter, blur_every=s.blur_every, blur_sigma=s.blur_sigma, l2_decay=s.l2_decay,
                    clip=(0.0, 1.0) if s.clip else None, rectify=s.rectify, progress=progress)
        for layer in s.layers
        for init in s.inits
    ]


def oip_metrics(results: Sequence[OIPResult]) -> dict[str, float]:
    """Per layer: mean achieved activation over its live maps, and the number of dead maps (over all inits)."""
    out = {}
    for layer in dict.fromkeys(r.layer for r in results):
        rows = [r for r in results if r.layer == layer]
        activation = np.concatenate([r.activation for r in rows])
        dead = np.concatenate([r.dead for r in rows])
        out[f"{D}/{layer}/mean_final_activation"] = float(activation[~dead].mean()) if (~dead).any() else 0.0
        out[f"{D}/{layer}/dead_maps"] = float(dead.sum())
    return out


def record_oips(
    writer: tracking.RunWriter, network: torch.nn.Module, settings: OIPSettings, step: int, progress: bool = True
) -> list[OIPResult]:
    """Render the OIPs of ``settings`` with ``network`` and log them at ``step``."""
    was_training = network.training
    network.eval()
    try:
        results = render_all(network, settings, progress)
    finally:
        network.train(was_training)
    for r in results:
        name = f"{D}/{r.layer}_{r.init}"
        writer.figure(f"{name}.png", oip_grid(r), step_key=name, step=step)
        writer.npz(f"{name}.npz", patterns=r.patterns.astype(np.float32), initial=r.initial, final=r.final,
                   dead=r.dead, maps=r.maps)
    writer.table(f"{D}/activation.csv", oip_table(results))
    writer.metrics(oip_metrics(results), step=step)
    return results


class OIPLogger(PeriodicAnalysis):
    """Renders OIPs at the end of training (and every ``every_n_epochs`` epochs) into the run.

    :param settings: what to render (the ``oip`` config section).
    :param every_n_epochs: also render after every n-th epoch (0: only at the end).
    """

    def __init__(self, settings: OIPSettings, every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        self.settings = settings

    @override
    def record(self, trainer: Trainer, pl_module: LightningModule, writer: tracking.RunWriter, epoch: int) -> None:
        record_oips(writer, pl_module.network, self.settings, epoch, progress=trainer.progress_bar_callback is not None)
