"""DCGAN (Radford et al. 2015) for any power-of-two image size from 16 to 256."""

from __future__ import annotations

import itertools
import math

from torch import Tensor, nn

from ganforge.nets.base import Discriminator, Generator, check_conditioning
from ganforge.nets.init import apply_spectral_norm, dcgan_init, norm_layer

MIN_SIZE, MAX_SIZE = 16, 256


def check_image_size(image_size: int, arch: str = "dcgan") -> int:
    """Number of 2x up/down-sampling stages between 4x4 and ``image_size``; errors name the size."""
    ok = MIN_SIZE <= image_size <= MAX_SIZE and image_size & (image_size - 1) == 0
    if not ok:
        raise ValueError(
            f"{arch} builds power-of-two image sizes from {MIN_SIZE} to {MAX_SIZE}; "
            f"got image_size={image_size}. Set data.image_size to one of "
            f"{[2**k for k in range(4, 9)]}."
        )
    return int(math.log2(image_size)) - 2


def _widths(base: int, stages: int, cap: int) -> list[int]:
    """Channel widths at 4x4, 8x8, ... : base * 2^k halving towards the image, capped."""
    return [min(base * 2 ** (stages - 1 - i), cap) for i in range(stages)]


class DCGANGenerator(Generator):
    """z -> 4x4 by a transposed conv, then stride-2 transposed convs with BatchNorm and ReLU."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        image_size: int = 32,
        base_width: int = 64,
        max_width: int = 512,
        num_classes: int | None = None,
        conditioning: str = "none",
    ):
        stages = check_image_size(image_size)
        super().__init__(latent_dim, num_classes, conditioning)
        widths = _widths(base_width, stages, max_width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent.out_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.latent(z, y)
        return self.net(h.view(*h.shape, 1, 1))


class DCGANDiscriminator(Discriminator):
    """Stride-2 convs with LeakyReLU(0.2) down to 4x4, then a linear head (= a 4x4 valid conv).

    ``norm`` is BatchNorm as in the paper; use ``layer`` or ``none`` with gradient penalties.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 32,
        base_width: int = 64,
        max_width: int = 512,
        norm: str = "batch",
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "none",
        minibatch: str | dict | None = None,
        pack: int = 1,
    ):
        stages = check_image_size(image_size)
        k = check_conditioning(conditioning, num_classes)
        widths = _widths(base_width, stages, max_width)[::-1]
        c_in = (channels + (k if conditioning == "concat" else 0)) * pack
        layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for a, b in itertools.pairwise(widths):
            layers += [
                nn.Conv2d(a, b, 4, 2, 1, bias=norm == "none"),
                norm_layer(norm, b),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Flatten())
        super().__init__(nn.Sequential(*layers), widths[-1] * 16, k, conditioning, minibatch, pack)
        self.norm = norm
        dcgan_init(self)
        if spectral_norm:
            apply_spectral_norm(self)
