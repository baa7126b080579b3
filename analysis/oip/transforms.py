"""Image transforms as small factories: each returns ``apply(x)`` for an image batch (B, C, H, W).

``compose(jitter(1, gen), clip(0, 1))`` chains them left to right. All keep the image shape, so a transformed
image still fits a model whose classifier expects a fixed input size.

How :func:`analysis.oip.ascent.ascend` uses them:

* :func:`jitter` is differentiable and is applied to the image *before every forward pass* (the ``transforms``
  argument). The gradient flows back through the shift, so the pattern must work at several offsets: this
  suppresses the pixel-grid (checkerboard) artefacts of unregularised gradient ascent.
* :func:`blur` and :func:`clip` are *not* part of the differentiated forward pass: the loop applies them to the
  image data itself, blur every ``blur_every`` steps and clip after every step. Blurring inside the forward pass
  would only low-pass the gradient, whereas blurring the image (as in Yosinski et al. 2015) actively removes
  high-frequency noise that the objective does not care about, while the steps between blurs restore the sharp
  structure the objective does need.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


def jitter(d: int, generator: torch.Generator | None = None) -> Transform:
    """Shift the whole batch by a random (dy, dx), each uniform in [-d, d] px, with wrap-around (``torch.roll``).

    One shift per call, shared by all batch elements: the random draws then do not depend on the batch size, so
    optimising maps one by one (with a generator seeded alike) sees exactly the shifts of the batched run.
    The generator lives on the CPU; ``d = 0`` is the identity.
    """
    if d < 0:
        raise ValueError(f"jitter needs d >= 0 px, got {d}")

    def apply(x: torch.Tensor) -> torch.Tensor:
        if d == 0:
            return x
        dy, dx = (torch.randint(-d, d + 1, (2,), generator=generator)).tolist()
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))

    return apply


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of std ``sigma`` px, radius ceil(3 sigma) (at least 1): (2r + 1,) float32."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(sigma: float) -> Transform:
    """Separable Gaussian blur of std ``sigma`` px per image and channel, reflecting at the borders.

    Sums of pixel values are kept (normalised kernel) and a constant image is unchanged; ``sigma = 0`` is the
    identity.
    """
    if sigma < 0:
        raise ValueError(f"blur needs sigma >= 0 px, got {sigma}")

    def apply(x: torch.Tensor) -> torch.Tensor:
        if sigma == 0:
            return x
        b, c, h, w = x.shape
        k = gaussian_kernel(sigma).to(x)
        r = len(k) // 2
        y = x.reshape(b * c, 1, h, w)
        # reflect padding needs pad < side; replicate is the fallback for tiny images
        mode = "reflect" if r < min(h, w) else "replicate"
        y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
        return y.reshape(b, c, h, w)

    return apply


def clip(lo: float, hi: float) -> Transform:
    """Clamp pixel values to [lo, hi] (the data range)."""
    if lo > hi:
        raise ValueError(f"clip needs lo <= hi, got {lo} > {hi}")
    return lambda x: x.clamp(lo, hi)


def compose(*transforms: Transform | None) -> Transform:
    """Apply ``transforms`` left to right; ``None`` entries are skipped."""
    ts = [t for t in transforms if t is not None]

    def apply(x: torch.Tensor) -> torch.Tensor:
        for t in ts:
            x = t(x)
        return x

    return apply
