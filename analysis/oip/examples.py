"""Dataset examples: for every map of every conv layer, the images of a dataset that activate it most.

One pass over the data with forward hooks on all requested layers at once (:func:`analysis.oip.hooks.activations`):
for each batch and layer the maximum of every map over its positions, (B, M), is merged into a running top-k of
(k, M) by one ``torch.topk`` along the image axis, for all maps together — no loop over maps. The images the
current top-k of any layer refers to are kept (at most k × Σ M of them), so the data are read once.

Ranking uses the map's maximum over positions of the conv output *before* the ReLU: the same order as after it
wherever the map fires, and still an order where it is silent; the activations returned are post-ReLU,
``max(0, ·)`` of it — what the network passes on, as for the OIPs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from analysis.oip.hooks import activations
from lightning_modules.data.arrays import images_of


@dataclass(frozen=True)
class TopExamples:
    """The ``k`` most activating images of every map of one layer, most active first.

    :ivar indices: (M, k) int64 positions of the images in the data (the order the batches came in).
    :ivar activations: (M, k) float32 post-ReLU maximum over positions of the map on each image.
    :ivar images: (M, k, H, W) float32 for one channel, (M, k, H, W, C) otherwise: the images themselves.
    :ivar n_images: how many images were searched.
    """

    layer: str
    indices: np.ndarray
    activations: np.ndarray
    images: np.ndarray
    n_images: int


@torch.no_grad()
def top_examples(model: nn.Module, batches: Iterable, layers: Sequence[str], k: int = 8,
                 device: torch.device | str | None = None) -> dict[str, TopExamples]:
    """For each of ``layers``, the ``k`` images of ``batches`` with the largest maximum of each map.

    :param model: a network in eval mode whose conv layers are named ``layers`` (hooked, see module docstring).
    :param batches: images (B, C, H, W), or tuples whose first item is that, in a fixed order (unshuffled).
    :param k: examples per map; fewer if the data hold fewer images.
    :param device: where the model runs; default the device of its parameters.
    :returns: layer name → :class:`TopExamples`.
    """
    device = device or next(model.parameters()).device
    layers = list(dict.fromkeys(layers))
    best: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # layer → (values (k', M), indices (k', M))
    kept_idx = torch.zeros(0, dtype=torch.long, device=device)  # data positions of the images kept, sorted
    kept_img: torch.Tensor | None = None
    seen = 0
    for batch in batches:
        x = images_of(batch).to(device, non_blocking=True).float()
        acts = activations(model, x, layers)
        position = torch.arange(seen, seen + len(x), device=device)
        seen += len(x)
        for name in layers:
            values = acts[name].flatten(2).amax(dim=2)  # (B, M): each map's maximum over its positions
            indices = position[:, None].expand(-1, values.shape[1])
            if name in best:
                values = torch.cat([best[name][0], values])
                indices = torch.cat([best[name][1], indices])
            top = torch.topk(values, min(k, len(values)), dim=0)  # along the images, every map at once
            best[name] = (top.values, torch.gather(indices, 0, top.indices))
        # keep only the images some layer's top-k still refers to
        wanted = torch.unique(torch.cat([i.flatten() for _, i in best.values()]))
        pool_idx = torch.cat([kept_idx, position])
        pool_img = x if kept_img is None else torch.cat([kept_img, x])
        keep = torch.isin(pool_idx, wanted)
        kept_idx, kept_img = pool_idx[keep], pool_img[keep]
    if kept_img is None:
        raise ValueError("top_examples needs at least one batch of images")
    out = {}
    for name, (values, indices) in best.items():
        where = torch.searchsorted(kept_idx, indices.T.contiguous())  # (M, k) rows of kept_img
        images = kept_img[where].permute(0, 1, 3, 4, 2).cpu().numpy().astype(np.float32)
        out[name] = TopExamples(name, indices.T.cpu().numpy().astype(np.int64),
                                torch.relu(values.T).cpu().numpy().astype(np.float32),
                                images[..., 0] if images.shape[-1] == 1 else images, seen)
    return out
