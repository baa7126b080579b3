"""Starting images and the pixel parameterisation of OIP / dream images.

Starting points are seeded, (B, C, size, size) float32 in the data range [0, 1], drawn on the generator's device
(CPU by default, so a seed gives the same images on any machine; move them to the model's device afterwards):

* ``random`` — :func:`uniform_noise`, independent pixels.
* ``fluct_L`` (L = 2, 4, 7, 14) — :func:`fluctuations`, smooth random fields whose correlation length is L px; the
  reference seeds OIP searches with fluctuations "on the length scale of one to two pixels" and, for deep maps,
  with larger-scale ones.

:func:`make_init` reads an init name in one place. :func:`pixel_image` is the lucent-style parameterisation:
``params, image_fn = pixel_image(x0)`` — the optimiser updates ``params`` and ``image_fn()`` gives the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum

import torch

from latentdream.errors import InputError



class Init(StrEnum):
    """Starting images of an OIP search (config key ``oip.inits``): independent pixels, or smooth random fields
    of a correlation length of 2, 4, 7 or 14 px."""

    random = "random"
    fluct_2 = "fluct_2"
    fluct_4 = "fluct_4"
    fluct_7 = "fluct_7"
    fluct_14 = "fluct_14"


FLUCTUATION_SCALES = {Init.fluct_2: 2.0, Init.fluct_4: 4.0, Init.fluct_7: 7.0, Init.fluct_14: 14.0}


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def uniform_noise(
    batch: int,
    size: int = 28,
    *,
    generator: torch.Generator | None = None,
    low: float = 0.0,
    high: float = 1.0,
    channels: int = 1,
) -> torch.Tensor:
    """(batch, channels, size, size) pixels drawn independently from U[low, high)."""
    u = torch.rand(batch, channels, size, size, generator=generator, device=_device(generator))
    return low + (high - low) * u


def fluctuations(
    batch: int,
    size: int = 28,
    length_scale: float = 2.0,
    *,
    generator: torch.Generator | None = None,
    channels: int = 1,
) -> torch.Tensor:
    """(batch, channels, size, size) smooth random fields with correlation length ``length_scale`` px, in [0, 1].

    White noise n ~ N(0, 1) is low-pass filtered in Fourier space with the transfer function
    ``H(f) = exp(-π² ℓ² |f|²)`` (f in cycles/px, ℓ = ``length_scale``), i.e. convolved with a Gaussian of
    std ℓ/√2, so the field's autocorrelation is ``exp(-r² / (2 ℓ²))`` — a Gaussian of std ℓ px. The FFT makes
    the field periodic across the image borders (harmless: an OIP search only needs a structured start). Each
    image is then stretched to exactly [0, 1] by its own min and max.
    """
    if length_scale <= 0:
        raise InputError(f"length_scale must be > 0 px, got {length_scale}")
    noise = torch.randn(batch, channels, size, size, generator=generator, device=_device(generator))
    f = torch.fft.fftfreq(size, device=noise.device)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    transfer = torch.exp(-(math.pi**2) * length_scale**2 * f2)
    field = torch.fft.ifft2(torch.fft.fft2(noise) * transfer).real
    lo = field.amin(dim=(-2, -1), keepdim=True)
    hi = field.amax(dim=(-2, -1), keepdim=True)
    return (field - lo) / (hi - lo).clamp_min(1e-12)


def make_init(
    name: Init | str, batch: int, size: int = 28, generator: torch.Generator | None = None, *, channels: int = 1
) -> torch.Tensor:
    """Starting images for init ``name`` (an :class:`Init` or its name): (batch, channels, size, size) in [0, 1]."""
    try:
        init = Init(name)
    except ValueError:
        raise InputError(f"unknown init {name!r}; allowed: {', '.join(Init)}") from None
    if init == Init.random:
        return uniform_noise(batch, size, generator=generator, channels=channels)
    return fluctuations(batch, size, FLUCTUATION_SCALES[init], generator=generator, channels=channels)


def pixel_image(init: torch.Tensor) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """Pixel-space parameterisation: the image *is* the parameter.

    :param init: (B, C, H, W) starting image; it is copied, never modified.
    :return: ``([x], image_fn)`` with ``x`` a leaf copy of ``init`` (``requires_grad=True``) and ``image_fn() = x``.
    """
    x = init.detach().clone().float().requires_grad_(True)
    return [x], lambda: x
