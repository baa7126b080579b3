"""Layer shapes and parameter counts of the reference networks, against numbers worked out by hand."""

import pytest
import torch

from lightning_modules.networks import ConvAutoencoder, MnistCNN

CASE_I = dict(encoder_filters=[32, 64, 128, 256], encoder_kernels=[3] * 4, encoder_strides=[2] * 4,
              decoder_filters=[128, 64, 32], decoder_kernels=[3] * 4, decoder_strides=[2] * 4)
CASE_II = dict(encoder_filters=[64, 64, 128, 128], encoder_kernels=[5, 5, 3, 3], encoder_strides=[2] * 4,
               decoder_filters=[128, 64, 64], decoder_kernels=[3, 3, 5, 5], decoder_strides=[2] * 4)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_case_one_parameter_counts_by_hand():
    ae = ConvAutoencoder(in_channels=3, image_size=64, z_dim=256, **CASE_I)
    # conv: c_in * c_out * k^2 + c_out; 64 px / 16 = 4, so the flattened bottleneck is 256 * 4 * 4 = 4096
    encoder = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 128 * 9 + 128) + (128 * 256 * 9 + 256) + (4096 * 256 + 256)
    decoder = (256 * 4096 + 4096) + (256 * 128 * 9 + 128) + (128 * 64 * 9 + 64) + (64 * 32 * 9 + 32) + (32 * 3 * 9 + 3)
    assert n_params(ae.encoder) == encoder == 1_437_248
    assert n_params(ae.decoder) == decoder == 1_440_835


def test_case_two_parameter_counts_by_hand():
    ae = ConvAutoencoder(in_channels=3, image_size=64, z_dim=256, **CASE_II)
    encoder = (3 * 64 * 25 + 64) + (64 * 64 * 25 + 64) + (64 * 128 * 9 + 128) + (128 * 128 * 9 + 128) + (2048 * 256 + 256)
    decoder = (256 * 2048 + 2048) + (128 * 128 * 9 + 128) + (128 * 64 * 9 + 64) + (64 * 64 * 25 + 64) + (64 * 3 * 25 + 3)
    assert n_params(ae.encoder) == encoder
    assert n_params(ae.decoder) == decoder


