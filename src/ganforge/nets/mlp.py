"""The fully connected GAN of Goodfellow et al. 2014: ReLU generator, maxout + dropout critic."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ganforge.nets.base import Discriminator, Generator, TanhOutput, check_conditioning
from ganforge.nets.init import apply_spectral_norm


class Maxout(nn.Module):
    """Linear layer with ``pieces`` outputs per unit, keeping their maximum (Goodfellow 2013)."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(1, (-1, self.pieces)).amax(2)


class MLPGenerator(Generator):
    """z -> hidden ReLU layers -> tanh image of shape (channels, image_size, image_size)."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        image_size: int = 32,
        hidden: Sequence[int] = (1200, 1200),
        num_classes: int | None = None,
        conditioning: str = "none",
        output_range: Sequence[float] = (-1.0, 1.0),
    ):
        super().__init__(latent_dim, num_classes, conditioning)
        out = TanhOutput(output_range)
        self.output_range = out.output_range
        self.shape = (channels, image_size, image_size)
        layers: list[nn.Module] = []
        width = self.latent.out_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(True)]
            width = h
        layers += [nn.Linear(width, math.prod(self.shape)), out]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self.latent(z, y)).view(-1, *self.shape)


class MLPDiscriminator(Discriminator):
    """Flattened image -> maxout layers with dropout -> linear head.

    The image is flattened before the cGAN label joins it, so the label enters as one one-hot
    vector (Mirza & Osindero 2014) rather than as ``num_classes`` full-size planes.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 32,
        hidden: Sequence[int] = (240, 240),
        pieces: int = 5,
        dropout: float = 0.5,
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "none",
        minibatch: str | dict | None = None,
        pack: int = 1,
        input_range: Sequence[float] = (-1.0, 1.0),
    ):
        k = check_conditioning(conditioning, num_classes)
        width = (channels * image_size**2 + (k if conditioning == "concat" else 0)) * pack
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [Maxout(width, h, pieces), nn.Dropout(dropout)]
            width = h
        super().__init__(
            nn.Sequential(*layers), width, k, conditioning, minibatch, pack, input_range
        )
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        return super().forward(x.flatten(1), y)
