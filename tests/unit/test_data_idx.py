"""IDX reader/writer and the MNIST loader: round trips, every rejected defect, and (slow) the real MNIST files."""

from __future__ import annotations

import ast
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from lightning_modules.data.idx import IMAGES_MAGIC, MNIST_FILES, load_mnist, read_idx, write_idx
from latentdream.errors import InputError

REAL_MNIST = Path(os.environ.get("LATENTDREAM_MNIST", "/work/shared/data/mnist"))


def write_mnist(root: Path, n_train: int = 64, n_test: int = 16, gz: bool = True, seed: int = 0) -> dict:
    """Write the four MNIST IDX files with random digits; return the arrays written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / f"{MNIST_FILES[split][0]}{suffix}", images)
        write_idx(root / f"{MNIST_FILES[split][1]}{suffix}", labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.fixture(params=[True, False], ids=["gz", "raw"])
def mnist_dir(request, tmp_path):
    arrays = write_mnist(tmp_path / "mnist", gz=request.param)
    return tmp_path / "mnist", arrays, ".gz" if request.param else ""


def test_write_idx_header_bytes_follow_the_format(tmp_path):
    path = write_idx(tmp_path / "x-idx2-ubyte", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert path.read_bytes() == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_round_trip(tmp_path, name):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, images)
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really compressed
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_load_mnist_returns_the_written_digits(mnist_dir):
    root, arrays, _ = mnist_dir
    for split in ("train", "test"):
        images, labels = load_mnist(root, split)
        assert images.dtype == np.uint8 and images.shape == arrays[split][0].shape
        assert labels.dtype == np.int64 and labels.shape == (len(images),)
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_wrong_magic_names_file_and_both_magics(mnist_dir):
    root, arrays, suffix = mnist_dir
    name = f"train-images-idx3-ubyte{suffix}"
    write_idx(root / name, arrays["train"][1])  # a labels array (magic 0x801) under the images name
    with pytest.raises(InputError) as err:
        load_mnist(root, "train")
    assert str(err.value) == f"{name}: wrong magic 0x00000801, expected 0x00000803 (IDX images)"


def test_non_uint8_dtype_byte_rejected(tmp_path):
    float_idx = bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0"  # a float32 IDX file with one item
    (tmp_path / "f-idx1-ubyte").write_bytes(float_idx)
    with pytest.raises(InputError, match="^f-idx1-ubyte: wrong magic 0x00000d01, expected 0x00000801"):
        read_idx(tmp_path / "f-idx1-ubyte")
    (tmp_path / "f").write_bytes(float_idx)  # no idx1/idx3 in the name: any uint8 IDX is accepted, floats not
    with pytest.raises(InputError, match="^f: IDX dtype byte 0x0d, only 0x08"):
        read_idx(tmp_path / "f")


def test_truncated_raw_file(mnist_dir):
    root, _, suffix = mnist_dir
    name = f"t10k-images-idx3-ubyte{suffix}"
    data = read_idx(root / name)
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 16, 0, 0, 0, 28, 0, 0, 0, 28]) + data.tobytes()
    (root / name).unlink()
    (root / "t10k-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(InputError, match=r"^t10k-images-idx3-ubyte: truncated: 12460 bytes, expected 12560 "):
        load_mnist(root, "test")


def test_trailing_bytes_rejected(tmp_path):
    path = write_idx(tmp_path / "l-idx1-ubyte", np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(InputError, match="l-idx1-ubyte: trailing bytes: 13 bytes, expected 12"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.ones((64, 28, 28), np.uint8) * 7)
    path.write_bytes(path.read_bytes()[:-12])  # cut the gzip trailer and some data
    with pytest.raises(InputError, match=r"^train-images-idx3-ubyte\.gz: truncated gzip"):
        read_idx(path)


def test_garbage_gzip_rejected(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(InputError, match=r"^train-labels-idx1-ubyte\.gz: not a valid gzip file"):
        read_idx(path)


def test_count_mismatch_names_both_files(mnist_dir):
    root, arrays, suffix = mnist_dir
    write_idx(root / f"train-labels-idx1-ubyte{suffix}", arrays["train"][1][:-1])
    with pytest.raises(InputError) as err:
        load_mnist(root, "train")
    assert str(err.value) == (
        f"train-labels-idx1-ubyte{suffix}: 63 labels but train-images-idx3-ubyte{suffix} has 64 images"
    )


def test_wrong_image_size_rejected(tmp_path):
    root = tmp_path / "m"
    write_mnist(root)
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((16, 32, 32), np.uint8))
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte.gz: images are 32x32, MNIST needs 28x28"):
        load_mnist(root, "test")


def test_label_out_of_range_rejected(tmp_path):
    root = tmp_path / "m"
    write_mnist(root)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.full(16, 10, np.uint8))
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte.gz: label 10 outside 0..9"):
        load_mnist(root, "test")


def test_missing_file_lists_expected_names(mnist_dir):
    root, _, suffix = mnist_dir
    (root / f"t10k-labels-idx1-ubyte{suffix}").unlink()
    with pytest.raises(InputError) as err:
        load_mnist(root, "train")  # the whole folder is checked, not only the split asked for
    message = str(err.value)
    assert message.startswith(f"data.root={root}: missing t10k-labels-idx1-ubyte[.gz]")
    for pair in MNIST_FILES.values():
        for name in pair:
            assert name in message
    assert "\n" not in message


def test_missing_folder(tmp_path):
    with pytest.raises(InputError) as err:
        load_mnist(tmp_path / "nope")
    assert str(err.value) == f"data.root={tmp_path / 'nope'}: folder does not exist"


def test_bad_split_rejected(mnist_dir):
    with pytest.raises(InputError, match="split='val'; allowed: train, test"):
        load_mnist(mnist_dir[0], "val")


def _imports(module: str) -> set[str]:
    """Every module imported by ``module`` and, recursively, by the project modules it imports (read with ast)."""
    seen, todo, found = set(), [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = Path(__file__).resolve().parents[2] / (name.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            found.update(names)
            todo.extend(n for n in names if n.startswith("lightning_modules."))
    return found


@pytest.mark.parametrize("module", ["idx", "face_cache", "splits", "arrays", "bundled"])
def test_data_readers_import_neither_lightning_nor_mlflow(module):
    imported = _imports(f"lightning_modules.data.{module}")
    assert "numpy" in imported  # the walk really read the file
    assert not {n for n in imported if n.split(".")[0] in ("lightning", "pytorch_lightning", "mlflow")}


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_MNIST / "train-images-idx3-ubyte.gz").exists(), reason="full MNIST not present")
def test_real_mnist():
    with gzip.open(REAL_MNIST / "train-images-idx3-ubyte.gz", "rb") as fh:
        assert hashlib.md5(fh.read()).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    images, labels = load_mnist(REAL_MNIST, "train")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    # Rebuilding the raw file from the parsed array gives the published checksum: nothing lost or shifted.
    header = IMAGES_MAGIC.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape)
    assert hashlib.md5(header + images.tobytes()).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    assert np.array_equal(np.bincount(labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    test_images, test_labels = load_mnist(REAL_MNIST, "test")
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
