"""Scatter plots of real vs generated 2-D points, with mode coverage, for toy mixtures."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from ganforge.dashboard import log_image
from ganforge.metrics.toy import ModeCoverage


def scatter_figure(
    real: Tensor, fake: Tensor, centers: Tensor | None = None, title: str | None = None
) -> Figure:
    """A square figure with real points, generated points and (optionally) the true modes."""
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(real[:, 0], real[:, 1], s=3, alpha=0.3, c="tab:blue", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, alpha=0.3, c="tab:orange", label="generated")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], s=60, marker="+", c="black", lw=0.8, label="modes")
    low, high = real.min(0).values, real.max(0).values
    margin = 0.25 * (high - low).max().item()
    ax.set_xlim(low[0].item() - margin, high[0].item() + margin)
    ax.set_ylim(low[1].item() - margin, high[1].item() + margin)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def figure_to_tensor(fig: Figure) -> Tensor:
    """The rendered figure as a (3, H, W) float image in [0, 1], for image loggers."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255


class ScatterPlot(L.Callback):
    """Every ``every_n_steps`` generator iterations (and at the end), draw ``num_points``
    generated points over as many real ones, save ``scatter/step_XXXXXXX.png`` and
    ``scatter/final.png`` and log the image like the sample grids.

    When the datamodule exposes mixture ``centers`` and ``std`` the generated points are also
    scored with :class:`ModeCoverage`, logged as ``toy/modes_covered`` and ``toy/high_quality``.
    Points come from a fixed-seed ``torch.Generator``, leaving the training RNG untouched.
    """

    def __init__(
        self,
        dirpath: str,
        every_n_steps: int = 500,
        num_points: int = 2500,
        min_count: int = 20,
        seed: int = 0,
    ):
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.num_points = num_points
        self.min_count = min_count
        self.seed = seed
        self.real: Tensor | None = None
        self.centers: Tensor | None = None
        self.std: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        data = trainer.datamodule
        self.real = data.real_images("train", limit=self.num_points)[0].cpu()
        if self.real.dim() != 2 or self.real.shape[1] != 2:
            raise ValueError(
                f"ScatterPlot draws 2-D points, but the data has shape {tuple(self.real.shape[1:])}"
            )
        self.centers = getattr(data, "centers", None)
        self.std = getattr(data, "std", None)

    def coverage(self, fake: Tensor) -> dict[str, Tensor] | None:
        """Mode coverage of ``fake`` when the data's modes are known, computed from this
        process's points alone: under DDP every rank scores the same points (see
        :meth:`render`), and a sync inside ``compute`` would wait for ranks that never call it."""
        if self.centers is None or self.std is None:
            return None
        metric = ModeCoverage(
            self.centers, self.std, min_count=self.min_count, sync_on_compute=False
        )
        metric.update(fake)
        return metric.compute()

    def render(self, trainer: L.Trainer, pl_module, name: str) -> dict[str, Tensor] | None:
        """Score generated points; on rank 0 also draw, save ``<dirpath>/<name>.png`` and log it.

        Every rank samples and scores (the same fixed-seed noise through the same DDP-synced
        weights, so the same points), so the coverage can be logged, and monitored for
        checkpoints, on all ranks; only rank 0 writes files.
        """
        generator = torch.Generator().manual_seed(self.seed)
        fake = pl_module.sample(self.num_points, generator=generator)[0].float().cpu()
        scores = self.coverage(fake)
        if trainer.is_global_zero:
            self._draw(trainer, pl_module, name, fake, scores)
        return {f"toy/{k}": v.float() for k, v in scores.items()} if scores else None

    def _draw(
        self, trainer: L.Trainer, pl_module, name: str, fake: Tensor, scores: dict | None
    ) -> None:
        assert self.real is not None
        title = f"generator step {pl_module.g_step}"
        if scores:
            covered, quality = scores["modes_covered"].item(), scores["high_quality"].item()
            title += f": {covered}/{len(self.centers)} modes, {100 * quality:.0f}% high quality"
        fig = scatter_figure(self.real, fake, self.centers, title)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.dirpath / f"{name}.png")
        log_image(trainer.loggers, "scatter", figure_to_tensor(fig), pl_module.g_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and pl_module.g_step % self.every_n_steps == 0:
            scores = self.render(trainer, pl_module, f"step_{pl_module.g_step:07d}")
            if scores:  # the same value on every rank: nothing to reduce
                pl_module.log_dict(scores, on_step=True)

    def on_train_end(self, trainer, pl_module) -> None:
        # Lightning forbids self.log here, so the final scores go to the loggers directly
        scores = self.render(trainer, pl_module, "final")
        for logger in trainer.loggers if scores and trainer.is_global_zero else []:
            logger.log_metrics({k: v.item() for k, v in scores.items()}, step=pl_module.g_step)
