"""Face folder → uint8 cache: decoding, skipping, reuse, keys, splits, atomic writes, and the datasets."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.data import faces
from lightning_modules.data.faces import (
    FaceFileDataset,
    ImageArrayDataset,
    build_face_cache,
    preprocess_face,
    read_partition,
    split_faces,
    split_indices,
)
from latentdream.errors import InputError

N_FACES = 16
WIDTH, HEIGHT = 40, 50  # portrait, like CelebA's 178x218


def write_faces(folder: Path, n: int = N_FACES, seed: int = 0) -> np.ndarray:
    """Write ``n`` solid-colour JPEGs ``000.jpg``...; return their colours uint8 (n, 3)."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = np.random.default_rng(seed).integers(0, 256, (n, 3), dtype=np.uint8)
    for i, colour in enumerate(colours):
        Image.new("RGB", (WIDTH, HEIGHT), tuple(int(c) for c in colour)).save(folder / f"{i:03d}.jpg", quality=95)
    return colours


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("faces_source")
    colours = write_faces(folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    (folder / "notes.txt").write_text("not an image\n")
    return folder, colours


@pytest.fixture
def face_dir(source, tmp_path) -> tuple[Path, np.ndarray]:
    """A private copy (mtimes preserved) that a test may change."""
    folder, colours = source
    return Path(shutil.copytree(folder, tmp_path / "faces")), colours


def _count_decodes(monkeypatch) -> list:
    calls = []
    original = faces.preprocess_face

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(faces, "preprocess_face", counting)
    return calls


def test_cache_keeps_readable_images_and_reports_skips(face_dir, caplog):
    folder, colours = face_dir
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.faces"):
        cache = build_face_cache(folder, image_size=16, progress=False)
    assert cache.images.shape == (N_FACES, 16, 16, 3) and cache.images.dtype == np.uint8
    assert cache.files == tuple(f"{i:03d}.jpg" for i in range(N_FACES))
    assert cache.n_skipped == 2
    # Each cached image is its solid colour (up to JPEG rounding).
    mean = cache.images.reshape(N_FACES, -1, 3).mean(axis=1)
    np.testing.assert_allclose(mean, colours, atol=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("skipped 2 unreadable files of 18")
    assert cache.path.parent == folder / ".latentdream_cache"
    assert isinstance(cache.images, np.memmap) and not cache.images.flags.writeable


def test_second_call_reuses_cache_without_decoding(face_dir, monkeypatch):
    folder, _ = face_dir
    calls = _count_decodes(monkeypatch)
    first = build_face_cache(folder, image_size=16, progress=False)
    assert len(calls) == N_FACES + 1  # the 16 faces and broken.jpg; notes.txt is never opened
    mtime = first.path.stat().st_mtime_ns
    second = build_face_cache(folder, image_size=16, progress=False)
    assert len(calls) == N_FACES + 1
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime
    assert second.n_skipped == 2
    np.testing.assert_array_equal(second.images, first.images)


def test_cache_key_changes_with_new_file_and_parameters(face_dir):
    folder, _ = face_dir
    base = build_face_cache(folder, image_size=16, progress=False).path
    assert build_face_cache(folder, image_size=32, progress=False).path != base
    assert build_face_cache(folder, image_size=16, channels=1, progress=False).path != base
    assert build_face_cache(folder, image_size=16, crop=30, progress=False).path != base
    Image.new("RGB", (WIDTH, HEIGHT), (1, 2, 3)).save(folder / "999.jpg")
    grown = build_face_cache(folder, image_size=16, progress=False)
    assert grown.path != base and len(grown.files) == N_FACES + 1 and grown.files[-1] == "999.jpg"


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


def test_partition_found_when_root_is_the_image_folder(tmp_path):
    write_faces(tmp_path / "img_align_celeba", n=3)
    (tmp_path / "list_eval_partition.txt").write_text("000.jpg 0\n001.jpg 1\n")
    cache = build_face_cache(tmp_path / "img_align_celeba", image_size=16, progress=False)
    assert cache.folder.partition_file == tmp_path / "list_eval_partition.txt"
    splits = split_faces(cache)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1, 1, 0]  # 002.jpg is unlisted: left out


def test_grayscale_gives_one_channel_of_luma(face_dir):
    folder, colours = face_dir
    cache = build_face_cache(folder, image_size=16, channels=1, progress=False)
    assert cache.images.shape == (N_FACES, 16, 16, 1)
    luma = colours.astype(float) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(cache.images.reshape(N_FACES, -1).mean(axis=1), luma, atol=4)


def test_centre_crop_is_the_centred_square(tmp_path):
    # Lossless PNG whose pixels encode their own row and column: the crop must pick exactly the centred square.
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    coded = np.stack([rows * 4, cols * 4, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    Image.fromarray(coded).save(tmp_path / "coded.png")
    full = preprocess_face(tmp_path / "coded.png", image_size=WIDTH, crop=None)  # min(H, W) = 40
    np.testing.assert_array_equal(full, coded[5:45, :, :])
    small = preprocess_face(tmp_path / "coded.png", image_size=20, crop=20)
    np.testing.assert_array_equal(small, coded[15:35, 10:30, :])


def test_draft_decoding_matches_full_decode_of_celeba_sized_jpeg(tmp_path):
    # A smooth 178x218 image: draft (reduced-scale) decoding must agree with decode → crop 178x178 → resize.
    rng = np.random.default_rng(0)
    low = Image.fromarray(rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)).resize((178, 218), Image.BICUBIC)
    low.save(tmp_path / "face.jpg", quality=90)
    fast = preprocess_face(tmp_path / "face.jpg", image_size=64).astype(float)
    with Image.open(tmp_path / "face.jpg") as im:
        ref = np.asarray(im.convert("RGB").crop((0, 20, 178, 198)).resize((64, 64), Image.LANCZOS), dtype=float)
    assert np.abs(fast - ref).mean() < 2.0
    # A crop off by 20 rows would be far worse: the check can tell.
    with Image.open(tmp_path / "face.jpg") as im:
        off = np.asarray(im.convert("RGB").crop((0, 0, 178, 178)).resize((64, 64), Image.LANCZOS), dtype=float)
    assert np.abs(fast - off).mean() > 5.0


def test_crop_larger_than_image_is_input_error(face_dir):
    with pytest.raises(InputError, match="data.crop=64: larger than the 40x50 image"):
        build_face_cache(face_dir[0], image_size=16, crop=64, progress=False)


def test_folder_without_images_is_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=f"data.root={tmp_path}: no .jpg/.jpeg/.png images in"):
        build_face_cache(tmp_path, progress=False)
    with pytest.raises(InputError, match="folder does not exist"):
        build_face_cache(tmp_path / "missing", progress=False)


def test_only_unreadable_images_is_input_error_and_leaves_no_files(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(InputError, match="none of the 1 files"):
        build_face_cache(tmp_path, progress=False)
    assert list((tmp_path / ".latentdream_cache").iterdir()) == []


def test_interrupted_build_leaves_no_cache(face_dir, monkeypatch):
    folder, _ = face_dir
    calls = []

    def dies(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt  # like Ctrl-C half way through
        return preprocess_face(path, *args, **kwargs)

    monkeypatch.setattr(faces, "preprocess_face", dies)
    with pytest.raises(KeyboardInterrupt):
        build_face_cache(folder, image_size=16, progress=False)
    assert list((folder / ".latentdream_cache").iterdir()) == []  # neither a cache nor a temp file
    monkeypatch.setattr(faces, "preprocess_face", preprocess_face)
    assert len(build_face_cache(folder, image_size=16, progress=False).files) == N_FACES


def test_half_written_cache_without_sidecar_is_rebuilt(face_dir):
    folder, _ = face_dir
    cache = build_face_cache(folder, image_size=16, progress=False)
    cache.path.with_suffix(".json").unlink()  # as if killed between the two replaces
    rebuilt = build_face_cache(folder, image_size=16, progress=False)
    assert rebuilt.path == cache.path and rebuilt.path.with_suffix(".json").is_file()


def test_read_only_root_falls_back_to_home_cache(face_dir, tmp_path, monkeypatch):
    folder, _ = face_dir
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    real_access = faces.os.access
    # As root, os.access reports everything writable, so the read-only root is simulated.
    monkeypatch.setattr(faces.os, "access", lambda p, mode: not str(p).startswith(str(folder)) and real_access(p, mode))
    cache = build_face_cache(folder, image_size=16, progress=False)
    assert cache.path.parent == tmp_path / "home" / ".cache" / "latentdream"


def test_explicit_cache_dir(face_dir, tmp_path):
    cache = build_face_cache(face_dir[0], image_size=16, cache_dir=tmp_path / "c" / "d", progress=False)
    assert cache.path.parent == tmp_path / "c" / "d"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=2), "data.channels=2: allowed are 1"),
        (dict(image_size=0), "data.image_size=0"),
        (dict(crop=-1), "data.crop=-1"),
        (dict(max_images=0), "data.max_images=0"),
    ],
)
def test_bad_parameters_are_input_errors(face_dir, kwargs, message):
    with pytest.raises(InputError, match=message):
        build_face_cache(face_dir[0], progress=False, **kwargs)


