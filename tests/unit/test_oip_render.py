"""render_oips on hand-built filters with predictable OIPs, batched == serial, errors, table and grid."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from analysis.oip import oip_table, render_oips
from analysis.oip.render import OIPResult
from analysis.plots.images import panel_fraction
from analysis.plots.oip import default_columns, oip_grid, uniform_maps
from analysis.settings import OIPSettings
from latentdream.errors import InputError
from lightning_modules.networks import MnistCNN

_t = torch.linspace(-1, 1, 5)
FILTERS = torch.stack([
    _t[:, None].expand(5, 5),                           # 0: horizontal edge (dark above, bright below)
    _t[None, :].expand(5, 5),                           # 1: vertical edge (dark left, bright right)
    (_t[:, None] + _t[None, :]) / 2,                    # 2: diagonal edge
    torch.exp(-(_t[:, None] ** 2 + _t[None, :] ** 2) / 0.3),  # 3: centre blob, made zero-mean below
])
FILTERS[3] -= FILTERS[3].mean()


class FilterNet(nn.Module):
    """One conv layer whose 4 maps are the known FILTERS (bias 0), followed by a ReLU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5)
        with torch.no_grad():
            self.conv1.weight.copy_(FILTERS[:, None])
            self.conv1.bias.zero_()

    def forward(self, x):
        return torch.relu(self.conv1(x))


def _render(model, layer, init="random", *, batched=True, size=None, **settings):
    """render_oips with the given ``oip`` settings (the rest at their defaults)."""
    return render_oips(model, layer, init, OIPSettings(**settings), batched=batched, size=size)


@pytest.fixture(scope="module")
def small_cnn():
    torch.manual_seed(0)
    return MnistCNN(conv_filters=(4, 6, 8), dense_units=(8,)).eval()


def test_oip_of_a_single_window_is_its_filter():
    # 5×5 image = one filter window: the objective is w·x, so the optimum in [0, 1] is x = 1 where w > 0, 0 where
    # w < 0 — each OIP must correlate with its own filter clearly, and more than with any other filter
    res = _render(FilterNet(), "conv1", size=5, jitter=0, blur_every=0, steps=60, rectify=False)
    corr = np.corrcoef(res.patterns.reshape(4, -1), FILTERS.reshape(4, -1).numpy())[:4, 4:]
    assert (np.diag(corr) > 0.75).all()
    assert (np.diag(corr) > corr.max(axis=1, where=~np.eye(4, dtype=bool), initial=-1) + 0.15).all()
    assert (res.final > res.initial).all() and not res.dead.any()


def test_edge_filters_give_stripes_of_their_orientation():
    # on a 16×16 image the post-ReLU mean is maximised by repeating the edge: horizontal stripes for the
    # horizontal edge (brightness changes along y), vertical stripes for the vertical one
    p = _render(FilterNet(), "conv1", maps=[0, 1], size=16, steps=60, seed=1).patterns
    change_y = np.abs(np.diff(p, axis=1)).mean(axis=(1, 2))
    change_x = np.abs(np.diff(p, axis=2)).mean(axis=(1, 2))
    assert change_y[0] > 3 * change_x[0] and change_x[1] > 3 * change_y[1]


