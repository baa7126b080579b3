"""Benchmark: do both autoencoders (case I and case II) learn on every seed?

Trains each network on the bundled digits at 32×32 (the experiment ``ae_case1_mnist_bundled``: batch 32, Adam at
lr 0.002; case II swaps in ``model/ae_case2``'s layers) for ``--seeds`` seeds × ``--epochs`` epochs and prints per
seed the final ``val/loss`` and its ratio to the data's mean-image MSE (every validation digit predicted by the
mean training image, computed from the data). A seed passes when the ratio is at most 0.75 (val/loss at least 25 %
below the mean image); a network that collapsed to the all-black output has ratio ≈ 1.65 (val/loss = E[x²]).

The loop is the product's training step without Lightning around it: the same seeding, data module, batches,
network (:func:`experiments.run.build.build_network`, output started at the data's mean), loss and optimizer.
``--torch-defaults`` re-initialises the network as before the fix (torch's default init, LeakyReLU slope 0.01,
output bias 0) for a side-by-side comparison in the same process.

    nice python benchmarks/ae_seeds.py [--seeds 10] [--first-seed 0] [--epochs 3] [--cases 1,2] [--torch-defaults]
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
import yaml
from torch import nn

from experiments.run.build import build_datamodule, build_module, build_network
from experiments.run.config import CONFIG_DIR, load_experiment

EXPERIMENT = "ae_case1_mnist_bundled"
PASS_RATIO = 0.75


def case_overrides(case: int) -> list[str]:
    """Overrides that give the experiment the layers of ``model/ae_case<case>.yaml``."""
    model = yaml.safe_load((CONFIG_DIR / "model" / f"ae_case{case}.yaml").read_text())
    return [f"model.{k}={v}".replace(" ", "") for k, v in model.items() if isinstance(v, list)]


def torch_defaults(network: nn.Module) -> None:
    """The initialisation before the fix: torch's defaults, LeakyReLU slope 0.01, output bias from torch's init."""
    for layer in network.modules():
        if isinstance(layer, nn.LeakyReLU):
            layer.negative_slope = 0.01
        elif hasattr(layer, "reset_parameters") and layer is not network:
            layer.reset_parameters()


def mean_image_mse(train: torch.Tensor, val: torch.Tensor) -> float:
    """MSE of predicting every validation image by the mean training image."""
    return float(((val - train.mean(0, keepdim=True)) ** 2).mean())


def train_seed(case: int, seed: int, epochs: int, legacy: bool, max_batches: int | None) -> tuple[list[float], float]:
    """Train one seed; returns (val/loss after each epoch, the data's mean-image MSE)."""
    cfg = load_experiment(EXPERIMENT, [f"trainer.seed={seed}", *case_overrides(case)])
    assert cfg.scheduler.name == "none", "the bare loop has no schedule"
    L.seed_everything(seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    network = build_network(cfg, dm.in_channels, dm.image_size, dm.train_pixel_means())
    if legacy:
        torch_defaults(network)
    module = build_module(cfg, network)
    optimizer = module.configure_optimizers()
    val = torch.cat(list(dm.images_dataloader("val", device="cpu")))
    reference = mean_image_mse(torch.cat(list(dm.images_dataloader("train", device="cpu"))), val)
    losses = []
    for _ in range(epochs):
        network.train()
        for i, batch in enumerate(dm.train_dataloader()):
            if max_batches is not None and i >= max_batches:
                break
            loss = module.reconstruction_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():  # the product's val/loss: batch means weighted by batch size
            total = sum(float(module.reconstruction_loss(b)) * len(b) for b in dm.val_dataloader())
        losses.append(total / len(val))
    return losses, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first .. first + N - 1 (to split a run)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cases", default="1,2", help="networks: 1 (case I), 2 (case II)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the result depends on it, see README)")
    parser.add_argument("--max-batches", type=int, default=None, help="training batches per epoch (tiny runs)")
    parser.add_argument("--torch-defaults", action="store_true", help="also train with the init before the fix")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [False, True] if args.torch_defaults else [False]
    summary = []
    for case in (int(c) for c in args.cases.split(",")):
        for legacy in variants:
            name = f"case {'I' * case}{' (torch defaults)' if legacy else ''}"
            passed, cpu = 0, time.process_time()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                losses, reference = train_seed(case, seed, args.epochs, legacy, args.max_batches)
                ratio = losses[-1] / reference
                passed += ratio <= PASS_RATIO
                print(f"{name} seed {seed}: val/loss {' '.join(f'{v:.4f}' for v in losses)}, mean-image MSE "
                      f"{reference:.4f}, ratio {ratio:.2f}", flush=True)
            summary.append(f"{name}: {passed}/{args.seeds} seeds with val/loss <= {PASS_RATIO} x mean-image MSE "
                           f"after {args.epochs} epochs ({time.process_time() - cpu:.0f} s CPU)")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
