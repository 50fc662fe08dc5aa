"""The in-memory fast path: a whole dataset as one tensor, batched by index on the device."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ganforge.data.transforms import check_augment
from ganforge.pixels import to_float


def hflip_where(x: Tensor, flip: Tensor) -> Tensor:
    """Flips left-right the images of ``x`` whose entry in the boolean ``flip`` is set."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


class TensorBatches:
    """Iterates shuffled, full (x, y) batches of tensors already on their device, no workers.

    ``x`` may hold uint8 pixels; batches are converted to float in [-1, 1] with :func:`to_float`.

    Each epoch's order is a permutation seeded by ``seed + epoch``, identical on every rank;
    rank ``r`` of ``world_size`` takes every ``world_size``-th index, so ranks see distinct
    shards of equal length. ``state_dict`` records the epoch and batches served so Lightning can
    resume mid-epoch without replaying data.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: str = "none",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_augment(augment)
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size, self.augment = seed, rank, world_size, augment
        self.epoch = 0  # set by Lightning at each epoch start, through set_epoch
        self._served = 0  # batches served in the current pass
        self._resume: tuple[int, int] | None = None  # (epoch, served) from load_state_dict
        per_rank = len(x) // world_size
        if per_rank < batch_size:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {per_rank} samples each of the "
                f"{world_size} rank(s) holds; lower data.batch_size"
            )

    def __len__(self) -> int:
        per_rank = len(self.x) // self.world_size
        return per_rank // self.batch_size  # the last, partial batch is dropped

    def _order(self, epoch: int) -> Tensor:
        n = len(self.x) // self.world_size * self.world_size
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.x), generator=g)[:n]
        return order[self.rank :: self.world_size].to(self.x.device)

    def _flips(self, epoch: int, n: int) -> Tensor:
        """One flip decision per position of the epoch's order, drawn on the CPU for the same
        stream on every device and copied once per epoch (no host-device copy per batch)."""
        g = torch.Generator().manual_seed(self.seed + 7919 * (epoch + 1) + self.rank)
        return (torch.rand(n, generator=g) < 0.5).to(self.x.device)

    @property
    def sampler(self) -> TensorBatches:
        """Lightning calls ``loader.sampler.set_epoch(epoch)`` at every epoch start (also when
        resuming); this loader is its own sampler, so its order follows Lightning's epoch."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # The body runs at the first batch, after Lightning's set_epoch: a pass continues a
        # restored position only if it is in the restored epoch (Lightning may hand the
        # iterator it built while restoring to the next epoch).
        epoch = self.epoch
        resume, self._resume = self._resume, None
        start = resume[1] if resume is not None and resume[0] == epoch else 0
        order = self._order(epoch)
        # flips are indexed by position in the epoch, so a resumed pass gets the same ones
        flips = self._flips(epoch, len(order)) if self.augment == "hflip" else None
        for i in range(start, len(self)):
            batch = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[batch]
            self._served = i + 1
            x = to_float(self.x[idx])
            yield (x if flips is None else hflip_where(x, flips[batch])), self.y[idx]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Lightning fetches no batch ahead from a loader with a length, so ``served`` counts
        # exactly the batches trained on when the checkpoint was written.
        self._resume = (int(state["epoch"]), int(state["served"]))