def test_objective_rises_and_plateaus(small_cnn):
    res = _render(small_cnn, "conv3", steps=60, seed=0)
    assert res.patterns.shape == (8, 28, 28) and res.patterns.dtype == np.float32
    alive = ~res.dead
    assert alive.sum() >= 4 and (res.final[alive] > res.initial[alive]).all()
    mean = res.history.mean(axis=1)  # (steps,), noisy because every step sees another jitter shift
    q1, q2, q3, q4 = (part.mean() for part in np.array_split(mean, 4))
    assert q1 < q2 < q4 and q3 < q4
    curve = np.convolve(mean, np.ones(5) / 5, mode="valid")  # smoothed: rises, dips at most a little
    rise, worst_dip = curve[-1] - curve[0], (np.maximum.accumulate(curve) - curve).max()
    assert rise > 0 and worst_dip < 0.4 * rise
    assert np.allclose(res.activation, res.final, atol=1e-5)  # rectified objective = post-ReLU mean
    assert 0 <= res.patterns.min() and res.patterns.max() <= 1


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.05), ("normalized", 0.02)])
def test_batched_equals_serial(small_cnn, optimizer, lr):
    kw = dict(maps=[5, 0, 3, 3], init="fluct_2", steps=20, seed=4, optimizer=optimizer, lr=lr, jitter=2, blur_every=5)
    batched = _render(small_cnn, "conv2", batched=True, **kw)
    serial = _render(small_cnn, "conv2", batched=False, **kw)
    np.testing.assert_allclose(batched.patterns, serial.patterns, atol=1e-4)
    np.testing.assert_allclose(batched.final, serial.final, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batched.history, serial.history, rtol=1e-4, atol=1e-5)
    # a map's start (hence its OIP) depends on the seed and the map index only, not on its batch neighbours
    np.testing.assert_allclose(batched.patterns[2], batched.patterns[3], atol=1e-5)
    alone = _render(small_cnn, "conv2", batched=True, **{**kw, "maps": [0]})
    np.testing.assert_allclose(alone.patterns[0], batched.patterns[1], atol=1e-4)
    assert not np.allclose(batched.patterns[0], batched.patterns[1], atol=0.1)


def test_dead_map_is_flagged(small_cnn):
    net = FilterNet()
    with torch.no_grad():
        net.conv1.weight[2] = -net.conv1.weight[2].abs()  # can only respond negatively to images in [0, 1]
        net.conv1.bias[2] = -0.1
    res = _render(net, "conv1", size=12, steps=20)
    assert res.dead.tolist() == [False, False, True, False]
    assert res.activation[2] == 0


def test_reference_preset_leaves_maps_silent_on_their_start_dead_where_lucent_revives_them():
    net = FilterNet()
    with torch.no_grad():
        net.conv1.bias[:] = -4.5  # every map starts silent on a random image in [0, 1] (it can reach 7.5)
        net.conv1.bias[3] = 0.0  # ... but the centre blob
    kw = dict(size=12, steps=30)
    reference = _render(net, "conv1", preset="reference", **kw)
    assert reference.dead.tolist() == [True, True, True, False]  # no gradient: the reference's dead maps
    np.testing.assert_array_equal(reference.final[:3], reference.initial[:3])
    lucent = _render(net, "conv1", **kw)
    assert not lucent.dead[:2].any()  # the redirected ReLU pushed them until they fired
    # a user's value wins over the preset's: redirect on, with the reference's plain normalised steps
    revived = _render(net, "conv1", preset="reference", redirect=True, **kw)
    assert not revived.dead[:2].any()


def test_a_preset_is_one_row_and_explicit_values_win():
    from analysis.oip import PRESET_VALUES, OIPPreset

    lucent, reference = OIPSettings().resolved(), OIPSettings(preset="reference").resolved()
    for preset, resolved in ((OIPPreset.lucent, lucent), (OIPPreset.reference, reference)):
        assert {k: getattr(resolved, k) for k in PRESET_VALUES[preset]} == PRESET_VALUES[preset]
    assert (reference.optimizer, reference.jitter, reference.blur_every, reference.clip, reference.redirect) == (
        "normalized", 0, 0, False, False)
    assert OIPSettings().lr is None  # null until resolved: the schema's default must stay "the preset's value"
    mixed = OIPSettings(preset="reference", jitter=2, clip=True).resolved()
    assert (mixed.jitter, mixed.clip, mixed.optimizer) == (2, True, "normalized")


def test_preset_through_the_config():
    from experiments.run.config import load_experiment, section

    oip = section(load_experiment("cnn_mnist_bundled", ["oip.preset=reference", "oip.jitter=3"]), "oip").resolved()
    assert (oip.preset, oip.optimizer, oip.jitter, oip.redirect) == ("reference", "normalized", 3, False)
    with pytest.raises(InputError, match="oip.preset"):
        load_experiment("cnn_mnist_bundled", ["oip.preset=keras"])


