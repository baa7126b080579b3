"""Objectives to MAXIMISE: callables of the captured activations returning one value per batch element.

An objective maps ``acts = {layer name: (B, K, h, w) conv output}`` to a (B,) tensor; batch elements never mix, so
``loss = -objective(acts).sum()`` optimises every element independently. By default the activation used is the conv
module's own output, i.e. *before* the ReLU applied in ``forward`` — its gradient never vanishes where the map is
negative, which a post-ReLU objective would suffer from on a fresh random image. ``rectify=True`` averages the
post-ReLU map instead (what the network passes on); with ``redirect=True`` (the default) a redirected ReLU keeps
the gradient alive while the map is silent, with ``redirect=False`` it is the plain ReLU's (zero where silent).
:class:`Response` names the two for dreams (``post_relu`` is the plain ReLU, as classical DeepDream).

Objectives compose lucent-style: ``channel("conv3", 5) + 0.5 * layer("conv2")``, ``Objective.sum([...])``;
``parse_objective("conv3:56")`` is the one place where a ``"layer:map"`` string is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from numbers import Real

import torch

from latentdream.errors import InputError

Acts = dict[str, torch.Tensor]


class Objective:
    """A (B,)-valued function of the captured activations, plus the layer names it needs hooked.

    :param fn: ``fn(acts) -> (B,)`` tensor, to be maximised.
    :param layers: module names whose outputs ``fn`` reads (:func:`analysis.oip.ascent.ascend` hooks them).
    :param description: short human-readable name, e.g. ``"conv3:56"``.
    """

    def __init__(self, fn: Callable[[Acts], torch.Tensor], layers: Sequence[str], description: str = "") -> None:
        self.fn = fn
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        self.description = description

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.description or '?'})"

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a: self(a) + other(a), self.layers + other.layers,
                             f"{self.description} + {other.description}")
        if isinstance(other, Real):  # a constant offset; makes the builtin sum(..., start=0) work
            return Objective(lambda a: self(a) + float(other), self.layers, self.description)
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, factor: float) -> Objective:
        if not isinstance(factor, Real):
            return NotImplemented  # a product of two objectives has no use here and hides mistakes
        return Objective(lambda a: float(factor) * self(a), self.layers, f"{float(factor):g} * {self.description}")

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    @staticmethod
    def sum(objectives: Iterable[Objective]) -> Objective:
        """Sum of several objectives (their layers are all hooked)."""
        objectives = list(objectives)
        if not objectives:
            raise ValueError("Objective.sum needs at least one objective")
        total = objectives[0]
        for obj in objectives[1:]:
            total = total + obj
        return total


class _RedirectedReLU(torch.autograd.Function):
    """``relu(x)`` whose gradient does not vanish for a batch element whose values are all <= 0.

    Backward, per batch element b: the ReLU gradient ``grad * (x > 0)`` if it is non-zero anywhere in element b,
    else ``grad`` itself (the gradient of the identity). A simplified form of lucid's "redirected ReLU": a map
    that is off everywhere is pushed up as by the pre-ReLU objective until it fires, and from then on only its
    active positions count — the post-ReLU objective of the reference (Keras conv layers include the ReLU).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        relu_grad = grad * (x > 0)
        silent = relu_grad.flatten(1).abs().sum(dim=1) == 0  # (B,)
        return torch.where(silent.view(-1, *[1] * (x.ndim - 1)), grad, relu_grad)


class Response(StrEnum):
    """Which response of a layer's maps a dream maximises (config key ``dream.response``): the post-ReLU activation
    (what the network passes on; plain ReLU gradient, as classical DeepDream) or the conv output before the ReLU."""

    post_relu = "post_relu"
    pre_relu = "pre_relu"


def _rectify(x: torch.Tensor, rectify: bool, redirect: bool = True) -> torch.Tensor:
    if not rectify:
        return x
    return _RedirectedReLU.apply(x) if redirect else torch.relu(x)


def _suffix(rectify: bool, redirect: bool) -> str:
    return (" (relu)" if redirect else " (plain relu)") if rectify else ""


def _maps_of(acts: Acts, name: str) -> torch.Tensor:
    out = acts[name]
    if out.ndim != 4:
        raise InputError(f"layer {name!r} has output shape {tuple(out.shape)}, not (B, maps, h, w); use a conv layer")
    return out


def _check_index(name: str, index: int, n_maps: int) -> None:
    if not 0 <= index < n_maps:
        raise InputError(f"map index {index} out of range for layer {name!r}; allowed: 0..{n_maps - 1}")


