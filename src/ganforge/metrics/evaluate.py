"""Scoring a generator against real data: sample, extract, accumulate, compute.

Sample ``i`` of an evaluation belongs to chunk ``j``; chunks are near-equal slices of the
``num_samples`` indices, ``world_size`` times as many as a rank needs batches, and rank ``r``
takes chunks ``r, r + world_size, ...``. So every rank makes the same number of metric updates
(collectives stay matched), ranks draw distinct noise (a chunk's generator is seeded from
``seed`` and the chunk's first sample index), and after the metrics sync their states are in
chunk order, exactly as one process feeding the same chunks in order would have them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.metrics.features import (
    build_feature_extractor,
    fingerprint,
    resolve_feature_space,
)
from ganforge.metrics.real import real_features
from ganforge.metrics.suite import MetricSuite
from ganforge.pixels import to_uint8
from ganforge.progress import progress_bar

#: ``sampler(n, generator)`` -> n images in [-1, 1], drawing all noise from ``generator``
Sampler = Callable[[int, torch.Generator], Tensor]

#: the names metrics are logged under, in display order
METRIC_NAMES = ("fid", "is", "kid", "precision", "recall", "modes", "kl_uniform")


def rank_chunks(n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[Tensor]:
    """This rank's chunks of ``range(n)`` (index tensors), as described in the module doc."""
    per_rank = max(1, math.ceil(n / (world_size * batch_size)))
    chunks = torch.arange(n).tensor_split(per_rank * world_size)
    return list(chunks[rank::world_size])


def chunk_generator(seed: int, start: int) -> torch.Generator:
    """A CPU generator for the chunk starting at sample ``start`` of evaluation seed ``seed``."""
    state = np.random.SeedSequence([seed, start]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def module_sampler(module, truncation: float | None = None) -> Sampler:
    """Sample images with ``GANModule.sample``, whose noise comes from the given generator
    (truncated to ``[-truncation, truncation]`` when given)."""
    return lambda n, generator: module.sample(n, generator=generator, truncation=truncation)[0]


@dataclass
class Evaluator:
    """A feature extractor, the real data's features and the evaluation settings.

    ``evaluate`` scores a sampler on ``num_samples`` generated images; the same ``seed`` gives
    the same noise every time, so successive evaluations during training differ only by the
    generator.
    """

    extractor: nn.Module
    real_features: Tensor
    real_logits: Tensor
    num_samples: int = 10_000
    batch_size: int = 500
    seed: int = 0
    count_modes: bool = False
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_neighborhood: int = 3

    def suite(self) -> MetricSuite:
        """A fresh metric suite for this feature space."""
        return MetricSuite(
            num_features=self.real_features.shape[1],
            num_classes=self.real_logits.shape[1],
            count_modes=self.count_modes,
            kid_subsets=self.kid_subsets,
            kid_subset_size=self.kid_subset_size,
            is_splits=self.is_splits,
            pr_neighborhood=self.pr_neighborhood,
            seed=self.seed,
        )

    def __post_init__(self) -> None:
        if self.num_samples < 2 or self.batch_size < 1:
            raise GanforgeError(
                f"metrics need num_samples >= 2 and batch_size >= 1, got num_samples="
                f"{self.num_samples}, batch_size={self.batch_size}"
            )

    def update_real(self, suite: MetricSuite, rank: int = 0, world_size: int = 1) -> None:
        """Feed this rank's chunks of the real features."""
        device = suite.fid.device
        for idx in rank_chunks(len(self.real_features), self.batch_size, rank, world_size):
            feats, logits = self.real_features[idx], self.real_logits[idx]
            suite.update(feats.to(device), logits.to(device), real=True)

    @torch.no_grad()
    def update_fake(
        self, suite: MetricSuite, sampler: Sampler, rank: int = 0, world_size: int = 1
    ) -> None:
        """Generate this rank's chunks of samples and feed their features."""
        device = suite.fid.device
        chunks = rank_chunks(self.num_samples, self.batch_size, rank, world_size)
        total = sum(len(idx) for idx in chunks)
        with progress_bar("scoring generated samples", total, "samples") as bar:
            for idx in chunks:
                images = sampler(len(idx), chunk_generator(self.seed, int(idx[0])))
                feats, logits = self.extractor(to_uint8(images.to(device)))
                suite.update(feats, logits, real=False)
                bar.advance(len(idx))

    def evaluate(
        self,
        sampler: Sampler,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> dict[str, float]:
        """All metric values for ``sampler``; under DDP call on every rank (same result)."""
        suite = self.suite().to(device)
        self.extractor.to(device)
        self.update_real(suite, rank, world_size)
        self.update_fake(suite, sampler, rank, world_size)
        return suite.compute()


def space_id(space: str, weights_path: str | None) -> str:
    """The feature space with its weights, for cache keys (digits weights can be retrained)."""
    from ganforge.metrics.digits import weights_path as digits_weights

    if space == "digits":
        return f"digits-{fingerprint(weights_path or digits_weights())}"
    return space


def make_evaluator(
    datamodule,
    feature_space: str = "auto",
    num_samples: int = 10_000,
    batch_size: int = 500,
    seed: int = 0,
    real_split: str = "train",
    cache_dir: str | None = None,
    feature_extractor_weights_path: str | None = None,
    download: bool = True,
    device: torch.device | str = "cpu",
    write_cache: bool = True,
    **options,
) -> Evaluator:
    """Build the feature extractor for ``datamodule``'s images and load (or compute and cache)
    the real features; ``options`` go to :class:`Evaluator` (KID, IS, precision/recall).

    Raises :class:`~ganforge.errors.GanforgeError` for an unknown space or missing weights,
    so a run fails here, before training starts.
    """
    space = resolve_feature_space(feature_space, datamodule.name)
    extractor = build_feature_extractor(
        space, datamodule.channels, feature_extractor_weights_path, download
    ).to(device)
    feats, logits = real_features(
        datamodule,
        real_split,
        extractor,
        space_id(space, feature_extractor_weights_path),
        num_samples,
        cache_dir,
        batch_size=batch_size,
        device=device,
        write=write_cache,
    )
    return Evaluator(
        extractor,
        feats,
        logits,
        num_samples=num_samples,
        batch_size=batch_size,
        seed=seed,
        count_modes=space == "digits",
        **options,
    )
