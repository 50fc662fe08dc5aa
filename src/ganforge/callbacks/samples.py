"""Sample grids from the fixed noise batch: PNG files in the run folder and logged images."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import save_image

from ganforge.dashboard import log_image
from ganforge.errors import GanforgeError
from ganforge.pixels import grid_of, row_length


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` generator iterations (and at the end of training), render the
    module's fixed noise batch as a grid, save ``samples/step_XXXXXXX.png`` and
    ``samples/final.png``, and log it to every logger that takes images.

    Conditional models get one row per class (the fixed labels are laid out that way).
    """

    def __init__(self, dirpath: str, every_n_steps: int = 500, nrow: int | None = None):
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.nrow = nrow

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        shape = getattr(trainer.datamodule, "sample_shape", None)
        if shape is not None and len(shape) != 3:
            name = getattr(trainer.datamodule, "name", type(trainer.datamodule).__name__)
            raise GanforgeError(
                f"{name}: the SampleGrid callback draws image grids and cannot show "
                f"{len(shape)}-D points; use callbacks=toy (scatter plots of real vs generated "
                "points)"
            )

    def _nrow(self, pl_module) -> int:
        return self.nrow or row_length(len(pl_module.fixed_noise), pl_module.num_classes)

    @rank_zero_only
    def render(self, trainer: L.Trainer, pl_module, name: str) -> Path:
        """Generate the fixed batch, write ``<dirpath>/<name>.png`` and log it."""
        labels = pl_module.fixed_labels if pl_module.num_classes else None
        grid = grid_of(pl_module.generate(pl_module.fixed_noise, labels), self._nrow(pl_module))
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"{name}.png"
        save_image(grid, path)
        caption = self.caption(pl_module, getattr(trainer, "datamodule", None))
        log_image(trainer.loggers, "samples", grid, pl_module.g_step, caption)
        return path

    def caption(self, pl_module, datamodule=None) -> str:
        """What the grid shows: the iteration, and for conditional models the class of each row
        (the datamodule's ``class_names`` when it has them, else the class numbers)."""
        text = f"fixed noise after {pl_module.g_step} generator iterations"
        if not pl_module.num_classes:
            return text
        names = getattr(datamodule, "class_names", None) or range(pl_module.num_classes)
        rows = ", ".join(str(name) for name in names)
        return f"{text}; one row per class: {rows}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and pl_module.g_step % self.every_n_steps == 0:
            self.render(trainer, pl_module, f"step_{pl_module.g_step:07d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.render(trainer, pl_module, "final")
