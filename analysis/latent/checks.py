"""Input checks and small helpers shared by the latent-statistics modules (validation, seeds, row chunks)."""

from __future__ import annotations

import math

import numpy as np

from latentdream.errors import InputError
from latentdream.stopping import check_stop

_EPS32 = float(np.finfo(np.float32).eps)


def _check_z(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise InputError(f"latent vectors z must be a non-empty (n, N) array, got shape {z.shape}")
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    return z


def _rng(seed) -> np.random.Generator:
    # Anything with Generator.random(size, dtype, out) is used as is (tests feed hand-made uniform numbers).
    return seed if hasattr(seed, "random") else np.random.default_rng(seed)


def _row_chunks(n: int, chunk_size: int):
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, n, chunk_size):
        check_stop()  # every chunked loop of the statistics stops here on a SIGTERM
        yield start, min(n, start + chunk_size)


def _region(mu, half_width) -> tuple[np.ndarray, np.ndarray]:
    """Validate a box mu ± k·hw and return both as float32 (N,) — the precision the hit grid compares in."""
    mu = np.asarray(mu, dtype=np.float64).ravel()
    hw = np.asarray(half_width, dtype=np.float64).ravel()
    if mu.shape != hw.shape or mu.size == 0:
        raise InputError(f"mu and half_width must have the same non-zero length, got {mu.shape} and {hw.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(hw))):
        raise InputError("mu and half_width must be finite (a NaN marks a component with no values in range)")
    if np.any(hw < 0):
        raise InputError(f"half_width must be >= 0, got min {hw.min():g}")
    return mu.astype(np.float32), hw.astype(np.float32)


def _positive_values(name: str, values, allow_zero: bool = False) -> list[float]:
    values = [float(v) for v in np.atleast_1d(values)]
    bad = [v for v in values if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero)]
    if not values or bad:
        allowed = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a non-empty list of finite values {allowed}, got {values}")
    return values
