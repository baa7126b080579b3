"""Face folder → uint8 cache: decoding, skipping, reuse, keys, atomic writes, cache folder, parameters."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.celeba_cache import FaceFileDataset
from lightning_modules.data import face_cache
from lightning_modules.data.arrays import ImageArrayDataset
from lightning_modules.data.face_cache import build_face_cache, preprocess_face
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
    original = face_cache.preprocess_face

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(face_cache, "preprocess_face", counting)
    return calls


def test_cache_keeps_readable_images_and_reports_skips(face_dir, caplog):
    folder, colours = face_dir
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.face_cache"):
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

    monkeypatch.setattr(face_cache, "preprocess_face", dies)
    with pytest.raises(KeyboardInterrupt):
        build_face_cache(folder, image_size=16, progress=False)
    assert list((folder / ".latentdream_cache").iterdir()) == []  # neither a cache nor a temp file
    monkeypatch.setattr(face_cache, "preprocess_face", preprocess_face)
    assert len(build_face_cache(folder, image_size=16, progress=False).files) == N_FACES


def test_half_written_cache_without_sidecar_is_rebuilt(face_dir):
    folder, _ = face_dir
    cache = build_face_cache(folder, image_size=16, progress=False)
    cache.path.with_suffix(".json").unlink()  # as if killed between the two replaces
    rebuilt = build_face_cache(folder, image_size=16, progress=False)
    assert rebuilt.path == cache.path and rebuilt.path.with_suffix(".json").is_file()


def _rebuild_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rebuilding it" in r.getMessage()]


def test_cache_with_changed_pixels_is_rebuilt(face_dir, monkeypatch, caplog):
    folder, _ = face_dir
    first = build_face_cache(folder, image_size=16, progress=False)
    original = np.array(first.images)
    zeroed = np.load(first.path, mmap_mode="r+")
    zeroed[:] = 0
    zeroed.flush()
    del zeroed
    calls = _count_decodes(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.face_cache"):
        rebuilt = build_face_cache(folder, image_size=16, progress=False)
    assert _rebuild_warnings(caplog) == [
        f"face cache {first.path} has pixels changed after it was built; rebuilding it"
    ]
    assert len(calls) == N_FACES + 1 and rebuilt.path == first.path
    np.testing.assert_array_equal(rebuilt.images, original)


def test_one_changed_image_of_a_small_cache_is_noticed(face_dir, caplog):
    folder, _ = face_dir
    first = build_face_cache(folder, image_size=16, progress=False)
    original = np.array(first.images)
    changed = np.load(first.path, mmap_mode="r+")
    changed[7, 3, 3, 0] ^= 1  # one bit of one pixel: every row of a cache this small is fingerprinted
    changed.flush()
    del changed
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.face_cache"):
        np.testing.assert_array_equal(build_face_cache(folder, image_size=16, progress=False).images, original)
    assert len(_rebuild_warnings(caplog)) == 1


@pytest.mark.parametrize("edit", ["reorder", "rename"])
def test_cache_with_edited_file_list_is_rebuilt(face_dir, monkeypatch, caplog, edit):
    folder, _ = face_dir
    first = build_face_cache(folder, image_size=16, progress=False)
    sidecar = first.path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    if edit == "reorder":
        meta["files"] = meta["files"][::-1]
    else:
        meta["files"][3] = "999.jpg"
    sidecar.write_text(json.dumps(meta))
    calls = _count_decodes(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.face_cache"):
        rebuilt = build_face_cache(folder, image_size=16, progress=False)
    assert _rebuild_warnings(caplog) == [
        f"face cache {first.path} has a file list changed after it was built; rebuilding it"
    ]
    assert len(calls) == N_FACES + 1
    assert rebuilt.files == first.files
    np.testing.assert_array_equal(rebuilt.images, first.images)


def test_pixels_fingerprint_samples_rows_of_a_large_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(face_cache, "FINGERPRINT_ROWS", 4)
    images = np.zeros((10, 2, 2, 1), dtype=np.uint8)
    np.save(tmp_path / "a.npy", images)
    base = face_cache.pixels_fingerprint(np.load(tmp_path / "a.npy", mmap_mode="r"))
    for row, changes in ((0, True), (9, True), (3, True), (1, False)):  # rows 0, 3, 6, 9 are read
        edited = images.copy()
        edited[row] = 1
        np.save(tmp_path / "b.npy", edited)
        assert (face_cache.pixels_fingerprint(np.load(tmp_path / "b.npy", mmap_mode="r")) != base) == changes
    np.save(tmp_path / "c.npy", images.reshape(10, 2, 1, 2))  # same bytes, other shape
    assert face_cache.pixels_fingerprint(np.load(tmp_path / "c.npy", mmap_mode="r")) != base


def _read_only(monkeypatch, folder: Path) -> None:
    # As root, os.access reports everything writable (and chmod stops nothing), so the read-only root is simulated.
    real_access = face_cache.os.access
    monkeypatch.setattr(face_cache.os, "access", 
                        lambda p, mode: not str(p).startswith(str(folder)) and real_access(p, mode))


def test_read_only_root_falls_back_to_home_cache_with_a_warning(face_dir, tmp_path, monkeypatch, caplog):
    folder, _ = face_dir
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _read_only(monkeypatch, folder)
    with caplog.at_level(logging.WARNING, logger="lightning_modules.data.face_cache"):
        cache = build_face_cache(folder, image_size=16, progress=False)
    fallback = tmp_path / "home" / ".cache" / "latentdream"
    assert cache.path.parent == fallback
    warnings = [r.getMessage() for r in caplog.records if "not writable" in r.getMessage()]
    assert warnings == [f"data.root={folder} is not writable: the face cache goes to {fallback} "
                        "(data.cache_dir chooses another folder)"]


def test_read_only_root_and_home_is_one_line_input_error(face_dir, tmp_path, monkeypatch):
    folder, _ = face_dir
    (tmp_path / "home_file").write_text("a file, so nothing can be created below it")
    monkeypatch.setenv("HOME", str(tmp_path / "home_file" / "x"))
    _read_only(monkeypatch, folder)
    with pytest.raises(InputError) as err:
        build_face_cache(folder, image_size=16, progress=False)
    message = str(err.value)
    assert message.startswith(f"data.root={folder}: not writable, and neither is the fallback cache folder")
    assert "data.cache_dir" in message and "\n" not in message


def test_explicit_cache_dir(face_dir, tmp_path):
    cache = build_face_cache(face_dir[0], image_size=16, cache_dir=tmp_path / "c" / "d", progress=False)
    assert cache.path.parent == tmp_path / "c" / "d"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=2), "data.channels=2: allowed are 1"),
        (dict(image_size=0), "data.image_size=0"),
        (dict(image_size=1025), "data.image_size=1025: must be an integer from 1 to 1024"),
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


def test_file_dataset_equals_cached_preprocessing(face_dir):
    folder, _ = face_dir
    cache = build_face_cache(folder, image_size=16, progress=False)
    files = FaceFileDataset([folder / name for name in cache.files], image_size=16)
    cached = ImageArrayDataset(cache.path)
    for i in (0, 9):
        torch.testing.assert_close(files[i], cached[i])
