"""The one gradient-ascent engine in input space, shared by OIPs and DeepDream.

``ascend`` maximises ``objective(acts)`` (B,) over the pixels of a batch of images. The loss is
``-objective.sum()``: batch elements never interact, so B images optimised together follow exactly the paths they
would follow one by one (up to float rounding) — provided every per-element operation is elementwise or
normalised per element, which both optimisers here are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.eval_mode import eval_mode
from analysis.oip.hooks import activations
from analysis.oip.objectives import Objective, parse_objective
from analysis.oip.params import pixel_image
from analysis.oip.transforms import blur as make_blur
from latentdream.stopping import check_stop



class AscentOptimizer(StrEnum):
    """How :func:`ascend` steps (config key ``oip.optimizer``): Adam, or DeepDream's normalised gradient."""

    adam = "adam"
    normalized = "normalized"


@dataclass(frozen=True)
class AscentResult:
    """Outcome of :func:`ascend`; all tensors are detached and on the model's device.

    :ivar images: (B, C, H, W) optimised images.
    :ivar initial: (B,) objective of the starting images (untransformed, i.e. without jitter).
    :ivar final: (B,) objective of the optimised images (untransformed).
    :ivar history: (steps, B) objective at each step, as seen by the optimiser (on the jittered image).
    :ivar grad_abs: (B,) largest per-step mean |∂objective/∂pixel| over the run; 0 means the objective never had a
        gradient (e.g. a map behind ReLUs that are all off).
    """

    images: torch.Tensor
    initial: torch.Tensor
    final: torch.Tensor
    history: torch.Tensor
    grad_abs: torch.Tensor


def _evaluate(model: nn.Module, objective: Callable, x: torch.Tensor, layers: Sequence[str]) -> torch.Tensor:
    with torch.no_grad():
        return objective(activations(model, x, layers)).detach()


def ascend(
    model: nn.Module,
    objective: Objective | Callable | str,
    image: torch.Tensor,
    *,
    steps: int,
    lr: float,
    optimizer: AscentOptimizer | str = AscentOptimizer.adam,
    transforms: Callable[[torch.Tensor], torch.Tensor] | None = None,
    l2_decay: float = 0.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    clip: tuple[float, float] | None = None,
    progress: bool = False,
    desc: str = "ascent",
    layers: Sequence[str] | None = None,
    measure: bool = True,
) -> AscentResult:
    """Gradient ascent of ``objective`` on the pixels of ``image``.

    One step (t = 1..steps), with g = ∂ objective_b / ∂x_b of the transformed image:

    * ``optimizer="adam"``: ``torch.optim.Adam`` with learning rate ``lr`` on the loss ``-objective.sum()``;
      Adam is elementwise, so each element's update depends on its own gradients only.
    * ``optimizer="normalized"``: ``x_b += lr * g_b / (mean|g_b| + 1e-8)`` — DeepDream's normalised gradient,
      the mean taken over the pixels of batch element b only.

    then, on the image data (outside the differentiated forward pass): ``x *= 1 - l2_decay`` (decay towards 0, the
    MNIST background), a Gaussian blur of std ``blur_sigma`` px every ``blur_every`` steps (0: never), and
    ``clip`` to [lo, hi]. ``transforms`` (e.g. jitter) is applied to the image before every forward pass.

    The model runs in eval mode (its mode is restored afterwards) and only up to the hooked layers; gradients are
    taken w.r.t. the image with ``torch.autograd.grad``, so nothing accumulates in the model's ``.grad``.
    Any image size that reaches the hooked layers works.

    :param objective: an :class:`Objective`, a ``"layer:map"`` string, or a callable of the activations dict
        returning (B,) — then ``layers`` names the modules to hook.
    :param image: (B, C, H, W) start; copied, never modified. Moved to the model's device.
    :param steps: number of ascent steps (>= 0).
    :param lr: Adam learning rate, or step size in units of the mean |gradient| for ``"normalized"``.
    :param measure: evaluate the objective on the untransformed image before and after (two extra forward passes).
        False skips them — for callers that take many one-step ascents (tiled dreams) and read ``history``; then
        ``initial`` is the first step's value and ``final`` the last step's, both as seen before their update.
    """
    if isinstance(objective, str):
        objective = parse_objective(objective)
    layers = list(layers if layers is not None else getattr(objective, "layers", ()))
    if not layers:
        raise ValueError("ascend needs the layer names to hook: pass an Objective or layers=[...]")
    if optimizer not in [o.value for o in AscentOptimizer]:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(AscentOptimizer)}")
    if steps < 0 or blur_every < 0:
        raise ValueError(f"steps and blur_every must be >= 0, got {steps} and {blur_every}")
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W), got shape {tuple(image.shape)}")

    device = next(model.parameters()).device
    params, image_fn = pixel_image(image.to(device))
    x = params[0]
    batch = x.shape[0]
    adam = torch.optim.Adam(params, lr=lr) if optimizer == AscentOptimizer.adam else None
    blur_fn = make_blur(blur_sigma) if blur_every else None
    history = torch.empty(steps, batch, device=device)
    grad_abs = torch.zeros(batch, device=device)

    with eval_mode(model):
        initial = _evaluate(model, objective, image_fn(), layers) if measure or not steps else None
        if initial is not None and initial.shape != (batch,):
            raise ValueError(f"the objective must return shape ({batch},), got {tuple(initial.shape)}")
        for step in tqdm(range(steps), desc=desc, disable=None if progress else True, leave=False):
            check_stop()  # a SIGTERM ends OIPs and dreams between steps (latentdream.stopping)
            seen = transforms(image_fn()) if transforms is not None else image_fn()
            value = objective(activations(model, seen, layers))
            (g,) = torch.autograd.grad(value.sum(), x)
            history[step] = value.detach()
            g_mean = g.abs().flatten(1).mean(dim=1)  # (B,) per-element scale
            grad_abs = torch.maximum(grad_abs, g_mean)
            with torch.no_grad():
                if adam is not None:
                    x.grad = -g  # Adam minimises; we ascend
                    adam.step()
                    x.grad = None
                else:
                    x.add_(lr * g / (g_mean.view(-1, 1, 1, 1) + 1e-8))
                if l2_decay:
                    x.mul_(1.0 - l2_decay)
                if blur_fn is not None and (step + 1) % blur_every == 0:
                    x.copy_(blur_fn(x))
                if clip is not None:
                    x.clamp_(clip[0], clip[1])
        if measure or not steps:
            final = _evaluate(model, objective, image_fn(), layers)
        else:
            initial, final = history[0].clone(), history[-1].clone()
    return AscentResult(x.detach().clone(), initial, final, history, grad_abs)
