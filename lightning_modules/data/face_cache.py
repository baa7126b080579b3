"""Aligned face images (CelebA or any folder of JPEG/PNG faces) decoded once into a memory-mapped uint8 cache.

Decoding ~200,000 JPEGs every epoch would cost far more than training a small autoencoder, so the first use
centre-crops, resizes and converts every image once and stores the result as ``faces-<key>.npy`` (N, H, W, C) uint8
with a JSON sidecar naming the files kept. Later epochs and runs only ``np.load(..., mmap_mode="r")`` it.

Layout of ``root``: either ``root/img_align_celeba/*.jpg`` (CelebA's own layout, with ``list_eval_partition.txt``
beside the image folder) or the images directly in ``root``. The cache key hashes the sorted file names, sizes and
mtimes plus every preprocessing parameter, so editing the folder or a parameter builds a new cache; the file is
written to a temporary name and moved into place with ``os.replace``, so a killed build never leaves half a cache.
The sidecar also holds fingerprints of the pixels and of the file list; a cache changed after it was built (pixels
overwritten, file list reordered or edited) fails the check on opening and is rebuilt, with a warning.

Splitting the cached images is :mod:`lightning_modules.data.splits`; turning them into tensors is
:mod:`lightning_modules.data.arrays`. Nothing here imports ``lightning``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from lightning_modules.data.arrays import check_image_size
from latentdream.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CELEBA_IMAGE_DIR = "img_align_celeba"
PARTITION_FILE = "list_eval_partition.txt"
CACHE_DIRNAME = ".latentdream_cache"
#: Bump when preprocessing or the cache format changes, so that old caches are not reused.
CACHE_VERSION = 2
#: Rows read for the pixel fingerprint: 1,024 evenly spaced (12 MB at 64x64 RGB) of a 160k-image cache took 0.25 s
#: from a cold disk and 0.03 s from the page cache; hashing all 2 GB took 1-2.4 s even from the page cache.
FINGERPRINT_ROWS = 1024
# LANCZOS after JPEG draft decoding: draft leaves at most a 2x reduction, so the filter's cost is small.
_RESAMPLE = Image.Resampling.LANCZOS
_REDUCING_GAP = 3.0
# Errors that mean "this file is not a readable image" (PIL raises all of these for broken files).
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


@dataclass(frozen=True)
class FaceFolder:
    """What a face folder holds: the image directory and every candidate file in it (sorted).

    :ivar root: the folder the user named (``data.root``).
    :ivar image_dir: where the files are: ``root/img_align_celeba`` if that exists, else ``root``.
    :ivar files: sorted names of the regular, non-hidden files in ``image_dir`` (images and anything else; the
        non-images are skipped and counted when decoding).
    :ivar sizes: byte size of each file.
    :ivar mtimes_ns: modification time of each file in ns.
    :ivar partition_file: ``list_eval_partition.txt`` if found in ``root`` or beside ``img_align_celeba``, else None.
    """

    root: Path
    image_dir: Path
    files: tuple[str, ...]
    sizes: tuple[int, ...]
    mtimes_ns: tuple[int, ...]
    partition_file: Path | None


@dataclass(frozen=True)
class FaceCache:
    """An opened face cache.

    :ivar images: read-only memmap, uint8 (N, H, W, C), values 0..255.
    :ivar files: name (in ``folder.image_dir``) of each of the N images, in cache order.
    :ivar n_skipped: candidate files that were not readable images when the cache was built.
    :ivar path: the ``.npy`` file; the sidecar is the same path with suffix ``.json``.
    :ivar folder: the scanned folder the cache belongs to.
    """

    images: np.ndarray
    files: tuple[str, ...]
    n_skipped: int
    path: Path
    folder: FaceFolder


def check_face_params(image_size: int, channels: int, crop: int | None, max_images: int | None = None) -> None:
    """Reject bad preprocessing parameters with one line naming the config key (``data.<name>``)."""
    check_image_size(image_size, note=" (e.g. 64, 96, 128)")
    if channels not in (1, 3):
        raise InputError(f"data.channels={channels!r}: allowed are 1 (grayscale) or 3 (RGB)")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop <= 0):
        raise InputError(f"data.crop={crop!r}: must be a positive integer or null (largest centred square)")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images <= 0):
        raise InputError(f"data.max_images={max_images!r}: must be a positive integer or null (all images)")


def scan_face_folder(root: str | Path, max_images: int | None = None) -> FaceFolder:
    """List the candidate files of a face folder (no file is opened).

    :param max_images: keep only this many files, evenly spaced over the sorted list. CelebA's partition runs in
        file order (train, then val, then test), so an evenly spaced subset keeps every split's share.
    :raises InputError: missing folder, or no ``.jpg``/``.jpeg``/``.png`` file at all.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"data.root={root}: folder does not exist")
    if not root.is_dir():
        raise InputError(f"data.root={root}: not a folder")
    image_dir = root / CELEBA_IMAGE_DIR if (root / CELEBA_IMAGE_DIR).is_dir() else root
    entries = []
    with os.scandir(image_dir) as it:
        for entry in it:
            if entry.name.startswith(".") or entry.name == PARTITION_FILE or not entry.is_file():
                continue
            stat = entry.stat()
            entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    entries.sort()
    if max_images is not None and max_images < len(entries):
        picks = np.linspace(0, len(entries), max_images, endpoint=False).astype(np.int64)
        entries = [entries[i] for i in picks]
    if not any(name.lower().endswith(IMAGE_SUFFIXES) for name, _, _ in entries):
        raise InputError(f"data.root={root}: no {'/'.join(IMAGE_SUFFIXES)} images in {image_dir}")
    names, sizes, mtimes = zip(*entries)
    return FaceFolder(root, image_dir, names, sizes, mtimes, _find_partition_file(root, image_dir))


