"""Benchmark: the dream modes' costs, measured side by side in one process.

1. Tiled DeepDream of a ``size``×``size`` photo, tiles in batches vs one tile at a time. Both paths run the identical
   per-tile math (same seed, offsets, steps), so the ratio measures only what batching buys. Goal: batched ≥ 5×
   faster. Random weights are enough for timing.
2. The octave mode (``dream_octaves`` at its defaults: sliding 28×28 windows, jitter, clamp) against a minimal
   Keras-style DeepDream loop (F. Chollet's: image pyramid, detail re-injection, normalised gradient steps on the
   layer's post-ReLU mean over the whole image; no windows, jitter or clamp) with the same pyramid, steps and step
   size, on a CNN trained for ``--train-epochs`` on the bundled digits (gains of an untrained net mean little).
   Each is timed ``--repeats`` times, alternating, with ``--threads`` torch threads (default 1: on a shared VM the
   CPU time of several threads mostly counts OpenMP workers spinning), and the medians of CPU time
   (``time.process_time``) and wall time are compared. A third run, the loop fed channels-last input as the
   octave mode is on the CPU, shows how much of the difference that layout makes. The gain of each is measured with one yardstick, the octave mode's objective (mean
   over windows of the layer's post-ReLU response), and with the loop's own (the whole image's post-ReLU mean).
   Goal: octave / loop CPU time ≤ 1.0 at a gain ratio ≥ 1.0.

Run: ``python benchmarks/dream.py [--steps 3] [--size 512] [--batch-tiles 256] [--octave-size 256] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from _timing import timed
from analysis.dream import (Windowed, default_image, dream_objective, dream_octaves, dream_tiled, evaluate,
                            mean_over_windows, octave_shapes, resize, shrink, to_tensor)
from analysis.dream.images import MIN_SIDE
from analysis.dream.octaves import OCTAVES_LR
from analysis.oip.hooks import activations
from analysis.settings import DreamSettings
from lightning_modules.data.bundled import load_bundled_mnist
from lightning_modules.networks import MnistCNN


def photo(size: int) -> np.ndarray:
    """Centre square crop of the bundled flower photo, bicubically resized to ``size``×``size``, in [0, 1]."""
    img = default_image()
    side = min(img.shape)
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    square = to_tensor(img[top : top + side, left : left + side])
    return resize(square, (size, size))[0, 0].clamp(0, 1).numpy()


def trained_cnn(epochs: int) -> MnistCNN:
    """The reference CNN after ``epochs`` of SGD + momentum on the 5,000 bundled digits (0: random weights)."""
    torch.manual_seed(0)
    net = MnistCNN()
    images, labels = load_bundled_mnist()
    x, y = torch.as_tensor(images, dtype=torch.float32)[:, None] / 255.0, torch.as_tensor(labels)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    return net.eval()


def minimal_loop(model: torch.nn.Module, image: np.ndarray, layer: str, settings: DreamSettings,
                 channels_last: bool = False) -> np.ndarray:
    """Chollet's Keras DeepDream loop on the post-ReLU mean of ``layer`` over the whole image (the conv layers
    take any size): per octave, smallest first, resize the dream up, ``steps_per_octave`` steps
    ``x += lr · g / max(mean|g|, 1e-7)``, then add the detail the smaller octave lacked. Returns (H, W) in [0, 1].
    ``channels_last`` feeds the CNN channels-last strides, as the octave mode does on the CPU (for comparison)."""
    s = settings
    lr = OCTAVES_LR if s.lr is None else s.lr
    original = to_tensor(image)
    shapes = octave_shapes(tuple(original.shape[-2:]), s.octaves, s.octave_scale)
    shrunk = img = resize(original, shapes[0])
    for shape in shapes:
        img = resize(img, shape)
        for _ in range(s.steps_per_octave):
            img = img.detach().requires_grad_(True)
            seen = img.to(memory_format=torch.channels_last) if channels_last else img
            loss = torch.relu(activations(model, seen, [layer])[layer]).mean()
            (g,) = torch.autograd.grad(loss, img)
            img = img + lr * g / g.abs().mean().clamp_min(1e-7)
        same = resize(original, shape)
        img = img.detach() + (same - resize(shrunk, shape))  # the lost detail
        shrunk = same
    return img.clamp(0.0, 1.0)[0, 0].numpy()


def clocked(fn):
    """``(fn(), CPU seconds of this process, wall seconds)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def tiled(args: argparse.Namespace) -> None:
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


