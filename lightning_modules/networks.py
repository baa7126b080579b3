"""The reference's networks as plain ``nn.Module``s.

Every architecture hyper-parameter arrives as an argument (the experiment YAML holds the values); nothing here
knows about training, logging or plots.

* :class:`ConvAutoencoder` — the convolutional autoencoder of the latent-space posts ("case I" and "case II"
  differ only in their filter and kernel lists).
* :class:`MnistCNN` — the simple MNIST CNN of the filter-visualisation and DeepDream posts; its conv layers are
  the named children ``conv1``, ``conv2``, ``conv3`` so that OIPs and dreams can address their maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import torch
from torch import nn

class Activation(StrEnum):
    """The autoencoders' activation (the reference's ``act`` 0, 1, 2); the config key ``model.act`` takes these names."""

    leaky_relu = "leaky_relu"
    relu = "relu"
    selu = "selu"


_ACTIVATION_MODULES = {Activation.leaky_relu: nn.LeakyReLU, Activation.relu: nn.ReLU, Activation.selu: nn.SELU}


def make_activation(name: Activation | str) -> nn.Module:
    """Return a fresh activation module for ``name`` (an :class:`Activation` or its name)."""
    if name not in _ACTIVATION_MODULES:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(Activation)}")
    return _ACTIVATION_MODULES[Activation(name)]()


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
            layers += [nn.Conv2d(channels, filters, kernel, stride, padding=_same_padding(kernel)), make_activation(act)]
            channels = filters
        side = image_size // reduction
        self._bottleneck_shape = (channels, side, side)
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, z_dim))

        layers = [nn.Linear(z_dim, channels * side * side), nn.Unflatten(1, self._bottleneck_shape)]
        outs = [*decoder_filters, in_channels]
        for i, (filters, kernel, stride) in enumerate(zip(outs, decoder_kernels, decoder_strides)):
            pad = _same_padding(kernel)
            layers.append(nn.ConvTranspose2d(channels, filters, kernel, stride, padding=pad, output_padding=stride - 1))
            layers.append(make_activation(act) if i < len(outs) - 1 else nn.Sigmoid())
            channels = filters
        self.decoder = nn.Sequential(*layers)

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
