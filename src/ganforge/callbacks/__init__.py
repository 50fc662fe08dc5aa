"""Lightning callbacks: sample grids and the other things a run leaves behind."""

from ganforge.callbacks.guard import DivergenceGuard
from ganforge.callbacks.preemption import Preemption
from ganforge.callbacks.samples import SampleGrid

__all__ = ["DivergenceGuard", "Preemption", "SampleGrid"]
