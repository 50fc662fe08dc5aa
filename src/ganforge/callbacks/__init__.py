"""Lightning callbacks: sample grids and the other things a run leaves behind."""

from ganforge.callbacks.samples import SampleGrid

__all__ = ["SampleGrid"]