def octaves(args: argparse.Namespace) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # CPU time with several threads on a busy VM mostly counts spinning workers
    try:
        _octaves(args)
    finally:
        torch.set_num_threads(threads)


def _octaves(args: argparse.Namespace) -> None:
    model = trained_cnn(args.train_epochs)
    img = shrink(default_image(), args.octave_size)
    settings = DreamSettings(layer_objective="conv3", seed=0)
    if args.octave_steps is not None:
        settings = replace(settings, steps_per_octave=args.octave_steps)
    layer = settings.layer_objective
    ours = lambda: dream_octaves(model, img, settings)  # noqa: E731
    loop = lambda: minimal_loop(model, img, layer, settings)  # noqa: E731
    loop_cl = lambda: minimal_loop(model, img, layer, settings, channels_last=True)  # noqa: E731
    calls = {"octave mode": ours, "minimal loop": loop, "loop, NHWC": loop_cl}
    for call in calls.values():
        call()  # warm-up
    runs = {name: [] for name in calls}
    for _ in range(args.repeats):  # alternating, so a load change on the machine hits all alike
        for name, call in calls.items():
            runs[name].append(clocked(call))
    cpu = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    wall = {k: statistics.median(r[2] for r in v) for k, v in runs.items()}
    finals = {"octave mode": runs["octave mode"][0][0].image, "minimal loop": runs["minimal loop"][0][0]}
    nhwc = runs.pop("loop, NHWC")

    objective = dream_objective(layer, settings.response, mean_over_windows)
    windowed = Windowed(model, MIN_SIDE, settings.window_stride, objective.layers)
    yardsticks = {"octave mode's objective (mean over windows)": lambda im: evaluate(windowed, objective, im),
                  "loop's objective (whole-image mean)":
                      lambda im: torch.relu(activations(model, im, [layer])[layer]).mean()}
    print(f"\noctave dream of the flower photo {img.shape[0]}x{img.shape[1]}, {layer} post-ReLU, "
          f"{settings.octaves} octaves x {settings.steps_per_octave} steps, CNN trained {args.train_epochs} epoch(s), "
          f"torch threads {torch.get_num_threads()}, {args.repeats} alternating repeats (medians)")
    for name in runs:
        print(f"{name:13s}: CPU {cpu[name]:.2f} s, wall {wall[name]:.2f} s")
    gains = {}
    for label, measure in yardsticks.items():
        with torch.no_grad():
            before = float(measure(to_tensor(img)))
            gains[label] = {k: float(measure(to_tensor(im))) - before for k, im in finals.items()}
        print(f"gain on the {label}: octave mode {gains[label]['octave mode']:+.4f}, "
              f"minimal loop {gains[label]['minimal loop']:+.4f} (before {before:.4f})")
    first = next(iter(gains.values()))
    print(f"octave/loop CPU ratio: {cpu['octave mode'] / cpu['minimal loop']:.2f}x (goal <= 1.0), wall ratio "
          f"{wall['octave mode'] / wall['minimal loop']:.2f}x, gain ratio "
          f"{first['octave mode'] / first['minimal loop']:.2f}x (goal >= 1.0)")
    # the octave mode feeds the CNN channels-last strides on the CPU; a loop that did the same would be this fast
    cpu_nhwc = statistics.median(r[1] for r in nhwc)
    print(f"(the loop with channels-last input, as the octave mode uses: CPU {cpu_nhwc:.2f} s; octave/that ratio "
          f"{cpu['octave mode'] / cpu_nhwc:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="tiled: steps")
    parser.add_argument("--size", type=int, default=512, help="tiled: photo side")
    parser.add_argument("--batch-tiles", type=int, default=256)
    parser.add_argument("--octave-size", type=int, default=256, help="octaves: the photo's longer side")
    parser.add_argument("--octave-steps", type=int, default=None, help="octaves: steps per octave (default: the mode's)")
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="octaves: torch threads while timing")
    args = parser.parse_args()
    tiled(args)
    octaves(args)


if __name__ == "__main__":
    main()
