"""Mode 3: a large photo dreamt in 28×28 tiles, the tiling shifted at random every step so no seams remain.

One step: roll the image by a random (dy, dx) ∈ [0, tile)², cut it into non-overlapping tiles (reflect-padded
to a multiple of ``tile``), give every tile one normalised ascent step of the engine, reassemble, roll back.
Each tile is one batch element of :func:`~analysis.oip.ascent.ascend`, so it gets its own normalised step
``lr · g / mean|g|`` — as if each tile were offered to the CNN as an input (the reference's second option).
A fixed tiling would leave visible seams where independently normalised tiles meet; the random offset moves
the tile borders every step, so on average every pixel sits inside a tile.

Memory stays bounded: the engine sees ``batch_tiles`` tiles at a time. ``batched=False`` runs the identical
math one tile at a time (for the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.dream.common import DreamResult, dream_objective, evaluate, image_tensor, model_device
from analysis.dream.images import MIN_SIDE, to_array
from analysis.dream.windows import tiles, untile
from analysis.oip.ascent import ascend
from latentdream.errors import InputError

if TYPE_CHECKING:
    from analysis.settings import DreamSettings


@dataclass(frozen=True, eq=False)
class TiledDream(DreamResult):
    """Result of :func:`dream_tiled`; ``objective_before/after`` are means over the unshifted tiling.

    :ivar history: (steps,) mean tile objective before each step (on the shifted tiling).
    :ivar offsets: (steps, 2) int, the (dy, dx) roll of each step.
    :ivar n_tiles: tiles per step.
    :ivar snapshot_steps: the steps after which :attr:`snapshots` were taken (up to :data:`SNAPSHOTS`, evenly
        spaced, the last one the final step).
    :ivar snapshots: (H, W) image after each of those steps (the progression), clipped to [0, 1].
    :ivar snapshot_objectives: the objective (mean over the unshifted tiling) of each snapshot.
    """

    history: np.ndarray
    offsets: np.ndarray
    n_tiles: int
    snapshot_steps: tuple[int, ...]
    snapshots: tuple[np.ndarray, ...]
    snapshot_objectives: tuple[float, ...]


SNAPSHOTS = 4  # images of the progression a tiled dream keeps


TILED_LR = 0.01  # the tiled mode's step size when ``dream.lr`` is null, in units of the tile's mean |gradient|


def dream_tiled(
    model: nn.Module,
    image: np.ndarray | str | Path,
    settings: DreamSettings,
    *,
    tile: int = MIN_SIDE,
    batched: bool = True,
    roll: bool = True,
    clip: tuple[float, float] | None = (0.0, 1.0),
    progress: bool = False,
) -> TiledDream:
    """Dream ``settings.layer_target`` into every ``tile``×``tile`` tile of ``image``, with a random tiling offset per
    step.

    ``settings`` gives the objective (``layer_target``: ``"conv3"``, ``"conv3:56"``, ``{"conv2": 0.5, "conv3": 1.0}``,
    and its ``response``: post-ReLU by default),
    ``steps`` (each tile gets one normalised step per step; 0 returns the image unchanged), ``lr`` (null:
    :data:`TILED_LR`, in units of the tile's mean |gradient|), ``tile_batch`` (tiles per engine call; bounds the
    memory of the forward/backward pass) and ``seed`` (the offsets).

    :param image: (H, W) grayscale in [0, 1] (or an image file, read as gray), H, W >= ``tile``.
    :param tile: tile side in px (the CNN's input side, 28).
    :param batched: False processes one tile at a time (same result, slower; for benchmarks).
    :param roll: shift the tiling at random each step (False: fixed tiling, which leaves seams).
    :param clip: clamp to [lo, hi] after every step (None: no clamp); the output is clipped to [0, 1] anyway.
    :raises InputError: bad image, unknown layer, map out of range, tile < 8.
    """
    s = settings
    steps, lr = s.steps, TILED_LR if s.lr is None else s.lr
    if tile < 8:
        raise InputError(f"tile must be >= 8 px, got {tile}")
    objective = dream_objective(s.layer_target, s.response)
    x = image_tensor(image, model_device(model))
    if min(x.shape[-2:]) < tile:
        raise InputError(f"image is {x.shape[-2]}×{x.shape[-1]} px; tiles of {tile} px need at least {tile}×{tile}")
    shape = tuple(x.shape[-2:])
    chunk = int(s.tile_batch) if batched else 1
    before = float(evaluate(model, objective, tiles(x, tile), chunk).mean())
    gen = torch.Generator().manual_seed(s.seed)
    keep = sorted({round(steps * (i + 1) / SNAPSHOTS) for i in range(SNAPSHOTS)} - {0})

    img, history, offsets, snapshots = x, [], [], []
    for step in tqdm(range(1, steps + 1), desc="tiled dream", disable=None if progress else True, leave=False):
        dy, dx = torch.randint(0, tile, (2,), generator=gen).tolist() if roll else (0, 0)
        batch = tiles(torch.roll(img, (dy, dx), dims=(-2, -1)), tile)
        stepped, values = [], []
        for part in batch.split(chunk):
            # measure=False: the objective before/after each one-step call would cost two more forward passes
            res = ascend(model, objective, part, steps=1, lr=lr, optimizer="normalized", clip=clip, measure=False)
            stepped.append(res.images)
            values.append(res.history[0])
        img = torch.roll(untile(torch.cat(stepped), shape), (-dy, -dx), dims=(-2, -1))
        history.append(float(torch.cat(values).mean()))
        offsets.append((dy, dx))
        if step in keep:
            snapshots.append(img.clamp(0.0, 1.0))

    final = img.clamp(0.0, 1.0)
    snapshot_objectives = tuple(float(evaluate(model, objective, tiles(im, tile), chunk).mean()) for im in snapshots)
    return TiledDream(
        original=to_array(x),
        image=to_array(final),
        objective_before=before,
        # the last step is always a snapshot, and its image is the final one
        objective_after=snapshot_objectives[-1] if snapshots else before,
        history=np.asarray(history, dtype=np.float32),
        offsets=np.asarray(offsets, dtype=np.int64).reshape(-1, 2),
        n_tiles=int(tiles(x, tile).shape[0]),
        snapshot_steps=tuple(keep),
        snapshots=tuple(to_array(im) for im in snapshots),
        snapshot_objectives=snapshot_objectives,
    )
