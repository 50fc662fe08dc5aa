"""The GPU fast path on CPU: options compose, compile falls back, layouts agree, no host syncs."""

from __future__ import annotations

import copy
import math
import pickle
import statistics
from collections import Counter
from functools import partial

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from omegaconf import DictConfig
from torch.overrides import TorchFunctionMode

from ganforge.build import build_module
from ganforge.config import total_optimizer_steps
from ganforge.fast_path import FastPath, accepts_fused, is_compiled
from tests.conftest import TF_DCGAN

TINY = [
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "data.batch_size=8",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "+trainer.enable_checkpointing=false",
]

GRAPHS: list[torch.fx.GraphModule] = []


@torch._dynamo.register_backend(name="ganforge_test_counting")
def counting_backend(gm, example_inputs):
    """A torch.compile backend that records each graph and runs it as traced."""
    GRAPHS.append(gm)
    return gm.forward


@torch._dynamo.register_backend(name="ganforge_test_failing")
def failing_backend(gm, example_inputs):
    """A torch.compile backend that always fails, as a missing compiler would."""
    raise RuntimeError("no compiler here")


#: tensor methods that copy a value to the host (a device sync when the tensor is on a GPU)
HOST_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__format__"}


class StepOutputs(L.Callback):
    """Keeps each training step's returned scalars as Python floats (after the step)."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in outputs.items()})


def fit(cfg: DictConfig, g_steps: int, callbacks=(), seed: int = 0, **trainer_kwargs):
    """Build data and module from ``cfg`` and train ``g_steps`` generator iterations."""
    torch.manual_seed(seed)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    kwargs = {"logger": False, **trainer_kwargs}
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        max_steps=total_optimizer_steps(g_steps, cfg.loss.n_critic, cfg.loss.n_gen),
        callbacks=list(callbacks),
        **kwargs,
    )
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def test_gpu_preset_composes_the_fast_path(make_cfg):
    cfg = make_cfg("trainer=gpu")
    assert cfg.trainer.accelerator == "gpu"
    assert cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.benchmark is True
    assert cfg.float32_matmul_precision == "high"
    module = build_module(cfg)
    assert module.fast_path.channels_last and module.fast_path.compile
    assert module.fast_path.fused_optimizer
    # compiled in each process after spawn (configure_model), never in the constructor
    assert not is_compiled(module.generator) and not is_compiled(module.discriminator)
    pickle.dumps(module)  # spawn pickles the module for every rank
    module.configure_model()
    assert is_compiled(module.generator) and is_compiled(module.discriminator)
    conv_w = module.discriminator.body[2].weight  # (128, 64, 4, 4): the layouts differ
    assert conv_w.is_contiguous(memory_format=torch.channels_last) and not conv_w.is_contiguous()
    # the default CPU trainer leaves every option off
    plain = build_module(make_cfg("trainer=cpu"))
    assert not is_compiled(plain.generator)
    assert plain.discriminator.body[2].weight.is_contiguous()


@pytest.mark.parametrize("layout", [[], TF_DCGAN], ids=["default", "tf_dcgan_uniform"])
def test_gpu_preset_trains_on_cpu_with_compile(make_cfg, layout):
    """trainer=gpu's options, moved to the CPU: bf16 autocast, channels_last, compiled nets."""
    cfg = make_cfg(
        "trainer=gpu",
        "trainer.accelerator=cpu",
        "+model.fast_path.compile_options.backend=ganforge_test_counting",
        *TINY,
        *layout,
    )
    torch._dynamo.reset()
    GRAPHS.clear()
    steps = StepOutputs()
    module, _ = fit(cfg, 2, [steps])
    assert GRAPHS, "torch.compile never handed a graph to the backend"
    assert is_compiled(module.generator) and is_compiled(module.discriminator)
    assert len(steps.steps) == 2
    assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in steps.steps)


def test_extra_generator_updates_reuse_the_compiled_graphs_under_bf16(make_cfg):
    """loss.n_gen=2 with trainer=gpu's options on the CPU: the second G update per iteration
    runs through the same compiled graphs as the first (no recompile) and really steps G."""
    graphs, g_opt_steps = {}, {}
    for n_gen in (1, 2):
        cfg = make_cfg(
            "trainer=gpu",
            "trainer.accelerator=cpu",
            "+model.fast_path.compile_options.backend=ganforge_test_counting",
            f"loss.n_gen={n_gen}",
            *TINY,
        )
        torch._dynamo.reset()
        GRAPHS.clear()
        steps = StepOutputs()
        module, trainer = fit(cfg, 3, [steps])
        assert is_compiled(module.generator) and is_compiled(module.discriminator)
        assert module.g_step == 3 and module.d_step == 3
        assert trainer.global_step == 3 * (1 + n_gen)
        assert all(math.isfinite(v) for s in steps.steps for v in s.values())
        d_opt, g_opt = trainer.optimizers
        assert {int(s["step"]) for s in d_opt.state.values()} == {3}
        g_opt_steps[n_gen] = {int(s["step"]) for s in g_opt.state.values()}
        graphs[n_gen] = len(GRAPHS)
    assert g_opt_steps == {1: {3}, 2: {6}}
    assert graphs[2] == graphs[1] > 0


