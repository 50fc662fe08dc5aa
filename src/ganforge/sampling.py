"""Sampling a trained generator: seeded noise (optionally truncated), class layouts, grids,
spherical latent interpolation and animated GIFs.

Every function draws from an explicit CPU ``torch.Generator``, so a seed fixes the images
whatever device the generator runs on, and the global RNG stream is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import save_image

from ganforge.errors import GanforgeError
from ganforge.module import GANModule
from ganforge.noise import latent_noise
from ganforge.pixels import class_rows, grid_of, row_length
from ganforge.progress import progress_bar

Labels = int | Sequence[int] | None


def requested_labels(labels: Labels, n: int, num_classes: int) -> Tensor | None:
    """``n`` labels from a class (``3``) or a list cycled to length ``n``; ``None`` stays None.

    Raises a :class:`GanforgeError` when labels are given to an unconditional model or lie
    outside ``[0, num_classes)``.
    """
    if labels is None:
        return None
    wanted = torch.tensor([labels] if isinstance(labels, int) else list(labels), dtype=torch.long)
    if not num_classes:
        raise GanforgeError(
            f"labels={labels} given, but this checkpoint's generator is unconditional; "
            "drop labels= or use a model trained with model.conditioning != none"
        )
    if wanted.numel() == 0 or wanted.min() < 0 or wanted.max() >= num_classes:
        raise GanforgeError(
            f"labels={labels} must be classes in [0, {num_classes - 1}] for this checkpoint"
        )
    return wanted.repeat(math.ceil(n / wanted.numel()))[:n]


def grid_layout(
    n: int, nrow: int | None, num_classes: int, labels: Labels
) -> tuple[int, int, Tensor | None]:
    """``(n, nrow, labels)`` for a grid: conditional models without ``labels`` get one row per
    class (``n`` rounded up to whole rows); otherwise ``nrow`` defaults to about sqrt(n)."""
    if n < 1:
        raise GanforgeError(f"n must be a positive number of images, got n={n}")
    if nrow is not None and nrow < 1:
        raise GanforgeError(f"nrow must be positive, got nrow={nrow}")
    if num_classes and labels is None:
        y = class_rows(n, num_classes)
        return len(y), nrow or row_length(n, num_classes), y
    return n, nrow or row_length(n, 0), requested_labels(labels, n, num_classes)


def sample_images(
    module: GANModule,
    n: int = 64,
    nrow: int | None = None,
    seed: int = 0,
    labels: Labels = None,
    truncation: float | None = None,
) -> tuple[Tensor, Tensor | None, int]:
    """``(images in [-1, 1], labels, nrow)`` from ``module``'s sampling generator (EMA when
    present); the same seed gives the same images."""
    n, nrow, y = grid_layout(n, nrow, module.num_classes, labels)
    gen = torch.Generator().manual_seed(seed)
    z = latent_noise(n, module.latent_dim, gen, truncation, module.latent_prior)
    return generate_batched(module, z, y), y, nrow


def generate_batched(
    module: GANModule, z: Tensor, y: Tensor | None, batch_size: int = 256
) -> Tensor:
    """``module.generate`` over ``z`` (and ``y``) ``batch_size`` at a time, on the CPU, with a
    progress bar: a large ``n`` neither fills the device nor waits in silence."""
    ys = [None] * math.ceil(len(z) / batch_size) if y is None else y.split(batch_size)
    out = []
    with progress_bar("sampling", len(z), "images") as bar:
        for zb, yb in zip(z.split(batch_size), ys, strict=True):
            out.append(module.generate(zb, yb).cpu())
            bar.advance(len(zb))
    return torch.cat(out)


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation from each row of ``z0`` (P, D) to the same row of ``z1`` at
    fractions ``t`` (S,), shaped (P, S, D).

    Gaussian latents concentrate near a sphere; a straight line between two of them passes
    through low-norm points the generator rarely saw, while the arc keeps the norm typical
    (White 2016). Nearly parallel pairs fall back to a straight line.
    """
    cos = (F.normalize(z0, dim=1) * F.normalize(z1, dim=1)).sum(1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)[:, None, None]
    sin = torch.sin(omega)
    t = t[None, :, None]
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w0 = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / safe)
    w1 = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return w0 * z0[:, None] + w1 * z1[:, None]


def interpolate(
    module: GANModule,
    paths: int = 8,
    steps: int = 10,
    seed: int = 0,
    labels: Labels = None,
    truncation: float | None = None,
) -> Tensor:
    """Images (paths, steps, C, H, W) along paths between random latent pairs: spherical for
    the normal prior, straight for the uniform one (its cube is convex, the lines stay inside).

    Conditional models keep one class per path: ``labels`` when given, else classes in turn.
    """
    if paths < 1 or steps < 2:
        raise GanforgeError(
            f"interpolation needs paths >= 1 and steps >= 2, got paths={paths}, steps={steps}"
        )
    gen = torch.Generator().manual_seed(seed)
    z = latent_noise(2 * paths, module.latent_dim, gen, truncation, module.latent_prior)
    z0, z1 = z.chunk(2)
    t = torch.linspace(0, 1, steps)
    if module.latent_prior == "uniform":
        z = torch.lerp(z0[:, None], z1[:, None], t[None, :, None]).flatten(0, 1)
    else:
        z = slerp(z0, z1, t).flatten(0, 1)
    y = requested_labels(labels, paths, module.num_classes)
    if module.num_classes and y is None:
        y = torch.arange(paths) % module.num_classes
    if y is not None:
        y = y.repeat_interleave(steps)
    images = module.generate(z, y).cpu()
    return images.unflatten(0, (paths, steps))


def save_grid(images: Tensor, nrow: int, path: str | Path) -> Path:
    """Write images in [-1, 1] as one PNG grid with ``nrow`` images per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid_of(images, nrow), path)
    return path


def save_individual(images: Tensor, labels: Tensor | None, dirpath: str | Path) -> list[Path]:
    """Write each image as its own PNG (``00000.png``, or ``00000_y3.png`` with its label)."""
    dirpath = Path(dirpath)
    dirpath.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(images):
        suffix = "" if labels is None else f"_y{int(labels[i])}"
        files.append(save_grid(image[None], 1, dirpath / f"{i:05d}{suffix}.png"))
    return files


def save_gif(frames: Sequence[Tensor], path: str | Path, frame_ms: int = 80) -> Path:
    """An endlessly looping GIF from (C, H, W) frames in [0, 1], played forwards and back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = [to_pil_image(f) for f in frames]
    pictures += pictures[-2:0:-1]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return path


def interpolation_frames(paths: Tensor) -> list[Tensor]:
    """One grid per interpolation step, showing every path at that step."""
    nrow = math.ceil(math.sqrt(paths.shape[0]))
    return [grid_of(paths[:, s], nrow) for s in range(paths.shape[1])]
