"""Mode 2, classical DeepDream: an image pyramid, normalised gradient, roll jitter, detail re-injection.

At each octave the whole image is seen by the 28×28 CNN through sliding windows (:class:`Windowed`): the
objective is the mean over all windows, and autograd adds the gradients of overlapping windows. The conv layers run
once on the whole image and the windows' outputs are cut from it (exactly what each window's own pass gives, on a
window grid aligned to the layers' pooling: stride 14 → 16), so overlapping windows cost no extra convolutions; on
the CPU the image goes in with channels-last strides, where oneDNN's max-pool is much faster.

Octave k (shapes smallest first, the last is the photo's own): the dream of octave k − 1 is upscaled and the
detail the smaller octave lacks is added back, ``img = up(img) + (x_k − up(x_{k−1}))`` with ``x_k`` the photo
resized to octave k; then ``steps_per_octave`` normalised ascent steps. With no steps the output is the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.dream.common import (DreamResult, check_non_negative, dream_objective, evaluate, image_tensor,
                                   mean_over_windows, model_device)
from analysis.dream.images import MIN_SIDE, resize, to_array
from analysis.dream.windows import Windowed
from analysis.oip.ascent import ascend
from analysis.oip.transforms import jitter as make_jitter

if TYPE_CHECKING:
    from analysis.settings import DreamSettings


@dataclass(frozen=True, eq=False)
class OctaveDream(DreamResult):
    """Result of :func:`dream_octaves`.

    :ivar octave_shapes: (H, W) of each octave, smallest first.
    :ivar octave_images: the dream after each octave's ascent, one (h, w) array per octave (the progression).
    :ivar octave_objectives: the objective (mean over windows) of each octave's image, one float per octave.
    :ivar history: (total steps,) objective (mean over windows) at each step, as seen on the jittered image.
    :ivar capped: per octave, True if the ascent stopped early because the objective exceeded ``max_loss``.
    """

    octave_shapes: tuple[tuple[int, int], ...]
    octave_images: tuple[np.ndarray, ...]
    octave_objectives: tuple[float, ...]
    history: np.ndarray
    capped: tuple[bool, ...]


def octave_shapes(shape: tuple[int, int], octaves: int, scale: float, min_side: int = MIN_SIDE) -> list[tuple[int, int]]:
    """Pyramid ``round(shape / scale**k)`` for k = octaves − 1 … 0, smallest first, ending at ``shape``.

    Octaves whose shorter side would fall below ``min_side`` (the CNN's input) are skipped, so small photos get
    fewer octaves; repeated shapes appear once.
    """
    out: list[tuple[int, int]] = []
    for k in range(octaves - 1, -1, -1):
        s = (round(shape[0] / scale**k), round(shape[1] / scale**k))
        if min(s) >= min_side and s not in out:
            out.append(s)
    return out


OCTAVES_LR = 0.005  # the octave mode's step size when ``dream.lr`` is null, in units of the mean |gradient|


def dream_octaves(
    model: nn.Module,
    image: np.ndarray | str | Path,
    settings: DreamSettings,
    *,
    jitter: int = 4,
    clip: tuple[float, float] | None = (0.0, 1.0),
    progress: bool = False,
) -> OctaveDream:
    """Classical DeepDream of ``image`` with a 28×28 CNN applied in sliding windows at every octave.

    ``settings`` gives the objective (``layer_target``: ``"conv3"``, ``{"conv2": 0.5, "conv3": 1.0}`` or
    ``"conv3:56"``, and its ``response``: post-ReLU by default), ``octaves`` (pyramid levels; those below 28 px are skipped, see :func:`octave_shapes`),
    ``octave_scale`` (size ratio of neighbouring octaves; DeepDream uses 1.3–1.4), ``steps_per_octave`` normalised
    ascent steps ``x += lr · g / mean|g|`` (``lr`` null: :data:`OCTAVES_LR`), ``max_loss`` (stop an octave's ascent
    once the objective exceeds it, as Chollet's DeepDream does to keep the image from turning into pure pattern),
    ``window_stride`` (px between the 28×28 windows, rounded to the nearest multiple of the layers' pooling,
    see :class:`Windowed`; the last is aligned to the border) and ``seed`` (the jitter).

    :param image: (H, W) grayscale in [0, 1] (or an image file, read as gray), H, W >= 28.
    :param jitter: random roll of up to ± ``jitter`` px before each forward pass (gradient rolled back).
    :param clip: clamp to [lo, hi] after every step (None: no clamp); the output is clipped to [0, 1] anyway.
    :raises InputError: bad image, unknown layer, map out of range.
    """
    s = settings
    lr = OCTAVES_LR if s.lr is None else s.lr
    check_non_negative(jitter=jitter)
    x = image_tensor(image, model_device(model))
    objective = dream_objective(s.layer_target, s.response, mean_over_windows)
    net = Windowed(model, MIN_SIDE, s.window_stride, objective.layers)  # one pass per image, cut into windows
    before = float(evaluate(net, objective, x)[0])
    shapes = octave_shapes(tuple(x.shape[-2:]), s.octaves, s.octave_scale)
    transforms = make_jitter(jitter, torch.Generator().manual_seed(s.seed))

    img = base = resize(x, shapes[0])
    results, values, history, capped = [], [], [], []
    for k, shape in enumerate(tqdm(shapes, desc="octaves", disable=None if progress else True, leave=False)):
        if k:
            new_base = resize(x, shape)
            img = resize(img, shape) + (new_base - resize(base, shape))  # re-inject the detail octave k adds
            base = new_base
        img, hist, hit_cap = _ascend_capped(net, objective, img, s.steps_per_octave, s.max_loss, lr=lr,
                                            transforms=transforms, clip=clip)
        results.append(img)
        values.append(float(evaluate(net, objective, img.clamp(0.0, 1.0))[0]))
        history.append(hist)
        capped.append(hit_cap)

    final = img.clamp(0.0, 1.0)
    return OctaveDream(
        original=to_array(x),
        image=to_array(final),
        objective_before=before,
        objective_after=values[-1],  # the last octave's image is the final one
        octave_shapes=tuple(shapes),
        octave_images=tuple(to_array(r) for r in results),
        octave_objectives=tuple(values),
        history=np.concatenate(history).astype(np.float32),
        capped=tuple(capped),
    )


def _ascend_capped(net, objective, img, steps, max_loss, **kwargs) -> tuple[torch.Tensor, np.ndarray, bool]:
    """The engine's normalised ascent; with ``max_loss`` one step per call so the run can stop at the cap."""
    if max_loss is None:  # the caller evaluates the octave's image once: no measuring passes before and after
        res = ascend(net, objective, img, steps=steps, optimizer="normalized", measure=False, **kwargs)
        return res.images, res.history[:, 0].cpu().numpy(), False
    history = []
    for _ in range(steps):
        res = ascend(net, objective, img, steps=1, optimizer="normalized", **kwargs)
        img = res.images
        history.append(float(res.history[0, 0]))
        if float(res.final[0]) > max_loss:
            return img, np.asarray(history), True
    return img, np.asarray(history), False
