"""DCGAN (Radford et al. 2015) for image sizes from 16 to 256 that halve to its bottom size.

Two shape options reproduce the other DCGAN that papers report with: the DCGAN-TensorFlow code
(Kim) behind the Unrolled GAN, VEEGAN and PacGAN Stacked MNIST rows uses 5x5 kernels and takes
its 28x28 digits down to 2x2 (``kernel_size=5``, ``bottom_size=2``); ganforge's defaults are
the PyTorch DCGAN's 4x4 kernels and 4x4 bottom. Each stage halves a side rounding up, as
TensorFlow's ``SAME`` padding does (28, 14, 7, 4, 2), so sizes other than powers of two work
where every odd side meets an odd kernel."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

from ganforge.nets.base import Discriminator, Generator, TanhOutput, check_conditioning
from ganforge.nets.init import apply_spectral_norm, dcgan_init, norm_layer

MIN_SIZE, MAX_SIZE = 16, 256


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _halvings(size: int, bottom_size: int) -> list[int]:
    """``size`` halved, rounding up, until it is no larger than ``bottom_size``."""
    sides = [size]
    while sides[-1] > bottom_size:
        sides.append(-(-sides[-1] // 2))
    return sides


def _size_problem(image_size: int, bottom_size: int, kernel_size: int) -> str | None:
    """Why DCGAN cannot build ``image_size`` with these shape options, or None if it can."""
    sides = _halvings(image_size, bottom_size)
    odd = [s for s in sides[:-1] if s % 2]
    if not MIN_SIZE <= image_size <= MAX_SIZE:
        return f"it builds images of {MIN_SIZE} to {MAX_SIZE} pixels"
    if sides[-1] != bottom_size:
        return f"halving it ({', '.join(map(str, sides))}) misses bottom_size={bottom_size}"
    if odd and kernel_size % 2 == 0:
        return f"its side {odd[0]} is odd, which needs an odd kernel_size (got {kernel_size})"
    return None


def _buildable_sizes(bottom_size: int, kernel_size: int) -> str:
    """The image sizes DCGAN builds with these shape options, as ranges (``25-32``)."""
    runs: list[list[int]] = []
    for n in range(MIN_SIZE, MAX_SIZE + 1):
        if _size_problem(n, bottom_size, kernel_size) is None:
            if runs and n == runs[-1][-1] + 1:
                runs[-1].append(n)
            else:
                runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def feature_sizes(image_size: int, bottom_size: int = 4, kernel_size: int = 4) -> list[int]:
    """The sides of the feature maps from ``bottom_size`` up to ``image_size``: each stage
    halves a side rounding up (TensorFlow's ``SAME``), so 28x28 digits go 28, 14, 7, 4, 2 as in
    the DCGAN-TensorFlow code. An odd side needs an odd kernel (symmetric padding); errors name
    the offending option and the sizes that work."""
    if not (_power_of_two(bottom_size) and bottom_size <= 4):
        raise ValueError(
            f"dcgan's smallest feature map is 1, 2 or 4 pixels wide; got bottom_size={bottom_size}"
        )
    if kernel_size < 2:
        raise ValueError(f"dcgan's stride-2 convs need kernel_size >= 2, got {kernel_size}")
    why = _size_problem(image_size, bottom_size, kernel_size)
    if why:
        raise ValueError(
            f"dcgan cannot build image_size={image_size}: {why}. Set data.image_size to one of "
            f"{_buildable_sizes(bottom_size, kernel_size)} (kernel_size={kernel_size}, "
            f"bottom_size={bottom_size})."
        )
    return _halvings(image_size, bottom_size)[::-1]


def _down(c_in: int, c_out: int, k: int, bias: bool = True) -> nn.Conv2d:
    """A stride-2 conv that halves a side, rounding up for odd kernels (TensorFlow's ``SAME``)."""
    return nn.Conv2d(c_in, c_out, k, 2, (k - 1) // 2, bias=bias)


def _up(c_in: int, c_out: int, k: int, odd: bool = False, bias: bool = True) -> nn.ConvTranspose2d:
    """A stride-2 transposed conv that doubles a side exactly, or to one less when ``odd``."""
    pad = (k - 1) // 2
    return nn.ConvTranspose2d(
        c_in, c_out, k, 2, pad, output_padding=2 - k + 2 * pad - odd, bias=bias
    )


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
        sides = feature_sizes(image_size, bottom_size, kernel_size)
        odd = [side % 2 == 1 for side in sides[1:]]
        super().__init__(latent_dim, num_classes, conditioning)
        out = TanhOutput(output_range)
        self.output_range = out.output_range
        widths = _widths(base_width, len(odd), max_width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent.out_dim, widths[0], bottom_size, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for (c_in, c_out), odd_side in zip(itertools.pairwise(widths), odd, strict=False):
            layers += [
                _up(c_in, c_out, kernel_size, odd_side, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [_up(widths[-1], channels, kernel_size, odd[-1]), out]
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
        stages = len(feature_sizes(image_size, bottom_size, kernel_size)) - 1
        k = check_conditioning(conditioning, num_classes)
        widths = _widths(base_width, stages, max_width)[::-1]
        c_in = (channels + (k if conditioning == "concat" else 0)) * pack
        layers: list[nn.Module] = [_down(c_in, widths[0], kernel_size), nn.LeakyReLU(0.2, True)]
        for a, b in itertools.pairwise(widths):
            layers += [
                _down(a, b, kernel_size, bias=norm == "none"),
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
