"""What the network sees in each OIP: the class probabilities the classifier gives the optimised images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn


@torch.no_grad()
def class_probabilities(model: nn.Module, patterns: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """softmax(model(x)) of images ``patterns`` (M, H, W) or (M, H, W, C) → (M, n_classes) float64, rows sum to 1.

    :param model: a classifier in eval mode that returns logits.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(patterns, dtype=np.float32))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    chunks = [torch.softmax(model(x[s:s + batch_size].to(device)).double(), dim=1).cpu()
              for s in range(0, len(x), batch_size)]
    return torch.cat(chunks).numpy()


def prediction_table(init: str, maps: np.ndarray, probabilities: np.ndarray, dead: np.ndarray) -> pd.DataFrame:
    """One row per map for ``oip/predictions_<layer>.csv``.

    Columns: init, map, ``p_0`` … ``p_<C-1>`` (the class probabilities of the map's OIP), predicted (the most
    probable class), p_max, dead (the map does not fire on its OIP: its pattern means little).
    """
    frame = pd.DataFrame({"init": init, "map": np.asarray(maps, dtype=np.int64)})
    for c in range(probabilities.shape[1]):
        frame[f"p_{c}"] = probabilities[:, c]
    frame["predicted"] = probabilities.argmax(axis=1)
    frame["p_max"] = probabilities.max(axis=1)
    frame["dead"] = np.asarray(dead, dtype=bool)
    return frame
