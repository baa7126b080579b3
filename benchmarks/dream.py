"""Benchmark: tiled DeepDream of a 512×512 photo, tiles in batches vs one tile at a time.

Both paths run the identical per-tile math (same seed, same offsets, same steps), so the ratio measures only
what batching the tiles through the CNN buys. Goal: batched ≥ 5× faster. A MnistCNN with random weights is
enough for timing. Run: ``python benchmarks/dream.py [--steps 3] [--size 512] [--batch-tiles 256]``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from _timing import timed
from analysis.dream import default_image, dream_tiled, resize, to_tensor
from analysis.settings import DreamSettings
from lightning_modules.networks import MnistCNN


def photo(size: int) -> np.ndarray:
    """Centre square crop of the bundled flower photo, bicubically resized to ``size``×``size``, in [0, 1]."""
    img = default_image()
    side = min(img.shape)
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    square = to_tensor(img[top : top + side, left : left + side])
    return resize(square, (size, size))[0, 0].clamp(0, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-tiles", type=int, default=256)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = MnistCNN().eval()
    img = photo(args.size)
    settings = DreamSettings(layer_objective="conv3", steps=args.steps, lr=0.01, seed=0, tile_batch=args.batch_tiles)
    dream_tiled(model, img, replace(settings, steps=1))  # warm-up (first-call allocations)

    batched, t_batched = timed(lambda: dream_tiled(model, img, settings))
    single, t_single = timed(lambda: dream_tiled(model, img, settings, batched=False))
    tile_steps = batched.n_tiles * args.steps
    print(f"image {args.size}x{args.size}, {batched.n_tiles} tiles of 28x28, {args.steps} steps, "
          f"torch threads {torch.get_num_threads()}")
    print(f"batched (batch_tiles={args.batch_tiles}): {t_batched:.2f} s, {tile_steps / t_batched:.0f} tiles/s")
    print(f"one tile at a time:           {t_single:.2f} s, {tile_steps / t_single:.0f} tiles/s")
    print(f"speed-up batched vs one-at-a-time: {t_single / t_batched:.1f}x (goal >= 5x)")
    diff = np.abs(batched.image - single.image)
    # Not bit-identical: where the JPEG is flat, max-pool windows hold ties that float rounding of a batched vs a
    # single-image convolution breaks differently, so the gradient goes to a different pixel of the tie.
    print(f"results: max |batched - single| {diff.max():.1e}, pixels differing by > 1e-4: {(diff > 1e-4).mean():.1%}")


if __name__ == "__main__":
    main()