def _find_partition_file(root: Path, image_dir: Path) -> Path | None:
    places = [root, image_dir.parent] if image_dir != root else [root]
    if image_dir == root and root.name == CELEBA_IMAGE_DIR:  # the user named the image folder itself
        places.append(root.parent)
    for place in places:
        if (place / PARTITION_FILE).is_file():
            return place / PARTITION_FILE
    return None


def face_cache_key(folder: FaceFolder, image_size: int, crop: int | None, channels: int) -> str:
    """16 hex digits of a SHA-256 over the folder listing (names, sizes, mtimes) and the preprocessing parameters.

    The folder's path is not part of the key: a copy with the same names, sizes and mtimes holds the same data.
    """
    payload = {
        "version": CACHE_VERSION,
        "image_size": image_size,
        "crop": crop,
        "channels": channels,
        "resample": _RESAMPLE.name,
        "files": [list(folder.files), list(folder.sizes), list(folder.mtimes_ns)],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def preprocess_face(path: str | Path, image_size: int = 64, crop: int | None = None, channels: int = 3) -> np.ndarray:
    """Decode one image, centre-crop a square, resize it and convert it to RGB or grayscale.

    The crop is the centred ``crop`` x ``crop`` square (``None`` → ``min(H, W)``, which for CelebA's 178x218
    images is the usual 178x178 crop); it is resized to ``image_size`` x ``image_size`` with LANCZOS. JPEGs are
    decoded at a reduced scale (``Image.draft``: 1/2, 1/4 or 1/8) as long as the crop still covers
    ``image_size`` pixels, which makes decoding several times faster.

    :return: uint8 (image_size, image_size, channels).
    :raises InputError: ``crop`` larger than the image.
    :raises OSError, SyntaxError, ValueError, ...: the file is not a readable image (callers skip it).
    """
    path = Path(path)
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as im:
        width, height = im.size
        side = min(width, height) if crop is None else crop
        if side > min(width, height):
            raise InputError(f"data.crop={crop}: larger than the {width}x{height} image {path.name}")
        scale = image_size / side
        if scale < 1:  # only ever draft-decode smaller, never larger
            im.draft(mode, (math.ceil(width * scale), math.ceil(height * scale)))
        sx, sy = im.size[0] / width, im.size[1] / height
        left, top = (width - side) / 2, (height - side) / 2
        box = (left * sx, top * sy, (left + side) * sx, (top + side) * sy)
        out = im.convert(mode).resize((image_size, image_size), _RESAMPLE, box=box, reducing_gap=_REDUCING_GAP)
        array = np.array(out, dtype=np.uint8)  # a writable copy (torch warns about read-only arrays)
    return array.reshape(image_size, image_size, channels)


def _decode_task(task: tuple[str, int, int | None, int]) -> np.ndarray | None:
    path, image_size, crop, channels = task
    if not path.lower().endswith(IMAGE_SUFFIXES):
        return None
    try:
        return preprocess_face(path, image_size, crop, channels)
    except InputError:
        raise
    except _UNREADABLE:
        return None


def _decoded(tasks: list, workers: int) -> Iterator[np.ndarray | None]:
    if workers <= 1:
        yield from map(_decode_task, tasks)
        return
    with multiprocessing.get_context().Pool(workers) as pool:
        yield from pool.imap(_decode_task, tasks, chunksize=64)


def resolve_cache_dir(root: Path, cache_dir: str | Path | None) -> Path:
    """The folder for cache files: ``cache_dir`` if given, else ``root/.latentdream_cache``, else (read-only root)
    ``~/.cache/latentdream``, with a warning. Created if missing.

    :raises InputError: ``cache_dir`` cannot be created or written; or, without ``cache_dir``, neither ``root`` nor
        ``~/.cache/latentdream`` is writable (naming ``data.root`` and ``data.cache_dir``).
    """
    if cache_dir is not None:
        directory = Path(cache_dir).expanduser()
        problem = _unwritable(directory)
        if problem:
            raise InputError(f"data.cache_dir={cache_dir}: {problem}")
        return directory
    if not _unwritable(root / CACHE_DIRNAME):
        return root / CACHE_DIRNAME
    # A read-only root (a shared dataset): fall back to the user's cache.
    try:
        directory = Path.home() / ".cache" / "latentdream"
        problem = _unwritable(directory)
    except RuntimeError as err:  # no home folder can be determined
        directory, problem = Path("~/.cache/latentdream"), str(err)
    if problem:
        raise InputError(
            f"data.root={root}: not writable, and neither is the fallback cache folder {directory} ({problem}); "
            "set data.cache_dir to a writable folder"
        )
    logger.warning("data.root=%s is not writable: the face cache goes to %s (data.cache_dir chooses another folder)",
                   root, directory)
    return directory


def _unwritable(directory: Path) -> str | None:
    """Create ``directory`` (and its parents) if missing; None if it is then a writable folder, else why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create it ({err.strerror or err})"
    return None if os.access(directory, os.W_OK) else "folder is not writable"


def pixels_fingerprint(images: np.memmap) -> str:
    """32 hex digits of a BLAKE2b over the shape and up to :data:`FINGERPRINT_ROWS` evenly spaced images (the first
    and last included; all of them in a smaller cache).

    A cheap check, not a full one: in a large cache, a change confined to images between the sampled ones goes
    unnoticed. The rows are read with ``os.pread``, not through the memmap, whose page-fault read-ahead made a cold
    read of the same 1,024 rows of a 160k-image cache take 2 s instead of 0.25 s.

    :param images: a ``.npy`` file opened with ``np.load(..., mmap_mode="r")`` (its ``filename`` and ``offset``
        are read).
    """
    n = len(images)
    row_bytes = images.itemsize * int(np.prod(images.shape[1:]))
    rows = np.unique(np.linspace(0, n - 1, min(n, FINGERPRINT_ROWS)).round().astype(np.int64))
    digest = hashlib.blake2b(repr(images.shape).encode(), digest_size=16)
    with open(images.filename, "rb") as fh:
        for row in rows:
            digest.update(os.pread(fh.fileno(), row_bytes, images.offset + int(row) * row_bytes))
    return digest.hexdigest()


def files_fingerprint(files: Sequence[str], skipped: Sequence[str]) -> str:
    """32 hex digits of a BLAKE2b over the cached file names (in cache order) and the skipped ones."""
    return hashlib.blake2b(json.dumps([list(files), list(skipped)]).encode(), digest_size=16).hexdigest()


def _open_cache(npy: Path, folder: FaceFolder) -> FaceCache | None:
    """Open a complete, unchanged cache, or return None if it is absent, damaged or changed since it was built (it is
    then rebuilt; a cache that exists but fails a check is reported in a warning)."""
    sidecar = npy.with_suffix(".json")
    if not (npy.is_file() and sidecar.is_file()):
        return None  # never built, or killed between the two replaces
    try:
        meta = json.loads(sidecar.read_text())
        images = np.load(npy, mmap_mode="r")
        files, skipped, stored = tuple(meta["files"]), meta["skipped"], meta["fingerprint"]
        problem = None
        if images.ndim != 4 or images.dtype != np.uint8 or len(files) != len(images):
            problem = f"holds {images.shape} {images.dtype} images for {len(files)} file names"
        elif stored["files"] != files_fingerprint(files, skipped):
            problem = "has a file list changed after it was built"
        elif stored["pixels"] != pixels_fingerprint(images):
            problem = "has pixels changed after it was built"
    except (OSError, ValueError, KeyError, TypeError) as err:
        problem = f"cannot be read ({type(err).__name__}: {err})"
    if problem is None:
        return FaceCache(images, files, len(skipped), npy, folder)
    logger.warning("face cache %s %s; rebuilding it", npy, problem)
    return None


def build_face_cache(
    root: str | Path,
    image_size: int = 64,
    crop: int | None = None,
    channels: int = 3,
    cache_dir: str | Path | None = None,
    max_images: int | None = None,
    workers: int = 0,
    progress: bool = True,
) -> FaceCache:
    """Return the uint8 cache of a face folder, decoding every image once if no matching cache exists.

    Unreadable or non-image files are skipped and reported in one warning ("skipped 3 unreadable files of 1000").

    :param root: the face folder (see module docstring for the layouts).
    :param image_size: side length in pixels of the cached square images (64 default; 96, 128 ...).
    :param crop: side of the centred square cut before resizing; ``None`` → ``min(H, W)`` (178 for CelebA).
    :param channels: 3 (RGB) or 1 (grayscale).
    :param cache_dir: where to put the cache; ``None`` → ``root/.latentdream_cache`` (or ``~/.cache/latentdream``
        when ``root`` is read-only).
    :param max_images: use only this many files (evenly spaced over the sorted names); ``None`` → all.
    :param workers: decoding processes; 0 or 1 decodes in this process.
    :param progress: show a tqdm bar while decoding.
    :raises InputError: bad parameters, missing folder, no images, or no readable image.
    """
    check_face_params(image_size, channels, crop, max_images)
    folder = scan_face_folder(root, max_images)
    key = face_cache_key(folder, image_size, crop, channels)
    npy = resolve_cache_dir(folder.root, cache_dir) / f"faces-{key}.npy"
    cache = _open_cache(npy, folder)
    if cache is None:
        _write_cache(npy, folder, image_size, crop, channels, workers, progress)
        cache = _open_cache(npy, folder)
        if cache is None:  # a bug, not bad input: the fresh cache failed its own check
            raise RuntimeError(f"the face cache {npy} just written fails its check")
    return cache


def _write_cache(
    npy: Path, folder: FaceFolder, image_size: int, crop: int | None, channels: int, workers: int, progress: bool
) -> None:
    n = len(folder.files)
    shape = (image_size, image_size, channels)
    # Unique temp names: two runs building the same cache at once each write their own file; the last replace wins
    # and both results are identical.
    tmp = npy.with_name(f".{npy.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npy")
    tmp_final = tmp.with_name(tmp.name.replace(".tmp.npy", ".final.tmp.npy"))
    tmp_json = tmp.with_suffix(".json")
    kept: list[str] = []
    skipped: list[str] = []
    try:
        buffer = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *shape))
        tasks = [(str(folder.image_dir / name), image_size, crop, channels) for name in folder.files]
        with tqdm(_decoded(tasks, workers), total=n, desc="caching faces", unit="img", disable=None if progress else True) as bar:
            for image, name in zip(bar, folder.files):  # bar first: zip then drains it and the pool closes
                if image is None:
                    skipped.append(name)
                    continue
                buffer[len(kept)] = image
                kept.append(name)
        if not kept:
            raise InputError(f"data.root={folder.root}: none of the {n} files in {folder.image_dir} is readable")
        if len(kept) < n:  # the header holds the shape, so a shorter array needs a new file
            final = np.lib.format.open_memmap(tmp_final, mode="w+", dtype=np.uint8, shape=(len(kept), *shape))
            for start in range(0, len(kept), 4096):
                stop = min(start + 4096, len(kept))
                final[start:stop] = buffer[start:stop]
            final.flush()
            del final
            os.replace(tmp_final, tmp)
        else:
            buffer.flush()
        del buffer
        written = np.load(tmp, mmap_mode="r")
        fingerprint = {"pixels": pixels_fingerprint(written), "files": files_fingerprint(kept, skipped)}
        del written
        meta = {
            "version": CACHE_VERSION,
            "image_dir": str(folder.image_dir),
            "image_size": image_size,
            "crop": crop,
            "channels": channels,
            "n_candidates": n,
            "files": kept,
            "skipped": skipped,
            "fingerprint": fingerprint,
        }
        tmp_json.write_text(json.dumps(meta))
        # The sidecar goes last: a cache counts as complete only when both files exist.
        os.replace(tmp, npy)
        os.replace(tmp_json, npy.with_suffix(".json"))
    finally:
        for leftover in (tmp, tmp_final, tmp_json):
            leftover.unlink(missing_ok=True)
    if skipped:
        examples = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        logger.warning("skipped %d unreadable files of %d in %s (%s)", len(skipped), n, folder.image_dir, examples)
