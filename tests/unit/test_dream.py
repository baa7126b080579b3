"""DeepDream: image ops, windows/tiles, the three modes and their figures (tiny untrained CNN, small images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from analysis.dream import (Windowed, contrast_stretch, coverage, default_image, detail, downscale, dream_objective,
                            dream_octaves, dream_seed, dream_tiled, load_image, make_objective, mean_over_windows,
                            push_silent,
                            octave_shapes, resize, shrink, tiles, to_tensor, transfer_change, untile, upscale,
                            window_starts, windows)
from analysis.oip.ascent import ascend
from analysis.oip.hooks import activations
from analysis.oip.objectives import layer
from analysis.plots.dream import octave_panels, seed_panels, tiled_panels
from analysis.settings import DreamSettings
from latentdream.errors import InputError
from lightning_modules.networks import MnistCNN


@pytest.fixture(scope="module")
def model() -> MnistCNN:
    torch.manual_seed(0)
    return MnistCNN(conv_filters=(4, 8, 8), dense_units=(8,)).eval()


def dream(settings) -> DreamSettings:
    """The ``dream`` settings of a test: the given ones, the rest at their defaults."""
    return DreamSettings(**settings)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth random structure in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    small = torch.as_tensor(rng.random((1, 1, max(2, h // 6), max(2, w // 6))), dtype=torch.float32)
    img = resize(small, (h, w))[0, 0].numpy()
    img = (img - img.min()) / (img.max() - img.min())
    return (0.1 + 0.8 * img).astype(np.float32)


# --- image ops -------------------------------------------------------------------------------------------------


def test_load_image_reads_png_as_pillow_gray(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    gray = load_image(tmp_path / "a.png")
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255  # Pillow rounds to uint8
    assert gray.shape == (30, 40) and gray.dtype == np.float32
    np.testing.assert_allclose(gray, expected, atol=0.6 / 255)
    assert load_image(tmp_path / "a.png", gray=False).shape == (30, 40, 3)


def test_load_image_bad_inputs_say_what_is_wrong(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((20, 50), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="not a readable image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match=r"20×50 px.*28×28"):
        load_image(tmp_path / "small.png")
    with pytest.raises(InputError, match=r"allowed: \[0, 1\]"):
        load_image(np.full((30, 30), 255.0))


def test_default_image_is_a_gray_photo():
    img = default_image()
    assert img.shape == (427, 640) and img.dtype == np.float32 and 0 <= img.min() < 0.1 and 0.8 < img.max() <= 1


def test_resize_matches_pillow_bicubic():
    img = np.random.default_rng(2).random((90, 130)).astype(np.float32)
    for size in [(28, 28), (200, 150)]:
        ours = resize(to_tensor(img), size)[0, 0].numpy()
        pil = np.asarray(Image.fromarray(img, mode="F").resize(size[::-1], Image.BICUBIC))
        np.testing.assert_allclose(ours, pil, atol=1e-5)


def test_detail_reinjection_restores_the_original():
    x = to_tensor(smooth_image(45, 70))
    small = downscale(x)
    assert small.shape == (1, 1, 28, 28)
    lost = detail(x)
    assert lost.abs().max() > 1e-3  # the round trip does lose something ...
    torch.testing.assert_close(upscale(small, (45, 70)) + lost, x, atol=1e-6, rtol=0)  # ... and it comes back


def test_contrast_stretch_maps_percentiles_to_0_and_1():
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    out = contrast_stretch(ramp, 10, 90)
    assert out[10] == pytest.approx(0.0, abs=1e-6) and out[90] == pytest.approx(1.0, abs=1e-6)
    assert out[50] == pytest.approx(0.5, abs=1e-6) and out[0] == 0 and out[100] == 1
    assert np.all(contrast_stretch(np.full((4, 4), 0.3), 1, 99) == np.float32(0.3))
    with pytest.raises(InputError, match="low_pct < high_pct"):
        contrast_stretch(ramp, 90, 10)


def test_transfer_change_puts_the_dream_on_the_full_resolution_photo():
    full = smooth_image(90, 140)
    small = shrink(full, 70)
    assert small.shape == (45, 70) and shrink(small, 70) is small
    after = small.copy()
    after[10:20, 10:20] += 0.2  # a local change of the shrunk photo
    out = transfer_change(full, small, after)
    assert out.shape == (90, 140) and out.dtype == np.float32
    change = out - full
    assert change[24:36, 24:36].mean() == pytest.approx(0.2, abs=0.03)  # where the change was, scaled up 2×
    assert np.abs(change[60:, 80:]).max() < 1e-4  # the rest of the photo keeps its own pixels
    np.testing.assert_allclose(transfer_change(small, small, after), np.clip(after, 0, 1), atol=1e-6)


# --- windows and tiles -----------------------------------------------------------------------------------------


def test_window_starts_cover_the_axis_with_an_aligned_last_window():
    assert window_starts(60, 28, 14).tolist() == [0, 14, 28, 32]
    assert window_starts(56, 28, 14).tolist() == [0, 14, 28]
    assert window_starts(28, 28, 14).tolist() == [0]


def test_windows_cut_crops_and_overlapping_gradients_add():
    x = torch.rand(1, 1, 45, 60, requires_grad=True)
    batch = windows(x, 28, 14)
    ys, xs = window_starts(45, 28, 14), window_starts(60, 28, 14)
    assert batch.shape == (len(ys) * len(xs), 1, 28, 28)
    torch.testing.assert_close(batch[len(xs) + 2], x[:, :, ys[1] : ys[1] + 28, xs[2] : xs[2] + 28][0])  # row-major
    batch.sum().backward()  # d/dx of the sum over windows = how many windows hold each pixel
    count = coverage((45, 60), 28, 14)
    assert count.min() >= 1 and count.max() >= 4  # every pixel covered, some by several windows
    np.testing.assert_array_equal(x.grad[0, 0].numpy(), count)


def test_tiles_round_trip_with_padding():
    x = torch.rand(1, 1, 60, 45)
    t = tiles(x, 28)
    assert t.shape == (3 * 2, 1, 28, 28)
    torch.testing.assert_close(t[1, :, :, :17], x[0, :, :28, 28:45])  # right edge tile, reflect-padded beyond 45
    torch.testing.assert_close(t[1, :, :, 17], x[0, :, :28, 43])
    torch.testing.assert_close(t[2, 0], x[0, 0, 28:56, :28])
    torch.testing.assert_close(untile(t, (60, 45)), x)


def test_windowed_model_keeps_layer_names_and_mode(model):
    net = Windowed(model, 28, 14)
    assert dict(net.named_modules())["conv3"] is model.conv3 and net.conv_layer_names == model.conv_layer_names
    x = torch.rand(1, 1, 40, 50)
    torch.testing.assert_close(net(x), model(windows(x, 28, 14)))
    ascend(net, mean_over_windows(make_objective("conv3")), x, steps=0, lr=0.1)  # the engine restores net's mode onto the children
    assert not model.training and not model.conv1.training


def test_windowed_cuts_the_windows_outputs_from_one_pass(model):
    net = Windowed(model, 28, 14, ["conv2", "conv3"])
    assert net.shared and net.geometry == {"conv2": (2, (11, 11)), "conv3": (4, (3, 3)), "conv3:input": (4, (5, 5))}
    assert (net.period, net.stride) == (4, 16)
    x = torch.rand(2, 1, 45, 59, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert net.pad(x).shape[-2:] == (48, 60)  # (side − 28) a multiple of 4: reflect-padded by 3 and 1 px
    fast = net.layer_outputs(x, ["conv2", "conv3"])
    slow = activations(model, windows(net.pad(x), 28, 16), ["conv2", "conv3"])
    assert fast["conv3"].shape == (2 * 3 * 3, 8, 3, 3)  # starts 0, 16, 20 down and 0, 16, 32 across
    for name in ("conv2", "conv3"):
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-4, atol=1e-5)
    (g_fast,) = torch.autograd.grad(fast["conv3"].relu().sum(), x)
    (g_slow,) = torch.autograd.grad(slow["conv3"].relu().sum(), x)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-5)  # the overlapping windows' gradients add up


def test_windowed_falls_back_where_crops_differ():
    same = torch.nn.Sequential()  # 'same' padding: a window's border sees zeros, the whole image its neighbours
    same.add_module("conv1", torch.nn.Conv2d(1, 2, 3, padding=1))
    same.add_module("conv2", torch.nn.Conv2d(2, 2, 3))
    net = Windowed(same, 28, 14, ["conv1", "conv2"])
    assert not net.shared and (net.period, net.stride) == (1, 14)
    x = torch.rand(1, 1, 40, 50)
    torch.testing.assert_close(net.layer_outputs(x, ["conv2"])["conv2"], same(windows(x, 28, 14)))
    assert Windowed(same, 28, 14, ["conv1"]).shared  # the first layer alone: its input cut is the windows themselves


def test_make_objective_weighted_set():
    acts = {"conv2": torch.ones(2, 3, 4, 4), "conv3": torch.full((2, 5, 2, 2), 2.0)}
    obj = make_objective({"conv2": 0.5, "conv3": 1.0})
    torch.testing.assert_close(obj(acts), torch.tensor([2.5, 2.5]))
    assert set(obj.layers) == {"conv2", "conv3"}
    torch.testing.assert_close(make_objective("conv3")(acts), layer("conv3")(acts))
    with pytest.raises(InputError, match="weight"):
        make_objective({"conv3": "big"})
    with pytest.raises(InputError, match="mapping"):
        make_objective({})


def test_push_silent_keeps_the_post_relu_value_and_pushes_only_silent_elements():
    # element 0: map 0 off everywhere (plain ReLU gradient 0); element 1: it fires at one position
    a = torch.tensor([[[[-1.0, -2.0], [-3.0, -0.5]]], [[[-1.0, 2.0], [-3.0, -0.5]]]], requires_grad=True)
    obj = push_silent(make_objective("conv3:0", "post_relu"), make_objective("conv3:0", "pre_relu"))
    value = obj({"conv3": a})
    torch.testing.assert_close(value, torch.tensor([0.0, 0.5]))  # the post-ReLU means, exactly
    (g,) = torch.autograd.grad(value.sum(), a)
    torch.testing.assert_close(g[0], torch.full((1, 2, 2), 0.25))  # the pre-ReLU mean's gradient: up everywhere
    torch.testing.assert_close(g[1], torch.tensor([[[0.0, 0.25], [0.0, 0.0]]]))  # the plain ReLU's
    assert dream_objective("conv3:0", "pre_relu")({"conv3": a}).tolist() == [-1.625, -0.625]


def _silenced(model: MnistCNN, index: int, image: np.ndarray) -> MnistCNN:
    """A copy of ``model`` whose conv3 map ``index`` is just below 0 everywhere on ``downscale(image)``."""
    import copy

    net = copy.deepcopy(model)
    with torch.no_grad():
        pre = activations(net, downscale(to_tensor(image)), ["conv3"])["conv3"][0, index]
        net.conv3.bias[index] -= float(pre.max()) + 0.02
    return net


def test_seed_honours_the_response_and_wakes_a_silent_map(model):
    img = smooth_image(45, 70)
    small = downscale(to_tensor(img))
    acts = activations(model, small, ["conv3"])["conv3"][0, 1].detach()
    for response, expected in (("post_relu", torch.relu(acts).mean()), ("pre_relu", acts.mean())):
        res = dream_seed(model, img, dream(dict(objective="conv3:1", response=response, cycles=1, steps=0)))
        assert res.objective_before == pytest.approx(float(expected), rel=1e-5, abs=1e-7)
    net = _silenced(model, 1, img)
    plain = ascend(net, make_objective("conv3:1", "post_relu"), small, steps=5, lr=0.02, optimizer="normalized")
    assert float(plain.grad_abs[0]) == 0 and float(plain.final[0]) == 0  # the plain ReLU: no gradient, stuck at 0
    res = dream_seed(net, img, dream(dict(objective="conv3:1", cycles=2, steps=10, lr=0.02)))
    assert res.objective_before == 0 and res.objective_gain > 0.01  # pushed until it fired, then it grew


def test_octave_shapes_skip_octaves_below_28():
    assert octave_shapes((100, 150), 3, 1.4) == [(51, 77), (71, 107), (100, 150)]
    assert octave_shapes((40, 60), 4, 1.4) == [(29, 43), (40, 60)]


# --- the three modes -------------------------------------------------------------------------------------------


def test_seed_with_ascent_off_returns_the_original(model):
    img = smooth_image(45, 70)
    res = dream_seed(model, img, dream(dict(objective="conv3:1", cycles=3, steps=0)))
    np.testing.assert_allclose(res.image, img, atol=1e-6)
    assert res.objective_gain == pytest.approx(0.0, abs=1e-5)


def test_octaves_and_tiled_with_ascent_off_return_the_original(model):
    img = smooth_image(64, 90)
    off = dream(dict(layer_objective="conv3", octaves=3, steps_per_octave=0, steps=0))
    np.testing.assert_allclose(dream_octaves(model, img, off).image, img, atol=1e-6)
    np.testing.assert_allclose(dream_tiled(model, img, off).image, img, atol=1e-6)


def test_seed_raises_the_objective_and_fills_the_panels(model):
    img = smooth_image(45, 70)
    res = dream_seed(model, img, dream(dict(objective="conv3:1", cycles=2, steps=5, lr=0.02)))
    assert res.objective_gain > 0.01
    assert res.dream28.shape == (28, 28) and res.cycle_images.shape == (2, 28, 28)
    assert res.upscaled.shape == res.stretched.shape == res.image.shape == (45, 70)
    assert res.stretched.min() == 0 and res.stretched.max() == 1
    fig = seed_panels(res)  # the reference's six: two viridis, gray, upscaled, details re-added, stretched
    assert isinstance(fig, Figure) and len([ax for ax in fig.axes if ax.images]) == 6


def test_octaves_raise_the_weighted_objective(model):
    img = smooth_image(48, 64)
    settings = dream(dict(layers={"conv2": 0.5, "conv3": 1.0}, octaves=2, octave_scale=1.4, steps_per_octave=3,
                          lr=0.02))
    res = dream_octaves(model, img, settings, jitter=2)
    assert res.octave_shapes == ((34, 46), (48, 64))
    assert res.objective_gain > 0.003 and res.history.shape == (6,)
    assert [im.shape for im in res.octave_images] == [(34, 46), (48, 64)]
    assert len(res.octave_objectives) == 2 and res.octave_objectives[-1] == pytest.approx(res.objective_after, abs=1e-6)
    assert len([ax for ax in octave_panels(res).axes if ax.images]) == 4  # original, one per octave, difference


def test_octaves_and_tiled_maximise_the_post_relu_response_by_default(model):
    img = smooth_image(48, 64)
    post = dream_octaves(model, img, dream(dict(octaves=1, steps_per_octave=0)))
    pre = dream_octaves(model, img, dream(dict(octaves=1, steps_per_octave=0, response="pre_relu")))
    net = Windowed(model, 28, 14, ["conv3"])  # the grid the octaves use: stride 12, padded to multiples of 4
    acts = activations(model, windows(net.pad(to_tensor(img)), 28, net.stride), ["conv3"])["conv3"].detach()
    assert post.objective_before == pytest.approx(float(torch.relu(acts).mean()), rel=1e-5)
    assert pre.objective_before == pytest.approx(float(acts.mean()), rel=1e-5)
    tiled = dream_tiled(model, img, dream(dict(steps=0)))
    assert tiled.objective_before >= 0


def test_octaves_stop_at_max_loss(model):
    img = smooth_image(40, 40)
    res = dream_octaves(model, img, dream(dict(octaves=1, steps_per_octave=10, lr=0.05, max_loss=-1e9)))
    assert res.capped == (True,) and res.history.shape == (1,)


def test_tiled_raises_the_objective_and_batching_changes_nothing(model):
    img = smooth_image(56, 70)
    kwargs = dict(layer_objective="conv3", steps=3, lr=0.02, seed=3)
    res = dream_tiled(model, img, dream(dict(tile_batch=4, **kwargs)))
    one = dream_tiled(model, img, dream(kwargs), batched=False)
    assert res.objective_gain > 0.003 and res.n_tiles == 2 * 3 and res.offsets.shape == (3, 2)
    np.testing.assert_allclose(res.image, one.image, atol=1e-5)
    assert res.snapshot_steps == (1, 2, 3) and len(res.snapshots) == 3
    np.testing.assert_allclose(res.snapshots[-1], res.image)
    assert len([ax for ax in tiled_panels(res).axes if ax.images]) == 5  # original, three snapshots, difference


def _seam_ratios(diff: np.ndarray, tile: int = 28, band: int = 2) -> tuple[float, float]:
    """How tile borders of the unshifted tiling stand out in ``diff`` (worst of both axes):

    * jump: mean |step| of ``diff`` across a border over the mean |step| inside tiles (a seam as an edge);
    * band: mean |diff| within ``band`` px of a border over the mean |diff| elsewhere (a seam as a line where the
      dream fades, which is what independently optimised tiles leave: their edge pixels get little gradient).
    Both are near 1 without seams.
    """
    jumps, bands = [], []
    for d in (diff, diff.T):
        step = np.abs(np.diff(d, axis=1))
        crossing = (np.arange(step.shape[1]) + 1) % tile == 0  # the step from pixel j to j + 1 crosses a border
        jumps.append(step[:, crossing].mean() / step[:, ~crossing].mean())
        pos = np.arange(d.shape[1]) % tile
        near = (pos < band) | (pos >= tile - band)
        bands.append(np.abs(d[:, near]).mean() / np.abs(d[:, ~near]).mean())
    return max(jumps), max(bands, key=lambda r: max(r, 1 / r))


def test_tiled_leaves_no_seams(model):
    img = smooth_image(84, 84, seed=5)  # 3 × 3 tiles
    settings = dream(dict(layer_objective="conv3", steps=10, lr=0.02, seed=0))
    jump, band = _seam_ratios(dream_tiled(model, img, settings).difference)
    assert jump <= 1.5 and 1 / 1.5 <= band <= 1.5
    _, fixed_band = _seam_ratios(dream_tiled(model, img, settings, roll=False).difference)
    assert fixed_band < 1 / 1.5  # the measure does see the seams a fixed tiling leaves


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [dream_seed, dream_octaves, dream_tiled])
def test_modes_reject_bad_objectives_and_images(model, mode, tmp_path):
    img = smooth_image(40, 40)
    with pytest.raises(InputError, match="unknown layer 'conv9'"):
        mode(model, img, dream(dict(objective="conv9", layer_objective="conv9")))
    with pytest.raises(InputError, match=r"map index 99 out of range.*0\.\.7"):
        mode(model, img, dream(dict(objective="conv3:99", layer_objective="conv3:99")))
    with pytest.raises(InputError, match="28×28"):
        mode(model, smooth_image(20, 40), dream({}))
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        mode(model, tmp_path / "text.jpg", dream({}))


@pytest.mark.parametrize("settings,key", [(dict(cycles=0), "dream.cycles=0"), (dict(objective="conv3:x"), "conv3:x"),
                                          (dict(octave_scale=3.0), "dream.octave_scale=3.0"),
                                          (dict(modes=[]), "dream.modes")])
def test_settings_refuse_bad_values_naming_the_key(settings, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        dream(settings)
