"""Vector lengths ("radii") of the data and of uniform vectors, with the analytic moments of the latter."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.latent.checks import _check_z, _positive_values, _rng, _row_chunks
from analysis.latent.sampling import sample_uniform
from latentdream.errors import InputError

RADIUS_COLUMNS = ("source", "mean", "std", "analytic_mean", "analytic_std")


def radii(z: np.ndarray, *, chunk_size: int = 65536) -> np.ndarray:
    """L2 length ("radius") of each vector, float64 (n,), accumulated in float64."""
    z = _check_z(z)
    out = np.empty(z.shape[0])
    for start, stop in _row_chunks(z.shape[0], chunk_size):
        x = z[start:stop]
        out[start:stop] = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    return out


def uniform_radius_moments(b: float, dim: int) -> tuple[float, float]:
    """Analytic mean and standard deviation of R = |x| for x uniform in [-b, b]^N (N = ``dim``).

    Derivation. For one component x ~ U[-b, b]: E[x²] = b²/3, E[x⁴] = b⁴/5, so Var(x²) = b⁴/5 − b⁴/9 = 4b⁴/45.
    The N components are independent, hence S = R² = Σ x_i² has mean m = N·b²/3 and variance v = 4N·b⁴/45.
    Expand R = sqrt(S) around m to second order (delta method):
        E[R]   ≈ sqrt(m) − v / (8·m^{3/2}) = sqrt(m)·(1 − v/(8m²)) = b·sqrt(N/3)·(1 − 1/(10N)),   as v/m² = 4/(5N);
        Var(R) ≈ v / (4m) = (4N·b⁴/45) / (4N·b²/3) = b²/15,   so σ_R ≈ b/sqrt(15), independent of N.
    The post's <R> ≈ b·sqrt(N/3)·sqrt(1/(1 + 1/(4N))) agrees to leading order (its 1/(8N) correction differs from
    1/(10N), a 0.01 % effect at N = 256), but its Δstd(R) ≈ b·sqrt(N/15)·sqrt(1 + 1/(4N)) carries a stray
    factor sqrt(N): the spread of R does not grow with N, which is why the relative width σ_R/<R> ∝ 1/sqrt(N)
    shrinks (as the post itself states).

    :returns: (mean, std) in latent units.
    """
    if not (b > 0 and dim >= 1):
        raise InputError(f"need b > 0 and dim >= 1, got b={b}, dim={dim}")
    return b * math.sqrt(dim / 3.0) * (1.0 - 1.0 / (10.0 * dim)), b / math.sqrt(15.0)


def uniform_radii(n: int, dim: int, b: float, rng: np.random.Generator, *, chunk_size: int = 16384) -> np.ndarray:
    """Radii of ``n`` method-2 vectors (uniform in [-b, b]^dim), sampled in chunks; float64 (n,)."""
    out = np.empty(int(n))
    for start, stop in _row_chunks(int(n), chunk_size):
        out[start:stop] = radii(sample_uniform(stop - start, dim, b, rng))
    return out


def uniform_label(b: float) -> str:
    """The radius-sample key of uniform vectors in [-b, b]^N: ``uniform_b<b>``."""
    return f"uniform_b{b:g}"


def radius_samples(z: np.ndarray, b_values: Sequence[float], n_random: int, seed) -> dict[str, np.ndarray]:
    """Radii of the data (key ``"data"``) and of ``n_random`` method-2 vectors per b (key ``"uniform_b<b>"``)."""
    z = _check_z(z)
    bs = _positive_values("b_values", b_values)
    if int(n_random) < 1:
        raise InputError(f"n_random must be >= 1, got {n_random}")
    rng = _rng(seed)
    samples = {"data": radii(z)}
    for b in bs:
        samples[uniform_label(b)] = uniform_radii(int(n_random), z.shape[1], b, rng)
    return samples


def radius_summary(samples: dict[str, np.ndarray], b_values: Sequence[float], dim: int) -> pd.DataFrame:
    """Rows (source, mean, std, analytic_mean, analytic_std) for the samples of :func:`radius_samples`;
    std is the population std; the analytic columns are NaN for the data."""
    rows = [("data", float(samples["data"].mean()), float(samples["data"].std()), np.nan, np.nan)]
    for b in b_values:
        r = samples[uniform_label(b)]
        rows.append((uniform_label(b), float(r.mean()), float(r.std()), *uniform_radius_moments(b, dim)))
    return pd.DataFrame(rows, columns=list(RADIUS_COLUMNS))


def radius_table(z: np.ndarray, b_values: Sequence[float], n_random: int, seed) -> pd.DataFrame:
    """Radius moments of the data and of method-2 vectors for each b, next to the analytic values."""
    return radius_summary(radius_samples(z, b_values, n_random, seed), b_values, _check_z(z).shape[1])
