"""Classifier mode coverage, which torchmetrics lacks, as a torchmetrics ``Metric`` (so it
syncs across DDP ranks like the others)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Categorical, kl_divergence
from torchmetrics import Metric


class ClassCoverage(Metric):
    """Mode coverage by a classifier: how many classes it assigns to generated samples, and
    how far the class histogram is from uniform (KL in nats; 0 for perfectly balanced).

    A class counts as covered once it is assigned at least ``min_count`` samples.
    """

    higher_is_better = None
    full_state_update = False

    def __init__(self, num_classes: int, min_count: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.min_count = min_count
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor) -> None:
        """Count the argmax class of each row of ``logits`` (N, num_classes)."""
        self.counts += torch.bincount(logits.argmax(dim=1), minlength=self.num_classes)

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(modes, kl_uniform)``."""
        histogram = Categorical(probs=self.counts.double())
        uniform = Categorical(logits=torch.zeros_like(histogram.probs))
        return (self.counts >= self.min_count).sum(), kl_divergence(histogram, uniform)
