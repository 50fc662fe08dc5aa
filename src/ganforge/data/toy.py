"""2-D Gaussian mixtures for mode-collapse studies: 8 modes on a ring, 25 on a 5x5 grid.

Defaults follow the protocol of Unrolled GAN (Metz et al. 2017) and VEEGAN (Srivastava et al.
2017): a ring of radius 2 with std 0.02, and a grid with centres at -4, -2, 0, 2, 4 on each
axis with std 0.05. Labels are the index of the mode a point was drawn from.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganforge.data.base import SampleDataModule
from ganforge.errors import GanforgeError


def ring_centers(num_modes: int = 8, radius: float = 2.0) -> Tensor:
    """``num_modes`` points evenly spaced on a circle of ``radius`` (the first on the x axis)."""
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_centers(side: int = 5, spacing: float = 2.0) -> Tensor:
    """A ``side`` x ``side`` grid of points ``spacing`` apart, centred on the origin."""
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


class GaussianMixtureDataModule(SampleDataModule):
    """``num_samples`` points drawn once (seeded) from an equal-weight isotropic mixture.

    The batches are (points (B, 2), mode index). ``centers`` and ``std`` are public so metrics
    and plots can score generated points against the true modes.
    """

    name = "mixture"

    def __init__(
        self,
        centers: Tensor,
        std: float,
        num_samples: int = 100_000,
        dim: int = 2,
        num_classes: int | None = None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, **kwargs)
        if std <= 0:
            raise GanforgeError(f"{self.name}: data.std must be positive, got {std}")
        if num_classes not in (None, len(centers)):
            raise GanforgeError(
                f"{self.name}: {len(centers)} modes, so data.num_classes must be {len(centers)} "
                f"or null (got {num_classes})"
            )
        if dim != centers.shape[1]:
            raise GanforgeError(f"{self.name}: data.dim must be {centers.shape[1]}, got {dim}")
        self.centers = centers
        self.std = std
        self.num_samples = num_samples
        self.dim = dim

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        modes = torch.randint(len(self.centers), (self.num_samples,), generator=g)
        noise = torch.randn(self.num_samples, self.dim, generator=g) * self.std
        labels = modes if self.num_classes else torch.zeros_like(modes)
        return self.centers[modes] + noise, labels


class RingDataModule(GaussianMixtureDataModule):
    """``num_modes`` Gaussians evenly spaced on a circle of ``radius``."""

    name = "ring"

    def __init__(self, num_modes: int = 8, radius: float = 2.0, std: float = 0.02, **kwargs):
        super().__init__(ring_centers(num_modes, radius), std, **kwargs)


class GridDataModule(GaussianMixtureDataModule):
    """``side`` x ``side`` Gaussians ``spacing`` apart, centred on the origin."""

    name = "grid"

    def __init__(self, side: int = 5, spacing: float = 2.0, std: float = 0.05, **kwargs):
        super().__init__(grid_centers(side, spacing), std, **kwargs)
