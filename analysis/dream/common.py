"""What the three dream modes share: objective specs, evaluation, the result base class, input checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import torch
from torch import nn

from analysis.dream.images import load_image, to_tensor
from analysis.eval_mode import eval_mode
from analysis.oip.hooks import activations
from analysis.oip.objectives import Objective, Response, parse_objective
from latentdream.errors import InputError

ObjectiveSpec = str | Mapping[str, float] | Objective


def make_objective(spec: ObjectiveSpec, response: Response | str = Response.pre_relu) -> Objective:
    """Read an objective spec in one place.

    ``"conv3:56"`` → map 56 of conv3; ``"conv3"`` → the whole layer; ``{"conv2": 0.5, "conv3": 1.0}`` → the
    weighted sum ``0.5 · conv2 + 1.0 · conv3`` (keys may also be ``"layer:map"``); an :class:`Objective` passes.
    ``response`` picks the maps' conv output (``pre_relu``) or its ReLU (``post_relu``) for strings and mappings.
    Layer names and map indices are checked against the model on first use (InputError).
    """
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        return parse_objective(spec, response)
    if isinstance(spec, Mapping) and spec:
        parts = []
        for name, weight in spec.items():
            if not isinstance(weight, Real) or isinstance(weight, bool):
                raise InputError(f"objective weight for {name!r} is {weight!r}; allowed: a number")
            parts.append(float(weight) * parse_objective(name, response))
        return Objective.sum(parts)
    raise InputError(f"objective {spec!r} is not 'layer', 'layer:map' or a non-empty {{layer: weight}} mapping")


def push_silent(post: Objective, pre: Objective) -> Objective:
    """``post`` (a post-ReLU objective) whose gradient does not vanish while it is 0: for every batch element b
    with ``post_b == 0`` (the maps are off everywhere, so the plain ReLU gradient is 0) the gradient is that of the
    pre-ReLU objective ``pre_b``, which pushes the map up until it fires; elsewhere it is ``post``'s own.

    The value is ``post`` exactly (``post + (pre − pre) = post``), so reported objectives stay post-ReLU (>= 0).
    Under the dreams' normalised step ``lr · g / mean|g|`` the push moves the pixels as far as any other step.
    Applied per element of the ascent's batch: the 28×28 image (seed), the whole image (octaves, after
    :func:`mean_over_windows`), each tile (tiled; each tile is an input of its own there).
    """

    def fn(acts):
        value, fallback = post(acts), pre(acts)
        silent = value.detach() == 0
        return value + torch.where(silent, fallback - fallback.detach(), torch.zeros_like(fallback))

    return Objective(fn, post.layers + pre.layers, f"{post.description} (pre-ReLU push while silent)")


def dream_objective(spec: ObjectiveSpec, response: Response | str,
                    adapt: Callable[[Objective], Objective] = lambda objective: objective) -> Objective:
    """What a dream mode maximises: ``adapt(make_objective(spec, response))`` (``adapt``: e.g.
    :func:`mean_over_windows`); with ``post_relu`` wrapped in :func:`push_silent`, so a map that is off
    everywhere on the start image still gets a gradient (the plain ReLU's is 0 there)."""
    objective = adapt(make_objective(spec, response))
    if Response(response) == Response.post_relu and not isinstance(spec, Objective):
        objective = push_silent(objective, adapt(make_objective(spec, Response.pre_relu)))
    return objective


def mean_over_windows(objective: Objective, n_images: int = 1) -> Objective:
    """Adapter for :class:`~analysis.dream.windows.Windowed`: the objective's (n_images · n_windows,) values
    averaged per image → (n_images,), the shape the ascent engine expects for a batch of ``n_images``."""
    return Objective(lambda acts: objective(acts).reshape(n_images, -1).mean(dim=1), objective.layers,
                     f"mean over windows of {objective.description}")


def evaluate(model: nn.Module, objective: Objective, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Objective of ``x`` (B, C, H, W) in eval mode without gradients, ``chunk`` images at a time: (B,).

    :raises InputError: unknown layer or map index out of range (from the objective and hooks).
    """
    with eval_mode(model), torch.no_grad():
        parts = x.split(chunk) if chunk else (x,)
        return torch.cat([objective(activations(model, part, objective.layers)).detach() for part in parts])


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (the dream runs there)."""
    return next(model.parameters()).device


def image_tensor(image: np.ndarray | torch.Tensor | str | Path, device: torch.device) -> torch.Tensor:
    """Check an image (array (H, W) in [0, 1] or a file; at least 28 px a side) → gray (1, 1, H, W) on ``device``."""
    if isinstance(image, (str, Path)):
        return to_tensor(load_image(image, gray=True), device)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy().reshape(image.shape[-2:])
    return to_tensor(load_image(np.asarray(image), gray=True), device)


def check_non_negative(**values: float) -> None:
    """InputError naming the first of ``values`` that is negative."""
    for key, value in values.items():
        if not value >= 0:
            raise InputError(f"{key} must be >= 0, got {value!r}")


@dataclass(frozen=True, eq=False)
class DreamResult:
    """Fields every mode returns; arrays are float32 numpy on the CPU.

    :ivar original: (H, W) input image in [0, 1].
    :ivar image: (H, W) final dream at full resolution, clipped to [0, 1].
    :ivar objective_before: objective of ``original`` as the mode's network sees it (mean over windows/tiles).
    :ivar objective_after: the same for ``image``.
    """

    original: np.ndarray
    image: np.ndarray
    objective_before: float
    objective_after: float

    @property
    def objective_gain(self) -> float:
        """``objective_after − objective_before``: > 0 when the dream strengthened the objective."""
        return self.objective_after - self.objective_before

    @property
    def difference(self) -> np.ndarray:
        """(H, W) ``image − original``: what the dream added."""
        return self.image - self.original
