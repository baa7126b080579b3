"""The activations of every conv layer of a network on a fixed probe set, in one pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from analysis.oip.hooks import activations
from lightning_modules.data.arrays import images_of


@torch.no_grad()
def probe_activations(model: nn.Module, batches: Iterable, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Post-ReLU outputs of ``layers`` (what the network passes on) for every image of ``batches``.

    :param model: a network in eval mode; its device is where the probe runs.
    :param batches: images (B, C, H, W), or tuples whose first item is that; the same for every network compared.
    :returns: layer → float32 (n, M, H, W).
    """
    device = next(model.parameters()).device
    layers = list(dict.fromkeys(layers))
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for batch in batches:
        x = images_of(batch).to(device).float()
        for name, out in activations(model, x, layers).items():
            parts[name].append(torch.relu(out).float())
    return {name: torch.cat(chunks).cpu().numpy() for name, chunks in parts.items()}
