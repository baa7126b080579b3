"""How batches are drawn: the seeded order every epoch follows, and batches of pixels kept on the training device.

* :class:`EpochOrder` — a seeded random order of a split, a new one per epoch. The DataLoader path (its sampler)
  and the device-resident path draw it alike, so both give the same batches for the same seed, on any device.
* :class:`ResidentBatches` — the batches of an :class:`~lightning_modules.data.arrays.ImageArrayDataset` whose
  uint8 pixels were copied to the accelerator once: each batch is gathered and converted to float32 there, so no
  DataLoader, worker process or host-to-device copy runs per step. On the CPU the same class converts with
  numpy, as the DataLoader path does, minus its per-batch machinery.
* :func:`fits_on_device` — the size rule of ``data.on_device: null`` (auto) on an accelerator.

Nothing here imports ``lightning``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from lightning_modules.data.arrays import ImageArrayDataset

#: ``data.on_device: null`` keeps the uint8 pixels of all splits on an accelerator when they take at most this many
#: bytes (and at most :data:`ON_DEVICE_MAX_SHARE` of its memory): CelebA at 64 px (202,599 × 12,288 B = 2.5 GB)
#: fits; at 128 px (9.9 GB) it streams through the DataLoader. MNIST (47 MB) always fits.
ON_DEVICE_MAX_BYTES = 4 * 2**30
#: ... and at most this share of the accelerator's total memory, leaving the rest to activations.
ON_DEVICE_MAX_SHARE = 0.25
#: Rows copied to the device per transfer while uploading (bounds the host memory a memory-mapped cache needs).
UPLOAD_ROWS = 8192


def fits_on_device(n_bytes: int, device: torch.device) -> bool:
    """Whether ``n_bytes`` of pixels go on ``device`` under auto: an accelerator (not the CPU, where nothing needs
    copying) with ``n_bytes`` within both limits above."""
    if device.type == "cpu" or n_bytes > ON_DEVICE_MAX_BYTES:
        return False
    if device.type == "cuda":
        return n_bytes <= ON_DEVICE_MAX_SHARE * torch.cuda.get_device_properties(device).total_memory
    return True


class EpochOrder(Sampler[int]):
    """A seeded random permutation of ``range(n)``, a fresh one each time an epoch starts (each ``iter``).

    :param n: the split's length.
    :param seed: seeds the generator once; epoch k's order is then fixed by ``(n, seed, k)``.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)

    def permutation(self) -> torch.Tensor:
        """The next epoch's order, int64 (n,) on the CPU."""
        return torch.randperm(self.n, generator=self.generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation().tolist())

    def __len__(self) -> int:
        return self.n


def upload(dataset: ImageArrayDataset, device: torch.device) -> torch.Tensor:
    """The dataset's images as one uint8 tensor (N, C, H, W) on ``device``, copied in chunks of :data:`UPLOAD_ROWS`."""
    n = len(dataset)
    first = dataset.uint8_batch(np.arange(min(n, 1)))
    pixels = torch.empty((n, *first.shape[1:]), dtype=torch.uint8, device=device)
    for start in range(0, n, UPLOAD_ROWS):
        stop = min(start + UPLOAD_ROWS, n)
        pixels[start:stop].copy_(torch.from_numpy(dataset.uint8_batch(np.arange(start, stop))))
    return pixels


class ResidentBatches:
    """Batches of ``dataset`` with its pixels already on ``pixels.device``: float32 images (B, C, H, W) in [0, 1],
    or ``(images, labels int64 (B,))`` when the dataset has labels and ``with_labels``.

    Each ``iter`` is one epoch: shuffled in :class:`EpochOrder` (the CPU permutation, copied to the device once per
    epoch) or in dataset order. Values equal the DataLoader path's bit for bit (x / 255 in float32, divided by a
    device tensor so CUDA does not use a reciprocal). Under DDP each of ``world_size`` ranks takes every
    ``world_size``-th sample of the (padded) order, so all ranks see the same number of batches.

    :param dataset: the split.
    :param pixels: ``upload(dataset, device)``; ``None`` on the CPU, where batches come from ``dataset.batch``
        (numpy conversion, as in the DataLoader path).
    :param order: the epoch order for shuffled batches; ``None`` → dataset order.
    :param with_labels: yield ``(images, labels)`` when the dataset has labels; False → images only.
    :param rank: this process's rank under DDP; ``world_size``: the number of ranks.
    """

    def __init__(
        self,
        dataset: ImageArrayDataset,
        pixels: torch.Tensor | None,
        batch_size: int,
        order: EpochOrder | None = None,
        with_labels: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset, self.pixels, self.batch_size, self.order = dataset, pixels, batch_size, order
        self.rank, self.world_size = rank, world_size
        self.device = torch.device("cpu") if pixels is None else pixels.device
        self._labels = None
        if with_labels and dataset.labels is not None:
            labels = dataset.labels[torch.from_numpy(dataset.indices)]
            self._labels = labels if pixels is None else labels.to(self.device)
        self._scale = torch.tensor(255.0, device=self.device)
        self._per_rank = math.ceil(len(dataset) / world_size)

    def __len__(self) -> int:
        return math.ceil(self._per_rank / self.batch_size)

    def _positions(self) -> torch.Tensor:
        """This rank's positions into the dataset for one epoch, on the batches' device."""
        n = len(self.dataset)
        positions = self.order.permutation() if self.order is not None else torch.arange(n)
        if self.world_size > 1:  # pad by wrapping around, as DistributedSampler does, then take every k-th
            positions = torch.cat([positions, positions[: self._per_rank * self.world_size - n]])
            positions = positions[self.rank :: self.world_size]
        return positions.to(self.device, non_blocking=True)

    def _batch(self, positions: torch.Tensor, rows: np.ndarray | None):
        """The batch at ``positions`` (on the batches' device); ``rows``: the same as numpy, for host batches."""
        if self.pixels is None:
            images = self.dataset.batch(rows)
        else:
            images = torch.div(self.pixels.index_select(0, positions), self._scale)
        if self._labels is None:
            return images
        return images, self._labels.index_select(0, positions)

    def __iter__(self) -> Iterator:
        # A generator: nothing is drawn until the first batch is asked for (Lightning calls iter() once to check
        # that the loader is iterable; that must not consume an epoch's order).
        positions = self._positions()
        rows = positions.numpy() if self.pixels is None else None  # host batches: once per epoch, not per batch
        for start in range(0, len(positions), self.batch_size):
            stop = start + self.batch_size
            yield self._batch(positions[start:stop], None if rows is None else rows[start:stop])
