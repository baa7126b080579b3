"""Maps of two networks matched by what they do: the correlation of their activations on one probe set, and the
one-to-one assignment that maximises the summed correlation (Li et al., "Convergent learning", 2016).

Map i of one network has nothing to do with map i of an independently trained one; the assignment finds, for each
map of network A, the map of network B whose response over the same images and positions correlates most, with no
map used twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment


def _per_map(acts: np.ndarray, spatial: bool) -> torch.Tensor:
    """(n, M, H, W) → centred (M, samples) float64: every image and position a sample, or (``spatial`` False) the
    mean over positions per image."""
    a = torch.as_tensor(np.asarray(acts))
    a = a.transpose(0, 1).reshape(a.shape[1], -1) if spatial else a.reshape(a.shape[0], a.shape[1], -1).mean(dim=2).T
    a = a.double()  # torch: its copies and products are several times faster than numpy's here
    return a - a.mean(dim=1, keepdim=True)


def map_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every map of ``a`` with every map of ``b`` → (M_a, M_b).

    :param a: (n, M_a, H, W) activations of network A's layer on the probe images.
    :param b: (n, M_b, H', W') network B's on the same images. With equal map sizes, each image and position is a
        sample; otherwise each image's mean over positions is.
    A map that is constant on the probe (a dead map) correlates 0 with everything.
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"the activations must come from the same probe images: {a.shape[0]} vs {b.shape[0]}")
    spatial = a.shape[2:] == b.shape[2:]
    x, y = _per_map(a, spatial), _per_map(b, spatial)
    cross = (x @ y.T).numpy()
    scale = np.outer(x.norm(dim=1).numpy(), y.norm(dim=1).numpy())
    return np.divide(cross, scale, out=np.zeros_like(cross), where=scale > 1e-12 * max(scale.max(), 1e-300))


def match_maps(correlation: np.ndarray) -> pd.DataFrame:
    """The one-to-one matching of maps with the largest summed correlation (``linear_sum_assignment``).

    :param correlation: (M_a, M_b) from :func:`map_correlation`; with M_a != M_b, min(M_a, M_b) pairs.
    :returns: columns map_a, map_b, correlation; sorted by correlation, highest first (ties by map_a).
    """
    rows, cols = linear_sum_assignment(np.asarray(correlation), maximize=True)
    frame = pd.DataFrame({"map_a": rows.astype(np.int64), "map_b": cols.astype(np.int64),
                          "correlation": np.asarray(correlation)[rows, cols]})
    return frame.sort_values(["correlation", "map_a"], ascending=[False, True], kind="stable").reset_index(drop=True)
