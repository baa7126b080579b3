"""Benchmark: checking a sweep's configs — once per distinct projection (``GridChecker``) vs. loading every point.

Both give every point the same verdict (``tests/unit/test_huge_sweeps.py``); the ratio measures what checking each
distinct combination of the values that meet in a rule buys. Goal: at most 1 s of CPU per 1,000 points. The grid
is ``optim.lr`` × ``data.batch_size`` × ``trainer.seed``; the per-point loads run on a sample of ``--sample`` points
and are scaled to the grid. Run: ``python benchmarks/sweep_config_check.py [--side 10] [--sample 30]``.
"""

from __future__ import annotations

import argparse
import time

from experiments.run.config import load_experiment
from experiments.run.reporting import quiet_libraries
from experiments.run.train import check_trainer
from experiments.sweeps.grid import parse_grid
from experiments.sweeps.sweep import check_configs, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10, help="values per axis (points = side³)")
    parser.add_argument("--sample", type=int, default=30, help="points loaded one by one for the per-point time")
    args = parser.parse_args()
    quiet_libraries()  # the figures only, not Lightning's lines for each Trainer the per-point check builds
    n = args.side
    grid = parse_grid([f"optim.lr={','.join(f'{0.001 * (i + 1):g}' for i in range(n))}",
                       f"data.batch_size={','.join(str(8 * (i + 1)) for i in range(n))}",
                       f"trainer.seed={','.join(str(i) for i in range(n))}"])
    runs = plan(grid)
    check_configs("cnn_mnist_bundled", parse_grid(["optim.lr=0.1"]), plan(parse_grid(["optim.lr=0.1"])))  # imports

    wall, cpu = time.perf_counter(), time.process_time()
    check_configs("cnn_mnist_bundled", grid, runs)
    projected_wall, projected_cpu = time.perf_counter() - wall, time.process_time() - cpu

    sample = runs[:: max(1, len(runs) // args.sample)][: args.sample]
    wall, cpu = time.perf_counter(), time.process_time()
    for run in sample:
        check_trainer(load_experiment("cnn_mnist_bundled", run.overrides(grid)))
    scale = len(runs) / len(sample)
    point_wall, point_cpu = (time.perf_counter() - wall) * scale, (time.process_time() - cpu) * scale

    print(f"{len(runs)} points: by projection {projected_cpu:.2f} s CPU ({projected_wall:.2f} s wall), "
          f"point by point {point_cpu:.1f} s CPU ({point_wall:.1f} s wall, from {len(sample)} points)")
    print(f"CPU per 1,000 points: {1000 * projected_cpu / len(runs):.2f} s (goal <= 1 s); "
          f"speed-up ratio (CPU) {point_cpu / projected_cpu:.0f}x, (wall) {point_wall / projected_wall:.0f}x")


if __name__ == "__main__":
    main()
