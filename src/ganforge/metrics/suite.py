"""All metrics of one evaluation, fed features computed once per batch.

torchmetrics' FID, IS and KID each run their feature network on every update. Here the
network runs once (Inception is the whole cost on a CPU) and the metrics receive its outputs
through an identity "feature extractor", so their maths and DDP syncing stay torchmetrics'.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from ganforge.metrics.class_coverage import ClassCoverage
from ganforge.metrics.precision_recall import PrecisionRecall


class Given(nn.Module):
    """Identity feature extractor: the metric's input already is the features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class MetricSuite(nn.Module):
    """FID, IS, KID, precision/recall and (optionally) mode coverage over one feature space.

    FID and KID statistics and IS logits are float64. ``compute`` draws KID's subsets and IS's
    split order from a generator seeded with ``seed`` inside a forked RNG, so every DDP rank
    gets the same value and the training RNG stream is untouched.
    """

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        count_modes: bool = False,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        pr_neighborhood: int = 3,
        seed: int = 0,
    ):
        super().__init__()
        self.kid_subset_size = kid_subset_size
        self.seed = seed
        self.fid = FrechetInceptionDistance(feature=Given(num_features))
        with warnings.catch_warnings():  # "saves all features": intended, sizes are bounded
            warnings.filterwarnings("ignore", "Metric .* will save all extracted features")
            self.inception_score = InceptionScore(feature=Given(num_classes), splits=is_splits)
            self.kid = KernelInceptionDistance(
                feature=Given(num_features), subsets=kid_subsets, subset_size=kid_subset_size
            )
        self.pr = PrecisionRecall(neighborhood=pr_neighborhood)
        self.modes = ClassCoverage(num_classes) if count_modes else None

    def update(self, features: Tensor, logits: Tensor, real: bool) -> None:
        """Add a batch of real or generated features (N, D) and class logits (N, K)."""
        self.pr.update(features.float(), real=real)  # k-NN radii: float32 distances suffice
        features = features.double()
        self.fid.update(features, real=real)
        self.kid.update(features, real=real)
        if not real:
            self.inception_score.update(logits.double())
            if self.modes is not None:
                self.modes.update(logits)

    def _subset_size(self) -> int:
        sizes = [sum(len(f) for f in self.kid.real_features)]
        sizes.append(sum(len(f) for f in self.kid.fake_features))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = torch.tensor(sizes, device=self.kid.device)
            torch.distributed.all_reduce(counts)
            sizes = counts.tolist()
        return min(self.kid_subset_size, *sizes)

    def compute(self) -> dict[str, float]:
        """All values, keyed ``fid``, ``is``, ``is_std``, ``kid``, ``kid_std``, ``precision``,
        ``recall`` (and ``modes``, ``kl_uniform``). Call on every rank."""
        self.kid.subset_size = self._subset_size()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            is_mean, is_std = self.inception_score.compute()
            kid_mean, kid_std = self.kid.compute()
        precision, recall = self.pr.compute()
        out = {
            "fid": self.fid.compute(),
            "is": is_mean,
            "is_std": is_std,
            "kid": kid_mean,
            "kid_std": kid_std,
            "precision": precision,
            "recall": recall,
        }
        if self.modes is not None:
            out["modes"], out["kl_uniform"] = self.modes.compute()
        return {k: float(v) for k, v in out.items()}

    def reset(self) -> None:
        for metric in (self.fid, self.inception_score, self.kid, self.pr, self.modes):
            if metric is not None:
                metric.reset()
