"""Mode 1, the reference's first recipe: one map "dreams" on the 28×28 downscaled photo, details re-added.

Preparation: ``small = downscale(x)`` to 28×28, ``lost = x − upscale(small)`` (bicubic both ways). Then
``cycles`` times: ascend the objective (the map's ``dream.response``, post-ReLU by default, as the OIPs) for ``steps`` steps on the 28×28 image, ``full = upscale(dream) + lost``,
``small = downscale(full)``. With ``steps = 0`` this returns ``x`` itself (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.dream.common import DreamResult, check_non_negative, dream_objective, evaluate, image_tensor, model_device
from analysis.dream.images import MIN_SIDE, contrast_stretch, detail, downscale, to_array, upscale
from analysis.oip.ascent import ascend
from analysis.oip.transforms import jitter as make_jitter

if TYPE_CHECKING:
    from analysis.settings import DreamSettings


@dataclass(frozen=True, eq=False)
class SeedDream(DreamResult):
    """Result of :func:`dream_seed` — the reference's four panels plus the per-cycle 28×28 images.

    :ivar dream28: (28, 28) the last cycle's ascent output, the OIP-like pattern (within ``clip``).
    :ivar upscaled: (H, W) ``upscale(dream28)``, the dream "on the blurry vision level".
    :ivar stretched: (H, W) ``contrast_stretch`` of the final image before its clip to [0, 1] (details re-added).
    :ivar cycle_images: (cycles, 28, 28) ascent output of every cycle.
    :ivar target: what was maximised, e.g. ``"conv3:56 post_relu"`` (the map and ``dream.response``).
    ``objective_before/after`` are the objective of ``downscale(original)`` and ``downscale(image)``.
    """

    dream28: np.ndarray
    upscaled: np.ndarray
    stretched: np.ndarray
    cycle_images: np.ndarray
    target: str = ""


# the seed mode's step size when ``dream.lr`` is null, in units of the mean |gradient|: on a CNN trained for 2
# epochs, map conv3:56 is off everywhere on both bundled photos, and 4 × 20 steps of 0.003 did not wake it
SEED_LR = 0.01


def dream_seed(
    model: nn.Module,
    image: np.ndarray | str | Path,
    settings: DreamSettings,
    *,
    optimizer: str = "normalized",
    jitter: int = 0,
    clip: tuple[float, float] | None = (0.0, 1.0),
    progress: bool = False,
) -> SeedDream:
    """Dream ``settings.objective`` into ``image`` at the CNN's 28×28 resolution, keeping the photo's fine detail.

    ``settings`` gives ``objective`` (``"conv3:56"``, ``"conv3"``) and its ``response`` (``post_relu``, the default:
    the mean activation the network passes on, as the OIPs; a map off everywhere gets the pre-ReLU gradient until it
    fires, see :func:`~analysis.dream.common.push_silent`; ``pre_relu``: the conv output), ``cycles`` (downscale → ascend → upscale + detail
    rounds), ``steps`` per cycle (0 switches the ascent off: the output is the input), ``lr`` (null:
    :data:`SEED_LR`; for ``"normalized"`` in units of the mean |gradient| per step, pixel values are 0..1),
    ``low_pct``/``high_pct`` (percentiles mapped to 0 and 1 by the final contrast stretch) and ``seed`` (the jitter).

    :param model: a CNN with 28×28 inputs (e.g. ``MnistCNN``); runs on its own device, left unchanged.
    :param image: (H, W) grayscale in [0, 1] (or an image file, read as gray), H, W >= 28.
    :param optimizer: ``"normalized"`` (the reference's normalised-gradient OIP loop) or ``"adam"``.
    :param jitter: random roll of up to ± ``jitter`` px before each forward pass (0: none, as the reference).
    :param clip: clamp the 28×28 image to [lo, hi] after each step (default: the photo's [0, 1], as the OIPs;
        None: no clamp, as the reference — its dream then leaves [0, 1] by far, and the final image, clipped
        to [0, 1], loses what the map responded to).
    :raises InputError: bad image, unknown layer, map index out of range.
    """
    cycles, steps = settings.cycles, settings.steps
    lr = SEED_LR if settings.lr is None else settings.lr
    check_non_negative(jitter=jitter)
    objective = dream_objective(settings.objective, settings.response)
    x = image_tensor(image, model_device(model))
    shape = tuple(x.shape[-2:])
    lost = detail(x, MIN_SIDE)
    small = downscale(x, MIN_SIDE)
    before = float(evaluate(model, objective, small)[0])  # also validates layer and map before any work
    transforms = make_jitter(jitter, torch.Generator().manual_seed(settings.seed)) if jitter else None

    dreams = []
    full = x
    for _ in tqdm(range(cycles), desc="dream seed", disable=None if progress else True, leave=False):
        dream = ascend(model, objective, small, steps=steps, lr=lr, optimizer=optimizer, transforms=transforms,
                       clip=clip, desc="cycle").images
        dreams.append(dream)
        full = upscale(dream, shape) + lost
        small = downscale(full, MIN_SIDE)

    final = full.clamp(0.0, 1.0)
    after = float(evaluate(model, objective, downscale(final, MIN_SIDE))[0])
    return SeedDream(
        original=to_array(x),
        image=to_array(final),
        objective_before=before,
        objective_after=after,
        dream28=to_array(dreams[-1]),
        upscaled=to_array(upscale(dreams[-1], shape)),
        stretched=contrast_stretch(to_array(full), settings.low_pct, settings.high_pct),
        cycle_images=to_array(torch.cat(dreams)).reshape(cycles, MIN_SIDE, MIN_SIDE),
        target=f"{settings.objective} {settings.response}",
    )