def test_bad_input(small_cnn):
    with pytest.raises(InputError, match="conv1, conv2, conv3"):
        _render(small_cnn, "dense", steps=1)
    with pytest.raises(InputError, match="0..7"):
        _render(small_cnn, "conv3", maps=[1, 8], steps=1)
    with pytest.raises(InputError, match="allowed: random"):
        _render(small_cnn, "conv3", init="perlin", steps=1)


def test_table_and_grid(small_cnn):
    res = _render(small_cnn, "conv1", maps=[0, 2], steps=3)
    dead = type(res)(**{**res.__dict__, "dead": np.array([False, True])})
    table = oip_table([res, dead])
    assert list(table.columns) == ["layer", "init", "map", "initial", "final", "activation", "dead"]
    assert table["map"].tolist() == [0, 2, 0, 2] and table["dead"].tolist() == [False, False, False, True]
    fig = oip_grid(dead)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == [f"{m}: {a:.2f}" for m, a in zip(res.maps, res.activation)]
    assert len(axes[0].images) == 1 and axes[0].images[0].get_cmap().name == "viridis"
    assert not axes[1].images and [t.get_text() for t in axes[1].texts] == ["dead"]
    assert "post-ReLU mean activation" in fig.get_suptitle()  # the title says what the number over a panel is
    assert "not comparable" not in fig.get_suptitle()
    wild = type(res)(**{**res.__dict__, "patterns": res.patterns * 60 - 13})  # unclamped, as the reference preset's
    title = oip_grid(wild, preset="reference").get_suptitle()
    lo, hi = wild.patterns.min(), wild.patterns.max()
    assert f"pixels span [{lo:.3g}, {hi:.3g}]" in title and "not comparable with the lucent preset" in title


def test_grid_on_a_shared_scale(small_cnn):
    res = _render(small_cnn, "conv1", maps=[0, 1, 2], steps=3)
    flat = type(res)(**{**res.__dict__, "patterns": np.stack([res.patterns[0], np.full((28, 28), 0.5, np.float32),
                                                               res.patterns[2]])})
    panels = [ax for ax in oip_grid(flat).axes if ax.get_title()]
    # a flat pattern is not stretched into a block of colour: its panel says "uniform"
    assert not panels[1].images and [t.get_text() for t in panels[1].texts] == ["uniform\n0.50"]
    assert panels[0].images[0].get_clim() == (flat.patterns[0].min(), flat.patterns[0].max())  # own min..max
    fig = oip_grid(flat, shared_scale=True)
    shared = {ax.images[0].get_clim() for ax in fig.axes if ax.images and ax.get_title()}
    assert len(shared) == 1 and "one colour scale" in fig.get_suptitle()
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_uniform_maps_are_those_spanning_under_five_percent_of_the_grid_range():
    ramp = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)  # spread 1: the grid's range ~0.99
    specks = np.full((28, 28), 0.3, np.float32)
    specks[0, :5] = 1.0  # five bright pixels on a flat field: still uniform
    patterns = np.stack([ramp, 0.5 + 0.04 * ramp, 0.5 + 0.06 * ramp, np.zeros((28, 28), np.float32), specks])
    dead = np.array([False, False, False, True, False])
    # 0.04 < 5 % of ~0.99 (uniform), 0.06 is not; a dead map is "dead", never "uniform"
    assert uniform_maps(patterns, dead).tolist() == [False, True, False, False, True]


def test_default_columns_keep_panels_wide_enough_for_the_ui():
    assert [default_columns(n) for n in (1, 8, 32, 64, 128)] == [1, 4, 8, 12, 12]
    res = OIPResult(layer="conv3", init="random", maps=np.arange(128), patterns=np.random.default_rng(0).random((128, 28, 28)),
                    initial=np.zeros(128), final=np.zeros(128), activation=np.zeros(128), dead=np.zeros(128, bool),
                    history=np.zeros((1, 128)))
    fig = oip_grid(res)
    # about 1,000 px wide at 110 dpi, 12 panels a row: drawn at ~850 px in the UI a panel is >= 48 px
    width_px = fig.get_size_inches()[0] * 110
    assert width_px <= 1100 and panel_fraction(fig) * 850 >= 48, (width_px, panel_fraction(fig))