def test_compile_failure_warns_and_falls_back_to_eager(make_cfg):
    cfg = make_cfg(
        *TINY,
        "model.fast_path.compile=true",
        "+model.fast_path.compile_options.backend=ganforge_test_failing",
    )
    torch._dynamo.reset()
    steps = StepOutputs()
    with pytest.warns(RuntimeWarning, match=r"torch.compile of the (generator|discriminator)"):
        module, _ = fit(cfg, 2, [steps])
    assert not is_compiled(module.generator) and not is_compiled(module.discriminator)
    assert module.g_step == 2 and len(steps.steps) == 2
    assert all(abs(v) < float("inf") for s in steps.steps for v in s.values())


@pytest.mark.parametrize(
    "loss", [["loss.r1_gamma=1", "loss.r1_every=16"], ["loss=wgan_gp"]], ids=["lazy_r1", "wgan_gp"]
)
def test_gradient_penalties_train_with_a_compiled_discriminator(make_cfg, loss):
    """AOTAutograd graphs have no double backward, which R1 (lazy R1 applies it on D step 0)
    and WGAN-GP need: the penalty's D call runs eagerly while D's loss terms stay compiled."""
    cfg = make_cfg(
        *TINY,
        *loss,
        "model.fast_path.compile=true",
        "+model.fast_path.compile_options.backend=aot_eager",
    )
    assert cfg.loss.r1_gamma > 0 or cfg.loss._target_.endswith("WGANGPLoss")
    torch._dynamo.reset()
    steps = StepOutputs()
    module, _ = fit(cfg, 2, [steps])
    assert is_compiled(module.generator) and is_compiled(module.discriminator)  # no fallback
    assert len(steps.steps) == 2
    assert all(math.isfinite(v) for s in steps.steps for v in s.values())


def test_channels_last_gives_the_same_training_step(make_cfg):
    """One step from the same weights and data: NHWC and NCHW agree within float tolerance.

    SGD, because Adam's first step is lr * sign(grad): it turns rounding noise on near-zero
    gradients into full +-lr differences.
    """
    seen_formats = []
    results = {}
    for channels_last in (False, True):
        cfg = make_cfg(
            *TINY,
            f"model.fast_path.channels_last={channels_last}",
            "optimizer@model.optimizer_d=sgd",
            "optimizer@model.optimizer_g=sgd",
        )
        torch.manual_seed(0)
        datamodule = hydra.utils.instantiate(cfg.data)
        module = build_module(cfg)
        if channels_last:
            module.load_state_dict(results[False]["init"])
            module.discriminator.register_forward_pre_hook(
                lambda _m, args: seen_formats.append(
                    args[0].is_contiguous(memory_format=torch.channels_last)
                )
            )
        init = copy.deepcopy(module.state_dict())
        torch.manual_seed(1)
        trainer = hydra.utils.instantiate(cfg.trainer, max_steps=2, logger=False)
        trainer.fit(module, datamodule=datamodule)
        results[channels_last] = {"init": init, "after": module.state_dict()}
    assert seen_formats and all(seen_formats), "D did not receive channels_last batches"
    before, after = results[False]["after"], results[True]["after"]
    moved = 0
    for name, value in before.items():
        if value.is_floating_point():
            torch.testing.assert_close(after[name], value, rtol=1e-4, atol=1e-5, msg=name)
            moved += not torch.equal(value, results[False]["init"][name])
    assert moved > 0, "the step changed no weights"


class HostReads(TorchFunctionMode):
    """Counts tensor-to-host reads per training step (steps delimited by :class:`StepWindows`).

    Not counted: ``.to(device)``, which on this CPU-only machine cannot be told apart from
    Lightning's host-to-device batch transfer, and the optimizers' ``step`` counters, which
    torch keeps on the CPU on purpose (reading them is no device sync).
    """

    def __init__(self, trainer_ref: list):
        super().__init__()
        self.trainer_ref = trainer_ref
        self.step: int | None = None
        self.per_step: Counter[int] = Counter()
        self.what: dict[int, list[str]] = {}

    def _is_step_counter(self, t) -> bool:
        optimizers = self.trainer_ref[0].optimizers
        return any(t is s.get("step") for opt in optimizers for s in opt.state.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.step is not None and name in HOST_READS and not self._is_step_counter(args[0]):
            self.per_step[self.step] += 1
            self.what.setdefault(self.step, []).append(name)
        return func(*args, **kwargs)


class StepWindows(L.Callback):
    """Attributes everything from one batch start to the next (step, logging) to that step."""

    def __init__(self, mode: HostReads):
        self.mode = mode

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.mode.step = batch_idx

    def on_train_end(self, trainer, pl_module):
        self.mode.step = None


class LoggedSteps(L.pytorch.loggers.CSVLogger):
    """A CSV logger that records at which training step it was handed metrics."""

    def __init__(self, save_dir, trainer_ref: list):
        super().__init__(save_dir)
        self.trainer_ref = trainer_ref
        self.at_batches: list[int] = []

    def log_metrics(self, metrics, step=None):
        self.at_batches.append(self.trainer_ref[0].fit_loop.epoch_loop.batch_idx)
        super().log_metrics(metrics, step)


def count_host_reads(cfg: DictConfig, tmp_path, g_steps: int = 8):
    """Train ``g_steps`` steps counting host reads; return (reads per step, logging steps)."""
    torch.manual_seed(0)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    trainer_ref: list = []
    mode = HostReads(trainer_ref)
    logger = LoggedSteps(tmp_path / "csv", trainer_ref)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        max_steps=g_steps * (module.loss.n_critic + 1),
        callbacks=[StepWindows(mode)],
        logger=logger,
    )
    trainer_ref.append(trainer)
    with mode:
        trainer.fit(module, datamodule=datamodule)
    return mode, set(logger.at_batches)