@pytest.mark.parametrize("arch", [CASE_I, CASE_II], ids=["case1", "case2"])
@pytest.mark.parametrize("channels,size", [(1, 32), (3, 64), (3, 96)])
def test_autoencoder_halves_each_stage_and_restores_input_shape(arch, channels, size):
    ae = ConvAutoencoder(in_channels=channels, image_size=size, **arch)
    x = torch.rand(2, channels, size, size)
    sides = []
    h = x
    for layer in ae.encoder:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            sides.append(h.shape[-1])
    assert sides == [size // 2, size // 4, size // 8, size // 16]  # Keras 'same' with stride 2
    z = ae.encode(x)
    assert z.shape == (2, 256)
    out = ae.decode(z)
    assert out.shape == x.shape
    assert 0 <= out.min() and out.max() <= 1  # sigmoid output


def test_autoencoder_rejects_size_not_divisible_by_16():
    with pytest.raises(ValueError, match="divisible by 16"):
        ConvAutoencoder(in_channels=1, image_size=28, **CASE_I)


@pytest.mark.parametrize("act,cls", [("leaky_relu", torch.nn.LeakyReLU), ("relu", torch.nn.ReLU), ("selu", torch.nn.SELU)])
def test_autoencoder_activation_is_configurable(act, cls):
    ae = ConvAutoencoder(in_channels=1, image_size=32, act=act, **CASE_I)
    acts = [m for m in ae.modules() if isinstance(m, (torch.nn.LeakyReLU, torch.nn.ReLU, torch.nn.SELU))]
    assert len(acts) == 4 + 3 and all(isinstance(m, cls) for m in acts)  # 4 encoder convs, 3 decoder convs


def test_mnist_cnn_maps_and_parameter_counts_by_hand():
    cnn = MnistCNN()
    # 28 -conv3-> 26 -pool-> 13 -conv3-> 11 -pool-> 5 -conv3-> 3: 128 * 3 * 3 = 1152 inputs to the dense layer
    counts = {"conv1": 1 * 32 * 9 + 32, "conv2": 32 * 64 * 9 + 64, "conv3": 64 * 128 * 9 + 128}
    for name, expected in counts.items():
        assert n_params(getattr(cnn, name)) == expected
    assert n_params(cnn.classifier) == (1152 * 70 + 70) + (70 * 10 + 10)
    assert n_params(cnn) == 174_092
    assert cnn.map_counts() == {"conv1": 32, "conv2": 64, "conv3": 128}
    maps = {}
    hooks = [getattr(cnn, n).register_forward_hook(lambda m, i, o, n=n: maps.__setitem__(n, o.shape)) for n in cnn.conv_layer_names]
    assert cnn(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    for h in hooks:
        h.remove()
    assert maps == {"conv1": (4, 32, 26, 26), "conv2": (4, 64, 11, 11), "conv3": (4, 128, 3, 3)}


def test_leaky_slope_defaults_to_the_references_keras_value_and_is_configurable():
    default = ConvAutoencoder(in_channels=1, image_size=32, **CASE_I)
    slopes = {m.negative_slope for m in default.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.3}  # Keras' LeakyReLU default, not torch's 0.01
    custom = ConvAutoencoder(in_channels=1, image_size=32, leaky_slope=0.1, **CASE_I)
    assert {m.negative_slope for m in custom.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.1}


def test_transposed_conv_fan_in_counts_the_taps_one_output_receives():
    from lightning_modules.networks import _fan_in

    # stride 2, kernel 3: each output row gets 1 or 2 taps, 1.5 on average, so 2.25 per channel
    assert _fan_in(torch.nn.ConvTranspose2d(32, 1, 3, 2)) == 32 * 9 / 4
    assert _fan_in(torch.nn.Conv2d(32, 64, 5, 2)) == 32 * 25
    assert _fan_in(torch.nn.Linear(1024, 256)) == 1024


@pytest.mark.parametrize("arch", [CASE_I, CASE_II], ids=["case1", "case2"])
def test_untrained_autoencoder_keeps_the_signal_and_starts_at_the_data_mean(arch):
    torch.manual_seed(0)
    ae = ConvAutoencoder(in_channels=1, image_size=32, output_mean=0.13, **arch)
    x = torch.randn(64, 1, 32, 32)
    with torch.no_grad():
        z, logits, out = ae.encode(x), ae.decode_logits(ae.encode(x)), ae(x)
    # He init: unit-variance input, latent and pre-sigmoid outputs of order 1 (torch's defaults give ~0.03)
    assert 0.3 < z.std() < 3
    assert 0.2 < (logits - logits.mean()).std() < 3
    assert abs(logits.mean() - torch.logit(torch.tensor(0.13))) < 0.5
    assert abs(out.mean() - 0.13) < 0.05
    assert ae.decoder[-2].bias.item() == pytest.approx(float(torch.logit(torch.tensor(0.13))), rel=1e-5)
    assert not any(m.bias.detach().any() for m in ae.encoder if isinstance(m, torch.nn.Conv2d))


def test_output_mean_per_channel_and_clamped():
    ae = ConvAutoencoder(in_channels=3, image_size=32, output_mean=[0.5, 0.25, 0.0], **CASE_I)
    bias = ae.decoder[-2].bias
    assert bias[0].item() == pytest.approx(0.0, abs=1e-6)
    assert bias[1].item() == pytest.approx(-1.0986, abs=1e-3)  # log(0.25 / 0.75)
    assert bias[2].item() == pytest.approx(-6.9068, abs=1e-3)  # clamped to 0.001: finite
