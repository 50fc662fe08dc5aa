"""Reading a network's intermediate features without changing its forward (feature matching)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn


@contextmanager
def capture_output(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Collect ``layer``'s output of every forward inside the block, in call order.

    A forward hook, so it also sees calls made through ``torch.func.functional_call`` (the
    unrolled discriminator) and works for every architecture: D's ``body`` gives its
    penultimate features.
    """
    outputs: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    try:
        yield outputs
    finally:
        handle.remove()
