"""Cutting large images into the CNN's 28×28 inputs, and putting them back.

* :func:`windows` — overlapping sliding windows as one batch, differentiable: the gradient of every window flows
  back to the image, and where windows overlap the contributions add (advanced indexing backpropagates with
  scatter-add).
* :class:`Windowed` — presents a 28×28 network as a network of any-size images (its forward runs
  :func:`windows`), under the same layer names, so the OIP engine's hooks and objectives work unchanged. Its conv
  layers are computed once on the whole image and cut into the windows' outputs (:meth:`Windowed.layer_outputs`)
  instead of once per overlapping window.
* :func:`tiles` / :func:`untile` — a non-overlapping tiling of an image padded to a multiple of the tile side.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.eval_mode import eval_mode
from analysis.oip.hooks import activations, get_layer


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
    _, _, h, w = image.shape
    return crops(image, window_starts(h, size, stride), window_starts(w, size, stride), (size, size))


def crops(maps: torch.Tensor, ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """The ``shape`` crops of (B, K, H, W) starting at every (ys[i], xs[j]), as one batch (B · ny · nx, K, *shape),
    row-major like :func:`windows`; differentiable (the gradient of overlapping crops adds up)."""
    dev, (h, w), (b, k) = maps.device, shape, maps.shape[:2]
    rows = (torch.as_tensor(ys, device=dev)[:, None] + torch.arange(h, device=dev)).flatten()  # (ny · h,)
    cols = (torch.as_tensor(xs, device=dev)[:, None] + torch.arange(w, device=dev)).flatten()  # (nx · w,)
    # two index_selects (backward: index_add) cost half of one 4-D advanced index (backward: index_put accumulate)
    out = maps.index_select(2, rows).index_select(3, cols)  # (B, K, ny · h, nx · w)
    return out.reshape(b, k, len(ys), h, len(xs), w).permute(0, 2, 4, 1, 3, 5).reshape(-1, k, h, w)


def coverage(shape: tuple[int, int], size: int = 28, stride: int = 14) -> np.ndarray:
    """How many :func:`windows` contain each pixel of an image of ``shape``: (H, W) int, all >= 1."""
    count = np.zeros(shape, dtype=np.int64)
    for y in window_starts(shape[0], size, stride):
        for x in window_starts(shape[1], size, stride):
            count[y : y + size, x : x + size] += 1
    return count


_PROBED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model → {(size, stride, layers): geometry}


class Windowed(nn.Module):
    """``model`` applied to every sliding window of an image of any size ≥ ``size``.

    ``Windowed(model)(x)`` for x (B, C, H, W) equals ``model(windows(pad(x), size, stride))``. The children of
    ``model`` are registered here under their own names (``conv1``, ``conv3``, …) — the same module objects — so
    hooks and objectives address layers exactly as on ``model``; other attributes (``conv_layer_names``) are
    looked up on ``model``. Objectives then see activations of B · n_windows crops.

    Shared computation (``layers`` given): a valid convolution commutes with cropping, and so does a max-pool whose
    grid the crop respects. If the outputs of ``layers`` shrink by one position per ``D`` input px (``D`` = 4 for
    conv3 of the reference CNN: two 2×2 pools), a window starting at a multiple of ``D`` sees exactly the crop
    ``[y / D, y / D + h)`` of the whole image's output. :meth:`layer_outputs` then runs the network once on the whole
    image and cuts the windows' outputs from it — the same numbers as the windows' own forward passes (checked
    once per model on a random probe; where they differ, every window runs on its own). The deepest layer gets
    its windows' *inputs* cut instead, so it computes only the positions some window has. For this the window
    grid is aligned: ``stride`` is rounded to the nearest multiple of ``D`` (14 → 16; halves round up), and the
    image is reflect-padded at its bottom and right by fewer than ``D`` px so the last window, aligned to the
    border, starts at a multiple of ``D`` too (:meth:`pad`). :attr:`shared` says which way it runs; with
    ``layers`` empty it is the plain grid.

    :param layers: the layers the objectives will read (their geometry is probed once).
    """

    PROBE = 8  # largest downsampling D probed (input px per output position of a layer)

    def __init__(self, model: nn.Module, size: int = 28, stride: int = 14, layers: Sequence[str] = ()) -> None:
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        self.__dict__["inner"] = model  # a plain attribute, not a child: keeps the layer names unprefixed
        self.size, self.stride, self.period = int(size), int(stride), 1
        self.training = model.training  # engines restore "our" mode onto the shared children afterwards
        self.geometry: dict[str, tuple[int, tuple[int, int]]] = {}  # layer → (D, output shape of one window)
        self.shared, self.last = False, None
        if layers:
            key = (self.size, self.stride, tuple(dict.fromkeys(layers)))
            known = _PROBED.setdefault(model, {})
            if key not in known:  # the geometry is the architecture's: probed once per model
                with eval_mode(model), torch.no_grad():
                    self._share(list(key[2]), int(stride))
                known[key] = (dict(self.geometry), self.shared, self.last, self.period, self.stride)
            geometry, self.shared, self.last, self.period, self.stride = known[key]
            self.geometry = dict(geometry)

    def _share(self, layers: list[str], stride: int) -> None:
        """Probe the layers' downsampling, align the grid, and keep it only if crops equal the windows' outputs."""
        param = next(self.inner.parameters())
        channels = getattr(self.inner, "in_channels", 1)
        sides = range(self.size, self.size + 2 * self.PROBE + 1)
        entry: dict[int, torch.Tensor] = {}  # side → the input of the deepest layer
        out = {n: self._probe(param.new_zeros(1, channels, n, n), layers, entry, n) for n in sides}
        last = list(out[self.size])[-1]  # the layer that fires last: its input is cut instead of its output
        for name, shapes in [(n, {side: out[side][n].shape for side in sides}) for n in layers] + [(None, entry)]:
            if len(shapes) != len(sides) or any(len(shape) != 4 for shape in shapes.values()):
                return
            period = next((d for d in range(1, self.PROBE + 1)
                           if all(shapes[n + d][-1] == shapes[n][-1] + 1 for n in sides if n + d in shapes)), None)
            if period is None:
                return
            self.geometry[name or f"{last}:input"] = (period, tuple(shapes[self.size][-2:]))
        self.last = last
        self.period = math.lcm(*(d for d, _ in self.geometry.values()))
        self.stride = max(self.period, math.floor(stride / self.period + 0.5) * self.period)
        probe = torch.rand(1, channels, self.size + 2 * self.stride + 1, self.size + self.stride + 3,
                           generator=torch.Generator().manual_seed(0)).to(param)
        fast, slow = self._cut(probe, layers), activations(self.inner, windows(self.pad(probe), self.size,
                                                                                self.stride), layers)
        self.shared = all(torch.allclose(fast[n], slow[n], rtol=1e-4, atol=1e-4 * float(slow[n].abs().max()) + 1e-6)
                          for n in layers)
        if not self.shared:  # back to the plain grid, windows computed one by one
            self.stride, self.period, self.geometry = stride, 1, {}

    def _probe(self, x: torch.Tensor, layers: list[str], entry: dict, side: int) -> dict[str, torch.Tensor]:
        """The outputs of ``layers`` for ``x``, and the input shape of the layer that fires last into ``entry``."""
        seen: dict[str, torch.Tensor] = {}

        def grab(module, args):
            seen["input"] = args[0] if len(args) == 1 and isinstance(args[0], torch.Tensor) else torch.empty(0)

        handles = [get_layer(self.inner, name).register_forward_pre_hook(grab) for name in layers]
        try:
            out = activations(self.inner, x, layers)
        finally:
            for handle in handles:
                handle.remove()
        entry[side] = seen["input"].shape  # the last pre-hook to fire is the deepest layer's
        return out

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("inner")
            if inner is None:  # during __init__
                raise
            return getattr(inner, name)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` reflect-padded at the bottom and right so that ``(side − size)`` is a multiple of the period."""
        h, w = x.shape[-2:]
        dh, dw = -(h - self.size) % self.period, -(w - self.size) % self.period
        return F.pad(x, (0, dw, 0, dh), mode="reflect") if dh or dw else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(windows(self.pad(x), self.size, self.stride))

    def layer_outputs(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The outputs of ``layers`` for every window of ``x``: {name: (B · n_windows, K, h, w)}, as
        ``activations(model, windows(pad(x)), layers)`` — but cut from one pass over the whole image when
        :attr:`shared` (used by :func:`analysis.oip.hooks.activations`)."""
        if self.shared and self.last in layers and all(name in self.geometry for name in layers):
            return self._cut(x, layers)
        return activations(self.inner, windows(self.pad(x), self.size, self.stride), layers)

    def _cut(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """One pass over the padded image; the deepest layer gets its windows' inputs cut from the whole image's
        (so it computes only the positions some window has), the other layers' outputs are cut afterwards."""
        x = self.pad(x)
        if x.device.type == "cpu":  # channels-last strides: every layer after runs oneDNN's NHWC kernels, whose
            x = x.to(memory_format=torch.channels_last)  # max-pool is ~9x faster (a step ~20 % cheaper); same math
        ys, xs = window_starts(x.shape[-2], self.size, self.stride), window_starts(x.shape[-1], self.size, self.stride)
        period, shape = self.geometry[f"{self.last}:input"]

        def cut_input(module, args):
            return (crops(args[0], ys // period, xs // period, shape),)

        handle = get_layer(self.inner, self.last).register_forward_pre_hook(cut_input)
        try:
            full = activations(self.inner, x, layers)
        finally:
            handle.remove()
        out = {}
        for name in dict.fromkeys(layers):
            period, shape = self.geometry[name]
            out[name] = full[name] if name == self.last else crops(full[name], ys // period, xs // period, shape)
        return out


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
