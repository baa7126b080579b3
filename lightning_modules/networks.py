"""The reference's networks as plain ``nn.Module``s.

Every architecture hyper-parameter arrives as an argument (the experiment YAML holds the values); nothing here
knows about training, logging or plots.

* :class:`ConvAutoencoder` — the convolutional autoencoder of the latent-space posts ("case I" and "case II"
  differ only in their filter and kernel lists).
* :class:`MnistCNN` — the simple MNIST CNN of the filter-visualisation and DeepDream posts; its conv layers are
  the named children ``conv1``, ``conv2``, ``conv3`` so that OIPs and dreams can address their maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import torch
from torch import nn

#: The reference's LeakyReLU slope: Keras' default ``alpha`` (torch's default is 0.01).
KERAS_LEAKY_SLOPE = 0.3

class Activation(StrEnum):
    """The autoencoders' activation (the reference's ``act`` 0, 1, 2); the config key ``model.act`` takes these names."""

    leaky_relu = "leaky_relu"
    relu = "relu"
    selu = "selu"


_ACTIVATION_MODULES = {Activation.leaky_relu: nn.LeakyReLU, Activation.relu: nn.ReLU, Activation.selu: nn.SELU}


def make_activation(name: Activation | str, leaky_slope: float = KERAS_LEAKY_SLOPE) -> nn.Module:
    """Return a fresh activation module for ``name`` (an :class:`Activation` or its name); ``leaky_slope`` is the
    negative slope of ``leaky_relu``."""
    if name not in _ACTIVATION_MODULES:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(Activation)}")
    if Activation(name) is Activation.leaky_relu:
        return nn.LeakyReLU(leaky_slope)
    return _ACTIVATION_MODULES[Activation(name)]()


def activation_gain(act: nn.Module | None) -> float:
    """The weight scale that keeps a layer's output variance equal to its input's pre-activation variance when the
    layer's input went through ``act`` (He et al. 2015): sqrt(2 / (1 + slope²)) after a (leaky) ReLU, 1 after SELU
    (LeCun init, as self-normalisation needs) or no activation."""
    if isinstance(act, nn.LeakyReLU):
        return math.sqrt(2.0 / (1.0 + act.negative_slope**2))
    if isinstance(act, nn.ReLU):
        return math.sqrt(2.0)
    return 1.0


def _fan_in(layer: nn.Module) -> float:
    """Inputs summed into each output of ``layer``; a stride-s transposed conv adds k²/s² taps per input channel on
    average (torch's own fan of a ConvTranspose2d is its *output* channels × k², which is not that)."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    taps = layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.in_channels * taps / (layer.stride[0] * layer.stride[1])
    return layer.in_channels * taps


def init_signal_preserving(layers: Sequence[nn.Module]) -> None:
    """He-initialise the weighted layers of a feed-forward chain in place: normal weights with std
    ``gain / sqrt(fan_in)`` (the gain of the activation on the layer's input, see :func:`activation_gain`) and zero
    biases, so a unit-variance input keeps about unit variance down to the last layer's output."""
    previous: nn.Module | None = None
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, activation_gain(previous) / math.sqrt(_fan_in(layer)))
            nn.init.zeros_(layer.bias)
            previous = None
        elif isinstance(layer, (nn.LeakyReLU, nn.ReLU, nn.SELU)):
            previous = layer


