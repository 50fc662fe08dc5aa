"""The generator's latent prior: N(0, I), or its truncated form (the truncation trick)."""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.errors import GanforgeError


def latent_noise(
    n: int, latent_dim: int, generator: torch.Generator | None, truncation: float | None = None
) -> Tensor:
    """``n`` latent vectors from N(0, I), or from the normal truncated to ``[-t, t]`` per
    coordinate (the truncation trick: fidelity up, variety down, Brock et al. 2019)."""
    if truncation is None:
        return torch.randn(n, latent_dim, generator=generator)
    if truncation <= 0:
        raise GanforgeError(f"truncation must be a positive bound, got truncation={truncation}")
    z = torch.empty(n, latent_dim)
    return torch.nn.init.trunc_normal_(z, a=-truncation, b=truncation, generator=generator)
