"""The ascent engine: what it promises about the caller's tensors and the model, and per-element independence."""

import dataclasses

import pytest
import torch

from analysis.oip import ascend, batch_channels, channel, jitter, layer
from lightning_modules.networks import MnistCNN


@pytest.fixture()
def cnn():
    torch.manual_seed(0)
    return MnistCNN(conv_filters=(4, 6, 8), dense_units=(8,))


def test_caller_tensor_and_model_untouched(cnn):
    cnn.train()
    x0 = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before = x0.clone()
    weights = [p.detach().clone() for p in cnn.parameters()]
    res = ascend(cnn, batch_channels("conv3", [0, 1, 2]), x0, steps=5, lr=0.05, clip=(0.0, 1.0))
    assert torch.equal(x0, before)
    assert cnn.training  # mode restored
    assert all(p.grad is None for p in cnn.parameters())
    assert all(torch.equal(p, w) for p, w in zip(cnn.parameters(), weights))
    assert res.images.shape == x0.shape and not res.images.requires_grad
    assert res.history.shape == (5, 3) and res.initial.shape == res.final.shape == (3,)
    assert 0 <= float(res.images.min()) and float(res.images.max()) <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.final = None


@pytest.mark.parametrize("optimizer", ["adam", "normalized"])
def test_objective_rises_on_larger_images(cnn, optimizer):
    # 40×40 does not fit the classifier; the engine must only run the model up to the hooked layer
    x0 = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    res = ascend(cnn, layer("conv3"), x0, steps=15, lr=0.05 if optimizer == "adam" else 0.02, optimizer=optimizer)
    assert (res.final > res.initial).all()


def test_normalized_step_is_per_element(cnn):
    # element 1's objective is scaled by 1000 (its gradient too): a per-element normalisation makes its step
    # identical to element 0's, a batch-wide mean would shrink element 0's step to almost nothing
    x0 = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2)).repeat(2, 1, 1, 1)
    base = channel("conv2", 1)

    def objective(acts):
        return base(acts) * torch.tensor([1.0, 1000.0])

    res = ascend(cnn, objective, x0, steps=3, lr=0.05, optimizer="normalized", layers=["conv2"])
    assert torch.allclose(res.images[0], res.images[1], atol=1e-4)
    one = ascend(cnn, objective, x0, steps=1, lr=0.05, optimizer="normalized", layers=["conv2"])
    assert (one.images - x0).abs().flatten(1).mean(dim=1).tolist() == pytest.approx([0.05, 0.05], rel=1e-4)


def test_transforms_see_the_image_each_step(cnn):
    calls = []

    def spy(x):
        calls.append(x.shape)
        return jitter(1, torch.Generator().manual_seed(0))(x)

    ascend(cnn, channel("conv1", 0), torch.rand(1, 1, 28, 28), steps=4, lr=0.05, transforms=spy)
    assert len(calls) == 4


def test_blur_every_and_l2_decay_act_on_the_image(cnn):
    x0 = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    plain = ascend(cnn, channel("conv1", 0), x0, steps=4, lr=1e-6)
    blurred = ascend(cnn, channel("conv1", 0), x0, steps=4, lr=1e-6, blur_every=2, blur_sigma=1.0)
    decayed = ascend(cnn, channel("conv1", 0), x0, steps=4, lr=1e-6, l2_decay=0.1)
    assert float(blurred.images.std()) < 0.7 * float(plain.images.std())
    assert torch.allclose(decayed.images, plain.images * 0.9**4, atol=1e-4)


def test_bad_arguments(cnn):
    with pytest.raises(ValueError, match="adam, normalized"):
        ascend(cnn, channel("conv1", 0), torch.rand(1, 1, 28, 28), steps=1, lr=0.1, optimizer="sgd")
    with pytest.raises(ValueError, match="layers"):
        ascend(cnn, lambda acts: acts["conv1"].mean(), torch.rand(1, 1, 28, 28), steps=1, lr=0.1)
