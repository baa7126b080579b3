"""ImageArrayDataset: uint8 → float32 (C, H, W) in [0, 1], whole batches, pickling by path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from lightning_modules.data.arrays import MAX_IMAGE_SIZE, ImageArrayDataset, check_image_size, collate_samples
from latentdream.errors import InputError


def test_image_array_dataset_scales_and_batches(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    data = ImageArrayDataset(tmp_path / "images.npy", indices=[3, 1, 7])
    item = data[1]
    assert item.shape == (3, 16, 16) and item.dtype == torch.float32
    expected = torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item, expected)
    batch = torch.utils.data.default_collate(data.__getitems__([0, 2]))
    torch.testing.assert_close(batch, torch.stack([data[0], data[2]]))
    torch.testing.assert_close(collate_samples(data.__getitems__([0, 2])), batch)
    # Pickling (DataLoader workers) sends the path, not the pixels.
    assert len(pickle.dumps(data)) < 2000
    assert data.uint8_images().shape == (3, 3, 16, 16)


def test_one_channel_images_with_labels():
    images = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)  # (N, H, W), like MNIST
    labels = np.array([7, 8, 9, 5])
    data = ImageArrayDataset(images, indices=[2, 0], labels=labels)
    image, label = data[0]
    assert image.shape == (1, 3, 3) and int(label) == 9  # labels follow the array, not the indices
    x, y = collate_samples(data.__getitems__([0, 1]))
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images[[2, 0]]).float() / 255)
    assert y.tolist() == [9, 7]
    assert data.without_labels()[1].shape == (1, 3, 3)


def test_image_size_is_bounded_in_one_place():
    assert MAX_IMAGE_SIZE == 1024
    check_image_size(1024)
    check_image_size(28, minimum=28)
    for bad, minimum in ((1025, 1), (100_000, 1), (0, 1), (27, 28), (True, 1), (64.0, 1)):
        with pytest.raises(InputError, match=rf"^data.image_size={bad!r}: must be an integer from {minimum} to 1024"):
            check_image_size(bad, minimum)
