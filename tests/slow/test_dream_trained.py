"""Dreams of a CNN that has learned digits (2 epochs on the bundled MNIST digits, a plain torch loop): the octave
and tiled dreams at their default settings must amplify what the net sees — at least double the post-ReLU
objective — and draw structure into the photo, not just shift its brightness; the seed dream maximises the same
post-ReLU response as the OIPs and makes its map fire, also a map that is off everywhere on the photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from analysis.dream import downscale, dream_octaves, dream_seed, dream_tiled, resize, shrink, to_array, to_tensor
from analysis.dream.images import default_image
from analysis.oip.hooks import activations
from analysis.settings import DreamSettings
from lightning_modules.data.bundled import load_bundled_mnist
from lightning_modules.networks import MnistCNN

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_cnn() -> MnistCNN:
    """The reference CNN after 2 epochs of SGD + momentum on the 5,000 bundled digits (about 97 % train accuracy)."""
    torch.manual_seed(0)
    images, labels = load_bundled_mnist()
    x = torch.as_tensor(images, dtype=torch.float32)[:, None] / 255.0
    y = torch.as_tensor(labels)
    net = MnistCNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        for batch in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9  # it has learned digits: the dreams below are of a working network
    return net


def high_pass_energy(image: np.ndarray, sigma_px: int = 4) -> float:
    """Mean square of ``image`` minus its blur (the structure finer than ~``sigma_px``): 0 for a constant image."""
    t = to_tensor(image)
    h, w = image.shape
    small = resize(t, (max(2, h // sigma_px), max(2, w // sigma_px)))
    return float(np.mean((image - to_array(resize(small, (h, w)))) ** 2))


@pytest.mark.parametrize("mode", ["octaves", "tiled"])
def test_dreams_amplify_what_the_net_sees(trained_cnn, mode):
    photo = shrink(default_image(), 160)
    run = dream_octaves if mode == "octaves" else dream_tiled
    result = run(trained_cnn, photo, DreamSettings())
    assert result.objective_before > 0
    assert result.objective_after >= 2 * result.objective_before, (result.objective_before, result.objective_after)
    diff = result.image - result.original
    # the same mean change as a uniform brightening (clipped like any image): what a mere brightness shift would do
    shift = np.clip(result.original + diff.mean(), 0, 1) - result.original
    assert high_pass_energy(diff) > 3 * high_pass_energy(shift) + 1e-5, (high_pass_energy(diff),
                                                                          high_pass_energy(shift))


def test_pre_relu_response_is_still_available_and_differs(trained_cnn):
    photo = shrink(default_image(), 96)
    post = dream_tiled(trained_cnn, photo, DreamSettings(steps=3))
    pre = dream_tiled(trained_cnn, photo, DreamSettings(steps=3, response="pre_relu"))
    assert pre.objective_before < 0 < post.objective_before  # the conv output's mean is negative on this photo
    assert not np.allclose(pre.image, post.image, atol=1e-3)


def test_seed_dream_makes_its_map_fire(trained_cnn):
    photo = shrink(default_image(), 160)
    pre = activations(trained_cnn, downscale(to_tensor(photo)), ["conv3"])["conv3"][0].detach()
    peaks = pre.flatten(1).max(dim=1).values
    assert (peaks < 0).any()  # some maps are off everywhere on the photo (72 of 128 on the CLI's 2-epoch CNN)
    silent = int(torch.where(peaks < 0, peaks, -torch.inf).argmax())  # of those, the one nearest to firing
    for target in ("conv3:56", f"conv3:{silent}"):
        result = dream_seed(trained_cnn, photo, DreamSettings(objective=target))
        assert result.objective_before >= 0 and result.objective_gain > 0, (target, result.objective_before,
                                                                             result.objective_after)
        assert result.target == f"{target} post_relu"
    assert result.objective_before == 0  # the silent map: only the pre-ReLU push could wake it
