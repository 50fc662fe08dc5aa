"""The bases every network builds on: the Generator and Discriminator classes, how labels enter
them (cGAN concatenation, the ACGAN head, the projection head) and what D returns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.nets.minibatch import check_pack, minibatch_layer, pack

Conditioning = Literal["none", "concat", "acgan", "projection"]
CONDITIONINGS = ("none", "concat", "acgan", "projection")


def check_conditioning(conditioning: str, num_classes: int | None) -> int:
    """Validate a conditioning mode against the class count; return the count (0 if none)."""
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
    if conditioning == "none":
        return 0
    if not num_classes or num_classes < 2:
        raise ValueError(
            f"conditioning={conditioning!r} needs labelled data with num_classes >= 2, "
            f"got num_classes={num_classes}"
        )
    return int(num_classes)


class LatentWithLabel(nn.Module):
    """Joins a learned label embedding to z (Mirza & Osindero 2014); identity when unconditional."""

    def __init__(self, latent_dim: int, num_classes: int, embed_dim: int | None = None):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim or latent_dim) if num_classes else None
        self.out_dim = latent_dim + (self.embed.embedding_dim if self.embed else 0)

    def forward(self, z: Tensor, y: Tensor | None) -> Tensor:
        if self.embed is None:
            return z
        if y is None:
            raise ValueError("this generator is conditional: pass labels y")
        return torch.cat([z, self.embed(y)], dim=1)


def rescale(x: Tensor, target: tuple[float, float]) -> Tensor:
    """``x`` mapped affinely from [-1, 1] (ganforge's pixel range) to ``target`` (lo, hi):
    one multiply and one add, as it runs in every G and D forward that sets a range."""
    lo, hi = target
    return x * ((hi - lo) / 2) + (hi + lo) / 2


class TanhOutput(nn.Module):
    """An image generator's last activation: tanh stretched to ``output_range`` (lo, hi),
    ``lo + (hi - lo) * (tanh(x) + 1) / 2``.

    ``[-1, 1]`` (the default) is the plain tanh. ``[-3, 1]`` centres tanh on the images' black
    level (-1): the DCGAN-TensorFlow code behind the published Stacked MNIST rows trains a
    plain tanh generator against images scaled to [0, 1]; with a discriminator that reads
    [0, 1] (``input_range``, see :class:`Discriminator`) this is that setup exactly. Samples are
    clamped to [-1, 1] when they become images (:func:`as_images`).
    """

    def __init__(self, output_range: Sequence[float] = (-1.0, 1.0)):
        super().__init__()
        lo, hi = (float(v) for v in output_range)
        if not lo <= -1.0 < 1.0 <= hi:
            raise GanforgeError(
                f"model.generator.output_range must reach from -1 or below to 1 or above, the "
                f"images' range; got output_range={list(output_range)}"
            )
        self.output_range = (lo, hi)

    def forward(self, x: Tensor) -> Tensor:
        if self.output_range == (-1.0, 1.0):
            return torch.tanh(x)
        return rescale(torch.tanh(x), self.output_range)


def check_input_range(input_range: Sequence[float]) -> tuple[float, float]:
    """Validate ``model.discriminator.input_range`` (finite, lo < hi); return it as floats."""
    lo, hi = (float(v) for v in input_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise GanforgeError(
            f"model.discriminator.input_range must be two finite numbers [lo, hi] with lo < hi, "
            f"e.g. [0, 1]; got input_range={list(input_range)}"
        )
    return lo, hi


def as_images(generator: nn.Module, out: Tensor) -> Tensor:
    """``generator``'s output as images in [-1, 1]: clamped when its output range is wider.
    Vector generators (toy data, ``output_range`` None) pass through."""
    output_range = getattr(generator, "output_range", None)
    return out if output_range in (None, (-1.0, 1.0)) else out.clamp(-1.0, 1.0)


class Generator(nn.Module):
    """Shared generator set-up: ``latent_dim``, the checked class count and the z+label input.

    Subclasses map ``self.latent(z, y)`` (of width ``self.latent.out_dim``) to a sample.
    """

    def __init__(self, latent_dim: int, num_classes: int | None, conditioning: str):
        super().__init__()
        #: (lo, hi) of an image generator's output (:class:`TanhOutput`); None for vectors
        self.output_range: tuple[float, float] | None = None
        self.latent_dim = latent_dim
        self.num_classes = check_conditioning(conditioning, num_classes)
        self.latent = LatentWithLabel(latent_dim, self.num_classes)


def label_maps(x: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """One-hot label planes shaped like ``x`` (B, K, *spatial), for cGAN input concatenation."""
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    return onehot.view(*onehot.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])


class DiscriminatorHead(nn.Module):
    """Maps D's features to the adversarial output and, per conditioning, uses the label.

    - ``none``/``concat``: a linear output (concat already fed the label at the input);
    - ``projection`` (Miyato & Koyama 2018): adds <embed(y), features>;
    - ``acgan`` (Odena et al. 2017): also returns class logits from an auxiliary classifier.
    """

    def __init__(self, features: int, num_classes: int, conditioning: str):
        super().__init__()
        self.conditioning = conditioning
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if conditioning == "projection" else None
        if self.embed is not None:
            # Glorot init as in Miyato & Koyama's code: torch's default N(0, 1) makes the
            # projection term ~sqrt(features) times larger than the linear term at the start.
            nn.init.xavier_uniform_(self.embed.weight)
        self.classifier = nn.Linear(features, num_classes) if conditioning == "acgan" else None

    def forward(self, h: Tensor, y: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a projection discriminator needs labels y")
            out = out + (self.embed(y) * h).sum(1)
        if self.classifier is not None:
            return out, self.classifier(h)
        return out


class Discriminator(nn.Module):
    """Shared wrapper: the images' pixel range, optional label planes at the input, PacGAN
    packing, a feature body, an optional minibatch layer, then the head.

    Args:
        body: maps the (packed) input to features ``(B / pack, features)``; its first layer
            must take ``pack`` times the input channels (features for vectors).
        minibatch: ``model.discriminator.minibatch``, see
            :func:`ganforge.nets.minibatch.minibatch_layer`.
        pack: ``model.discriminator.pack``, samples per D judgement (Lin et al. 2018); D returns
            one output per group, see :func:`ganforge.nets.minibatch.pack`.
    """

    def __init__(
        self,
        body: nn.Module,
        features: int,
        num_classes: int,
        conditioning: str,
        minibatch: str | dict | None = None,
        pack: int = 1,
        input_range: Sequence[float] = (-1.0, 1.0),
    ):
        super().__init__()
        self.input_range = check_input_range(input_range)
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.pack = check_pack(pack, conditioning)
        self.body = body
        self.minibatch = minibatch_layer(minibatch, features)
        if self.minibatch is not None:
            features = self.minibatch.out_features
        self.head = DiscriminatorHead(features, num_classes, conditioning)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        if self.input_range != (-1.0, 1.0):
            x = rescale(x, self.input_range)
        if self.conditioning == "concat":
            if y is None:
                raise ValueError("a cGAN discriminator needs labels y")
            x = torch.cat([x, label_maps(x, y, self.num_classes)], dim=1)
        h = self.body(pack(x, self.pack))
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.head(h, y)


def split_output(out: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """D's adversarial output and, for ACGAN discriminators, its class logits."""
    return out if isinstance(out, tuple) else (out, None)
