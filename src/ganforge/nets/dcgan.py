"""DCGAN (Radford et al. 2015) for any power-of-two image size from 16 to 256.

Two shape options reproduce the other DCGAN that papers report with: the DCGAN-TensorFlow code
(Kim) behind the Unrolled GAN, VEEGAN and PacGAN Stacked MNIST rows uses 5x5 kernels and takes
its 28x28 digits down to 2x2 (``kernel_size=5``, ``bottom_size=2``); ganforge's defaults are
the PyTorch DCGAN's 4x4 kernels and 4x4 bottom."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import Tensor, nn

from ganforge.nets.base import Discriminator, Generator, TanhOutput, check_conditioning
from ganforge.nets.init import apply_spectral_norm, dcgan_init, norm_layer

MIN_SIZE, MAX_SIZE = 16, 256


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_image_size(image_size: int, arch: str = "dcgan", bottom_size: int = 4) -> int:
    """Number of 2x up/down-sampling stages between ``bottom_size`` (the smallest feature map)
    and ``image_size``; errors name the offending size."""
    if not (MIN_SIZE <= image_size <= MAX_SIZE and _power_of_two(image_size)):
        raise ValueError(
            f"{arch} builds power-of-two image sizes from {MIN_SIZE} to {MAX_SIZE}; "
            f"got image_size={image_size}. Set data.image_size to one of "
            f"{[2**k for k in range(4, 9)]}."
        )
    if not (_power_of_two(bottom_size) and bottom_size <= 4):
        raise ValueError(
            f"{arch}'s smallest feature map is 1, 2 or 4 pixels wide; got bottom_size={bottom_size}"
        )
    return int(math.log2(image_size // bottom_size))


def _check_kernel(kernel_size: int) -> int:
    if kernel_size < 2:
        raise ValueError(f"dcgan's stride-2 convs need kernel_size >= 2, got {kernel_size}")
    return kernel_size


def _down(c_in: int, c_out: int, k: int, bias: bool = True) -> nn.Conv2d:
    """A stride-2 conv that halves an even size exactly (padding as TensorFlow's ``SAME``)."""
    return nn.Conv2d(c_in, c_out, k, 2, (k - 1) // 2, bias=bias)


def _up(c_in: int, c_out: int, k: int, bias: bool = True) -> nn.ConvTranspose2d:
    """A stride-2 transposed conv that doubles the size exactly, for any kernel size."""
    pad = (k - 1) // 2
    return nn.ConvTranspose2d(c_in, c_out, k, 2, pad, output_padding=2 - k + 2 * pad, bias=bias)


def _widths(base: int, stages: int, cap: int) -> list[int]:
    """Channel widths at 4x4, 8x8, ... : base * 2^k halving towards the image, capped."""
    return [min(base * 2 ** (stages - 1 - i), cap) for i in range(stages)]


class DCGANGenerator(Generator):
    """z -> ``bottom_size`` squared by a transposed conv (a linear layer), then stride-2
    transposed convs of ``kernel_size`` with BatchNorm and ReLU."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        image_size: int = 32,
        base_width: int = 64,
        max_width: int = 512,
        num_classes: int | None = None,
        conditioning: str = "none",
        kernel_size: int = 4,
        bottom_size: int = 4,
        output_range: Sequence[float] = (-1.0, 1.0),
    ):
        stages = check_image_size(image_size, bottom_size=bottom_size)
        k = _check_kernel(kernel_size)
        super().__init__(latent_dim, num_classes, conditioning)
        out = TanhOutput(output_range)
        self.output_range = out.output_range
        widths = _widths(base_width, stages, max_width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent.out_dim, widths[0], bottom_size, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                _up(c_in, c_out, k, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [_up(widths[-1], channels, k), out]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.latent(z, y)
        return self.net(h.view(*h.shape, 1, 1))


class DCGANDiscriminator(Discriminator):
    """Stride-2 convs of ``kernel_size`` with LeakyReLU(0.2) down to ``bottom_size`` squared,
    then a linear head.

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
        kernel_size: int = 4,
        bottom_size: int = 4,
        input_range: Sequence[float] = (-1.0, 1.0),
    ):
        stages = check_image_size(image_size, bottom_size=bottom_size)
        ks = _check_kernel(kernel_size)
        k = check_conditioning(conditioning, num_classes)
        widths = _widths(base_width, stages, max_width)[::-1]
        c_in = (channels + (k if conditioning == "concat" else 0)) * pack
        layers: list[nn.Module] = [_down(c_in, widths[0], ks), nn.LeakyReLU(0.2, True)]
        for a, b in itertools.pairwise(widths):
            layers += [
                _down(a, b, ks, bias=norm == "none"),
                norm_layer(norm, b),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Flatten())
        features = widths[-1] * bottom_size**2
        super().__init__(
            nn.Sequential(*layers), features, k, conditioning, minibatch, pack, input_range
        )
        self.norm = norm
        dcgan_init(self)
        if spectral_norm:
            apply_spectral_norm(self)
