"""Linear centred kernel alignment (CKA, Kornblith et al. 2019) between layers of two networks.

For representations X (n, p) and Y (n, q) of the same n probe images, with K = X Xᵀ, L = Y Yᵀ and H the centring
matrix, ``CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F)``: 1 for identical representations, unchanged by an orthogonal
transform or an isotropic scaling of either, and defined for layers of any widths. Computed from the n × n Gram
matrices, so a wide layer (conv1: 21,632 values an image) costs one matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch


def centred_gram(x: np.ndarray) -> np.ndarray:
    """H (X Xᵀ) H of representations ``x`` (n, ...) flattened to (n, p); float64 (n, n)."""
    flat = torch.as_tensor(np.asarray(x)).reshape(len(x), -1).double()  # torch: faster copies than numpy here
    flat = flat - flat.mean(dim=0, keepdim=True)  # centring the features centres the Gram matrix: H K H
    return (flat @ flat.T).numpy()


def cka_from_grams(k: np.ndarray, l: np.ndarray) -> float:
    """CKA of two centred Gram matrices (:func:`centred_gram`); 0 where either representation is constant."""
    denom = np.sqrt(np.sum(k * k) * np.sum(l * l))
    return float(np.sum(k * l) / denom) if denom > 0 else 0.0


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of representations ``x`` (n, ...) and ``y`` (n, ...) of the same n inputs."""
    if len(x) != len(y):
        raise ValueError(f"the representations must be of the same inputs: {len(x)} vs {len(y)}")
    return cka_from_grams(centred_gram(x), centred_gram(y))


def cka_table(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """CKA between every layer of A and every layer of B.

    :param a: layer → activations (n, ...) of network A on the probe; ``b`` the same for network B.
    :returns: columns layer_a, layer_b, cka; one row per pair, A's layers outer, both in the given order.
    """
    grams_a = {name: centred_gram(v) for name, v in a.items()}
    grams_b = {name: centred_gram(v) for name, v in b.items()}
    rows = [(na, nb, cka_from_grams(ga, gb)) for na, ga in grams_a.items() for nb, gb in grams_b.items()]
    return pd.DataFrame(rows, columns=["layer_a", "layer_b", "cka"])
