"""k-NN precision/recall, which torchmetrics lacks, as a torchmetrics ``Metric`` (so it syncs
across DDP ranks like the others)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_fidelity.metric_prc import calculate_precision_recall_part
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat


class PrecisionRecall(Metric):
    """Improved precision and recall (Kynkaanniemi et al. 2019) in a feature space.

    Each set's manifold is the union of balls reaching every point's ``neighborhood``-th
    nearest neighbour; precision is the fraction of generated features inside the real
    manifold, recall the fraction of real features inside the generated one. The k-NN maths
    is torch-fidelity's; distances are taken ``batch_size`` rows at a time.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, neighborhood: int = 3, batch_size: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.neighborhood = neighborhood
        self.batch_size = batch_size
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features)

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(precision, recall)``."""
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        if min(len(real), len(fake)) <= self.neighborhood:
            raise ValueError(
                f"precision/recall with neighborhood={self.neighborhood} needs more than "
                f"{self.neighborhood} real and generated samples, got {len(real)} and {len(fake)}"
            )
        precision, recall = calculate_precision_recall_part(
            fake, real, self.neighborhood, self.batch_size
        )
        return torch.tensor(precision), torch.tensor(recall)
