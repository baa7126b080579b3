"""Training throughput of the product's ``train`` path over a bare PyTorch loop with the data already on the device.

Rows: the MNIST CNN and autoencoder case I (64 px RGB faces), batch 64 and 256, in float32 and with
``trainer.precision=bf16-mixed model.channels_last=true``. Per row and round, side by side in one process:

* bare loop: the uint8 training split copied to the device once; per step a slice of a seeded on-device
  permutation, ``index_select`` + ``float() / 255`` there, forward, loss, backward, the product's own optimizer
  (same factory, so fused where the product's is); bf16 rows under ``torch.autocast`` with channels-last weights
  and inputs. No framework, no logging, no NaN check.
* product: ``experiments.run.train.train(cfg)`` — Lightning, the MLflow logger writing into a temporary sqlite store,
  our DataModule (``data.on_device`` as given, default auto), the NaN guard, checkpoints — with the analyses and the
  model logging off, the progress bar off, ``data.num_workers=0`` and MLflow's system-metrics sampler off. A timer
  callback is added to the run's callbacks (the one seam replaced: ``experiments.run.train.build_callbacks``).

Timed: training steps only, after ``--warmup`` steps, from an epoch's first timed step to its last, the device
synchronised at both ends; epoch boundaries (validation of one batch, checkpoint, metric logging) are not timed:
on CelebA they come once per 2,543 steps. Wall time and CPU time (``time.process_time``, all threads) are taken
alike. The wall-time ratio compares each side's best round (on a GPU, timings are steady). The CPU-time ratio
compares each side's median step (CPU time from one step's start to the next, pooled over the rounds): on a
shared 2-core VM a round's wall time swings by ±30 % and even its CPU time by ±20 %, but a step's median barely
moves. On a CPU, torch runs one thread by default (``--threads``): OpenMP threads spin while they wait for each other on a
busy VM, and that spinning counts as CPU time; the bf16 rows are off by default there (``--bf16``): a CPU without
bf16 instructions emulates them, which says nothing about a GPU.

Data, no download: the CNN trains on the bundled digits, tiled to the size needed and written as MNIST IDX files
(experiment ``cnn_mnist``); the autoencoder on synthetic face-like images (a skin-toned ellipse with eyes and a
mouth on a graded background, every shape and colour jittered) written as JPEGs into a CelebA-like folder and
decoded into the product's face cache before the first round (experiment ``ae_case1_celeba``).

    python benchmarks/throughput.py [--images N] [--epochs E] [--warmup W] [--repeats R] [--on-device null]
                                    [--models cnn,ae] [--batch-sizes 64,256] [--bf16 | --no-bf16] [--threads T]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from unittest import mock

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

import experiments.run.train as product
from experiments.run.build import build_datamodule, build_network
from experiments.run.config import load_experiment, section
from lightning_modules.data.bundled import load_bundled_mnist
from lightning_modules.data.face_cache import CELEBA_IMAGE_DIR, build_face_cache
from lightning_modules.data.idx import MNIST_FILES, write_idx
from lightning_modules.optim import make_optimizer_factory, weight_decay_groups

EXPERIMENTS = {"cnn": "cnn_mnist", "ae": "ae_case1_celeba"}
FACE_SIDE = 64
#: Share of the files that lands in the training split (val 10 % for MNIST; val and test 5 % each for faces).
TRAIN_SHARE = 0.9


@dataclass
class Timing:
    """Seconds (wall and CPU) over ``images`` timed images, and the CPU seconds of each timed step."""

    wall: float = 0.0
    cpu: float = 0.0
    images: int = 0
    steps: list[float] = field(default_factory=list)


class _Clock:
    """Wall and CPU time between ``start`` and ``stop``, the device synchronised at both."""

    def __init__(self, device: torch.device) -> None:
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.timing = Timing()

    def start(self) -> None:
        self.sync()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._lap = self._cpu

    def lap(self) -> None:
        """A step ends (the next begins): record its CPU time."""
        now = time.process_time()
        self.timing.steps.append(now - self._lap)
        self._lap = now

    def stop(self, images: int) -> None:
        self.lap()
        self.sync()
        self.timing.wall += time.perf_counter() - self._wall
        self.timing.cpu += time.process_time() - self._cpu
        self.timing.images += images


class _StepTimer(L.Callback):
    """Times the product's training steps after ``warmup`` steps, epoch by epoch, epoch boundaries excluded."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.seen, self.clock, self.running = warmup, 0, _Clock(device), 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.seen == self.warmup or (self.seen > self.warmup and batch_idx == 0):
            self.clock.start()
            self.running = 0
        elif self.seen > self.warmup:
            self.clock.lap()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        if self.seen > self.warmup:
            self.running += len(batch[0] if isinstance(batch, (tuple, list)) else batch)
            if batch_idx + 1 == trainer.num_training_batches:
                self.clock.stop(self.running)


