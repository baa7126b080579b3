"""Benchmark: chunked k-score hit grid (``hit_counts``) against the plain per-(b, k) version; the follow-up analyses
of issue 21 against the present latent analysis.

Builds a latent region mu/hw for N = 256 from a synthetic z (per-component Gaussians, a few of them off-centre and
wide, like the post's dominant components), then times both functions on the post's grid
(n vectors × b = 1, 1.5, 2, 3, 12 × k = 1.5, 2, 3, 12) with the same seed, best of ``--repeats``, checks that the
two tables are identical and prints the times and their ratio.

Then, on ``--n-vectors`` synthetic data vectors (default: as many as ``--n-random``) with the default ``analysis``
settings, side by side: the present analysis (``analyze_latents`` without the new skew/kurtosis columns) and what
issue 21 adds (skew/kurtosis, ``analyze_follow_ups`` — Mahalanobis test, hit grid in principal axes, held-out
table for a tenth as many held-out vectors — and the traversal and interpolation paths, without decoding, which
depends on the network: 144 small images). Prints wall and CPU times (process time, all threads) and the ratio
added / present (goal <= 0.5).

    python benchmarks/latent_analysis.py [--n-random 200000] [--n-vectors N] [--repeats 3] [--chunk-size 4096]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.latent import analyze_latents, component_histograms, component_stats, hit_counts, hit_counts_reference
from analysis.latent import paths
from analysis.latent.fits import shape_moments
from analysis.latent.followups import analyze_follow_ups
from analysis.settings import LatentSettings

B_VALUES = (1.0, 1.5, 2.0, 3.0, 12.0)
K_VALUES = (1.5, 2.0, 3.0, 12.0)


def synthetic_z(dim: int, n: int, seed: int) -> np.ndarray:
    """Per-component Gaussians (n, dim) float32, the first 8 off-centre and wide like the post's dominant ones."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0.0, 0.1, dim)
    sigma = rng.uniform(0.15, 0.6, dim)
    centre[:8] = (2.25, 1.5, -1.0, -1.5, 0.5, -0.5, 0.25, -0.25)
    sigma[:8] = (0.95, 1.75, 0.95, 0.85, 0.8, 0.95, 0.64, 1.0)
    centre, sigma = centre[:dim], sigma[:dim]
    return (rng.standard_normal((n, dim), dtype=np.float32) * sigma + centre).astype(np.float32)


def synthetic_region(dim: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """mu and FWHM per component, measured from a synthetic z (n, dim) as the analysis would."""
    z = synthetic_z(dim, n, seed)
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


def timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s of this process, all threads, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def follow_up_paths(z: np.ndarray, report, settings: LatentSettings) -> None:
    """The traversal and interpolation vectors and the interpolation table (what the callback decodes and logs)."""
    mu, hw = report.components["mu"].to_numpy(), report.components["half_width"].to_numpy()
    paths.traversal_vectors(report.mean, mu, hw, paths.widest_components(mu, hw))
    pairs = np.arange(8).reshape(4, 2) % len(z)
    paths.interpolation_table(paths.interpolation_vectors(z[pairs[:, 0]], z[pairs[:, 1]]), pairs, mu, hw, settings.k)


def analysis_costs(n: int, dim: int, seed: int, repeats: int) -> None:
    """The present latent analysis against the follow-ups (issue 21) on n × dim vectors: best of ``repeats`` each,
    measured in alternation so that both see the same machine load."""
    z, held = synthetic_z(dim, n, seed), synthetic_z(dim, max(2, n // 10), seed + 1)
    settings = LatentSettings()
    present, added = [], []
    for _ in range(repeats):
        w_all, c_all, report = timed(lambda: analyze_latents(z, settings))
        w_shape, c_shape, _ = timed(lambda: shape_moments(z, report.mean))
        w_follow, c_follow, _ = timed(lambda: analyze_follow_ups(z, report, settings, z_heldout=held))
        w_paths, c_paths, _ = timed(lambda: follow_up_paths(z, report, settings))
        # analyze_latents now includes the skew/kurtosis columns: they count as added, not present
        present.append((w_all - w_shape, c_all - c_shape))
        added.append((w_shape + w_follow + w_paths, c_shape + c_follow + c_paths))
    (w_p, c_p), (w_a, c_a) = (tuple(min(column) for column in zip(*runs)) for runs in (present, added))
    print(f"latent analysis on {n:,} x {dim} vectors, default settings (b={settings.b}, k={settings.k}), "
          f"best of {repeats}:")
    print(f"present (analyze_latents):                 {w_p:7.2f} s wall, {c_p:7.2f} s CPU")
    print(f"added (skew/kurtosis, follow-ups, paths):  {w_a:7.2f} s wall, {c_a:7.2f} s CPU")
    print(f"added / present: {w_a / w_p:.2f} by wall time, {c_a / c_p:.2f} by CPU time (goal <= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-random", type=int, default=200_000, help="method-2 vectors per b")
    parser.add_argument("--dim", type=int, default=256, help="latent dimension N")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--chunk-size", type=int, default=4096, help="rows per chunk of hit_counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-vectors", type=int, default=None, help="data vectors of the analysis (default: n-random)")
    parser.add_argument("--analysis-repeats", type=int, default=2, help="best of this many analysis runs")
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
    print()
    analysis_costs(args.n_vectors or args.n_random, args.dim, args.seed, args.analysis_repeats)


if __name__ == "__main__":
    main()
