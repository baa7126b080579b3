"""MNIST in its original IDX format: a strict reader, a writer for test fixtures, and the four-file loader.

IDX layout (big-endian): a 4-byte magic ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` uint32 dimension sizes, then
``prod(dims)`` items in C order. MNIST uses dtype ``0x08`` (uint8) only: images have magic ``0x00000803``
(n, 28, 28), labels ``0x00000801`` (n,). Files may be gzip-compressed (``.gz``) or raw.

Every defect of the user's files raises :class:`~latentdream.errors.InputError` with one line that names the
file and what is wrong; nothing here imports ``lightning``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from latentdream.errors import InputError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
UINT8_CODE = 0x08
MNIST_SIDE = 28
N_CLASSES = 10

#: Base names (without ``.gz``) of the images and labels file of each split.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_KIND_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}


def _kind_from_name(name: str) -> str | None:
    # The canonical names say what they hold ("idx3" = 3-d images, "idx1" = 1-d labels); other names are not checked.
    if "idx3" in name:
        return "images"
    if "idx1" in name:
        return "labels"
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except EOFError:
        raise InputError(f"{path.name}: truncated gzip stream (the download was cut short?)") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise InputError(f"{path.name}: not a valid gzip file ({err})") from None
    except OSError as err:
        raise InputError(f"{path.name}: cannot read ({err.strerror or err})") from None


def read_idx(path: str | Path, kind: str | None = None) -> np.ndarray:
    """Read one uint8 IDX file (raw or ``.gz``) and validate it completely.

    Checks: the magic's first two bytes are zero and its dtype byte is ``0x08``; when ``kind`` is known the whole
    magic equals ``0x00000803`` (``"images"``) or ``0x00000801`` (``"labels"``); the (decompressed) size equals
    ``4 + 4 * ndim + prod(dims)`` bytes, so truncated and over-long files are both rejected.

    :param path: the file; a ``.gz`` suffix means gzip.
    :param kind: ``"images"``, ``"labels"`` or ``None`` = infer from the name (``idx3`` → images, ``idx1`` → labels;
        anything else → accept any uint8 IDX).
    :return: uint8 array of shape ``dims`` (read-only data copied from the file).
    :raises InputError: any defect, as ``"<file name>: <what is wrong>"``.
    """
    path = Path(path)
    if kind is None:
        kind = _kind_from_name(path.name)
    elif kind not in _KIND_MAGIC:
        raise ValueError(f"kind={kind!r}; allowed: 'images', 'labels' or None")
    data = _read_bytes(path)
    if len(data) < 4:
        raise InputError(f"{path.name}: only {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    expected = _KIND_MAGIC.get(kind) if kind else None
    if expected is not None and magic != expected:
        raise InputError(f"{path.name}: wrong magic 0x{magic:08x}, expected 0x{expected:08x} (IDX {kind})")
    if data[0] != 0 or data[1] != 0 or data[3] == 0:
        raise InputError(f"{path.name}: wrong magic 0x{magic:08x}, not an IDX file")
    if data[2] != UINT8_CODE:
        raise InputError(f"{path.name}: IDX dtype byte 0x{data[2]:02x}, only 0x08 (uint8) is supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path.name}: truncated header ({len(data)} bytes, need {header} for {ndim} dimensions)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_size = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_size:
        what = "truncated" if len(data) < expected_size else "trailing bytes"
        raise InputError(
            f"{path.name}: {what}: {len(data)} bytes, expected {expected_size} (header {header} + "
            f"{' x '.join(map(str, dims))} items)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzip when ``path`` ends in ``.gz``); the inverse of :func:`read_idx`.

    Meant for test fixtures and tiny datasets.

    :param array: uint8 array of 1 to 255 dimensions.
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx needs a uint8 array with 1..255 dims, got {array.dtype} with {array.ndim}")
    header = bytes([0, 0, UINT8_CODE, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())
    return path


def find_mnist_file(root: str | Path, name: str) -> Path:
    """Return ``root/name`` or ``root/name.gz`` (raw preferred: no decompression); ``InputError`` if neither exists."""
    root = Path(root)
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    expected = ", ".join(f"{n}[.gz]" for pair in MNIST_FILES.values() for n in pair)
    raise InputError(f"data.root={root}: missing {name}[.gz]; an MNIST folder holds {expected}")


def check_mnist_root(root: str | Path) -> Path:
    """Check that ``root`` is a folder holding all four MNIST files (cheap: no file is read); return it as a Path."""
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"data.root={root}: folder does not exist")
    if not root.is_dir():
        raise InputError(f"data.root={root}: not a folder")
    for pair in MNIST_FILES.values():
        for name in pair:
            find_mnist_file(root, name)
    return root


def load_mnist(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load one MNIST split from the IDX files in ``root``.

    :param root: folder with ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.
    :param split: ``"train"`` (60,000 digits in the real set) or ``"test"`` (10,000).
    :return: ``(images, labels)``: uint8 (n, 28, 28) with values 0..255 and int64 (n,) with values 0..9.
    :raises InputError: missing folder/file, any IDX defect, wrong image size, label/image count mismatch or a
        label outside 0..9.
    """
    if split not in MNIST_FILES:
        raise InputError(f"split={split!r}; allowed: {', '.join(MNIST_FILES)}")
    root = check_mnist_root(root)
    images_path = find_mnist_file(root, MNIST_FILES[split][0])
    labels_path = find_mnist_file(root, MNIST_FILES[split][1])
    images = read_idx(images_path, kind="images")
    labels = read_idx(labels_path, kind="labels")
    if images.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        size = "x".join(map(str, images.shape[1:]))
        raise InputError(f"{images_path.name}: images are {size}, MNIST needs 28x28")
    if len(labels) != len(images):
        raise InputError(
            f"{labels_path.name}: {len(labels)} labels but {images_path.name} has {len(images)} images"
        )
    if len(labels) and labels.max() >= N_CLASSES:
        raise InputError(f"{labels_path.name}: label {labels.max()} outside 0..9")
    return images, labels.astype(np.int64)