# --- data ---------------------------------------------------------------------------------------------------------
def synthetic_faces(n: int, seed: int, side: int = FACE_SIDE) -> np.ndarray:
    """uint8 (n, side, side, 3) face-like images: a skin-toned ellipse with two dark eyes and a red mouth on a
    vertically graded background; centre, size, colours and noise drawn per image from ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:side, 0:side].astype(np.float32) + 0.5) / side

    def draw(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)

    cx, cy, ax, ay = draw(0.42, 0.58), draw(0.45, 0.58), draw(0.25, 0.33), draw(0.33, 0.42)
    face = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
    eye_r, eye_dx, eye_y = 0.035 + draw(0, 0.015), 0.1 + draw(0, 0.04), cy - 0.08
    eyes = ((np.abs(xx - cx) - eye_dx) ** 2 + (yy - eye_y) ** 2) <= eye_r**2
    mouth = ((xx - cx) / (0.08 + draw(0, 0.05))) ** 2 + ((yy - cy - 0.2) / 0.03) ** 2 <= 1
    top, bottom = rng.uniform(0, 255, (2, n, 1, 1, 3)).astype(np.float32)
    image = top + (bottom - top) * yy[None, :, :, None]
    skin = rng.uniform([150, 100, 80], [250, 200, 170], (n, 1, 1, 3)).astype(np.float32)
    image = np.where(face[..., None], skin * (1.1 - 0.3 * yy[None, :, :, None]), image)
    image = np.where(eyes[..., None], np.float32(40), image)
    image = np.where(mouth[..., None], np.array([170, 40, 50], np.float32), image)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_faces(task: tuple[Path, int, int]) -> None:
    folder, start, stop = task
    for i, image in enumerate(synthetic_faces(stop - start, seed=start), start=start):
        Image.fromarray(image).save(folder / f"{i + 1:06d}.jpg", quality=95)


def make_faces(root: Path, n: int, cache_dir: Path) -> None:
    """``root/img_align_celeba`` with ``n`` synthetic faces, decoded into the face cache the product will open."""
    folder = root / CELEBA_IMAGE_DIR
    folder.mkdir(parents=True)
    tasks = [(folder, start, min(start + 2048, n)) for start in range(0, n, 2048)]
    workers = min(len(tasks), os.cpu_count() or 1)
    if workers > 1:
        with Pool(workers) as pool:
            pool.map(_write_faces, tasks)
    else:
        for task in tasks:
            _write_faces(task)
    build_face_cache(root, FACE_SIDE, None, 3, cache_dir, workers=workers if workers > 1 else 0, progress=False)


def make_mnist(root: Path, n: int) -> None:
    """MNIST IDX files in ``root``: ``n`` training digits (the bundled 5,000 tiled) and 512 test digits."""
    images, labels = load_bundled_mnist()
    root.mkdir(parents=True)
    for split, count in (("train", n), ("test", 512)):
        write_idx(root / MNIST_FILES[split][0], np.resize(images, (count, *images.shape[1:])))
        write_idx(root / MNIST_FILES[split][1], np.resize(labels.astype(np.uint8), count))


# --- the two sides ------------------------------------------------------------------------------------------------
def bare_loop(cfg, device: torch.device, steps_per_epoch: int, epochs: int, warmup: int, bf16: bool) -> Timing:
    """A plain PyTorch training loop over the training split held on ``device`` as uint8."""
    dm = build_datamodule(cfg)
    train = dm.dataset("train")
    pixels = torch.from_numpy(train.uint8_images()).to(device)
    labels = None if train.labels is None else train.labels[torch.from_numpy(train.indices)].to(device)
    torch.manual_seed(0)
    layout = torch.channels_last if bf16 else torch.contiguous_format
    net = build_network(cfg, dm.in_channels, dm.image_size).to(device, memory_format=layout)
    optimizer = make_optimizer_factory(section(cfg, "optim"))(weight_decay_groups(net, cfg.optim.weight_decay))
    generator = torch.Generator(device=device).manual_seed(0)
    batch_size, clock = cfg.data.batch_size, _Clock(device)
    order = None
    for step in range(steps_per_epoch * epochs):
        within = step % steps_per_epoch
        if within == 0:
            order = torch.randperm(len(pixels), device=device, generator=generator)
        if step == warmup:
            clock.start()
        elif step > warmup:
            clock.lap()
        idx = order[within * batch_size : (within + 1) * batch_size]
        x = pixels.index_select(0, idx).float().div_(255).contiguous(memory_format=layout)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        if labels is not None:
            loss = F.cross_entropy(out.float(), labels.index_select(0, idx))
        else:
            loss = F.mse_loss(out.float(), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    clock.stop((steps_per_epoch * epochs - warmup) * batch_size)
    return clock.timing


def product_run(cfg, device: torch.device, warmup: int) -> Timing:
    """``experiments.run.train.train(cfg)`` with a step timer as its only extra callback."""
    timer = _StepTimer(warmup, device)
    with mock.patch.object(product, "build_callbacks", lambda cfg: [timer]):
        product.train(cfg, command="benchmarks/throughput.py")
    return timer.clock.timing


# --- the table ----------------------------------------------------------------------------------------------------
def _config(model: str, batch_size: int, bf16: bool, args, data: dict[str, Path], tmp: Path):
    overrides = [
        f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}", f"tracking.artifact_root={tmp / 'mlruns'}",
        f"tracking.checkpoint_dir={tmp / 'checkpoints'}", "tracking.experiment_name=throughput",
        "tracking.log_model=false", "tracking.system_metrics=false", "analysis.enabled=false", "oip.enabled=false",
        "dream.enabled=false", "trainer.enable_progress_bar=false", f"trainer.max_epochs={args.epochs}",
        f"trainer.limit_train_batches={args.images // batch_size}", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", f"data.batch_size={batch_size}", "data.num_workers=0",
        f"data.on_device={args.on_device}", f"data.root={data[model]}",
    ]
    if model == "ae":
        overrides += [f"data.cache_dir={data['cache']}", f"data.image_size={FACE_SIDE}"]
    if bf16:
        overrides += ["trainer.precision=bf16-mixed", "model.channels_last=true"]
    return load_experiment(EXPERIMENTS[model], overrides)


def measure(model: str, batch_size: int, bf16: bool, args, data, tmp: Path, device: torch.device) -> dict:
    cfg = _config(model, batch_size, bf16, args, data, tmp)
    steps = args.images // batch_size
    bare, tracked = [], []
    for i in range(args.repeats):  # alternate which side goes first: background load then hits both alike
        sides = [lambda: bare.append(bare_loop(cfg, device, steps, args.epochs, args.warmup, bf16)),
                 lambda: tracked.append(product_run(cfg, device, args.warmup))]
        for side in sides[:: 1 if i % 2 == 0 else -1]:
            side()
    best_b, best_t = min(bare, key=lambda t: t.wall), min(tracked, key=lambda t: t.wall)
    step_b, step_t = (float(np.median([s for t in side for s in t.steps])) for side in (bare, tracked))
    return {"bare": best_b.images / best_b.wall, "product": best_t.images / best_t.wall,
            "ratio": (best_b.wall / best_b.images) / (best_t.wall / best_t.images), "cpu_ratio": step_b / step_t,
            "ms": (1e3 * step_b, 1e3 * step_t)}


def _defaults(args, device: torch.device) -> None:
    gpu = device.type != "cpu"
    for key, on_gpu, on_cpu in (("images", 32_768, 2_048), ("epochs", 2, 1), ("warmup", 20, 1), ("repeats", 2, 3),
                                ("bf16", True, False), ("threads", torch.get_num_threads(), 1)):
        if getattr(args, key) is None:
            setattr(args, key, on_gpu if gpu else on_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="training images per epoch (default 32,768 GPU, 2,048 CPU)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default 2 on a GPU, 1 on a CPU)")
    parser.add_argument("--warmup", type=int, help="untimed first steps (default 20 on a GPU, 1 on a CPU)")
    parser.add_argument("--repeats", type=int, help="rounds per row; each side's best counts (default 2 GPU, 3 CPU)")
    parser.add_argument("--on-device", default="null", choices=["null", "true", "false"], help="data.on_device")
    parser.add_argument("--models", default="cnn,ae")
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                        help="the bf16-mixed + channels_last rows (default: on a GPU only)")
    parser.add_argument("--threads", type=int, help="torch threads (default: 1 on a CPU, torch's own on a GPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _defaults(args, device)
    torch.set_num_threads(args.threads)
    models, sizes = args.models.split(","), [int(b) for b in args.batch_sizes.split(",")]
    if any(args.warmup >= args.epochs * (args.images // b) for b in sizes):
        parser.error("--warmup must leave timed steps: it is >= epochs × images // batch size for some batch size")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("latentdream").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} torch thread(s)"
    print(f"device: {name}; torch {torch.__version__}; {args.images} images/epoch × {args.epochs} epochs, "
          f"{args.warmup} warm-up steps, best of {args.repeats}; data.on_device={args.on_device}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        n_files = math.ceil(args.images / TRAIN_SHARE) + 32
        data = {"cnn": tmp / "mnist", "ae": tmp / "faces", "cache": tmp / "cache"}
        start = time.perf_counter()
        if "cnn" in models:
            make_mnist(data["cnn"], n_files)
        if "ae" in models:
            make_faces(data["ae"], n_files, data["cache"])
        print(f"data: {n_files} digits / synthetic faces per set, made in {time.perf_counter() - start:.1f} s")
        print(f"{'row':<30}{'bare img/s':>12}{'product img/s':>15}{'ratio':>8}{'cpu-time ratio':>16}"
              f"{'median step cpu ms bare/product':>34}")
        for bf16 in (False, True) if args.bf16 else (False,):
            for model in models:
                for batch_size in sizes:
                    r = measure(model, batch_size, bf16, args, data, tmp, device)
                    label = f"{'CNN' if model == 'cnn' else 'AE case I 64px'} b{batch_size}{' bf16+cl' if bf16 else ''}"
                    print(f"{label:<30}{r['bare']:>12,.0f}{r['product']:>15,.0f}{r['ratio']:>8.3f}"
                          f"{r['cpu_ratio']:>16.3f}{r['ms'][0]:>24.2f} / {r['ms'][1]:<8.2f}", flush=True)
    print("throughput ratio = product / bare (wall: best rounds; CPU time: median steps); goals: >= 0.9 on a GPU, "
          ">= 0.95 by CPU time on a CPU; AE case I 64 px bf16 >= 150,000 img/s on an H200")


if __name__ == "__main__":
    main()
