"""A table of bad inputs a user types, each answered with exit status 1 and one ``error:`` line
naming the key and the value, before anything is built (no traceback, no run started).

Most rows run in-process (the config composed as Hydra does, then ``run_job`` as the entry
scripts call it); the rows in ``CLI_CASES`` go through the real command line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from ganforge.build import build_module
from ganforge.cli import run_job
from ganforge.jobs import evaluate_checkpoint, export, sample
from ganforge.run import train
from ganforge.validate import validate_eval, validate_export, validate_sample, validate_train
from tests.conftest import CONF, TINY_DCGAN, run_cli

JOBS: dict[str, tuple[Callable, Callable]] = {
    "train": (train, validate_train),
    "eval": (evaluate_checkpoint, validate_eval),
    "sample": (sample, validate_sample),
    "export": (export, validate_export),
}
TINY = [
    "logger=csv",
    *TINY_DCGAN,
    "callbacks.progress=null",
    "callbacks.model_summary=null",
    "callbacks.metrics=null",
    "callbacks.report=null",
    "trainer.max_epochs=1",
]
#: placeholders in the overrides: {tmp} the test's folder, {file} a regular file in it,
#: {ckpt} a ganforge checkpoint of the TINY model, {junk} a folder of unreadable images
TRAIN_CASES = [
    ("data.batch_size=abc", ["data.batch_size='abc'", "positive integer"]),
    ("data.batch_size=1.5", ["data.batch_size=1.5", "positive integer"]),
    ("data.batch_size=0", ["data.batch_size=0", "positive integer"]),
    ("data.image_size=-32", ["data.image_size=-32", "positive integer"]),
    ("data.channels=abc", ["data.channels='abc'", "positive integer"]),
    ("data.num_classes=0", ["data.num_classes=0", "null or a positive integer"]),
    ("data.num_val=-1", ["data.num_val=-1", "integer >= 0"]),
    ("trainer.max_epochs=-3", ["trainer.max_epochs=-3", "-1 for no limit"]),
    ("trainer.devices=0", ["trainer.devices=0", "positive integer, auto"]),
    ("trainer.num_nodes=0", ["trainer.num_nodes=0", "positive integer"]),
    ("trainer.log_every_n_steps=0", ["trainer.log_every_n_steps=0", "positive integer"]),
    ("max_g_steps=abc", ["max_g_steps='abc'", "positive integer"]),
    ("max_g_steps=-5", ["max_g_steps=-5", "-1 for no limit"]),
    ("seed=abc", ["seed='abc'", "an integer or null"]),
    ("model.generator.latent_dim=0", ["model.generator.latent_dim=0", "positive integer"]),
    ("model.generator.base_width=abc", ["model.generator.base_width='abc'", "positive"]),
    ("model.generator.output_range=[0,1]", ["output_range=[0, 1]", "-1 or below"]),
    ("model.discriminator.input_range=abc", ["input_range='abc'", "[lo, hi] with lo < hi"]),
    ("model.discriminator.input_range=[1,0]", ["input_range=[1, 0]", "lo < hi"]),
    ("model.discriminator.max_width=0", ["model.discriminator.max_width=0", "positive"]),
    ("model.optimizer_g.lr=-1e-4", ["model.optimizer_g.lr=-0.0001", "a positive number"]),
    ("model.optimizer_d.lr=0", ["model.optimizer_d.lr=0", "a positive number"]),
    ("model.optimizer_d.lr=nan", ["model.optimizer_d.lr=nan", "positive number (not nan)"]),
    ("model.optimizer_g.lr=fast", ["model.optimizer_g.lr='fast'", "a positive number"]),
    ("model.optimizer_g.betas=[0.5,1.5]", ["model.optimizer_g.betas=[0.5, 1.5]", "[0, 1)"]),
    ("model.optimizer_d.weight_decay=-1", ["model.optimizer_d.weight_decay=-1", ">= 0"]),
    ("model.ema_decay=1.5", ["model.ema_decay=1.5", "null or a number in [0, 1)"]),
    ("model.grad_clip_norm=0", ["model.grad_clip_norm=0", "null or a positive number"]),
    ("model.instance_noise=-0.1", ["model.instance_noise=-0.1", ">= 0"]),
    ("model.num_fixed_samples=0", ["model.num_fixed_samples=0", "positive integer"]),
    ("model.conditioning=bogus", ["model.conditioning='bogus'", "none, concat, acgan"]),
    ("model.scheduler_interval=hourly", ["model.scheduler_interval='hourly'", "epoch or step"]),
    ("loss.n_critic=0", ["loss.n_critic=0", "positive integer"]),
    ("loss.n_gen=0", ["loss.n_gen=0", "positive integer"]),
    ("callbacks.guard.check_every_n_steps=0", ["callbacks.guard.check_every_n_steps=0"]),
    ("callbacks.samples.every_n_steps=-1", ["callbacks.samples.every_n_steps=-1", ">= 0"]),
    (
        "callbacks.metrics={_target_:ganforge.callbacks.metrics.GANMetrics,num_samples:0}",
        ["callbacks.metrics.num_samples=0", "positive integer"],
    ),
    ("optimized_metric=metrics/nothing", ["optimized_metric=metrics/nothing", "allowed:"]),
    ("optimized_metric=null", ["optimized_metric=null", "callbacks.checkpoint=null"]),
    ("data=folder", ["data.path is required but not set", "data.path=<value>"]),
    ("data=folder data.path=/nonexistent/faces", ["data.path=/nonexistent/faces does not"]),
    ("data=folder data.path={junk}", ["image files under {junk} could be read"]),
    ("model.generator.latent_dim=${nosuch}", ["model.generator.latent_dim cannot be resolved"]),
    ("+extra=${oc.env:GANFORGE_NO_SUCH_VAR}", ["extra cannot be resolved", "GANFORGE_NO_SUCH"]),
    ("paths.cache_dir={file}/cache", ["paths.cache_dir={file}/cache cannot be created"]),
    ("paths.cache_dir={file}", ["paths.cache_dir={file} is a file, not a folder"]),
    ("ckpt_path=/nonexistent/last.ckpt", ["checkpoint not found: /nonexistent/last.ckpt"]),
    ("ckpt_path={ckpt} data.batch_size=16", ["changed data.batch_size: 8 -> 16", "new run"]),
    # norm=layer: the default loss's R1 put LayerNorm in D, which plain WGAN would not choose
    (
        "ckpt_path={ckpt} loss=wgan model.discriminator.norm=layer",
        ["cannot resume with a changed", "loss.n_critic: 1 -> 5"],
    ),
    ("ckpt_path={ckpt} loss=wgan", ["written for another architecture", "discriminator"]),
    ("ckpt_path={ckpt} model.conditioning=concat", ["model.conditioning: none -> concat"]),
]
EVAL_CASES = [
    ("", ["ckpt_path is required"]),
    ("ckpt_path=/nonexistent.ckpt", ["checkpoint not found: /nonexistent.ckpt"]),
    ("ckpt_path={ckpt} metrics.num_samples=0", ["metrics.num_samples=0", "positive integer"]),
    ("ckpt_path={ckpt} metrics.batch_size=abc", ["metrics.batch_size='abc'"]),
    ("ckpt_path={ckpt} metrics.feature_space=clip", ["metrics.feature_space='clip'", "digits"]),
    ("ckpt_path={ckpt} metrics.kid_subset_size=0", ["metrics.kid_subset_size=0"]),
    ("ckpt_path={ckpt} metrics.cache_dir={file}/x", ["metrics.cache_dir={file}/x cannot be"]),
    ("ckpt_path={ckpt} truncation=0", ["truncation=0 is not allowed", "null or a positive"]),
]
SAMPLE_CASES = [
    ("", ["ckpt_path is required"]),
    ("ckpt_path=/nonexistent.ckpt", ["checkpoint not found: /nonexistent.ckpt"]),
    ("ckpt_path={ckpt} n=0", ["n=0 is not allowed", "positive integer"]),
    ("ckpt_path={ckpt} n=abc", ["n='abc' is not allowed"]),
    ("ckpt_path={ckpt} mode=video", ["mode='video'", "grid or interpolate"]),
    ("ckpt_path={ckpt} truncation=-1", ["truncation=-1", "null or a positive number"]),
    ("ckpt_path={ckpt} interpolation.steps=1", ["interpolation.steps=1", ">= 2"]),
    ("ckpt_path={ckpt} labels=-1", ["labels=-1", "class index"]),
    ("ckpt_path={ckpt} output_dir={file}/out", ["output_dir={file}/out cannot be created"]),
]
EXPORT_CASES = [
    ("", ["ckpt_path is required"]),
    ("ckpt_path=/nonexistent.ckpt", ["checkpoint not found: /nonexistent.ckpt"]),
    ("ckpt_path={ckpt} formats=[tflite]", ["formats=['tflite']", "torchscript and onnx"]),
    ("ckpt_path={ckpt} formats=[]", ["formats=[]", "non-empty list"]),
    ("ckpt_path={ckpt} tolerance=0", ["tolerance=0", "a positive number"]),
    ("ckpt_path={ckpt} check=maybe", ["check='maybe'", "true or false"]),
]
CASES = [
    *(("train", o, w) for o, w in TRAIN_CASES),
    *(("eval", o, w) for o, w in EVAL_CASES),
    *(("sample", o, w) for o, w in SAMPLE_CASES),
    *(("export", o, w) for o, w in EXPORT_CASES),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The placeholders' values: a regular file, a TINY checkpoint, a folder of junk images."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "file").write_text("not a folder")
    junk = root / "junk"
    junk.mkdir()
    (junk / "broken.png").write_bytes(b"not a png")
    cfg = compose_job("train", [*TINY], root / "run")
    module = build_module(cfg)
    ckpt = root / "tiny.ckpt"
    torch.save({"state_dict": module.state_dict(), "ganforge_config": module.run_config}, ckpt)
    return {"file": str(root / "file"), "ckpt": str(ckpt), "junk": str(junk)}


def compose_job(job: str, overrides: list[str], out: Path) -> DictConfig:
    """The config of ``src/<job>.py`` with ``overrides``, its run folder ``out``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(job, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


@pytest.mark.parametrize(
    ("job", "overrides", "words"), CASES, ids=[f"{j}:{o or 'none'}" for j, o, _ in CASES]
)
def test_bad_input_is_one_line_naming_the_key(
    job: str, overrides: str, words: list[str], files, tmp_path: Path, capsys
) -> None:
    base = TINY if job == "train" else []
    out = tmp_path / "run"
    cfg = compose_job(job, [*base, *_fill(overrides, files).split()], out)
    if job == "train":
        with open_dict(cfg):
            cfg.paths.cache_dir = cfg.paths.cache_dir if "cache_dir" in overrides else str(tmp_path)
    function, validate = JOBS[job]
    with pytest.raises(SystemExit) as info:
        run_job(function, cfg, validate)
    assert info.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for word in words:
        assert _fill(word, files) in lines[0]
    assert "Traceback" not in err
    assert not (out / "checkpoints").exists()  # nothing trained


#: without the validation pass, the library's own errors still end as one line naming the key
UNVALIDATED_CASES = [
    ("trainer.max_epochs=-3", "`max_epochs` must be a non-negative integer or -1"),
    ("data=folder", "data.path: Missing mandatory value"),
    ("model.generator.latent_dim=0", "check model.generator (latent_dim=0)"),
    ("max_g_steps=abc", "trainer.max_steps"),
]


@pytest.mark.parametrize(("overrides", "words"), UNVALIDATED_CASES)
def test_library_errors_are_one_line_even_unvalidated(
    overrides: str, words: str, tmp_path: Path, capsys
) -> None:
    cfg = compose_job("train", [*TINY, *overrides.split()], tmp_path / "run")
    with pytest.raises(SystemExit) as info:
        run_job(train, cfg)
    assert info.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


#: through the real command line: (script, arguments, expected words in the one line)
CLI_CASES = [
    ("train", "data.batch_size=abc", "data.batch_size='abc'"),
    ("train", "data=folder", "data.path is required"),
    ("train", "hydra.run.dir={file}/run", "hydra.run.dir={file}/run cannot be created"),
    ("sample", "ckpt_path={ckpt} n=0", "n=0 is not allowed"),
    ("export", "ckpt_path={ckpt} formats=[tflite]", "formats=['tflite']"),
]


@pytest.mark.parametrize(("script", "args", "words"), CLI_CASES, ids=[c[1] for c in CLI_CASES])
def test_bad_input_through_the_command_line(
    script: str, args: str, words: str, files, tmp_path: Path
) -> None:
    argv = _fill(args, files).split()
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        argv.append(f"hydra.run.dir={tmp_path / 'run'}")
    out = run_cli([f"src/{script}.py", *argv], timeout=300, GANFORGE_CACHE=str(tmp_path))
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert _fill(words, files) in errors[0]
    assert "Traceback" not in out.stderr


def test_run_shorter_than_the_log_interval_ends_without_a_traceback(tmp_path: Path, caplog) -> None:
    """The issue's ``data=ring8 model.conditioning=concat`` run, shorter than
    ``log_every_n_steps``: nothing to report is a one-line warning, not a logged traceback."""
    cfg = compose_job(
        "train",
        [
            *("data=ring8", "model.conditioning=concat", "max_g_steps=2", "logger=csv"),
            *("callbacks.progress=null", "callbacks.model_summary=null", "callbacks.scatter=null"),
        ],
        tmp_path,
    )
    with caplog.at_level(logging.WARNING):
        run_job(train, cfg, validate_train)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("no run report:" in r.getMessage() for r in caplog.records)
