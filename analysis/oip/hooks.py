"""Forward hooks that collect layer outputs by module name.

Layers are addressed as in ``dict(model.named_modules())`` (``"conv3"`` for :class:`MnistCNN`). Two entry points:

* :func:`capture` — a context manager that registers hooks, yields the dict they fill, and always removes them.
* :func:`activations` — one forward pass that returns the captured outputs and *stops the forward pass as soon as
  the last requested layer has fired*. The layers behind it (pooling, the dense classifier) are never run, which
  saves time and lets images of any size reach a conv layer even when the classifier only accepts 28×28.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from latentdream.errors import InputError


class _EnoughCaptured(Exception):
    """Raised by the last hook to fire so that :func:`activations` can skip the rest of the forward pass."""


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of the conv layers of ``model``: ``model.conv_layer_names`` if it has them, else every ``nn.Conv2d``."""
    names = getattr(model, "conv_layer_names", None)
    if names is not None:
        return list(names)
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name``; :class:`InputError` listing the conv layer names if there is none."""
    modules = dict(model.named_modules())
    if not isinstance(name, str) or name == "" or name not in modules:
        raise InputError(f"unknown layer {name!r}; conv layers: {', '.join(conv_layer_names(model)) or '(none)'}")
    return modules[name]


def map_count(model: nn.Module, name: str) -> int:
    """Number of maps (output channels) of the conv layer ``name``."""
    layer = get_layer(model, name)
    if not hasattr(layer, "out_channels"):
        raise InputError(f"layer {name!r} has no maps; conv layers: {', '.join(conv_layer_names(model))}")
    return int(layer.out_channels)


@contextmanager
def capture(
    model: nn.Module, layer_names: Sequence[str], *, stop_when_done: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Register forward hooks on ``layer_names`` and yield ``{name: output}`` filled by every forward pass.

    Outputs keep their graph (no ``detach``), so objectives computed from them can be differentiated w.r.t. the
    input. Hooks are removed on exit, also after an exception.

    :param stop_when_done: raise a private exception once every layer has fired (used by :func:`activations`).
    :raises InputError: for a name that is not a module of ``model``.
    """
    names = list(dict.fromkeys(layer_names))
    modules = [get_layer(model, name) for name in names]  # validate all before registering any
    acts: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            acts[name] = output
            if stop_when_done and len(acts) == len(names):
                raise _EnoughCaptured

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in zip(names, modules)]
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()


def activations(model: nn.Module, x: torch.Tensor, layer_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` (B, C, H, W) up to the last of ``layer_names`` and return their outputs by name.

    A model with a method ``layer_outputs(x, layer_names)`` computes them itself (e.g.
    :class:`analysis.dream.windows.Windowed`, which cuts every window's outputs from one pass over the image).

    :raises RuntimeError: if the forward pass ends without reaching one of the layers (it is not used by
        ``model.forward``).
    """
    own = getattr(model, "layer_outputs", None)
    if own is not None:
        return own(x, layer_names)
    with capture(model, layer_names, stop_when_done=True) as acts:
        try:
            model(x)
        except _EnoughCaptured:
            pass
    missing = [n for n in dict.fromkeys(layer_names) if n not in acts]
    if missing:
        raise RuntimeError(f"layers {missing} were not reached by the forward pass")
    return dict(acts)
