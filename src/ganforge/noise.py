"""The generator's latent prior: N(0, I) or U[-1, 1] per coordinate, and their truncated forms
(the truncation trick)."""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.errors import GanforgeError

#: ``normal``: N(0, I), the PyTorch DCGAN's and most later GANs'; ``uniform``: U[-1, 1] per
#: coordinate, Radford et al. 2015's and the DCGAN-TensorFlow code's
LATENT_PRIORS = ("normal", "uniform")


def check_prior(prior: str) -> str:
    """``prior`` if it is one of :data:`LATENT_PRIORS`; otherwise an error naming it."""
    if prior not in LATENT_PRIORS:
        raise GanforgeError(
            f"model.latent_prior must be one of {LATENT_PRIORS}, got latent_prior={prior!r}"
        )
    return prior


def latent_noise(
    n: int,
    latent_dim: int,
    generator: torch.Generator | None,
    truncation: float | None = None,
    prior: str = "normal",
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` latent vectors from the ``prior``, on ``device``.

    ``truncation`` bounds each coordinate to ``[-t, t]`` (the truncation trick: fidelity up,
    variety down, Brock et al. 2019): the normal truncated there, or the uniform on
    ``[-min(t, 1), min(t, 1)]``.
    """
    check_prior(prior)
    if truncation is not None and truncation <= 0:
        raise GanforgeError(f"truncation must be a positive bound, got truncation={truncation}")
    if prior == "uniform":
        bound = 1.0 if truncation is None else min(truncation, 1.0)
        u = torch.rand(n, latent_dim, generator=generator, device=device)
        return (2 * u - 1) * bound
    if truncation is None:
        return torch.randn(n, latent_dim, generator=generator, device=device)
    z = torch.empty(n, latent_dim)
    z = torch.nn.init.trunc_normal_(z, a=-truncation, b=truncation, generator=generator)
    return z.to(device) if device is not None else z
