"""Lightning's strategy chosen from the device count, so ``trainer.devices=N`` is all a user sets.

One process: Lightning's ``"auto"``. Several: a :class:`DDPStrategy` configured for GANs.

- ``find_unused_parameters=True``. Each backward pass of an alternating update gives gradients to
  one network only (toggle_optimizer freezes the other), and DDP with the default ``False``
  waits forever for the frozen network's gradients. The price: DDP walks the autograd graph
  after every backward to find unused parameters, and still all-reduces the frozen network's
  gradient buckets (docs/scaling.md gives the measured cost).
- Processes launched externally (SLURM's ``srun``, as submitit does, or ``torchrun``) are used
  as they are: Lightning must not start more. The SLURM environment listens for submitit's
  requeue signal, so the two never both requeue a job.
- Otherwise ranks are started with ``spawn``: the workers receive the already composed config,
  model and data by pickling, where Lightning's default launcher would re-run the command line
  per rank (under ``-m`` each rank would re-run the whole sweep, and an Optuna sweep would
  sample different hyperparameters per rank).
"""

from __future__ import annotations

import os
import signal

from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import AcceleratorRegistry, CUDAAccelerator, MPSAccelerator
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

from ganforge.errors import GanforgeError
from ganforge.spawn import SpawnDDPStrategy

#: the signal submitit sends before a SLURM time limit or preemption (its ``USR_SIG``)
SUBMITIT_REQUEUE_SIGNAL = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")


def resolve_accelerator(accelerator: str) -> str:
    """The accelerator name Lightning would pick for ``accelerator`` (``auto`` and ``gpu``
    resolved by availability)."""
    if accelerator not in ("auto", "gpu"):
        return accelerator
    if CUDAAccelerator.is_available():
        return "cuda"
    if MPSAccelerator.is_available():
        return "mps"
    if accelerator == "gpu":
        raise GanforgeError(
            "trainer.accelerator=gpu but this machine has no GPU; use trainer=cpu "
            "(trainer.devices=N then runs N CPU processes)"
        )
    return "cpu"


def devices_per_node(accelerator: str, devices: int | str | list[int]) -> int:
    """How many processes Lightning runs per node for ``accelerator`` and ``devices``."""
    acc = AcceleratorRegistry.get(resolve_accelerator(accelerator))
    if devices == "auto":
        return acc.auto_device_count()
    try:
        return len(acc.get_parallel_devices(acc.parse_devices(devices)))
    except (TypeError, ValueError) as err:
        raise GanforgeError(
            f"trainer.devices={devices!r} is not valid for accelerator "
            f"{resolve_accelerator(accelerator)!r} ({err}); use a count such as 2"
        ) from err


def external_environment() -> ClusterEnvironment | None:
    """The environment of processes started outside Lightning (torchrun, SLURM's srun), if any."""
    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect():
        return SLURMEnvironment(requeue_signal=signal.Signals[SUBMITIT_REQUEUE_SIGNAL])
    return None


def select_strategy(
    accelerator: str = "auto",
    devices: int | str | list[int] = "auto",
    num_nodes: int = 1,
    find_unused_parameters: bool = True,
    process_group_backend: str | None = None,
) -> str | DDPStrategy:
    """``"auto"`` for a single process, otherwise DDP set up for alternating G/D updates."""
    world_size = devices_per_node(accelerator, devices) * num_nodes
    if world_size <= 1:
        return "auto"
    ddp = {
        "find_unused_parameters": find_unused_parameters,
        "process_group_backend": process_group_backend,
    }
    env = external_environment()
    if env is not None:
        return DDPStrategy(cluster_environment=env, **ddp)
    if num_nodes > 1:
        raise GanforgeError(
            f"trainer.num_nodes={num_nodes} needs one process per device started by the "
            "cluster: submit with -m hydra/launcher=slurm, or start the ranks with torchrun"
        )
    return SpawnDDPStrategy(cluster_environment=LightningEnvironment(), start_method="spawn", **ddp)


def device_names(trainer: Trainer) -> list[str]:
    """Names of the devices ``trainer`` runs on in this node (GPU models where NVML tells them
    without initialising CUDA in the parent process, else ``cuda:0``-style names)."""
    devices = getattr(trainer.strategy, "parallel_devices", None) or [trainer.strategy.root_device]
    names = [str(d) for d in devices]
    if all(d.type == "cuda" for d in devices):
        try:
            import pynvml

            pynvml.nvmlInit()
            names = [
                pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(d.index))
                for d in devices
            ]
        except Exception:  # no NVML bindings or driver: keep the device indices
            pass
    return names


def describe_run(trainer: Trainer, batch_size: int) -> str:
    """One line saying what will run: accelerator and devices, processes, strategy, precision,
    and the per-device and global batch size (``data.batch_size`` is per device)."""
    strategy = trainer.strategy
    if isinstance(strategy, DDPStrategy):
        env = type(strategy.cluster_environment).__name__.removesuffix("Environment")
        spawned = isinstance(strategy.launcher, _MultiProcessingLauncher)
        started = f"{strategy.launcher._start_method}, {env}" if spawned else env
        name = f"ddp ({started}, find_unused_parameters="
        name += f"{strategy._ddp_kwargs.get('find_unused_parameters', False)})"
    else:
        name = {"SingleDeviceStrategy": "single device"}.get(type(strategy).__name__, "")
        name = name or type(strategy).__name__.removesuffix("Strategy").lower()
    counts: dict[str, int] = {}
    for device in device_names(trainer):
        counts[device] = counts.get(device, 0) + 1
    devices = ", ".join(f"{n} x {d}" for d, n in counts.items())
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    nodes = f" x {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else ""
    return (
        f"training on {accelerator} ({devices}{nodes}): {trainer.world_size} "
        f"process{'es' if trainer.world_size > 1 else ''}, strategy {name}, precision "
        f"{trainer.precision}, batch {batch_size} per device, "
        f"{batch_size * trainer.world_size} global"
    )
