"""Networks compared by what their maps do: linear CKA and map matching against known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.compare.cka import cka_table, linear_cka
from analysis.compare.matching import map_correlation, match_maps
from analysis.compare.probe import probe_activations
from analysis.oip.hooks import activations
from analysis.plots import compare as plots
from analysis.tracking import figure_dpi
from experiments.commands.compare import same_start
from lightning_modules.networks import MnistCNN


def _orthogonal(p: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(p, p)))
    return q


def test_cka_of_a_representation_with_itself_is_one_and_invariant_to_rotation_and_scaling():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 12)), rng.normal(size=(60, 7)) ** 2
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x @ _orthogonal(12, 1)) == pytest.approx(1.0, abs=1e-12)
    base = linear_cka(x, y)
    assert 0 < base < 0.9  # independent representations are not alike
    assert linear_cka(0.01 * x @ _orthogonal(12, 2), 5.0 * y @ _orthogonal(7, 3)) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, y + 4.0) == pytest.approx(base, abs=1e-12)  # features are centred
    assert linear_cka(x, np.zeros((60, 3))) == 0.0  # a constant (dead) layer


def test_cka_equals_the_feature_space_formula():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 9)), rng.normal(size=(40, 5))
    y[:, 0] += x[:, 0]
    xc, yc = x - x.mean(0), y - y.mean(0)  # Kornblith et al. eq. (4): ||Yᵀ X||² / (||Xᵀ X|| ||Yᵀ Y||)
    expected = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-12)


def permuted_state(state: dict, names: list[str], seed: int) -> tuple[dict, dict[str, np.ndarray]]:
    """An MnistCNN state dict computing the same function with the maps of every conv layer in ``names`` reordered:
    the new map j is the old map perm[j]."""
    state = {k: v.clone() for k, v in state.items()}
    gen = torch.Generator().manual_seed(seed)
    perms = {}
    for i, name in enumerate(names):
        perm = torch.randperm(state[f"{name}.weight"].shape[0], generator=gen)
        perms[name] = perm.numpy()
        state[f"{name}.weight"], state[f"{name}.bias"] = state[f"{name}.weight"][perm], state[f"{name}.bias"][perm]
        if i + 1 < len(names):
            state[f"{names[i + 1]}.weight"] = state[f"{names[i + 1]}.weight"][:, perm]
        else:  # the dense layer reads the last conv layer flattened as (maps, positions)
            dense = next(k for k in state if k.startswith("classifier.") and k.endswith(".weight"))
            w = state[dense]
            state[dense] = w.reshape(w.shape[0], len(perm), -1)[:, perm].reshape(w.shape)
    return state, perms


def _permuted(net: MnistCNN, seed: int) -> tuple[MnistCNN, dict[str, np.ndarray]]:
    other = MnistCNN()
    state, perms = permuted_state(net.state_dict(), net.conv_layer_names, seed)
    other.load_state_dict(state)
    return other.eval(), perms


def test_a_network_with_permuted_maps_is_matched_back_exactly_and_has_cka_one():
    torch.manual_seed(0)
    net = MnistCNN().eval()
    probe = torch.rand(48, 1, 28, 28)
    with torch.no_grad():  # biases that centre every map on the probe: each fires (a silent map matches nothing)
        for name in net.conv_layer_names:
            pre = activations(net, probe, [name])[name]
            getattr(net, name).bias -= pre.transpose(0, 1).flatten(1).median(dim=1).values
    other, perms = _permuted(net, seed=1)
    assert torch.allclose(net(probe), other(probe), atol=1e-5)  # the same function
    batches = [probe[:20], probe[20:]]
    acts_a = probe_activations(net, batches, net.conv_layer_names)
    acts_b = probe_activations(other, batches, other.conv_layer_names)
    for name, perm in perms.items():
        assert np.all(acts_a[name].std(axis=(0, 2, 3)) > 0)  # no map is constant: the matching is unique
        matching = match_maps(map_correlation(acts_a[name], acts_b[name]))
        assert len(matching) == len(perm)
        # A's map perm[j] is B's map j
        assert np.array_equal(perm[matching["map_b"].to_numpy()], matching["map_a"].to_numpy())
        assert matching["correlation"].to_numpy() == pytest.approx(1.0, abs=1e-5)
    table = cka_table(acts_a, acts_b)
    same = table[table["layer_a"] == table["layer_b"]]
    assert same["cka"].to_numpy() == pytest.approx(1.0, abs=1e-6)
    assert len(table) == 9 and (table[table["layer_a"] != table["layer_b"]]["cka"] < 1 - 1e-3).all()


def test_matching_maximises_the_summed_correlation_and_sorts_by_it():
    corr = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.0, 0.3]])  # greedy would take 0-0 and 1-1
    matching = match_maps(corr)
    assert list(zip(matching["map_a"], matching["map_b"])) == [(1, 0), (0, 1), (2, 2)]
    assert matching["correlation"].tolist() == [0.85, 0.8, 0.3]
    assert list(matching.columns) == ["map_a", "map_b", "correlation"]
    assert len(match_maps(corr[:, :2])) == 2  # fewer maps in B: min(M_a, M_b) pairs


def test_map_correlation_is_pearson_and_zero_for_dead_maps():
    rng = np.random.default_rng(2)
    a = rng.random((10, 3, 4, 4))
    b = np.stack([2 * a[:, 1] + 1, -a[:, 0], np.zeros((10, 4, 4))], axis=1)
    corr = map_correlation(a, b)
    assert corr[1, 0] == pytest.approx(1.0) and corr[0, 1] == pytest.approx(-1.0)
    assert np.all(corr[:, 2] == 0)
    expected = np.corrcoef(a[:, 2].ravel(), b[:, 0].ravel())[0, 1]
    assert corr[2, 0] == pytest.approx(expected)
    # maps of different sizes: the images' spatial means are the samples
    small = a[:, :, :2, :2]
    assert map_correlation(a, small).shape == (3, 3)


def test_same_start_needs_equal_seed_and_model():
    a = {"trainer.seed": "1", "model.conv_filters": "[32]", "optim.lr": "0.1"}
    assert same_start([a, {**a, "optim.lr": "0.5"}])
    assert not same_start([a, {**a, "trainer.seed": "2"}])
    assert not same_start([a, {**a, "model.conv_filters": "[16]"}])


def test_matched_oips_and_cka_heatmap_fit_2000_px():
    rng = np.random.default_rng(0)
    pats = [rng.random((128, 28, 28)), rng.random((128, 28, 28))]
    matching = match_maps(rng.random((128, 128)))
    fig = plots.matched_oips(pats, ["run A", "run B"], matching, dead=[np.arange(128) == 3, np.zeros(128, bool)],
                             title="OIPs of conv3_random")
    assert max(fig.get_size_inches() * figure_dpi(fig)) <= 2000
    assert min(fig.get_size_inches() * figure_dpi(fig)) > 1000  # 128 pairs are drawn large enough to read
    table = pd.DataFrame([(a, b, 0.5) for a in ("conv1", "conv2") for b in ("conv1", "conv2", "conv3")],
                         columns=["layer_a", "layer_b", "cka"])
    fig = plots.cka_heatmap(table, ["A", "B"])
    assert max(fig.get_size_inches() * figure_dpi(fig)) <= 2000
