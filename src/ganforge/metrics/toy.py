"""Mode coverage on toy mixtures: modes covered and the share of high-quality samples."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


class ModeCoverage(Metric):
    """Scores generated points against the known modes of a Gaussian mixture.

    A sample is *high quality* when it lies within ``threshold`` standard deviations of its
    nearest mode; a mode is *covered* when at least ``min_count`` high-quality samples fall on
    it (the VEEGAN / PacGAN protocol scores 2,500 samples this way). :meth:`compute` returns
    ``modes_covered`` (out of ``len(centers)``) and ``high_quality`` (a fraction in [0, 1]).
    """

    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        centers: Tensor,
        std: float,
        threshold: float = 3.0,
        min_count: int = 20,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)  # torchmetrics options, e.g. sync_on_compute
        self.register_buffer("centers", torch.as_tensor(centers, dtype=torch.float32))
        self.radius = threshold * std
        self.min_count = min_count
        self.add_state("hits", torch.zeros(len(centers), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("good", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:
        """Add a batch of generated points (N, dim)."""
        dist, nearest = torch.cdist(samples.float(), self.centers).min(dim=1)
        good = dist <= self.radius
        self.hits += torch.bincount(nearest[good], minlength=len(self.centers))
        self.good += good.sum()
        self.total += len(samples)

    def compute(self) -> dict[str, Tensor]:
        return {
            "modes_covered": (self.hits >= self.min_count).sum(),
            "high_quality": self.good.float() / self.total.clamp(min=1),
        }
