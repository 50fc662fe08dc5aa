"""Feature spaces: which network turns images into features and class logits, and how.

Every extractor takes uint8 images (N, C, H, W) and returns ``(features, logits)`` from one
forward pass, and states ``num_features`` and ``num_classes``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.pixels import to_uint8
from ganforge.progress import progress_bar

#: datamodule names whose images are handwritten digits (``auto`` scores them with ``digits``)
DIGIT_DATASETS = frozenset({"mnist", "mnist5k", "stacked_mnist"})
FEATURE_SPACES = ("auto", "digits", "inception")


def resolve_feature_space(space: str, dataset: str) -> str:
    """``digits`` or ``inception``; ``auto`` picks ``digits`` for digit datasets."""
    if space not in FEATURE_SPACES:
        raise GanforgeError(f"feature_space={space!r} is not one of {', '.join(FEATURE_SPACES)}")
    if space == "auto":
        return "digits" if dataset in DIGIT_DATASETS else "inception"
    return space


def build_feature_extractor(
    space: str, channels: int, weights_path: str | Path | None = None, download: bool = True
) -> nn.Module:
    """The extractor of a resolved feature space, in eval mode.

    Built with the global RNG forked, so creating it (random init before the weights load)
    leaves the training RNG stream untouched.
    """
    from ganforge.metrics.digits import DigitFeatures, load_digit_classifier
    from ganforge.metrics.inception import InceptionFeatures

    with torch.random.fork_rng(devices=[]):
        if space == "digits":
            try:
                return DigitFeatures(channels, load_digit_classifier(weights_path)).eval()
            except ValueError as err:
                raise GanforgeError(str(err)) from None
        if space == "inception":
            return InceptionFeatures(weights_path, download).eval()
    raise GanforgeError(f"unknown feature space {space!r}; use digits or inception")


def fingerprint(path: str | Path) -> str:
    """A short content hash of a weights file, so cached statistics follow the weights."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


@torch.no_grad()
def extract(
    extractor: nn.Module,
    images: Tensor,
    batch_size: int,
    device: torch.device,
    description: str = "extracting features",
) -> tuple[Tensor, Tensor]:
    """Features and logits of images in [-1, 1], ``batch_size`` at a time, on the CPU."""
    feats, logits = [], []
    with progress_bar(description, len(images), "images") as bar:
        for batch in images.split(batch_size):
            f, lg = extractor(to_uint8(batch.to(device)))
            feats.append(f.cpu())
            logits.append(lg.cpu())
            bar.advance(len(batch))
    return torch.cat(feats), torch.cat(logits)
