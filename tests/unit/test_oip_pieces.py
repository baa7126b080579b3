"""OIP building blocks: hooks, objectives, starting images, transforms."""

import math

import pytest
import torch

from analysis.oip import (Objective, Response, activations, batch_channels, blur, capture, channel, clip, compose,
                          fluctuations, jitter, layer, make_init, parse_objective, pixel_image, uniform_noise)
from latentdream.errors import InputError
from lightning_modules.networks import MnistCNN


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return MnistCNN(conv_filters=(4, 6, 8), dense_units=(8,)).eval()


def _acts(b=3, k=4, h=2, w=2):
    x = torch.arange(b * k * h * w, dtype=torch.float32).view(b, k, h, w)
    return {"c": x - 20.0}


# --- hooks -------------------------------------------------------------------------------------------------------

def test_capture_collects_outputs_and_removes_hooks(cnn):
    with capture(cnn, ["conv1", "conv3"]) as acts:
        cnn(torch.rand(2, 1, 28, 28))
    assert acts["conv1"].shape == (2, 4, 26, 26) and acts["conv3"].shape == (2, 8, 3, 3)
    assert all(not m._forward_hooks for m in cnn.modules())


def test_unknown_layer_lists_conv_layers(cnn):
    with pytest.raises(InputError, match="conv1, conv2, conv3"):
        with capture(cnn, ["conv9"]):
            pass
    assert all(not m._forward_hooks for m in cnn.modules())


def test_activations_stop_after_last_hooked_layer(cnn):
    # 40×40 images reach conv2 but the 28×28-sized classifier would fail: the forward pass must stop at conv2
    acts = activations(cnn, torch.rand(1, 1, 40, 40), ["conv2"])
    assert acts["conv2"].shape == (1, 6, 17, 17)
    with pytest.raises(RuntimeError):
        cnn(torch.rand(1, 1, 40, 40))


# --- objectives --------------------------------------------------------------------------------------------------

def test_channel_and_batch_channels_values():
    acts = _acts()
    a = acts["c"]
    assert torch.equal(channel("c", 2)(acts), a[:, 2].mean(dim=(1, 2)))
    got = batch_channels("c", [3, 0, 1])(acts)
    assert torch.equal(got, torch.stack([a[0, 3].mean(), a[1, 0].mean(), a[2, 1].mean()]))
    assert torch.allclose(channel("c", 0, rectify=True)(acts), a[:, 0].clamp_min(0).mean(dim=(1, 2)))


def test_layer_objective_plain_and_squared():
    acts = _acts()
    a = acts["c"]
    assert torch.allclose(layer("c", weight=2.0)(acts), 2.0 * a.mean(dim=(1, 2, 3)))
    assert torch.allclose(layer("c", squared=True)(acts), (a**2).mean(dim=(1, 2, 3)))


def test_objective_algebra():
    acts = _acts()
    a, b = channel("c", 0), channel("c", 3)
    assert torch.allclose((a + 2 * b)(acts), a(acts) + 2 * b(acts))
    assert torch.allclose((a - b)(acts), a(acts) - b(acts))
    assert torch.allclose(Objective.sum([a, b, a])(acts), 2 * a(acts) + b(acts))
    assert torch.allclose(sum([a, b])(acts), a(acts) + b(acts))  # builtin sum starts at 0
    assert (a + channel("d", 1)).layers == ("c", "d")


def test_parse_objective():
    acts = _acts()
    assert torch.equal(parse_objective("c:2")(acts), channel("c", 2)(acts))
    assert torch.equal(parse_objective(" c ")(acts), layer("c")(acts))
    for bad in ["", "c:", "c:x", ":3", "c:-1"]:
        with pytest.raises(InputError):
            parse_objective(bad)


def test_map_index_out_of_range():
    with pytest.raises(InputError, match="0..3"):
        channel("c", 4)(_acts())
    with pytest.raises(InputError, match="0..3"):
        batch_channels("c", [0, 7, 1])(_acts())


def test_rectified_gradient_flows_while_map_is_off():
    # element 0: all negative (a plain ReLU would give zero gradient); element 1: partly positive
    x = torch.tensor([[[[-1.0, -2.0]]], [[[3.0, -1.0]]]], requires_grad=True)
    (g,) = torch.autograd.grad(channel("c", 0, rectify=True)({"c": x}).sum(), x)
    assert torch.equal(g, torch.tensor([[[[0.5, 0.5]]], [[[0.5, 0.0]]]]))


