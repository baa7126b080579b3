"""Train/val/test splits of a face cache (CelebA's ``list_eval_partition.txt`` or a seeded random split).

Also used for MNIST (:func:`split_indices`). Nothing here imports ``lightning``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lightning_modules.data.face_cache import PARTITION_FILE, FaceCache
from latentdream.errors import InputError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def read_partition(path: str | Path) -> dict[str, int]:
    """Parse CelebA's ``list_eval_partition.txt`` (``<file name> <0|1|2>`` per line) into {name: split}.

    0 = train, 1 = val, 2 = test. Blank lines are ignored.

    :raises InputError: a malformed line, naming the file and the line number.
    """
    path = Path(path)
    partition: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise InputError(f"{path.name}: line {number}: expected '<file> <0|1|2>', got {line.strip()!r}")
        partition[parts[0]] = int(parts[1])
    return partition


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Seeded random split of ``range(n)`` into train/val/test index arrays (each sorted ascending).

    ``n_val = round(val_fraction * n)`` and ``n_test = round(test_fraction * n)``, but at least 1 when the
    fraction is positive, so tiny datasets still have a validation batch.

    :raises InputError: fractions outside [0, 1) or leaving no training image.
    """
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise InputError(f"data.{key}={value}: must be in [0, 1)")
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    if n_val + n_test >= n:
        raise InputError(
            f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction}: leave no training image of {n}"
        )
    order = np.random.default_rng(seed).permutation(n)
    # Sorted indices make a pass over a split read the memmap front to back.
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }


def split_faces(
    cache: FaceCache, val_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 0
) -> dict[str, np.ndarray]:
    """Train/val/test indices into ``cache.images``: by ``list_eval_partition.txt`` if the folder has one
    (fractions and seed are then unused), else by :func:`split_indices`. Files the partition file does not list
    are left out, with a warning; so is an empty test split (the run then has no test metrics).

    :return: ``{"train": idx, "val": idx, "test": idx}``, int64 arrays sorted ascending.
    :raises InputError: the partition file leaves the train or the val split empty (naming the file and the split).
    """
    path = cache.folder.partition_file
    if path is None:
        return split_indices(len(cache.files), val_fraction, test_fraction, seed)
    partition = read_partition(path)
    codes = np.array([partition.get(name, -1) for name in cache.files])
    splits = {split: np.flatnonzero(codes == code) for code, split in enumerate(SPLITS)}
    unlisted = int(np.sum(codes < 0))
    # Training needs both: an empty train split fails in the sampler, an empty val split when the model is logged.
    empty = [(split, code) for code, split in enumerate(SPLITS) if split != "test" and not len(splits[split])]
    if empty:
        raise InputError(
            f"{path}: empty {' and '.join(s for s, _ in empty)} split: none of the {len(codes)} images in "
            f"{cache.folder.image_dir} is listed with code {' or '.join(str(c) for _, c in empty)}"
            + (f" ({unlisted} are not listed at all)" if unlisted else "")
        )
    if unlisted:
        logger.warning("%d of %d images are not in %s; they are left out", unlisted, len(codes), PARTITION_FILE)
    if not len(splits["test"]):
        logger.warning("%s lists no test image (2) among the %d images: the run will have no test metrics",
                       path, len(codes))
    return splits
