"""uint8 image arrays (face caches and MNIST) as float32 tensor datasets, with a collate that keeps whole batches.

* :class:`ImageArrayDataset` — any uint8 image array → float32 (C, H, W) in [0, 1]. For faces it returns the
  image tensor only: the autoencoder's target is its input.
* :func:`collate_samples` — DataLoader ``collate_fn`` taking the batch :meth:`ImageArrayDataset.__getitems__`
  already built.
* :func:`check_image_size` — the one bound (:data:`MAX_IMAGE_SIZE`) on ``data.image_size`` for every data module.

Nothing here imports ``lightning``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from latentdream.errors import InputError


def images_of(batch):
    """The images of a batch: the batch itself (B, C, H, W), or the first item of a (images, labels, ...) tuple —
    what our loaders and the analyses' image loaders yield."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch

#: Largest ``data.image_size`` (faces and MNIST alike): a 1024x1024 RGB image is 3 MB as uint8 and 12 MB as a float
#: tensor, already far past what these autoencoders train on; a 100000 px side ran out of memory.
MAX_IMAGE_SIZE = 1024


def check_image_size(image_size: int, minimum: int = 1, note: str = "") -> None:
    """Reject ``data.image_size`` unless it is an integer in ``[minimum, MAX_IMAGE_SIZE]``, in one line naming the key.

    :param note: appended to the message, e.g. ``" (e.g. 64, 96, 128)"``.
    :raises InputError: not an integer, or out of range.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not minimum <= image_size <= MAX_IMAGE_SIZE:
        raise InputError(f"data.image_size={image_size!r}: must be an integer from {minimum} to {MAX_IMAGE_SIZE}{note}")


class ImageArrayDataset(Dataset):
    """uint8 images → float32 tensors (C, H, W) in [0, 1]; with labels, items are ``(image, label)``.

    Without labels an item is just the image tensor (for the autoencoder the target is the input itself).
    ``images`` may be an array or the path of a ``.npy`` file; a path is memory-mapped lazily in each process, so
    DataLoader workers share the page cache instead of receiving a pickled copy of the whole array.
    :meth:`__getitems__` converts a whole batch at once (DataLoader uses it automatically); pass
    ``collate_fn=collate_samples`` to skip re-stacking the samples (``default_collate`` also works, a bit slower).

    :param images: uint8 (N, H, W, C) or (N, H, W) (one channel), or a ``.npy`` path holding such an array.
    :param indices: which of the N images this dataset exposes (e.g. a split); ``None`` → all.
    :param labels: int64 (N,) class labels aligned with ``images`` (not with ``indices``), or ``None``.
    """

    def __init__(
        self, images: np.ndarray | str | Path, indices: Sequence[int] | None = None, labels: np.ndarray | None = None
    ) -> None:
        self._path = None if isinstance(images, np.ndarray) else Path(images)
        self._images = images if isinstance(images, np.ndarray) else None
        n = len(self._array())
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def _array(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self._path, mmap_mode="r")
        return self._images

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._path is not None:
            state["_images"] = None  # reopen the memmap in the worker instead of pickling its contents
        return state

    def __len__(self) -> int:
        return len(self.indices)

    def _raw(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images at ``positions`` as uint8 (B, C, H, W), a transposed (not contiguous) array."""
        raw = self._array()[self.indices[np.asarray(positions, dtype=np.int64)]]
        if raw.ndim == 3:
            raw = raw[..., None]
        return raw.transpose(0, 3, 1, 2)

    def batch(self, positions: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Images at ``positions`` (into this dataset) as one float32 tensor (B, C, H, W) in [0, 1]."""
        raw = self._raw(positions)
        # numpy, not torch: this small memory-bound op runs single-threaded, while torch's OpenMP threads were
        # measured 10-20x slower on a busy 2-core machine (barrier waits) — and DataLoader workers add more threads.
        out = np.empty(raw.shape, dtype=np.float32)
        np.divide(raw, np.float32(255.0), out=out)
        return torch.from_numpy(out)

    def without_labels(self) -> ImageArrayDataset:
        """The same images (same indices, same backing array or file) without labels."""
        return ImageArrayDataset(self._path if self._path is not None else self._images, self.indices)

    def uint8_batch(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Images at ``positions`` as a contiguous uint8 copy (B, C, H, W), values 0..255."""
        return np.ascontiguousarray(self._raw(positions))

    def uint8_images(self) -> np.ndarray:
        """All images of this dataset as a uint8 copy (N, C, H, W), values 0..255, in dataset order."""
        return self.uint8_batch(np.arange(len(self)))

    def __getitem__(self, position: int):
        image = self.batch([position])[0]
        if self.labels is None:
            return image
        return image, self.labels[int(self.indices[position])]

    def __getitems__(self, positions: list[int]) -> CollatedSamples:
        # One vectorised uint8 → float conversion per batch. The samples keep default_collate working; the
        # DataModules' collate_samples just takes the ready batch (no unbind + re-stack).
        images = self.batch(positions)
        if self.labels is None:
            return CollatedSamples(list(images), images)
        labels = self.labels[torch.from_numpy(self.indices[np.asarray(positions, dtype=np.int64)])]
        return CollatedSamples(list(zip(images, labels)), (images, labels))


class CollatedSamples(list):
    """A list of samples (what ``default_collate`` expects) that also carries them already collated."""

    def __init__(self, samples: list, collated) -> None:
        super().__init__(samples)
        self.collated = collated


def collate_samples(data: list):
    """DataLoader ``collate_fn``: the ready batch of an :class:`ImageArrayDataset`, else ``default_collate``."""
    if isinstance(data, CollatedSamples):
        return data.collated
    return default_collate(data)