def channel(layer: str, index: int, *, rectify: bool = False, redirect: bool = True) -> Objective:
    """Mean activation of map ``index`` of ``layer``, for every batch element: ``mean_{y,x} A[b, index, y, x]``.

    :param rectify: average ``relu(A)`` instead (what the network passes on).
    :param redirect: with ``rectify``, a gradient that does not vanish while the map is off everywhere (see
        :class:`_RedirectedReLU`); False: the plain ReLU gradient, zero for a silent map.
    """
    index = int(index)
    if index < 0:
        raise InputError(f"map index {index} out of range for layer {layer!r}; map indices are >= 0")

    def fn(acts: Acts) -> torch.Tensor:
        out = _maps_of(acts, layer)
        _check_index(layer, index, out.shape[1])
        return _rectify(out[:, index], rectify, redirect).mean(dim=(1, 2))

    return Objective(fn, [layer], f"{layer}:{index}" + _suffix(rectify, redirect))


def batch_channels(layer: str, indices: Sequence[int] | torch.Tensor, *, rectify: bool = False,
                   redirect: bool = True) -> Objective:
    """Batch element b maximises map ``indices[b]``: ``mean_{y,x} A[b, indices[b], y, x]``.

    This is how all maps of a layer are optimised at once as ONE batch of ``len(indices)`` images.

    :param rectify, redirect: as in :func:`channel`, decided per batch element.
    """
    idx = torch.as_tensor(indices, dtype=torch.long).flatten()
    if len(idx) == 0:
        raise InputError("batch_channels needs at least one map index")

    def fn(acts: Acts) -> torch.Tensor:
        out = _maps_of(acts, layer)
        if out.shape[0] != len(idx):
            raise InputError(f"batch_channels got {len(idx)} map indices for a batch of {out.shape[0]} images")
        for i in (int(idx.min()), int(idx.max())):
            _check_index(layer, i, out.shape[1])
        rows = torch.arange(len(idx), device=out.device)
        return _rectify(out[rows, idx.to(out.device)], rectify, redirect).mean(dim=(1, 2))

    return Objective(fn, [layer], f"{layer}:[{len(idx)} maps]" + _suffix(rectify, redirect))


def layer(layer: str, weight: float = 1.0, *, squared: bool = False, rectify: bool = False,
          redirect: bool = True) -> Objective:
    """DeepDream's layer objective: ``weight * mean_{k,y,x} A[b, k, y, x]`` over all maps of ``layer``.

    :param squared: use ``weight * mean A²`` instead (the L2 form of Chollet's Keras DeepDream, which sums squared
        activations): it rewards strongly *negative* responses as well, so every map that reacts at all is pushed.
    :param rectify, redirect: as in :func:`channel` (``relu(A)`` of all maps; the redirect is decided per element).
    """
    name = layer

    def fn(acts: Acts) -> torch.Tensor:
        out = _rectify(_maps_of(acts, name), rectify, redirect)
        return weight * (out.square() if squared else out).mean(dim=(1, 2, 3))

    return Objective(fn, [name], f"{weight:g} * {name}" + ("²" if squared else "") + _suffix(rectify, redirect))


def parse_target(spec: str) -> tuple[str, int | None]:
    """The one reader of a ``"layer:map"`` string: ``"conv3:56"`` → ``("conv3", 56)``, ``"conv3"`` → ``("conv3", None)``.

    :raises InputError: empty, or a map part that is not a whole number >= 0.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"objective {spec!r} is not 'layer' or 'layer:map', e.g. 'conv3' or 'conv3:56'")
    name, sep, index = (part.strip() for part in spec.partition(":"))
    if not name or (sep and not index.isdigit()):
        raise InputError(f"objective {spec!r} is not 'layer' or 'layer:map' with a map index >= 0, e.g. 'conv3:56'")
    return name, int(index) if sep else None


def parse_objective(spec: str, response: Response | str = Response.pre_relu) -> Objective:
    """``"conv3:56"`` → :func:`channel` ("conv3", 56); ``"conv3"`` → :func:`layer` ("conv3").

    :param response: ``pre_relu`` (the conv output) or ``post_relu`` (its plain ReLU) of the maps.
    Whether the layer exists and the index is in range is checked against the model when the objective is used.
    """
    name, index = parse_target(spec)
    rectify = Response(response) == Response.post_relu
    if index is None:
        return layer(name, rectify=rectify, redirect=False)
    return channel(name, index, rectify=rectify, redirect=False)
