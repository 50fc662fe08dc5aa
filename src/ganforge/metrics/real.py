"""Real-data features, computed once per dataset, split, size, feature space and sample count,
then cached on disk so later runs and sweep jobs skip them."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.atomic import atomic_torch_save
from ganforge.errors import GanforgeError
from ganforge.metrics.features import extract

log = logging.getLogger(__name__)


def real_stats_key(
    dataset: str, split: str, image_size: int, channels: int, space: str, num_samples: int
) -> str:
    """The cache file name for one set of real features (``space`` includes the weights)."""
    return f"{dataset}-{split}-{image_size}px{channels}c-{space}-n{num_samples}.pt"


def real_features(
    datamodule,
    split: str,
    extractor: nn.Module,
    space: str,
    num_samples: int,
    cache_dir: str | Path | None,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    write: bool = True,
) -> tuple[Tensor, Tensor]:
    """Features and logits of the first ``num_samples`` images of ``split`` (all of them when
    the split is smaller), read from ``cache_dir`` when cached there and written otherwise
    (``write=False`` on DDP ranks other than 0)."""
    images, _ = datamodule.real_images(split, limit=num_samples)
    if len(images) < 2:
        raise GanforgeError(
            f"real split {split!r} of {datamodule.name!r} has {len(images)} images; metrics need "
            "at least 2 (use real_split=train or a larger data.num_val)"
        )
    n = len(images)
    seed = getattr(datamodule, "seed", None)
    name = datamodule.name if seed is None else f"{datamodule.name}_seed{seed}"
    key = real_stats_key(name, split, images.shape[-1], images.shape[1], space, n)
    path = Path(cache_dir) / key if cache_dir else None
    if path is not None and path.is_file():
        cached = torch.load(path, map_location="cpu")
        return cached["features"], cached["logits"]
    log.info("computing real-data features for %s (%d images)", key, n)
    features, logits = extract(
        extractor, images, batch_size, torch.device(device), f"caching real features ({n})"
    )
    if path is not None and write:
        # atomic (parallel sweep jobs never read half a file) and group-readable (shared caches)
        atomic_torch_save({"features": features, "logits": logits}, path)
    return features, logits
