"""Batched, gradient-free passes of a whole dataset through an encoder, or of vectors through a decoder."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from latentdream.stopping import check_stop
from lightning_modules.data.arrays import images_of


@torch.no_grad()
def encode_dataset(
    encode: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Encode every batch (images (B, C, H, W), or tuples whose first item is that) → z float32 (n, z_dim).

    Batches may come from the host (a DataLoader; copied with ``non_blocking``, which overlaps when they are
    pinned) or already sit on ``device`` (``images_dataloader`` with on-device data: no copy). The vectors stay on
    ``device`` until the end and come back in one copy, so an accelerator is not waited for once per batch.

    :param encode: e.g. ``network.encode`` (put the network in eval mode first; call it outside autocast for
        float32 vectors).
    :param device: where the encoder lives (take it from the model: ``next(net.parameters()).device``).
    """
    chunks = []
    for batch in tqdm(batches, desc="encoding", unit="batch", disable=None if progress else True, leave=False):
        check_stop()  # a SIGTERM ends the encoding between batches
        x = images_of(batch)
        chunks.append(encode(x.to(device, non_blocking=True)).float())
    return torch.cat(chunks).cpu().numpy() if chunks else np.zeros((0, 0), np.float32)


@torch.no_grad()
def decode_vectors(
    decode: Callable[[torch.Tensor], torch.Tensor], z: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 256
) -> np.ndarray:
    """Decode latent vectors z (n, z_dim) → images float32 (n, H, W) for one channel or (n, H, W, 3) for RGB."""
    out = []
    for start in range(0, len(z), batch_size):
        check_stop()
        x = decode(torch.as_tensor(z[start : start + batch_size], dtype=torch.float32, device=device)).cpu()
        out.append(x.permute(0, 2, 3, 1).numpy())
    images = np.concatenate(out)
    return images[..., 0] if images.shape[-1] == 1 else images