def test_fast_path_steps_read_nothing_back_to_the_host(make_cfg, tmp_path):
    """Between logging steps, a whole loop iteration (step, hooks, logging) makes no host read.

    On a GPU each such read is a device synchronisation. The counter does catch reads: the
    steps at which the logger is handed metrics (every ``log_every_n_steps``) must show some.
    """
    cfg = make_cfg(
        *TINY,
        "loss=wgan_gp",  # n_critic 2 here: several D steps and the penalty's autograd.grad
        "loss.n_critic=2",
        "trainer.log_every_n_steps=3",
        "model.fast_path.live_progress_bar=false",
    )
    mode, logged = count_host_reads(cfg, tmp_path)
    assert logged, "nothing was logged"
    # step 0 includes set-up, step 7's window runs on to the end of fit (epoch-end reads)
    steady = [s for s in range(1, 7) if s not in logged]
    assert len(steady) >= 3
    for step in steady:
        assert mode.per_step[step] == 0, f"step {step} read {mode.what[step]} back to the host"
    assert all(mode.per_step[s] > 0 for s in logged), "logging steps showed no reads"


def test_live_progress_bar_reads_the_losses_every_step(make_cfg, tmp_path):
    """The CPU default shows live losses, which Lightning reads back after every step."""
    cfg = make_cfg(*TINY, "trainer.log_every_n_steps=100")
    mode, _ = count_host_reads(cfg, tmp_path, g_steps=4)
    assert all(mode.what.get(s, []).count("item") >= 2 for s in range(1, 4)), mode.what


def test_16_mixed_grad_scaler_with_two_optimizers(make_cfg):
    """GradScaler drives both optimizers; clipping and logged norms see unscaled gradients."""
    cfg = make_cfg(*TINY, "trainer.precision=null", "model.grad_clip_norm=1000.0")
    fp32 = StepOutputs()
    fit(cfg, 5, [fp32])
    amp = StepOutputs()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    module, _ = fit(cfg, 5, [amp], plugins=[MixedPrecision("16-mixed", "cpu", scaler)])
    assert scaler.get_scale() >= 2.0**5, "the gradients were not scaled"
    for key in ("grad_norm/d", "grad_norm/g"):
        reference = statistics.median(step[key] for step in fp32.steps)
        finite = [step[key] for step in amp.steps if math.isfinite(step[key])]  # not skipped
        assert len(finite) >= 3, (key, amp.steps)
        # scaled gradients would be about a thousand times larger
        assert all(0.5 < value / reference < 2.0 for value in finite), (key, finite, reference)
    assert module.g_step == 5


def test_fused_optimizer_only_where_it_applies():
    fast = FastPath(fused_optimizer=True)
    adam = partial(torch.optim.Adam, lr=1e-3)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert fast.optimizer_kwargs(adam, cuda, grad_scaler=False) == {"fused": True}
    assert fast.optimizer_kwargs(adam, cpu, grad_scaler=False) == {}
    assert fast.optimizer_kwargs(adam, cuda, grad_scaler=True) == {}
    rmsprop = partial(torch.optim.RMSprop, lr=1e-3)
    assert not accepts_fused(rmsprop)
    assert fast.optimizer_kwargs(rmsprop, cuda, grad_scaler=False) == {}
    preset = partial(torch.optim.Adam, lr=1e-3, fused=False)
    assert fast.optimizer_kwargs(preset, cuda, grad_scaler=False) == {}
    assert FastPath().optimizer_kwargs(adam, cuda, grad_scaler=False) == {}


def test_tools_load_checkpoints_of_compiled_runs_uncompiled(make_cfg, tmp_path):
    from ganforge.build import load_module

    cfg = make_cfg(
        *TINY,
        "model.fast_path.compile=true",
        "model.fast_path.channels_last=true",
        "+model.fast_path.compile_options.backend=ganforge_test_counting",
    )
    module = build_module(cfg)
    module.configure_model()
    assert is_compiled(module.generator)
    assert not any("_orig_mod" in key for key in module.state_dict())
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "ganforge_config": module.run_config}, path)
    loaded, _ = load_module(path)
    assert not is_compiled(loaded.generator) and not is_compiled(loaded.discriminator)
    torch.testing.assert_close(
        loaded.generate(module.fixed_noise), module.generate(module.fixed_noise)
    )