def _same_padding(kernel: int) -> int:
    # Keras 'same' with stride s gives ceil(n / s) outputs; for odd kernels a symmetric k // 2 does the same.
    if kernel % 2 == 0:
        raise ValueError(f"'same' padding needs odd kernel sizes, got {kernel}")
    return kernel // 2


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder: conv encoder → dense latent vector z → dense + transposed-conv decoder.

    Shapes: ``x`` (B, in_channels, H, W) with H and W divisible by the product of the encoder strides (16 for the
    reference) → ``z`` (B, z_dim) → reconstruction (B, in_channels, H, W) in [0, 1] (sigmoid output).

    :param in_channels: 1 (grayscale) or 3 (RGB); the decoder's last layer has this many filters.
    :param image_size: side length of the square input images.
    :param encoder_filters: filters of each encoder Conv2d, e.g. ``[32, 64, 128, 256]`` (case I).
    :param encoder_kernels: kernel size of each encoder Conv2d.
    :param encoder_strides: stride of each encoder Conv2d; padding is Keras-'same'.
    :param decoder_filters: filters of each ConvTranspose2d but the last, e.g. ``[128, 64, 32]``; the last has
        ``in_channels`` filters.
    :param decoder_kernels: kernel size of each ConvTranspose2d, including the last.
    :param decoder_strides: stride of each ConvTranspose2d; each multiplies the side length by its stride.
    :param z_dim: latent dimension N.
    :param act: ``leaky_relu`` (reference default), ``relu`` or ``selu``; applied after every conv but the last.
    :param leaky_slope: the negative slope of ``leaky_relu``; the reference's (Keras') 0.3 by default.
    :param output_mean: the training data's mean pixel value per channel (or one for all), in (0, 1): the last
        layer's bias starts at its logit, so the untrained decoder outputs the mean intensity instead of 0.5.
        ``None`` → bias 0.

    Initialisation (why not torch's defaults): the weights are He-initialised for the activation
    (:func:`init_signal_preserving`) and the output starts at the data's mean. With torch's defaults (and with
    Keras' Glorot) the signal shrinks layer by layer, so the untrained decoder's output is a constant 0.5 and the
    first gradients all say "darker"; Adam moves every weight by about ``lr`` per step whatever the gradient's size,
    which on such small weights is a large relative change in every layer at once: the output overshoots (case I on
    the digits, seed 42, lr 0.002: mean logit −77 after 10 steps), the sigmoid saturates at 0, and MSE through a
    saturated sigmoid has no gradient left: the network stays black (val/loss = E[x²]) for good. Measured on the
    digits (1 epoch, seeds 0-3, lr 0.002): torch's init, Glorot, or slope 0.3 alone leave every seed black; He init
    rescues case I (val/loss 0.012 with slope 0.3) but not case II; He init and the output at the data's mean train
    both (0.009 and 0.010; the digits' mean-image MSE is 0.051). ``benchmarks/ae_seeds.py`` measures it on 10 seeds
    (``--torch-defaults`` for the old init).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        encoder_filters: Sequence[int],
        encoder_kernels: Sequence[int],
        encoder_strides: Sequence[int],
        decoder_filters: Sequence[int],
        decoder_kernels: Sequence[int],
        decoder_strides: Sequence[int],
        z_dim: int = 256,
        act: Activation | str = Activation.leaky_relu,
        leaky_slope: float = KERAS_LEAKY_SLOPE,
        output_mean: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not len(encoder_filters) == len(encoder_kernels) == len(encoder_strides):
            raise ValueError("encoder_filters, encoder_kernels and encoder_strides must have equal lengths")
        if not len(decoder_filters) + 1 == len(decoder_kernels) == len(decoder_strides):
            raise ValueError("decoder_kernels and decoder_strides need one entry more than decoder_filters")
        reduction = int(torch.prod(torch.tensor(list(encoder_strides))).item())
        if image_size % reduction:
            raise ValueError(f"image_size must be divisible by {reduction} (the encoder's total stride), got {image_size}")
        expansion = int(torch.prod(torch.tensor(list(decoder_strides))).item())
        if expansion != reduction:
            raise ValueError("the decoder strides must undo the encoder strides")
        self.in_channels, self.image_size, self.z_dim = in_channels, image_size, z_dim

        layers: list[nn.Module] = []
        channels = in_channels
        for filters, kernel, stride in zip(encoder_filters, encoder_kernels, encoder_strides):
            conv = nn.Conv2d(channels, filters, kernel, stride, padding=_same_padding(kernel))
            layers += [conv, make_activation(act, leaky_slope)]
            channels = filters
        side = image_size // reduction
        self._bottleneck_shape = (channels, side, side)
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, z_dim))

        layers = [nn.Linear(z_dim, channels * side * side), nn.Unflatten(1, self._bottleneck_shape)]
        outs = [*decoder_filters, in_channels]
        for i, (filters, kernel, stride) in enumerate(zip(outs, decoder_kernels, decoder_strides)):
            pad = _same_padding(kernel)
            layers.append(nn.ConvTranspose2d(channels, filters, kernel, stride, padding=pad, output_padding=stride - 1))
            layers.append(make_activation(act, leaky_slope) if i < len(outs) - 1 else nn.Sigmoid())
            channels = filters
        self.decoder = nn.Sequential(*layers)
        init_signal_preserving([*self.encoder, *self.decoder])
        if output_mean is not None:
            self.set_output_mean(output_mean)

    def set_output_mean(self, mean: float | Sequence[float]) -> None:
        """Set the last layer's bias to the logit of ``mean`` (one value, or one per channel, clamped to
        [0.001, 0.999]): an untrained decoder then outputs the data's mean intensity."""
        last = self.decoder[-2]
        p = torch.as_tensor(mean, dtype=last.bias.dtype).clamp(1e-3, 1 - 1e-3).expand_as(last.bias)
        with torch.no_grad():
            last.bias.copy_(torch.log(p / (1 - p)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images → (B, z_dim) latent vectors."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) latent vectors → (B, C, H, W) images in [0, 1]."""
        return self.decoder(z)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) → (B, C, H, W) logits: :meth:`decode` without its final sigmoid (for an autocast-safe BCE)."""
        for layer in list(self.decoder)[:-1]:
            z = layer(z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class MnistCNN(nn.Module):
    """The reference's MNIST CNN: [conv → ReLU (→ max-pool)] × 3 → flatten → dense layers → class logits.

    Shapes: (B, 1, 28, 28) → (B, n_classes) logits (softmax lives in the loss). With the reference's values
    (filters 32, 64, 128; kernels 3; pools 2, 2, none; dense 70) the maps are 26×26, 11×11 and 3×3.

    The conv layers are the children ``conv1`` … ``convK`` (plain ``nn.Conv2d``, i.e. pre-activation output) so
    that analysis code can hook them by name; :attr:`conv_layer_names` lists them.

    :param conv_filters: filters of each conv layer.
    :param conv_kernels: kernel size of each conv layer ('valid' padding, stride 1).
    :param pools: max-pool size after each conv layer, 0 or 1 for none.
    :param dense_units: hidden dense layer widths before the output layer.
    :param n_classes: output classes.
    :param dropout: dropout probability before each dense layer (0 switches it off).
    :param in_channels: input channels; ``image_size``: input side length.
    """

    def __init__(
        self,
        conv_filters: Sequence[int] = (32, 64, 128),
        conv_kernels: Sequence[int] = (3, 3, 3),
        pools: Sequence[int] = (2, 2, 0),
        dense_units: Sequence[int] = (70,),
        n_classes: int = 10,
        dropout: float = 0.0,
        in_channels: int = 1,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        if not len(conv_filters) == len(conv_kernels) == len(pools):
            raise ValueError("conv_filters, conv_kernels and pools must have equal lengths")
        self.in_channels, self.image_size = in_channels, image_size
        self.conv_layer_names: list[str] = []
        self._pools: dict[str, int] = {}
        channels, side = in_channels, image_size
        for i, (filters, kernel, pool) in enumerate(zip(conv_filters, conv_kernels, pools), start=1):
            name = f"conv{i}"
            self.add_module(name, nn.Conv2d(channels, filters, kernel))
            self.conv_layer_names.append(name)
            self._pools[name] = pool if pool > 1 else 0
            side = side - kernel + 1
            if pool > 1:
                side //= pool
            if side < 1:
                raise ValueError(f"the input of side {image_size} shrinks to nothing at {name}")
            channels = filters
        dense: list[nn.Module] = [nn.Flatten()]
        width = channels * side * side
        for units in dense_units:
            if dropout > 0:
                dense.append(nn.Dropout(dropout))
            dense += [nn.Linear(width, units), nn.ReLU()]
            width = units
        if dropout > 0:
            dense.append(nn.Dropout(dropout))
        dense.append(nn.Linear(width, n_classes))
        self.classifier = nn.Sequential(*dense)

    def map_counts(self) -> dict[str, int]:
        """Number of maps (output channels) of each conv layer, by name."""
        return {name: getattr(self, name).out_channels for name in self.conv_layer_names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.conv_layer_names:
            x = torch.relu(getattr(self, name)(x))
            if self._pools[name]:
                x = nn.functional.max_pool2d(x, self._pools[name])
        return self.classifier(x)
