"""Benchmark: training-loader throughput of the uint8 face cache vs decoding the JPEGs every epoch.

Synthesises ``--n`` smooth random 178x218 JPEGs (CelebA's size, quality 90) in a temporary folder, builds the
cache once (timed separately), then measures images/s of

* cached: ``FacesDataModule.train_dataloader()`` over the memmap (batch 64, shuffled, float (B, 3, 64, 64)), and
* JPEG: a ``DataLoader`` over :class:`FaceFileDataset` (decode + centre crop + resize per item, no cache; defined
  here, as only this benchmark and the test that checks it against the cache use it),

both in the main process (``num_workers=0``) so that the ratio compares the work per image, not the core count.

Usage: ``python benchmarks/celeba_cache.py [--n 2000] [--image-size 64]``; goal: ratio >= 20.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lightning_modules.data.face_cache import check_face_params, preprocess_face
from lightning_modules.data.modules import FacesDataModule

CELEBA_SIZE = (178, 218)  # width, height


class FaceFileDataset(Dataset):
    """Uncached faces: every item decodes, crops and resizes its file (what the cache saves).

    :param paths: image files.
    :return: items are float32 (C, H, W) in [0, 1].
    """

    def __init__(self, paths: Sequence[str | Path], image_size: int = 64, crop: int | None = None, channels: int = 3):
        check_face_params(image_size, channels, crop)
        self.paths = [Path(p) for p in paths]
        self.image_size, self.crop, self.channels = image_size, crop, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = preprocess_face(self.paths[index], self.image_size, self.crop, self.channels)
        return torch.from_numpy(np.divide(image.transpose(2, 0, 1), np.float32(255.0), dtype=np.float32))


def synthesise_faces(folder: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` smooth random RGB JPEGs of 178x218 (bicubic-upsampled 9x11 noise, quality 90)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (11, 9, 3), dtype=np.uint8))
        coarse.resize(CELEBA_SIZE, Image.Resampling.BICUBIC).save(folder / f"{i + 1:06d}.jpg", quality=90)


def images_per_second(loader: DataLoader, min_seconds: float) -> float:
    """Iterate whole epochs of ``loader`` until ``min_seconds`` have passed; return images / s."""
    count, start = 0, time.perf_counter()
    while True:
        for batch in loader:
            count += batch.shape[0]
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="number of synthetic faces")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="minimum timing per path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="celeba_bench_") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        synthesise_faces(root, args.n)
        print(f"synthesised {args.n} JPEGs 178x218 in {time.perf_counter() - start:.1f} s")

        dm = FacesDataModule(str(root), image_size=args.image_size, batch_size=args.batch_size)
        start = time.perf_counter()
        dm.prepare_data()  # the one-off decode into the cache
        build = time.perf_counter() - start
        print(f"cache build (decode once, 1 process): {args.n / build:,.0f} img/s ({build:.1f} s)")
        dm.setup("fit")
        cached = images_per_second(dm.train_dataloader(), args.min_seconds)

        train = dm.dataset("train")
        names = sorted(p.name for p in root.glob("*.jpg"))
        files = FaceFileDataset([root / names[i] for i in train.indices], image_size=args.image_size)
        jpeg = images_per_second(DataLoader(files, batch_size=args.batch_size, shuffle=True), args.min_seconds)

    size = f"{args.image_size}x{args.image_size}"
    print(f"train images: {len(train)}, batch {args.batch_size}, {size} RGB, num_workers=0")
    print(f"cached memmap loader : {cached:12,.0f} img/s")
    print(f"JPEG decode loader   : {jpeg:12,.0f} img/s")
    ratio = cached / jpeg
    print(f"ratio cached / JPEG  : {ratio:12.1f}x  (goal >= 20x: {'met' if ratio >= 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
