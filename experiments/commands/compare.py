"""Two classifier runs compared by what their maps do, for ``latentdream compare`` (:mod:`experiments.commands.runs`).

Both networks are rebuilt from their runs (config + weights, never unpickled) and see the same probe set: the first
:data:`PROBE_SIZE` validation images of the first run's data, in their fixed order. From their post-ReLU
activations on it:

* ``compare/map_matching_<layer>.csv`` — the maps of each conv layer both runs have, matched one to one by the
  correlation of their activations (an optimal assignment, :mod:`analysis.compare.matching`);
* ``compare/oip_<layer>_<init>_matched.png`` — the runs' OIPs paired by that matching, highest correlation first;
* ``compare/cka.csv`` + ``compare/cka.png`` — linear CKA between every layer of one and every layer of the other,
  and the metrics ``compare/cka/<layer>`` for the layers of the same name.

Map k of one network has nothing to do with map k of an independently trained one, so the index-order pages
``compare/oip_<layer>_<init>_maps<a>-<b>.png`` are drawn only for runs from the same initial weights
(:func:`same_start`): there map k of each began as the same filter, and the pages follow one network's maps along
different training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from analysis import tracking
from analysis.compare.cka import cka_table
from analysis.compare.matching import map_correlation, match_maps
from analysis.compare.probe import probe_activations
from analysis.oip.hooks import conv_layer_names
from analysis.plots import compare as plots
from latentdream.errors import InputError
from lightning_modules.data.arrays import images_of

PROBE_SIZE = 500  # validation images every compared network sees (all of them where the split is smaller)
PROBE_BATCH = 250


@dataclass
class MapComparison:
    """What the map comparison adds to a comparison run: artifact path → table / figure, metric → value."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def same_start(configs: Sequence[Mapping[str, str]]) -> bool:
    """Whether runs began from the same initial weights: equal ``trainer.seed`` and equal ``model.*`` config (the
    seed fixes the initialisation of a given architecture)."""
    def start(config: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in config.items() if k == "trainer.seed" or k.startswith("model.")}

    return "trainer.seed" in configs[0] and all(start(c) == start(configs[0]) for c in configs[1:])


def _network(client: Any, run_id: str, tmp: Path):
    """The run's config and its trained network (in eval mode, where the run's analyses would compute)."""
    from experiments.commands.analyze import LoggedRun
    from experiments.run.config import load_experiment

    try:
        path = client.download_artifacts(run_id, tracking.CONFIG_ARTIFACT, str(tmp / f"cfg_{run_id}"))
    except Exception:  # noqa: BLE001 - any failure means the run has no config
        raise InputError(f"run {run_id} has no {tracking.CONFIG_ARTIFACT}") from None
    cfg = load_experiment(str(path), [])
    return cfg, LoggedRun(run_id, cfg, client, tracking.RunWriter(client, run_id), 0).load_network()


def probe_images(cfg: Any, n: int = PROBE_SIZE) -> torch.Tensor:
    """The first ``n`` validation images of ``cfg``'s data (fewer if the split is smaller), float (n, C, H, W)."""
    from experiments.run.build import build_datamodule

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    batch = next(iter(datamodule.images_dataloader("val", batch_size=n, device="cpu")))
    return images_of(batch).float().cpu()


def _matched_figures(oips: Mapping[str, tuple[list, list, list]], matchings: Mapping[str, pd.DataFrame],
                     labels: Sequence[str], out: MapComparison) -> None:
    """``compare/oip_<layer>_<init>_matched.png`` for every OIP stem both runs hold of a matched layer."""
    for stem, (pats, dead, maps) in oips.items():
        layer = max((name for name in matchings if stem.startswith(f"{name}_")), key=len, default=None)
        if layer is None:
            continue
        out.figures[tracking.compare_oip_matched_png(stem)] = plots.matched_oips(
            pats[:2], labels[:2], matchings[layer], dead=dead[:2], maps=maps[:2], title=f"OIPs of {stem}")


def map_comparison(client: Any, run_ids: Sequence[str], labels: Sequence[str], tmp: Path,
                   oips: Mapping[str, tuple[list, list, list]]) -> MapComparison:
    """Match the maps of the first two runs and measure CKA between their layers (see the module docstring).

    :param oips: OIP stem (``conv1_random``) → per run (patterns, dead, maps), as the runs logged them.
    :returns: the tables, figures and metrics; where a network or the probe data cannot be had, nothing but the
        reason in ``skipped``.
    """
    out = MapComparison()
    if len(run_ids) > 2:
        out.skipped["map_matching (runs after the second)"] = "map matching and CKA compare two runs: the first two"
    try:
        (cfg_a, net_a), (_, net_b) = (_network(client, i, tmp) for i in run_ids[:2])
        probe = probe_images(cfg_a)
    except InputError as err:
        out.skipped["map_matching, cka"] = str(err)
        return out
    batches = [probe[s:s + PROBE_BATCH] for s in range(0, len(probe), PROBE_BATCH)]
    acts_a = probe_activations(net_a, batches, conv_layer_names(net_a))
    acts_b = probe_activations(net_b, batches, conv_layer_names(net_b))
    matchings = {}
    for layer in (name for name in acts_a if name in acts_b):
        matchings[layer] = match_maps(map_correlation(acts_a[layer], acts_b[layer]))
        out.tables[tracking.compare_map_matching_csv(layer)] = matchings[layer]
    cka = cka_table(acts_a, acts_b)
    out.tables[tracking.COMPARE_CKA] = cka
    out.figures[tracking.COMPARE_CKA_PNG] = plots.cka_heatmap(cka, labels[:2])
    same_layer = cka[cka["layer_a"] == cka["layer_b"]]
    out.metrics = {tracking.compare_cka_metric(r.layer_a): float(r.cka) for r in same_layer.itertuples()}
    _matched_figures(oips, matchings, labels, out)
    return out
