"""One gradient-free pass over validation images that measures what the health verdict needs, where the network
runs; the results come back to the host once, at the end (no sync per batch).

* :func:`probe_autoencoder` — the fraction of decoder outputs at 0 or 1, and the first principal component's share
  of the latent variance;
* :func:`probe_conv_maps` — per named conv layer (``network.conv_layer_names``), the fraction of maps that never
  fire (pre-activation ≤ 0 at every position of every image, so the ReLU after it passes nothing on).

Pure: torch only (no Lightning, no MLflow). Run the network in eval mode and fp32 (``analysis.eval_mode``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from analysis.oip.hooks import activations
from lightning_modules.data.arrays import images_of


def _images(batches: Iterable, device: torch.device | str, max_images: int | None) -> Iterator[torch.Tensor]:
    """The batches' images on ``device``, cut off after ``max_images`` (None: all)."""
    seen = 0
    for batch in batches:
        x = images_of(batch)
        if max_images is not None:
            x = x[: max_images - seen]
        if len(x) == 0:
            return
        seen += len(x)
        yield x.to(device, non_blocking=True)


def pc1_share(z: torch.Tensor) -> float:
    """The share of the variance of vectors ``z`` (n, d) along their first principal component, in [0, 1]: the
    largest eigenvalue of their covariance over the sum of all. Identical vectors (no variance) give 1 (fully
    collapsed)."""
    z = z.double()
    centred = z - z.mean(dim=0, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(centred.T @ centred).clamp(min=0)
    total = float(eigenvalues.sum())
    return float(eigenvalues.max()) / total if total > 0 else 1.0


@torch.no_grad()
def probe_autoencoder(network: nn.Module, batches: Iterable, device: torch.device | str, margin: float,
                      max_images: int | None = None) -> dict[str, float]:
    """Encode and decode the images of ``batches`` with ``network.encode`` / ``network.decode``.

    :param margin: an output y counts as saturated when y < margin or y > 1 − margin.
    :returns: ``saturated_outputs`` (fraction of all output values), ``pc1_share`` (see :func:`pc1_share`) and
        ``n_images``.
    """
    saturated = torch.zeros((), dtype=torch.float64, device=device)
    n_values, latents = 0, []
    for x in _images(batches, device, max_images):
        z = network.encode(x).float()
        y = network.decode(z).float()
        saturated += ((y < margin) | (y > 1 - margin)).sum()
        n_values += y.numel()
        latents.append(z)
    if not latents:
        return {}
    z = torch.cat(latents)
    return {"saturated_outputs": float(saturated) / n_values, "pc1_share": pc1_share(z), "n_images": float(len(z))}


@torch.no_grad()
def probe_conv_maps(network: nn.Module, batches: Iterable, device: torch.device | str,
                    max_images: int | None = None) -> dict[str, float]:
    """Run ``network`` over the images of ``batches`` and hook its conv layers ``network.conv_layer_names``.

    :returns: layer name → the fraction of its maps whose output is ≤ 0 everywhere, on every image ({} for a
        network without named conv layers or without images).
    """
    names = list(getattr(network, "conv_layer_names", []))
    if not names:
        return {}
    peaks: dict[str, torch.Tensor] = {}
    for x in _images(batches, device, max_images):
        for name, output in activations(network, x, names).items():  # stops after the last of them
            peak = output.float().amax(dim=(0, 2, 3))  # per map: the largest response anywhere
            peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak
    return {name: float((peak <= 0).float().mean()) for name, peak in peaks.items()}
