"""One validation pass over a composed config, before anything is built: every documented key
is resolved and checked for type and range, and each failure is one :class:`GanforgeError`
naming the key, the value and what is allowed.

Types are pydantic types (``PositiveInt``, ``Decay`` ...), checked key by key, so a config
may carry any extra keys (user callbacks, new options) without a schema change here."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
from pydantic import Field, TypeAdapter, ValidationError

from ganforge.errors import GanforgeError

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0)]
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Decay = Annotated[float, Field(strict=True, ge=0, lt=1)]
Steps = Literal[-1] | PositiveInt
Bool = Annotated[bool, Field(strict=True)]

#: (pydantic type, what is allowed, in words) per kind of key
POSITIVE_INT = (PositiveInt, "a positive integer")
NON_NEGATIVE_INT = (NonNegativeInt, "an integer >= 0")
POSITIVE_FLOAT = (PositiveFloat, "a positive number")
NON_NEGATIVE_FLOAT = (NonNegativeFloat, "a finite number >= 0")
DECAY = (Decay, "a number in [0, 1)")
OPTIONAL_DECAY = (Decay | None, "null or a number in [0, 1)")
BETAS = (tuple[Decay, Decay], "two numbers in [0, 1), e.g. [0.5, 0.999]")
STEPS = (Steps, "a positive integer, or -1 for no limit")
SEED = (Annotated[int, Field(strict=True)] | None, "an integer or null")
BOOL = (Bool, "true or false")
OPTIONAL_POSITIVE_INT = (PositiveInt | None, "null or a positive integer")
OPTIONAL_POSITIVE_FLOAT = (PositiveFloat | None, "null or a positive number")

_OPTIMIZER = {"lr": POSITIVE_FLOAT, "betas": BETAS, "weight_decay": NON_NEGATIVE_FLOAT}
_METRICS = {
    "num_samples": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "seed": SEED,
    "kid_subsets": POSITIVE_INT,
    "kid_subset_size": POSITIVE_INT,
    "is_splits": POSITIVE_INT,
    "pr_neighborhood": POSITIVE_INT,
    "feature_space": (Literal["auto", "digits", "inception"], "auto, digits or inception"),
}

TRAIN_KEYS: dict[str, tuple[Any, str]] = {
    "seed": SEED,
    "max_g_steps": STEPS,
    "data.batch_size": POSITIVE_INT,
    "data.image_size": POSITIVE_INT,
    "data.channels": POSITIVE_INT,
    "data.num_classes": OPTIONAL_POSITIVE_INT,
    "data.num_val": NON_NEGATIVE_INT,
    "data.num_workers": NON_NEGATIVE_INT,
    "data.in_memory": BOOL,
    "model.conditioning": (
        Literal["none", "concat", "acgan", "projection"],
        "none, concat, acgan or projection",
    ),
    "model.generator.latent_dim": POSITIVE_INT,
    "model.generator.base_width": POSITIVE_INT,
    "model.generator.max_width": POSITIVE_INT,
    "model.discriminator.base_width": POSITIVE_INT,
    "model.discriminator.max_width": POSITIVE_INT,
    **{
        f"model.{n}.{k}": POSITIVE_INT
        for n in ("generator", "discriminator")
        for k in ("kernel_size", "bottom_size")
    },
    "model.discriminator.dropout": DECAY,
    **{f"model.optimizer_{n}.{k}": v for n in "gd" for k, v in _OPTIMIZER.items()},
    "model.scheduler_interval": (Literal["epoch", "step"], "epoch or step"),
    "model.grad_clip_norm": OPTIONAL_POSITIVE_FLOAT,
    "model.ema_decay": OPTIONAL_DECAY,
    "model.ema_kimg": OPTIONAL_POSITIVE_FLOAT,
    "model.ema_rampup": OPTIONAL_POSITIVE_FLOAT,
    "model.ema_standing_stats": BOOL,
    "model.aux_weight": NON_NEGATIVE_FLOAT,
    "model.instance_noise": NON_NEGATIVE_FLOAT,
    "model.instance_noise_steps": POSITIVE_INT,
    "model.num_fixed_samples": POSITIVE_INT,
    "model.latent_prior": (Literal["normal", "uniform"], "normal or uniform"),
    "model.generator.output_range": (
        tuple[float, float],
        "two numbers [lo, hi] with lo <= -1 and hi >= 1, e.g. [-3, 1]",
    ),
    "model.discriminator.input_range": (
        tuple[float, float],
        "two numbers [lo, hi] with lo < hi, e.g. [0, 1]",
    ),
    "model.discriminator.pack": POSITIVE_INT,
    "model.unrolled_steps": NON_NEGATIVE_INT,
    "model.unrolled_second_order": BOOL,
    "model.log_steps": BOOL,
    "model.g_objective": (
        Literal["adversarial", "feature_matching"],
        "adversarial or feature_matching",
    ),
    "loss.n_critic": POSITIVE_INT,
    "loss.n_gen": POSITIVE_INT,
    "loss.r1_every": POSITIVE_INT,
    "trainer.max_epochs": STEPS,
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.devices": (
        PositiveInt | Literal["auto", -1] | list[NonNegativeInt],
        "a positive integer, auto, -1 or a list of device indices",
    ),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "callbacks.samples.every_n_steps": NON_NEGATIVE_INT,
    **{f"callbacks.metrics.{k}": v for k, v in _METRICS.items()},
    "callbacks.metrics.every_n_epochs": POSITIVE_INT,
    "callbacks.guard.check_every_n_steps": POSITIVE_INT,
    "callbacks.scatter.every_n_steps": NON_NEGATIVE_INT,
    "callbacks.scatter.num_points": POSITIVE_INT,
    "callbacks.report.max_grids": POSITIVE_INT,
}
EVAL_KEYS = {
    "ckpt_path": (str, "the path of a checkpoint file"),
    **{f"metrics.{k}": v for k, v in _METRICS.items()},
    "truncation": OPTIONAL_POSITIVE_FLOAT,
    "wandb": BOOL,
}
SAMPLE_KEYS = {
    "ckpt_path": (str, "the path of a checkpoint file"),
    "mode": (Literal["grid", "interpolate"], "grid or interpolate"),
    "n": POSITIVE_INT,
    "nrow": OPTIONAL_POSITIVE_INT,
    "labels": (
        NonNegativeInt | list[NonNegativeInt] | None,
        "null, a class index or a list of them",
    ),
    "truncation": OPTIONAL_POSITIVE_FLOAT,
    "seed": SEED,
    "save_individual": BOOL,
    "interpolation.paths": POSITIVE_INT,
    "interpolation.steps": (Annotated[int, Field(strict=True, ge=2)], "an integer >= 2"),
    "interpolation.gif": BOOL,
    "wandb": BOOL,
    "interpolation.frame_ms": POSITIVE_INT,
}
EXPORT_KEYS = {
    "ckpt_path": (str, "the path of a checkpoint file"),
    "formats": (
        Annotated[list[Literal["torchscript", "onnx"]], Field(min_length=1)],
        "a non-empty list of torchscript and onnx",
    ),
    "check": BOOL,
    "tolerance": POSITIVE_FLOAT,
}

#: metrics each callback logs, by ``_target_`` (for ``optimized_metric``)
CALLBACK_METRICS = {
    "ganforge.callbacks.metrics.GANMetrics": tuple(
        f"metrics/{m}"
        for m in (
            *("fid", "is", "is_std", "kid", "kid_std"),
            *("precision", "recall", "modes", "kl_uniform"),
        )
    ),
    "ganforge.callbacks.scatter.ScatterPlot": ("toy/modes_covered", "toy/high_quality"),
}
#: what GANModule logs every step, whatever the callbacks (tests and quick sweeps monitor these)
MODULE_METRICS = ("loss/d", "loss/g", "d/real", "d/fake", "grad_norm/d", "grad_norm/g")
_ABSENT = object()
log = logging.getLogger(__name__)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _get(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` (``_ABSENT`` if the key or a parent is absent or null);
    missing (``???``) and unresolvable values are errors naming the key."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except MissingMandatoryValue:
        raise GanforgeError(f"{key} is required but not set; add {key}=<value>") from None
    except OmegaConfBaseException as err:
        raise GanforgeError(f"{key} cannot be resolved: {err.msg.splitlines()[0]}") from None
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return value


def check_value(key: str, value: Any, kind: Any, allowed: str) -> None:
    """Raise a :class:`GanforgeError` naming ``key`` unless ``value`` is a ``kind``."""
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        if isinstance(value, float) and math.isnan(value):
            allowed += " (not nan)"
        raise GanforgeError(
            f"{key}={_shown(value)} is not allowed: {key} must be {allowed}"
        ) from None


def check_keys(cfg: DictConfig, keys: dict[str, tuple[Any, str]]) -> None:
    """Type and range of each of ``keys`` that the config has."""
    for key, (kind, allowed) in keys.items():
        value = _get(cfg, key)
        if value is not _ABSENT:
            check_value(key, value, kind, allowed)


def resolve_all(cfg: DictConfig, prefix: str = "") -> None:
    """Resolve every value (``hydra`` left out): a missing or unresolvable one is an error
    naming its key, instead of an OmegaConf traceback in the middle of building."""
    for key in cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg)):
        full = f"{prefix}.{key}" if prefix else str(key)
        if full == "hydra":
            continue
        if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, key):
            raise GanforgeError(f"{full} is required but not set; add {full}=<value>")
        try:
            value = cfg[key]
        except OmegaConfBaseException as err:
            raise GanforgeError(f"{full} cannot be resolved: {err.msg.splitlines()[0]}") from None
        if isinstance(value, DictConfig | ListConfig):
            resolve_all(value, full)


def check_writable(key: str, path: Any) -> None:
    """``path`` is a folder that exists and is writable, or can be created."""
    if path is _ABSENT or path is None:
        return
    target = Path(str(path)).expanduser()
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if target.exists() and not target.is_dir():
        problem = "is a file, not a folder"
    elif not probe.is_dir():
        problem = f"cannot be created ({probe} is a file, not a folder)"
    elif not os.access(probe, os.W_OK | os.X_OK):
        problem = f"is not writable ({probe} does not allow writing)"
    else:
        return
    raise GanforgeError(f"{key}={path} {problem}; point {key} at a writable folder")


def check_optimized_metric(cfg: DictConfig) -> None:
    """``optimized_metric`` must be a metric one of the configured callbacks logs."""
    metric = _get(cfg, "optimized_metric")
    if metric is None and _get(cfg, "callbacks.checkpoint.monitor") is None:
        raise GanforgeError(
            "optimized_metric=null leaves callbacks.checkpoint (the best checkpoint) without a "
            "metric to monitor; set callbacks.checkpoint=null as well, or name a metric"
        )
    if metric in (_ABSENT, None):
        return
    callbacks = _get(cfg, "callbacks")
    targets = [
        node.get("_target_")
        for node in (callbacks.values() if isinstance(callbacks, dict) else [])
        if isinstance(node, dict)
    ]
    logged = {*MODULE_METRICS, *(m for t in targets for m in CALLBACK_METRICS.get(t, ()))}
    if metric in logged:
        return
    foreign = [t for t in targets if t and not t.startswith(("ganforge.", "lightning."))]
    known = {m for names in CALLBACK_METRICS.values() for m in names}
    if foreign and metric not in known:
        return  # a user callback may log it
    if metric in known:  # e.g. callbacks.metrics=null: a valid name, switched off
        log.warning(
            "optimized_metric=%s is not logged by the configured callbacks: no best checkpoint "
            "is kept and sweepers get None",
            metric,
        )
        return
    allowed = ", ".join(sorted(logged)) or "none: no configured callback logs a metric"
    raise GanforgeError(
        f"optimized_metric={metric} is not a metric the configured callbacks log; allowed: "
        f"{allowed} (or optimized_metric=null callbacks.checkpoint=null)"
    )


def validate_train(cfg: DictConfig) -> None:
    """Validate a ``conf/train.yaml`` config."""
    check_keys(cfg, TRAIN_KEYS)
    resolve_all(cfg)
    check_optimized_metric(cfg)
    check_writable("paths.output_dir", _get(cfg, "paths.output_dir"))
    check_writable("paths.cache_dir", _get(cfg, "paths.cache_dir"))


def _tool(keys: dict[str, tuple[Any, str]], *dirs: str) -> Callable[[DictConfig], None]:
    def validate(cfg: DictConfig) -> None:
        ckpt = _get(cfg, "ckpt_path")
        if ckpt in (_ABSENT, None, ""):
            raise GanforgeError(
                "ckpt_path is required: ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt"
            )
        check_keys(cfg, keys)
        resolve_all(cfg)
        for key in dirs:
            check_writable(key, _get(cfg, key))

    validate.__doc__ = f"Validate a config with the keys {', '.join(keys)}."
    return validate


validate_eval = _tool(EVAL_KEYS, "paths.output_dir", "metrics.cache_dir")
validate_sample = _tool(SAMPLE_KEYS, "output_dir")
validate_export = _tool(EXPORT_KEYS, "output_dir")


class RunFolderCheck(Callback):
    """Hydra callback: the run (or sweep) folder must be creatable. Hydra creates it before
    the task function runs, so without this check a bad ``hydra.run.dir`` is Hydra's own
    traceback; here it is one ``error:`` line and exit status 1."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            check_writable(key, OmegaConf.select(config, key))
        except (GanforgeError, OmegaConfBaseException) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
