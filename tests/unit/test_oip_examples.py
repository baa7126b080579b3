"""Dataset examples beside the OIPs and the OIPs' class probabilities: known answers and figure sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analysis.oip.examples import top_examples
from analysis.oip.hooks import activations
from analysis.oip.predictions import class_probabilities, prediction_table
from analysis.plots.oip import examples_figure
from analysis.tracking import figure_dpi
from lightning_modules.networks import MnistCNN

LAYERS = ["conv1", "conv2", "conv3"]


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    return MnistCNN().eval(), torch.rand(150, 1, 28, 28)


def test_top_examples_are_the_brute_force_top_k_whatever_the_batching(net_and_data):
    net, x = net_and_data
    with torch.no_grad():
        peaks = {name: a.flatten(2).amax(2) for name, a in activations(net, x, LAYERS).items()}  # (n, M)
    for batch in (7, 64, 150):
        found = top_examples(net, [x[s:s + batch] for s in range(0, len(x), batch)], LAYERS, k=8)
        for name in LAYERS:
            ex = found[name]
            expected = torch.topk(peaks[name], 8, dim=0)
            assert ex.indices.shape == (peaks[name].shape[1], 8) and ex.n_images == 150
            assert np.array_equal(ex.indices, expected.indices.T.numpy())
            assert np.allclose(ex.activations, torch.relu(expected.values.T).numpy(), atol=1e-6)
            assert np.array_equal(ex.images, x[torch.as_tensor(ex.indices)][:, :, 0].numpy())
            assert np.all(np.diff(ex.activations, axis=1) <= 0)  # most active first


def test_top_examples_take_labelled_batches_and_fewer_images_than_k(net_and_data):
    net, x = net_and_data
    found = top_examples(net, [(x[:3], torch.zeros(3))], ["conv2"], k=8)
    assert found["conv2"].indices.shape == (64, 3)  # only 3 images to rank
    assert sorted(found["conv2"].indices[0]) == [0, 1, 2]


class _Fixed(nn.Module):
    """A 'classifier' whose logits are the image's mean brightness times (0, 1, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([0.0, 1.0, 2.0]))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None] * self.scale


def test_class_probabilities_are_the_softmax_of_the_logits_and_sum_to_one():
    patterns = np.stack([np.zeros((5, 5)), np.full((5, 5), np.log(2.0))])
    p = class_probabilities(_Fixed(), patterns)
    assert p[0] == pytest.approx([1 / 3] * 3)
    assert p[1] == pytest.approx(np.array([1, 2, 4]) / 7)
    table = prediction_table("random", np.array([4, 9]), p, np.array([False, True]))
    assert list(table.columns) == ["init", "map", "p_0", "p_1", "p_2", "predicted", "p_max", "dead"]
    assert table["predicted"].tolist() == [0, 2] and table["p_max"][1] == pytest.approx(4 / 7)
    assert table[["p_0", "p_1", "p_2"]].sum(axis=1).to_numpy() == pytest.approx(1.0)


@pytest.mark.parametrize("n_maps", [32, 128])
def test_examples_figure_fits_2000_px_and_stays_readable(n_maps):
    images = np.random.default_rng(0).random((n_maps, 8, 28, 28))
    fig = examples_figure("conv3", images, None, n_data=500)
    width, height = fig.get_size_inches() * figure_dpi(fig)
    assert max(width, height) <= 2000
    assert max(width, height) >= 1200  # enlarged: a 28 px digit is drawn at least ~2.5x
