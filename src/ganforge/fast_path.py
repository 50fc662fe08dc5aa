"""The GPU fast path: channels_last, a guarded ``torch.compile`` and fused optimizers.

Mixed precision (``trainer.precision``), cuDNN autotuning (``trainer.benchmark``) and TF32
matmuls (top-level ``float32_matmul_precision``) are Lightning and torch settings; the options
here act on the networks and optimizers, so :class:`GANModule` applies them. ``trainer=gpu``
turns all of them on; see ``docs/performance.md`` for what each one does and costs.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class GuardedForward:
    """A module's ``forward`` compiled by ``torch.compile``, falling back to eager on failure.

    ``torch.compile`` compiles lazily, on the first call (and again when a guard fails, e.g.
    on switching to eval mode), so that is where a failure shows up: a missing C++ compiler,
    an unsupported op, a backend error. Any exception raised by the compiled call switches the
    module back to its eager ``forward`` for good, with a warning, and repeats the call eagerly;
    an error in the model itself is then raised by the eager call, as it would be uncompiled.
    A failure while compiling the backward graph (done lazily at the first backward) is not
    caught here.
    """

    def __init__(self, module: nn.Module, name: str, **options: Any):
        self.module = module
        self.name = name
        self.eager = module.forward
        self.compiled = torch.compile(self.eager, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.compiled(*args, **kwargs)
        except Exception as err:  # any compile failure: the eager call re-raises model errors
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
            warnings.warn(
                f"torch.compile of the {self.name} failed ({reason}); running it eagerly. "
                f"Set model.fast_path.compile=false to skip compiling.",
                RuntimeWarning,
                stacklevel=2,
            )
            del self.module.forward  # the instance attribute: the class's forward shows again
            return self.module.forward(*args, **kwargs)


def compile_guarded(module: nn.Module, name: str, **options: Any) -> nn.Module:
    """Compile ``module``'s forward in place (parameters and state_dict keys unchanged)."""
    module.forward = GuardedForward(module, name, **options)
    return module


def eager_forward(module: nn.Module) -> Callable[..., Any]:
    """``module``'s uncompiled forward, compiled or not.

    Gradient penalties (R1, WGAN-GP) differentiate D's output twice, and graphs compiled
    through AOTAutograd do not support double backward ("torch.compile with aot_autograd does
    not currently support double backward"): the penalty's D call runs eagerly.
    """
    guarded = module.__dict__.get("forward")
    return guarded.eager if isinstance(guarded, GuardedForward) else module


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` currently runs a guarded compiled forward."""
    return isinstance(module.__dict__.get("forward"), GuardedForward)


def accepts_fused(factory: Callable[..., Any]) -> bool:
    """Whether an optimizer factory (class or ``functools.partial`` of one) takes ``fused``."""
    target = factory.func if isinstance(factory, partial) else factory
    try:
        return "fused" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


class FastPath:
    """Speed options for the networks and optimizers (``model.fast_path`` in the configs).

    Args:
        channels_last: store conv weights and image batches in NHWC, the layout Tensor Cores
            use; convolutions then skip layout transposes. A no-op for MLPs.
        compile: ``torch.compile`` the generator's and the discriminator's forward, guarded so
            a compile failure warns and falls back to eager (see :class:`GuardedForward`).
        compile_options: keyword arguments for ``torch.compile`` (``mode``, ``backend``,
            ``dynamic``, ``fullgraph``).
        fused_optimizer: build optimizers that support it (Adam, AdamW, SGD) with
            ``fused=True`` when training on CUDA: one kernel per step instead of one per
            parameter group op. Skipped under ``16-mixed``, whose GradScaler would then leave
            gradients scaled for clipping and the logged gradient norms.
        live_progress_bar: show each step's losses in the progress bar. Lightning converts
            progress-bar values to Python numbers after every step, which on a GPU is a
            host-device synchronisation per step; off, the bar shows epoch means instead.
    """

    def __init__(
        self,
        channels_last: bool = False,
        compile: bool = False,
        compile_options: Mapping[str, Any] | None = None,
        fused_optimizer: bool = False,
        live_progress_bar: bool = True,
    ):
        self.channels_last = channels_last
        self.compile = compile
        self.compile_options = dict(compile_options or {})
        self.fused_optimizer = fused_optimizer
        self.live_progress_bar = live_progress_bar

    def __repr__(self) -> str:
        return (
            f"FastPath(channels_last={self.channels_last}, compile={self.compile}, "
            f"compile_options={self.compile_options}, fused_optimizer={self.fused_optimizer}, "
            f"live_progress_bar={self.live_progress_bar})"
        )

    def prepare(self, net: nn.Module) -> nn.Module:
        """Convert ``net`` to the configured memory format (before any copy of it is made)."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def compile_net(self, net: nn.Module, name: str) -> nn.Module:
        """Compile ``net``'s forward when ``compile`` is on."""
        return compile_guarded(net, name, **self.compile_options) if self.compile else net

    def format_batch(self, x: Tensor) -> Tensor:
        """Images in the configured memory format (other tensors unchanged)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def optimizer_kwargs(
        self, factory: Callable[..., Any], device: torch.device, grad_scaler: bool
    ) -> dict[str, Any]:
        """Extra keyword arguments for an optimizer factory: ``fused=True`` where it pays."""
        wanted = self.fused_optimizer and device.type == "cuda" and not grad_scaler
        preset = isinstance(factory, partial) and "fused" in factory.keywords
        if wanted and not preset and accepts_fused(factory):
            return {"fused": True}
        if self.fused_optimizer and device.type == "cuda" and grad_scaler:
            log.info("fused optimizers are off under 16-mixed (GradScaler); using foreach")
        return {}
