"""Splits: CelebA's partition file (found beside the image folder), its parsing, and the seeded random split."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lightning_modules.data.face_cache import build_face_cache
from lightning_modules.data.splits import read_partition, split_faces, split_indices
from latentdream.errors import InputError
from tests.unit.test_face_cache import write_faces


def test_partition_file_beside_celeba_image_folder_selects_splits(tmp_path):
    root = tmp_path / "celeba"
    write_faces(root / "img_align_celeba", n=6)
    codes = {"000.jpg": 2, "001.jpg": 0, "002.jpg": 1, "003.jpg": 0, "004.jpg": 2, "005.jpg": 0}
    (root / "list_eval_partition.txt").write_text("".join(f"{k} {v}\n" for k, v in codes.items()))
    cache = build_face_cache(root, image_size=16, progress=False)
    assert cache.folder.image_dir == root / "img_align_celeba"
    splits = split_faces(cache, val_fraction=0.5, test_fraction=0.0, seed=3)  # fractions unused
    names = {split: [cache.files[i] for i in idx] for split, idx in splits.items()}
    assert names == {"train": ["001.jpg", "003.jpg", "005.jpg"], "val": ["002.jpg"], "test": ["000.jpg", "004.jpg"]}


def test_partition_found_when_root_is_the_image_folder(tmp_path, caplog):
    write_faces(tmp_path / "img_align_celeba", n=3)
    (tmp_path / "list_eval_partition.txt").write_text("000.jpg 0\n001.jpg 1\n")
    cache = build_face_cache(tmp_path / "img_align_celeba", image_size=16, progress=False)
    assert cache.folder.partition_file == tmp_path / "list_eval_partition.txt"
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.splits"):
        splits = split_faces(cache)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1, 1, 0]  # 002.jpg is unlisted: left out
    assert [r.getMessage() for r in caplog.records] == [
        "1 of 3 images are not in list_eval_partition.txt; they are left out",
        f"{tmp_path / 'list_eval_partition.txt'} lists no test image (2) among the 3 images: the run will have no "
        "test metrics",
    ]


@pytest.mark.parametrize(
    "lines, message",
    [
        ("x.jpg 0\ny.jpg 1\n", "empty train and val split: none of the 3 images in {dir} is listed with code 0 or 1 "
                                 "(3 are not listed at all)"),
        ("000.jpg 1\n001.jpg 2\n002.jpg 1\n", "empty train split: none of the 3 images in {dir} is listed with code 0"),
        ("000.jpg 0\n001.jpg 2\n", "empty val split: none of the 3 images in {dir} is listed with code 1 "
                                    "(1 are not listed at all)"),
    ],
    ids=["none listed", "no train", "no val"],
)
def test_partition_leaving_train_or_val_empty_is_input_error(tmp_path, lines, message):
    write_faces(tmp_path / "img_align_celeba", n=3)
    partition = tmp_path / "list_eval_partition.txt"
    partition.write_text(lines)
    cache = build_face_cache(tmp_path, image_size=16, progress=False)
    with pytest.raises(InputError) as err:
        split_faces(cache)
    assert str(err.value) == f"{partition}: " + message.format(dir=tmp_path / "img_align_celeba")


def test_read_partition_rejects_bad_line(tmp_path):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(InputError, match=r"list_eval_partition.txt: line 2: expected '<file> <0\|1\|2>'"):
        read_partition(path)


def test_split_indices_is_seeded_disjoint_and_complete():
    a = split_indices(100, 0.1, 0.2, seed=7)
    assert [len(a[s]) for s in ("train", "val", "test")] == [70, 10, 20]
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(100))
    b = split_indices(100, 0.1, 0.2, seed=7)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(split_indices(100, 0.1, 0.2, seed=8)["val"], a["val"])
    assert len(split_indices(16, 0.05, 0.05, seed=0)["val"]) == 1  # a positive fraction never gives an empty split
    with pytest.raises(InputError, match="leave no training image"):
        split_indices(4, 0.5, 0.5, seed=0)
