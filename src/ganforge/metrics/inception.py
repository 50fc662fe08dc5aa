"""The ``inception`` feature space: torchmetrics' InceptionV3 with torch-fidelity's weights.

This is the network torchmetrics' FID, IS and KID use by default (the 2015-12-05 TensorFlow
weights converted by torch-fidelity), so scores in this space are comparable with papers
that report them. The weights file is looked up before anything trains: a missing file that
cannot be downloaded is a :class:`~ganforge.errors.GanforgeError` saying where to put it.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torchmetrics.image.fid import NoTrainInceptionV3

from ganforge.errors import GanforgeError
from ganforge.progress import progress_bar

WEIGHTS_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]


def default_weights_path() -> Path:
    """Where torch hub (and so torchmetrics) caches the Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def download(url: str, target: Path, chunk: int = 1 << 20) -> Path:
    """Fetch ``url`` to ``target`` with a progress bar in bytes, through a temporary file so
    an interrupted download never leaves a truncated weights file behind."""
    tmp = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tmp.open("wb") as f, progress_bar(f"downloading {target.name}", size, "B") as bar:
            while block := response.read(chunk):
                f.write(block)
                bar.advance(len(block))
    os.replace(tmp, target)
    return target


def resolve_inception_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The Inception weights file: ``path`` if given, else the torch hub cache, downloaded
    there when missing and ``download`` is true.

    Raises :class:`GanforgeError` naming the file and where to put it when it is unavailable.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise GanforgeError(
                f"Inception weights not found at feature_extractor_weights_path={path}. Download "
                f"{URL_INCEPTION_V3} to that path, or set feature_extractor_weights_path=null to "
                f"use the torch hub cache ({default_weights_path()})."
            )
        return path
    target = default_weights_path()
    if target.is_file():
        return target
    hint = (
        f"The inception feature space needs {WEIGHTS_FILE} (InceptionV3, 2015-12-05 weights). "
        f"Download {URL_INCEPTION_V3} and put it at {target} (the torch hub cache), or set "
        "feature_extractor_weights_path=/path/to/it (callbacks.metrics.* when training, "
        "metrics.* for src/eval.py); or use feature_space=digits for digit data."
    )
    if not download:
        raise GanforgeError(f"{target} is missing and downloads are off. {hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        download(URL_INCEPTION_V3, target)
    except (OSError, RuntimeError) as err:
        raise GanforgeError(f"{target} is missing and downloading failed ({err}). {hint}") from None
    return target


class InceptionFeatures(nn.Module):
    """InceptionV3 on uint8 images (N, C, H, W): its 2048 pool features and its 1008 unbiased
    logits (the IS convention), from one forward pass. Grey images are repeated to RGB."""

    num_features = 2048

    def __init__(self, weights_path: str | Path | None = None, download: bool = True):
        super().__init__()
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(resolve_inception_weights(weights_path, download)),
        )
        self.num_classes = self.net.fc.out_features

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        # torchmetrics' public forward returns only the first feature; its (private) fidelity
        # forward gives features and logits in one pass. pyproject pins torchmetrics below 2.
        features, logits = self.net._torch_fidelity_forward(images)
        return features, logits
