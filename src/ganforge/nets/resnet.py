"""The ResNet generator and discriminator of WGAN-GP (Gulrajani et al. 2017) and SNGAN
(Miyato et al. 2018), for 32x32 and 64x64 images.

32x32 is the CIFAR-10 layout of both papers: every block has the same width; D is one
"optimized" down block, one down block and two plain blocks. 64x64 follows WGAN-GP's 64x64
ResNet: widths double (D) or halve (G) per resolution. D ends with ReLU and global sum pooling
(SNGAN), so its features feed the shared linear / projection / ACGAN head.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.nets.base import Discriminator, Generator, TanhOutput, check_conditioning
from ganforge.nets.init import apply_spectral_norm, norm_layer

#: generator widths (multiples of base_width): the 4x4 input, then each up block's output
G_WIDTHS = {32: (1, 1, 1, 1), 64: (8, 8, 4, 2, 1)}
#: discriminator blocks: (output width multiple, halves the resolution)
D_BLOCKS = {
    32: ((1, True), (1, True), (1, False), (1, False)),
    64: ((1, True), (2, True), (4, True), (8, True)),
}


def check_resnet_size(image_size: int) -> None:
    """Raise a clear error for the image sizes the ResNet layouts do not cover."""
    if image_size not in G_WIDTHS:
        raise GanforgeError(
            f"model=resnet builds {sorted(G_WIDTHS)} pixel images; got "
            f"data.image_size={image_size}. Set data.image_size=32 or 64, or use model=dcgan "
            "(16 to 256 pixels)."
        )


def _xavier(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Glorot-uniform weights and zero bias, the SNGAN initialisation."""
    nn.init.xavier_uniform_(module.weight, gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def _conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return _xavier(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))


def _conv1(c_in: int, c_out: int) -> nn.Conv2d:
    return _xavier(nn.Conv2d(c_in, c_out, 1, 1, 0))


class GBlock(nn.Module):
    """Pre-activation up block: BN-ReLU-up-conv3-BN-ReLU-conv3, plus up-conv1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),
            _conv3(c_in, c_out),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            _conv3(c_out, c_out),
        )
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), _conv1(c_in, c_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class DBlock(nn.Module):
    """Discriminator block: (norm-)ReLU-conv3-(norm-)ReLU-conv3 [avg-pool], plus shortcut.

    ``first`` is SNGAN's "optimized" block on the image: no activation before the first conv,
    and the shortcut pools before its 1x1 conv.
    """

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False, norm: str = "none"):
        super().__init__()
        pre = [] if first else [norm_layer(norm, c_in), nn.ReLU()]
        pool = [nn.AvgPool2d(2)] if down else []
        self.residual = nn.Sequential(
            *pre,
            _conv3(c_in, c_out),
            norm_layer(norm, c_out),
            nn.ReLU(),
            _conv3(c_out, c_out),
            *pool,
        )
        if first:
            self.shortcut = nn.Sequential(*pool, _conv1(c_in, c_out))
        elif down or c_in != c_out:
            self.shortcut = nn.Sequential(_conv1(c_in, c_out), *pool)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class ResNetGenerator(Generator):
    """z -> linear to 4x4 -> up blocks -> BN-ReLU-conv3-tanh."""

    def __init__(
        self,
        latent_dim: int = 128,
        channels: int = 3,
        image_size: int = 32,
        base_width: int = 128,
        num_classes: int | None = None,
        conditioning: str = "none",
        output_range: Sequence[float] = (-1.0, 1.0),
    ):
        check_resnet_size(image_size)
        super().__init__(latent_dim, num_classes, conditioning)
        self.tanh = TanhOutput(output_range)
        self.output_range = self.tanh.output_range
        widths = [m * base_width for m in G_WIDTHS[image_size]]
        self.fc = _xavier(nn.Linear(self.latent.out_dim, 16 * widths[0]))
        self.blocks = nn.Sequential(*(GBlock(a, b) for a, b in itertools.pairwise(widths)))
        self.out = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(), _xavier(nn.Conv2d(widths[-1], channels, 3, 1, 1))
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.fc(self.latent(z, y)).unflatten(1, (-1, 4, 4))
        return self.tanh(self.out(self.blocks(h)))


class GlobalSumPool(nn.Module):
    """ReLU then sum over the spatial positions: (B, C, H, W) -> (B, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x).sum((2, 3))


class ResNetDiscriminator(Discriminator):
    """Image -> residual blocks -> ReLU + global sum pooling -> the shared head.

    ``norm`` is ``none`` as in both papers; ``spectral_norm`` gives SNGAN's discriminator.
    """

    def __init__(
        self,
        channels: int = 3,
        image_size: int = 32,
        base_width: int = 128,
        norm: str = "none",
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "none",
        minibatch: str | dict | None = None,
        pack: int = 1,
        input_range: Sequence[float] = (-1.0, 1.0),
    ):
        check_resnet_size(image_size)
        k = check_conditioning(conditioning, num_classes)
        width = (channels + (k if conditioning == "concat" else 0)) * pack
        blocks: list[nn.Module] = []
        for i, (mult, down) in enumerate(D_BLOCKS[image_size]):
            blocks.append(DBlock(width, mult * base_width, down, first=i == 0, norm=norm))
            width = mult * base_width
        super().__init__(
            nn.Sequential(*blocks, GlobalSumPool()),
            width,
            k,
            conditioning,
            minibatch,
            pack,
            input_range,
        )
        self.norm = norm
        _xavier(self.head.linear)
        if self.head.classifier is not None:
            _xavier(self.head.classifier)
        if spectral_norm:
            apply_spectral_norm(self)
