"""Cutting large images into the CNN's 28×28 inputs, and putting them back.

* :func:`windows` — overlapping sliding windows as one batch, differentiable: the gradient of every window flows
  back to the image, and where windows overlap the contributions add (advanced indexing backpropagates with
  scatter-add).
* :class:`Windowed` — presents a 28×28 network as a network of any-size images (its forward runs
  :func:`windows`), under the same layer names, so the OIP engine's hooks and objectives work unchanged.
* :func:`tiles` / :func:`untile` — a non-overlapping tiling of an image padded to a multiple of the tile side.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def window_starts(length: int, size: int, stride: int) -> np.ndarray:
    """Start offsets 0, stride, 2·stride, … of windows of ``size`` px along an axis of ``length`` px, plus a last
    window aligned to the end (start ``length − size``) when the stride does not land there, so every pixel is
    covered: (n,) int64, ``n = ceil((length − size) / stride) + 1``."""
    if size > length:
        raise ValueError(f"windows of {size} px do not fit an axis of {length} px")
    if stride < 1:
        raise ValueError(f"window stride must be >= 1 px, got {stride}")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return np.asarray(starts, dtype=np.int64)


def windows(image: torch.Tensor, size: int = 28, stride: int = 14) -> torch.Tensor:
    """All ``size``×``size`` windows of (B, C, H, W) at the :func:`window_starts` offsets, as one batch.

    :return: (B · ny · nx, C, size, size), ordered batch element, then row, then column (row-major grid).
        Differentiable: for an objective summed over windows, each pixel's gradient is the sum over the windows
        that contain it.
    """
    b, c, h, w = image.shape
    ys = torch.as_tensor(window_starts(h, size, stride), device=image.device)
    xs = torch.as_tensor(window_starts(w, size, stride), device=image.device)
    offs = torch.arange(size, device=image.device)
    rows = (ys[:, None] + offs)[:, None, :, None]  # (ny, 1, size, 1)
    cols = (xs[:, None] + offs)[None, :, None, :]  # (1, nx, 1, size)
    crops = image[:, :, rows, cols]  # (B, C, ny, nx, size, size)
    return crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, size, size)


def coverage(shape: tuple[int, int], size: int = 28, stride: int = 14) -> np.ndarray:
    """How many :func:`windows` contain each pixel of an image of ``shape``: (H, W) int, all >= 1."""
    count = np.zeros(shape, dtype=np.int64)
    for y in window_starts(shape[0], size, stride):
        for x in window_starts(shape[1], size, stride):
            count[y : y + size, x : x + size] += 1
    return count


class Windowed(nn.Module):
    """``model`` applied to every sliding window of an image of any size ≥ ``size``.

    ``Windowed(model)(x)`` for x (B, C, H, W) equals ``model(windows(x, size, stride))``. The children of
    ``model`` are registered here under their own names (``conv1``, ``conv3``, …) — the same module objects — so
    hooks and objectives address layers exactly as on ``model``; other attributes (``conv_layer_names``) are
    looked up on ``model``. Objectives then see activations of B · n_windows crops.
    """

    def __init__(self, model: nn.Module, size: int = 28, stride: int = 14) -> None:
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        self.__dict__["inner"] = model  # a plain attribute, not a child: keeps the layer names unprefixed
        self.size, self.stride = int(size), int(stride)
        self.training = model.training  # engines restore "our" mode onto the shared children afterwards

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("inner")
            if inner is None:  # during __init__
                raise
            return getattr(inner, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(windows(x, self.size, self.stride))


def tiles(image: torch.Tensor, size: int = 28) -> torch.Tensor:
    """Non-overlapping ``size``×``size`` tiles of (1, C, H, W), after reflect-padding bottom and right to multiples
    of ``size``: (ny · nx, C, size, size), row-major, with ``ny = ceil(H / size)``, ``nx = ceil(W / size)``."""
    _, c, h, w = image.shape
    padded = F.pad(image, (0, -w % size, 0, -h % size), mode="reflect")  # needs pad < side: true as side >= size
    ny, nx = padded.shape[-2] // size, padded.shape[-1] // size
    return padded.reshape(c, ny, size, nx, size).permute(1, 3, 0, 2, 4).reshape(ny * nx, c, size, size)


def untile(batch: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`tiles`: reassemble (ny · nx, C, s, s) into (1, C, *shape), dropping the padding."""
    n, c, s, _ = batch.shape
    h, w = shape
    ny, nx = -(-h // s), -(-w // s)
    if n != ny * nx:
        raise ValueError(f"{n} tiles of {s} px do not tile an image of {h}×{w} px ({ny}×{nx} expected)")
    full = batch.reshape(ny, nx, c, s, s).permute(2, 0, 3, 1, 4).reshape(1, c, ny * s, nx * s)
    return full[..., :h, :w]