def test_max_images_takes_evenly_spaced_files(face_dir):
    cache = build_face_cache(face_dir[0], image_size=16, max_images=4, progress=False)
    # 18 sorted candidates (000..015.jpg, broken.jpg, notes.txt); every 4.5th: positions 0, 4, 9, 13
    assert cache.files == ("000.jpg", "004.jpg", "009.jpg", "013.jpg")


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


def test_image_array_dataset_scales_and_batches(face_dir):
    cache = build_face_cache(face_dir[0], image_size=16, progress=False)
    data = ImageArrayDataset(cache.path, indices=[3, 1, 7])
    item = data[1]
    assert item.shape == (3, 16, 16) and item.dtype == torch.float32
    expected = torch.from_numpy(np.array(cache.images[1])).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item, expected)
    batch = torch.utils.data.default_collate(data.__getitems__([0, 2]))
    torch.testing.assert_close(batch, torch.stack([data[0], data[2]]))
    # Pickling (DataLoader workers) sends the path, not the pixels.
    assert len(pickle.dumps(data)) < 2000
    assert data.uint8_images().shape == (3, 3, 16, 16)


def test_file_dataset_equals_cached_preprocessing(face_dir):
    folder, _ = face_dir
    cache = build_face_cache(folder, image_size=16, progress=False)
    files = FaceFileDataset([folder / name for name in cache.files], image_size=16)
    cached = ImageArrayDataset(cache.path)
    for i in (0, 9):
        torch.testing.assert_close(files[i], cached[i])
