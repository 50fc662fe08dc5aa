"""Weight initialisation and spectral normalisation shared by all architectures."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_NORMS = (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015: weights N(0, 0.02); norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap every conv, linear and embedding weight in torch's spectral-norm parametrization.

    Embeddings are included because the projection discriminator's class embedding is a
    linear map of the one-hot label (Miyato & Koyama 2018 normalise it too).
    """
    for m in list(module.modules()):
        if isinstance(m, (*_WEIGHTED, nn.Embedding)):
            spectral_norm(m)
    return module


def norm_layer(kind: str, channels: int, dims: int = 2) -> nn.Module:
    """A normalisation layer by name: batch, layer (GroupNorm with one group), instance, none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if dims == 2 else nn.LayerNorm(channels)
    if kind == "instance":
        if dims != 2:
            raise ValueError("instance norm needs feature maps, not vectors")
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of batch, layer, instance, none; got {kind!r}")
