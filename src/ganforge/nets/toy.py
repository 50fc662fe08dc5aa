"""Small MLPs on vectors, for 1-D/2-D toy distributions (mode-collapse studies, tests)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ganforge.nets.base import Discriminator, Generator, check_conditioning
from ganforge.nets.init import apply_spectral_norm


def _mlp(width: int, hidden: Sequence[int]) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, True)]
        width = h
    return layers, width


class VectorGenerator(Generator):
    """z -> LeakyReLU MLP -> a point in R^dim (no output squashing)."""

    def __init__(
        self,
        latent_dim: int = 2,
        dim: int = 2,
        hidden: Sequence[int] = (128, 128),
        num_classes: int | None = None,
        conditioning: str = "none",
    ):
        super().__init__(latent_dim, num_classes, conditioning)
        layers, width = _mlp(self.latent.out_dim, hidden)
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self.latent(z, y))


class VectorDiscriminator(Discriminator):
    """A point in R^dim -> LeakyReLU MLP -> the shared discriminator head."""

    def __init__(
        self,
        dim: int = 2,
        hidden: Sequence[int] = (128, 128),
        spectral_norm: bool = False,
        num_classes: int | None = None,
        conditioning: str = "none",
        minibatch: str | dict | None = None,
        pack: int = 1,
    ):
        k = check_conditioning(conditioning, num_classes)
        layers, width = _mlp((dim + (k if conditioning == "concat" else 0)) * pack, hidden)
        super().__init__(nn.Sequential(*layers), width, k, conditioning, minibatch, pack)
        if spectral_norm:
            apply_spectral_norm(self)
