"""Benchmark: chunked k-score hit grid (``hit_counts``) against the plain per-(b, k) version.

Builds a latent region mu/hw for N = 256 from a synthetic z (per-component Gaussians, a few of them off-centre and
wide, like the post's dominant components), then times both functions on the post's grid
(n vectors × b = 1, 1.5, 2, 3, 12 × k = 1.5, 2, 3, 12) with the same seed, best of ``--repeats``, checks that the
two tables are identical and prints the times and their ratio.

    python benchmarks/latent_analysis.py [--n-random 200000] [--repeats 3] [--chunk-size 4096]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.latent import component_histograms, component_stats, hit_counts, hit_counts_reference

B_VALUES = (1.0, 1.5, 2.0, 3.0, 12.0)
K_VALUES = (1.5, 2.0, 3.0, 12.0)


def synthetic_region(dim: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """mu and FWHM per component, measured from a synthetic z (n, dim) as the analysis would."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0.0, 0.1, dim)
    sigma = rng.uniform(0.15, 0.6, dim)
    centre[:8] = (2.25, 1.5, -1.0, -1.5, 0.5, -0.5, 0.25, -0.25)
    sigma[:8] = (0.95, 1.75, 0.95, 0.85, 0.8, 0.95, 0.64, 1.0)
    z = (rng.standard_normal((n, dim), dtype=np.float32) * sigma + centre).astype(np.float32)
    edges, counts = component_histograms(z)
    stats = component_stats(z, edges, counts)
    return stats["mu"].to_numpy(), stats["half_width"].to_numpy()


def best_time(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-random", type=int, default=200_000, help="method-2 vectors per b")
    parser.add_argument("--dim", type=int, default=256, help="latent dimension N")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--chunk-size", type=int, default=4096, help="rows per chunk of hit_counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    mu, hw = synthetic_region(args.dim, 50_000, args.seed)
    grid = dict(b_values=B_VALUES, k_values=K_VALUES, n_random=args.n_random, seed=args.seed + 1)
    t_fast, fast = best_time(lambda: hit_counts(mu, hw, chunk_size=args.chunk_size, **grid), args.repeats)
    t_ref, ref = best_time(lambda: hit_counts_reference(mu, hw, **grid), args.repeats)

    print(f"hit grid: {args.n_random:,} vectors x N={args.dim} x b={list(B_VALUES)} x k={list(K_VALUES)}")
    print(fast.pivot(index="b", columns="k", values="hits").to_string())
    print(f"tables identical: {fast.equals(ref)}")
    print(f"hit_counts (chunked k-score, chunk {args.chunk_size}): {t_fast:.3f} s (best of {args.repeats})")
    print(f"hit_counts_reference (unchunked, per k):      {t_ref:.3f} s (best of {args.repeats})")
    print(f"speed-up: {t_ref / t_fast:.1f}x")


if __name__ == "__main__":
    main()
