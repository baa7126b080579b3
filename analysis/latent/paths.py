"""Paths through the latent space to decode: traversals of single components from the mean vector, and linear and
spherical interpolations between two encoded images, with the share of each point's components inside the data's
region.

Pure numpy/pandas: vectors in, vectors and tables out; the caller decodes them (:func:`analysis.encode.decode_vectors`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.latent.checks import _check_z, _positive_values, _region
from latentdream.errors import InputError

TRAVERSAL_COMPONENTS = 8  # rows of the traversal figure: the components with the widest half-width
TRAVERSAL_STEPS = 9  # points per row, over mu ± TRAVERSAL_REACH·hw
TRAVERSAL_REACH = 3.0
PATHS = ("linear", "spherical")
INTERPOLATION_COLUMNS = ("pair", "index_a", "index_b", "path", "step", "t", "k", "in_region_share", "radius")


def widest_components(mu, half_width, n: int = TRAVERSAL_COMPONENTS) -> np.ndarray:
    """The ``n`` components with the widest half-width, widest first; ties go to the larger |mu|, then the lower
    index. (min(n, N),) int."""
    mu, hw = (np.asarray(a, dtype=np.float64) for a in _region(mu, half_width))
    order = np.lexsort((np.arange(mu.size), -np.abs(mu), -hw))  # the last key sorts first
    return order[: int(n)]


def traversal_vectors(
    base, mu, half_width, components: Sequence[int], *, n_steps: int = TRAVERSAL_STEPS,
    reach: float = TRAVERSAL_REACH,
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``base`` (N,) (the mean latent vector) with one component at a time swept over
    mu_i + s·hw_i, s = −reach … +reach in ``n_steps`` equal steps; every other component keeps its base value.

    :returns: vectors float32 (C, n_steps, N) and the swept values (C, n_steps) float64, C = len(components).
    """
    mu, hw = (np.asarray(a, dtype=np.float64) for a in _region(mu, half_width))
    base = np.asarray(base, dtype=np.float64).ravel()
    idx = np.asarray(components, dtype=np.intp).ravel()
    if base.size != mu.size or np.any((idx < 0) | (idx >= mu.size)) or int(n_steps) < 2:
        raise InputError(f"need base ({mu.size},), components in [0, {mu.size}) and n_steps >= 2, got "
                         f"base {base.shape}, components {idx.tolist()}, n_steps {n_steps}")
    values = mu[idx, None] + np.linspace(-reach, reach, int(n_steps))[None, :] * hw[idx, None]
    vectors = np.broadcast_to(base, (idx.size, int(n_steps), base.size)).copy()
    vectors[np.arange(idx.size), :, idx] = values
    return vectors.astype(np.float32), values


def lerp(a, b, t) -> np.ndarray:
    """Points (1 − t)·a + t·b of the straight line from ``a`` to ``b`` (N,), one row per t: (len(t), N) float64."""
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)
    return (1.0 - t)[:, None] * a + t[:, None] * b


def slerp(a, b, t) -> np.ndarray:
    """Spherical interpolation about the origin: sin((1 − t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, Ω the angle between a
    and b. The norm moves smoothly from |a| to |b| (constant when they are equal) instead of dipping towards the
    origin halfway, as a straight line between two long vectors does. Falls back to :func:`lerp` when a and b are
    (anti)parallel or zero. (len(t), N) float64."""
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return lerp(a, b, t)
    omega = float(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0)))
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    return (np.sin((1.0 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)


def interpolation_vectors(z_a: np.ndarray, z_b: np.ndarray, n_steps: int = TRAVERSAL_STEPS) -> dict[str, np.ndarray]:
    """Linear and spherical paths from each row of ``z_a`` to the same row of ``z_b`` (P, N) at ``n_steps``
    equally spaced t in [0, 1] (t = 0 is a, t = 1 is b): path name → (P, n_steps, N) float32."""
    z_a, z_b = _check_z(z_a), _check_z(z_b)
    if z_a.shape != z_b.shape or int(n_steps) < 2:
        raise InputError(f"need two (P, N) arrays of one shape and n_steps >= 2, got {z_a.shape}, {z_b.shape}, "
                         f"{n_steps}")
    t = np.linspace(0.0, 1.0, int(n_steps))
    return {name: np.stack([fn(a, b, t) for a, b in zip(z_a, z_b)]).astype(np.float32)
            for name, fn in (("linear", lerp), ("spherical", slerp))}


def in_region_share(x: np.ndarray, mu, half_width, k: float) -> np.ndarray:
    """Per vector, the fraction of its components inside the data's region: mean_i [|x_i − mu_i| <= k·hw_i].
    1 inside the box mu ± k·hw; unlike :func:`~analysis.latent.hits.region_fraction` (which counts whole vectors
    inside) it shows how far out of the region a vector is. (n,) float64."""
    mu, hw = (np.asarray(a, dtype=np.float64) for a in _region(mu, half_width))
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != mu.size:
        raise InputError(f"vectors must be (n, {mu.size}), got shape {x.shape}")
    return np.mean(np.abs(x - mu) <= float(k) * hw, axis=1)


def interpolation_table(paths: dict[str, np.ndarray], pairs: np.ndarray, mu, half_width,
                        k_values: Sequence[float]) -> pd.DataFrame:
    """One row per pair × path × step × k (:data:`INTERPOLATION_COLUMNS`): the path parameter t, the point's
    ``in_region_share`` for that k and its radius (L2 norm).

    :param paths: from :func:`interpolation_vectors`; :param pairs: (P, 2) indices of the two encoded images.
    """
    ks = _positive_values("k_values", k_values, allow_zero=True)
    pairs = np.asarray(pairs).reshape(-1, 2)
    frames = []
    for name, vectors in paths.items():
        n_pairs, n_steps, dim = vectors.shape
        flat = vectors.reshape(-1, dim)
        radius = np.linalg.norm(flat.astype(np.float64), axis=1)
        for k in ks:
            frames.append(pd.DataFrame({
                "pair": np.repeat(np.arange(n_pairs), n_steps), "index_a": np.repeat(pairs[:, 0], n_steps),
                "index_b": np.repeat(pairs[:, 1], n_steps), "path": name, "step": np.tile(np.arange(n_steps), n_pairs),
                "t": np.tile(np.linspace(0.0, 1.0, n_steps), n_pairs), "k": k,
                "in_region_share": in_region_share(flat, mu, half_width, k), "radius": radius}))
    table = pd.concat(frames, ignore_index=True)[list(INTERPOLATION_COLUMNS)]
    return table.sort_values(["pair", "path", "k", "step"], kind="stable", ignore_index=True)