def test_plain_relu_leaves_a_silent_map_without_gradient():
    x = torch.tensor([[[[-1.0, -2.0]]], [[[3.0, -1.0]]]], requires_grad=True)
    (g,) = torch.autograd.grad(channel("c", 0, rectify=True, redirect=False)({"c": x}).sum(), x)
    assert torch.equal(g, torch.tensor([[[[0.0, 0.0]]], [[[0.5, 0.0]]]]))


def test_response_picks_the_post_or_pre_relu_mean():
    acts = {"c": torch.tensor([[[[-1.0, 3.0]], [[2.0, -4.0]]]])}  # (1, 2 maps, 1, 2)
    assert parse_objective("c", Response.post_relu)(acts).item() == pytest.approx((3 + 2) / 4)
    assert parse_objective("c", "pre_relu")(acts).item() == pytest.approx(0.0)
    assert parse_objective("c:1", Response.post_relu)(acts).item() == pytest.approx(1.0)
    assert parse_objective("c:1")(acts).item() == pytest.approx(-1.0)  # the default stays pre-ReLU


# --- starting images ---------------------------------------------------------------------------------------------

def _lag1(x):
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return float((x[..., 1:] * x[..., :-1]).mean() / (x**2).mean())


def test_fluctuation_correlation_grows_with_length_scale():
    g = torch.Generator().manual_seed(0)
    lag = {name: _lag1(make_init(name, 32, 28, g)) for name in ["random", "fluct_2", "fluct_4", "fluct_7", "fluct_14"]}
    assert abs(lag["random"]) < 0.05
    assert lag["random"] < lag["fluct_2"] < lag["fluct_4"] < lag["fluct_7"] < lag["fluct_14"]
    # the autocorrelation is exp(-r²/(2ℓ²)) by construction
    for scale in (2, 4):
        assert lag[f"fluct_{scale}"] == pytest.approx(math.exp(-1 / (2 * scale**2)), abs=0.03)


def test_starting_images_range_shape_and_seed():
    for name in ["random", "fluct_2", "fluct_14"]:
        x = make_init(name, 5, 20, torch.Generator().manual_seed(3))
        assert x.shape == (5, 1, 20, 20) and x.dtype == torch.float32
        assert 0 <= float(x.min()) and float(x.max()) <= 1
        assert torch.equal(x, make_init(name, 5, 20, torch.Generator().manual_seed(3)))
    f = fluctuations(4, 16, 3.0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(f.amin(dim=(-2, -1)), torch.zeros(4, 1))
    assert torch.allclose(f.amax(dim=(-2, -1)), torch.ones(4, 1))
    u = uniform_noise(2, 8, generator=torch.Generator().manual_seed(0), low=0.4, high=0.6)
    assert 0.4 <= float(u.min()) and float(u.max()) <= 0.6


def test_unknown_init():
    with pytest.raises(InputError, match="random, fluct_2, fluct_4, fluct_7, fluct_14"):
        make_init("fluct_3", 2)


def test_pixel_image_is_a_leaf_copy():
    x0 = torch.rand(2, 1, 4, 4)
    params, image_fn = pixel_image(x0)
    assert params[0].is_leaf and params[0].requires_grad and image_fn() is params[0]
    with torch.no_grad():
        params[0].add_(1.0)
    assert float(x0.max()) <= 1.0


# --- transforms --------------------------------------------------------------------------------------------------

def test_jitter_is_a_seeded_roll_within_d():
    x = torch.rand(2, 1, 9, 9)
    assert jitter(0)(x) is x
    a, b = jitter(2, torch.Generator().manual_seed(5)), jitter(2, torch.Generator().manual_seed(5))
    for _ in range(10):
        y = a(x)
        assert torch.equal(y, b(x))
        assert any(torch.equal(y, torch.roll(x, (dy, dx), (-2, -1))) for dy in range(-2, 3) for dx in range(-2, 3))


def test_blur_keeps_constants_and_smooths_noise():
    assert torch.allclose(blur(1.0)(torch.full((1, 1, 8, 8), 0.3)), torch.full((1, 1, 8, 8), 0.3))
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = blur(1.0)(x)
    assert y.shape == x.shape and float(y.std()) < 0.6 * float(x.std())
    assert abs(float(y.mean() - x.mean())) < 0.01
    assert blur(0)(x) is x


def test_compose_applies_left_to_right():
    x = torch.tensor([0.5, 0.9])
    assert torch.allclose(compose(clip(0, 1), lambda t: t + 0.5)(x), torch.tensor([1.0, 1.4]))
    assert torch.allclose(compose(lambda t: t + 0.5, clip(0, 1), None)(x), torch.tensor([1.0, 1.0]))
