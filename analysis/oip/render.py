"""OIPs ("original input patterns"): for every map of a conv layer, the input image that maximises its mean activation.

The objective is the map's mean *post-ReLU* activation (``oip.rectify``, the default; the reference's Keras conv
layers include the ReLU); ``rectify=False`` maximises the pre-ReLU mean instead, which for ``conv1`` is linear in
the pixels, so its optimum is a nearly uniform image (all 0 or all 1) rather than the tiled small-scale patterns the
reference shows. The recipe around it is a preset (:mod:`analysis.oip.presets`): ``lucent`` (default) keeps the
post-ReLU gradient alive while a map is silent (``redirect``, see :func:`analysis.oip.objectives.channel`) and adds
jitter, blur and a clamp; ``reference`` is the reference's plain normalised ascent with the plain ReLU gradient, so
maps silent on their start image stay dead, as in the reference.

All selected maps are optimised as ONE batch — image b maximises map ``maps[b]`` (:func:`batch_channels`) — which
is what makes rendering all 128 maps of ``conv3`` cheap. ``batched=False`` runs the identical per-element math map
by map; it exists for the benchmark and the equivalence test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.oip.ascent import AscentResult, ascend
from analysis.oip.hooks import activations, map_count
from analysis.oip.objectives import batch_channels
from analysis.oip.params import Init, make_init
from analysis.oip.transforms import jitter as make_jitter
from latentdream.errors import InputError

if TYPE_CHECKING:
    from analysis.settings import OIPSettings

DEAD_EPS = 1e-4  # post-ReLU mean activation at or below this counts as "the map never fires"


@dataclass(frozen=True)
class OIPResult:
    """OIPs of some maps of one layer; arrays are numpy on the CPU, one row per map.

    :ivar maps: (M,) map indices.
    :ivar patterns: (M, H, W) float32 optimised images (channel axis dropped for 1-channel models; (M, H, W, C)
        otherwise).
    :ivar initial, final: (M,) objective (mean of the map, post-ReLU if ``rectify``) before and after the ascent,
        on the unjittered images.
    :ivar activation: (M,) post-ReLU mean of the map on its OIP — what the network passes on.
    :ivar dead: (M,) True where the map does not fire on its OIP (activation <= :data:`DEAD_EPS`) or its objective
        never had a gradient.
    :ivar history: (steps, M) objective per step.
    """

    layer: str
    init: str
    maps: np.ndarray
    patterns: np.ndarray
    initial: np.ndarray
    final: np.ndarray
    activation: np.ndarray
    dead: np.ndarray
    history: np.ndarray


def _check_maps(maps: Sequence[int] | np.ndarray | None, layer: str, n_maps: int) -> np.ndarray:
    if maps is None:
        return np.arange(n_maps)
    idx = np.atleast_1d(np.asarray(maps))
    if idx.size == 0 or idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise InputError(f"maps must be a non-empty list of integers, got {maps!r}")
    bad = idx[(idx < 0) | (idx >= n_maps)]
    if bad.size:
        raise InputError(f"map index {int(bad[0])} out of range for layer {layer!r}; allowed: 0..{n_maps - 1}")
    return idx.astype(np.int64)


def post_relu_mean(model: nn.Module, layer: str, maps: np.ndarray, images: torch.Tensor) -> torch.Tensor:
    """(M,) mean over positions of ``relu(A[b, maps[b]])`` for images (M, C, H, W)."""
    with torch.no_grad():
        out = activations(model, images, [layer])[layer]
        rows = torch.arange(len(maps), device=out.device)
        return torch.relu(out[rows, torch.as_tensor(maps, device=out.device)]).mean(dim=(1, 2))


def render_oips(
    model: nn.Module,
    layer: str,
    init: Init | str,
    settings: OIPSettings,
    *,
    batched: bool = True,
    size: int | None = None,
    progress: bool = False,
) -> OIPResult:
    """Optimise one input image per map of ``layer`` (``settings.maps``, default all) so that the map's mean
    activation is maximal (post-ReLU with ``settings.rectify``, the default, else pre-ReLU), starting from ``init``;
    the recipe is ``settings.resolved()``: the preset's values where the settings leave them null.

    The starting images for all maps of the layer are drawn once from ``settings.seed`` (:func:`make_init`) and
    picked by map index, and the jitter shifts come from a generator seeded with ``seed + 1`` afresh for every
    :func:`ascend` call. Hence ``batched=True`` (one batch of M images) and ``batched=False`` (M runs of one image)
    compute the same patterns, and a map's OIP does not depend on which other maps are rendered with it.

    :param init: starting images, an :class:`~analysis.oip.params.Init`.
    :param settings: preset, steps, step size, optimizer, jitter, blur, decay, clip, rectify, redirect, seed (the
        ``oip`` section).
    :param size: image side; default ``model.image_size`` or 28.
    :raises InputError: unknown layer, map index out of range, unknown init.
    """
    s = settings.resolved()
    n_maps = map_count(model, layer)
    idx = _check_maps(s.maps, layer, n_maps)
    size = size or getattr(model, "image_size", 28)
    channels = getattr(model, "in_channels", 1)
    # one start per map of the layer, picked by map index: map k's OIP does not depend on which other maps are rendered
    start = make_init(init, n_maps, size, torch.Generator().manual_seed(s.seed), channels=channels)[torch.as_tensor(idx)]

    def run(rows: slice) -> AscentResult:
        shifts = make_jitter(s.jitter, torch.Generator().manual_seed(s.seed + 1)) if s.jitter else None
        objective = batch_channels(layer, idx[rows], rectify=s.rectify, redirect=s.redirect)
        return ascend(model, objective, start[rows], steps=s.steps, lr=s.lr, optimizer=s.optimizer,
                      transforms=shifts, l2_decay=s.l2_decay, blur_every=s.blur_every, blur_sigma=s.blur_sigma,
                      clip=(0.0, 1.0) if s.clip else None, progress=progress and batched, desc=f"OIPs {layer}")

    if batched:
        parts = [run(slice(None))]
    else:
        parts = [run(slice(i, i + 1)) for i in tqdm(range(len(idx)), desc=f"OIPs {layer} (serial)",
                                                       disable=None if progress else True, leave=False)]
    images = torch.cat([p.images for p in parts])
    activation = post_relu_mean(model, layer, idx, images)
    grad_abs = torch.cat([p.grad_abs for p in parts])
    dead = (activation <= DEAD_EPS) | (grad_abs == 0)

    patterns = images.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
    if patterns.shape[-1] == 1:
        patterns = patterns[..., 0]

    def cat(field: str, dim: int = 0) -> np.ndarray:
        return torch.cat([getattr(p, field) for p in parts], dim=dim).cpu().numpy()

    return OIPResult(layer=layer, init=str(init), maps=idx, patterns=patterns, initial=cat("initial"), final=cat("final"),
                     activation=activation.cpu().numpy(), dead=dead.cpu().numpy(), history=cat("history", dim=1))


def render_all(model: nn.Module, settings: OIPSettings, progress: bool = False) -> list[OIPResult]:
    """OIPs of the selected maps of every (layer, init) of ``settings``, all maps of a layer in one batch."""
    return [render_oips(model, layer, init, settings, progress=progress)
            for layer in settings.layers for init in settings.inits]


def oip_table(results: OIPResult | Iterable[OIPResult]) -> pd.DataFrame:
    """One row per (layer, init, map) for ``oip/activation.csv``.

    Columns: layer, init, map, initial, final, activation, dead.
    """
    if isinstance(results, OIPResult):
        results = [results]
    frames = [
        pd.DataFrame({"layer": r.layer, "init": r.init, "map": r.maps, "initial": r.initial, "final": r.final,
                      "activation": r.activation, "dead": r.dead})
        for r in results
    ]
    columns = ["layer", "init", "map", "initial", "final", "activation", "dead"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
