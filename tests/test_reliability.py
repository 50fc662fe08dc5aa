"""Reliability as a user meets it: exact resume, preemption by signal, the divergence guard,
clear errors for bad input, and W&B failures that never take a run down."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import OmegaConf

from ganforge.build import build_module
from ganforge.callbacks import DivergenceGuard
from ganforge.callbacks.guard import DivergenceError
from ganforge.cli import EXIT_PREEMPTED, run_job
from ganforge.data.loader import TensorBatches
from ganforge.run import train
from tests.conftest import (
    QUIET_RUN,
    TINY_DCGAN,
    compose_config,
    run_cli,
    sigterm_once_training,
)

TINY = [*TINY_DCGAN, *QUIET_RUN, "trainer.log_every_n_steps=1"]
#: every piece of state resume must carry: two optimizers, LR schedulers stepped per epoch,
#: EMA, augmentation and instance noise (global RNG), data order across an epoch boundary
FULL_STATE = [
    *TINY,
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=4",
    "model.ema_decay=0.9",
    "model.instance_noise=0.1",
    "data.augment=hflip",
    "+model.scheduler_g={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:0.5}",
    "+model.scheduler_d={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:0.5}",
]


def make(out: Path, *overrides: str):
    """The training config, CSV-logged into ``out``."""
    base = ["logger=csv", "callbacks.progress=null", "callbacks.model_summary=null"]
    return compose_config([*base, *overrides], out)


def extra_callback(name: str, cls: type, **kwargs) -> list[str]:
    """Overrides adding a test callback to the run the way users add theirs: by config."""
    target = f"+callbacks.{name}._target_={__name__}.{cls.__name__}"
    return [target, *(f"+callbacks.{name}.{k}={v}" for k, v in kwargs.items())]


class SignalAt(L.Callback):
    """Sends this process ``signum`` while generator step ``step`` runs, as a scheduler would."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.g_step == self.step - 1:
            os.kill(os.getpid(), self.signum)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize(
    ("stop_at", "signum"),
    [(3, signal.SIGTERM), (4, signal.SIGINT)],
    ids=["sigterm-mid-epoch", "sigint-at-epoch-end"],
)
def test_interrupted_and_resumed_run_matches_uninterrupted_bitwise(
    tmp_path: Path, stop_at: int, signum: int
) -> None:
    train(make(tmp_path / "straight", *FULL_STATE))
    straight = weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")

    out = tmp_path / "interrupted"
    ctrl_c = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup
    with pytest.raises(SIGTERMException):
        train(
            make(out, *FULL_STATE, *extra_callback("stop", SignalAt, step=stop_at, signum=signum))
        )
    last = out / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["global_step"] == stop_at * 2  # one D and one G step per generator step
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # the process's own handler, restored

    train(make(out, *FULL_STATE, f"ckpt_path={last}"))
    resumed = weights(last)
    assert resumed.keys() == straight.keys()
    assert any(k.startswith("g_ema.") for k in resumed) and "fixed_noise" in resumed
    differing = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert differing == []


@pytest.mark.parametrize("n_gen", [1, 2])
def test_two_process_run_interrupted_and_resumed_matches_uninterrupted_bitwise(
    tmp_path: Path, n_gen: int
) -> None:
    """The same under DDP (2 CPU ranks, gloo): each rank's own noise stream is saved and given
    back, so a resumed rank draws exactly what it would have drawn; with ``n_gen=2`` too (three
    optimizer steps per iteration, so the step counts on resume must map back to iterations)."""
    state = [*FULL_STATE, "trainer.devices=2", f"loss.n_gen={n_gen}"]
    train(make(tmp_path / "straight", *state))
    straight = weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")

    out = tmp_path / "interrupted"
    stop = extra_callback("stop", SignalAt, step=3, signum=signal.SIGTERM)
    with pytest.raises(SIGTERMException):
        train(make(out, *state, *stop))
    last = out / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert len(saved["rng_states_per_rank"]) == 2
    assert saved["global_step"] == 3 * (1 + n_gen)  # stopped after 3 generator iterations

    train(make(out, *state, f"ckpt_path={last}"))
    resumed = weights(last)
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []


def test_in_memory_loader_follows_lightning_epoch_and_resumes_mid_epoch() -> None:
    def loader() -> TensorBatches:
        x = torch.arange(40.0).view(40, 1, 1, 1)
        return TensorBatches(x, torch.zeros(40, dtype=torch.long), batch_size=4, seed=3)

    def firsts(batches) -> list[float]:
        return [float(b[0].flatten()[0]) for b in batches]

    straight = loader()
    straight.sampler.set_epoch(0)  # what Lightning calls at every epoch start
    epoch0 = firsts(straight)
    straight.sampler.set_epoch(1)
    epoch1 = firsts(straight)
    assert epoch0 != epoch1  # a fresh order every epoch

    resumed = loader()
    resumed.load_state_dict({"epoch": 1, "served": 3})
    resumed.set_epoch(1)
    assert firsts(resumed) == epoch1[3:]  # continues after the 3 batches already trained on
    resumed.load_state_dict({"epoch": 1, "served": 10})
    resumed.set_epoch(2)  # restored at an epoch's end: the next epoch starts at its first batch
    assert len(firsts(resumed)) == 10


def test_in_memory_hflip_mirrors_about_half_and_repeats_on_resume() -> None:
    x = torch.randn(64, 1, 2, 3)

    def loader() -> TensorBatches:
        y = torch.arange(64)  # labels identify each image after shuffling
        return TensorBatches(x, y, batch_size=8, seed=5, augment="hflip")

    straight = loader()
    straight.set_epoch(2)
    batches = list(straight)
    images, labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    flipped = (images != x[labels]).flatten(1).any(1)
    assert 16 <= int(flipped.sum()) <= 48
    assert torch.equal(images[flipped], x[labels][flipped].flip(-1))

    resumed = loader()
    resumed.load_state_dict({"epoch": 2, "served": 5})
    resumed.set_epoch(2)
    assert torch.equal(torch.cat([b[0] for b in resumed]), torch.cat([b[0] for b in batches[5:]]))
    with pytest.raises(ValueError, match="'vflip'"):
        TensorBatches(x, torch.arange(64), batch_size=8, augment="vflip")


def test_requeue_signal_checkpoints_at_step_boundary_then_runs_the_requeue_handler(
    tmp_path: Path,
) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    requeued: list[int] = []

    def requeue(signum, frame):  # what submitit installs for SIGUSR2
        requeued.append(torch.load(last, weights_only=False)["global_step"])

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        with pytest.raises(SIGTERMException):
            train(
                make(
                    tmp_path,
                    *TINY,
                    "trainer.max_epochs=1",
                    "+trainer.limit_train_batches=6",
                    *extra_callback("stop", SignalAt, step=2, signum=signal.SIGUSR2),
                )
            )
        assert requeued == [2 * 2]  # called once, after last.ckpt of step 2 was written
        assert signal.getsignal(signal.SIGUSR2) is requeue  # handed back after training
    finally:
        signal.signal(signal.SIGUSR2, previous)


def _subprocess_args(run_dir: Path, *extra: str) -> list[str]:
    return ["src/train.py", "logger=csv", f"hydra.run.dir={run_dir}", *TINY, *extra]


def test_sigterm_writes_resumable_checkpoint_and_exits_nonzero(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = _subprocess_args(run_dir, "trainer.max_epochs=1000", "callbacks.samples.every_n_steps=1")
    status, output = sigterm_once_training(args, run_dir)
    assert status == EXIT_PREEMPTED, output[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    stopped_at = torch.load(last, weights_only=False)["global_step"] // 2
    assert stopped_at >= 2
    assert "Traceback" not in output

    resumed = run_cli(
        _subprocess_args(tmp_path / "resumed", f"ckpt_path={last}", f"max_g_steps={stopped_at + 2}")
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == (stopped_at + 2) * 2


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.ckpt")}


class PoisonAt(L.Callback):
    """Fills one discriminator weight with NaN before generator step ``step`` runs, and
    records the checkpoints in ``folder`` at that moment in :attr:`seen` (keyed by folder)."""

    seen: dict[str, dict[str, str]] = {}

    def __init__(self, step: int, folder: str):
        self.step, self.folder = step, folder

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.g_step == self.step - 1:
            self.seen[self.folder] = digests(Path(self.folder))
            with torch.no_grad():
                next(pl_module.discriminator.parameters()).fill_(float("nan"))


def test_divergence_stops_naming_step_and_network_and_keeps_last_checkpoint(
    tmp_path: Path,
) -> None:
    steps = tmp_path / "steps"  # a checkpoint after every generator step: last.ckpt + one each
    cfg = make(
        tmp_path,
        *TINY,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=6",
        "+callbacks.steps._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        f"+callbacks.steps.dirpath={steps}",
        "+callbacks.steps.every_n_train_steps=2",
        "+callbacks.steps.save_top_k=-1",
        "+callbacks.steps.save_last=true",
        *extra_callback("poison", PoisonAt, step=4, folder=steps),
    )
    with pytest.raises(DivergenceError) as info:
        train(cfg)
    message = str(info.value)
    assert "generator step 4" in message and "discriminator" in message
    assert str(steps / "last.ckpt") in message
    before = PoisonAt.seen[str(steps)]
    assert len(before) == 4  # last.ckpt and steps 1-3
    assert digests(steps) == before  # nothing rewritten, nothing new
    saved = torch.load(steps / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 3 * 2
    tensors = [v for v in saved["state_dict"].values() if v.is_floating_point()]
    assert all(torch.isfinite(v).all() for v in tensors)


def test_lightning_runs_model_checkpoint_after_the_guard_whatever_the_config_order(
    tmp_path: Path,
) -> None:
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path)
    trainer = L.Trainer(callbacks=[checkpoint, DivergenceGuard()], logger=False)
    names = [type(cb).__name__ for cb in trainer.callbacks]
    assert names.index("DivergenceGuard") < names.index("ModelCheckpoint")


def test_huge_learning_rate_fails_through_the_cli_with_one_clear_line(tmp_path: Path) -> None:
    out = run_cli(_subprocess_args(tmp_path, "trainer.max_epochs=1", "model.optimizer_g.lr=inf"))
    assert out.returncode == 1
    assert "error: training diverged at generator step 1" in out.stderr
    assert "generator" in out.stderr and "Traceback" not in out.stderr


class LogModes(L.Callback):
    """Logs a falling mode-coverage value, as a metrics callback would."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.log("metrics/modes", 10.0 - 2 * pl_module.g_step)


def test_mode_collapse_is_flagged_once(tmp_path: Path, caplog) -> None:
    cfg = make(
        tmp_path,
        *TINY,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=6",
        "callbacks.guard.collapse_floor=5",
        *extra_callback("modes", LogModes),
    )
    with caplog.at_level(logging.WARNING, logger="ganforge.callbacks.guard"):
        train(cfg)
    flagged = [r.getMessage() for r in caplog.records if "mode collapse" in r.getMessage()]
    assert len(flagged) == 1
    assert "metrics/modes = 4 is below the floor 5" in flagged[0]


def _clear_error(tmp_path: Path, capsys, *overrides: str, base: list[str] = TINY) -> str:
    """Run the job the way ``src/train.py`` does and return the one-line error it prints."""
    cfg = make(tmp_path, *base, "trainer.max_epochs=1", *overrides)
    with pytest.raises(SystemExit) as info:
        run_job(train, cfg)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not (tmp_path / "checkpoints").exists()  # failed before training
    return err


def _checkpoint_of(tmp_path: Path, *overrides: str) -> Path:
    """A ganforge checkpoint as training writes it, without training."""
    cfg = make(tmp_path / "src", *TINY, *overrides)
    module = build_module(cfg)
    path = tmp_path / "model.ckpt"
    state = {"state_dict": module.state_dict(), "ganforge_config": module.run_config}
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.generator.channels=3"], "model.generator.channels=3 does not match the data"),
        (
            ["model.conditioning=concat", "model.discriminator.num_classes=7"],
            "model.discriminator.num_classes=7 does not match",
        ),
        (
            ["model.conditioning=acgan", "data.num_classes=null"],
            "model.conditioning=acgan needs labelled data",
        ),
        (["data=folder", "data.path=/nonexistent/faces"], "data.path=/nonexistent/faces does not"),
        (["ckpt_path=/nonexistent/last.ckpt"], "checkpoint not found: /nonexistent/last.ckpt"),
    ],
    ids=["channels", "classes", "unlabelled", "data-path", "ckpt-missing"],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, capsys, overrides, expected) -> None:
    assert expected in _clear_error(tmp_path, capsys, *overrides)


def test_empty_dataset_folder_is_one_clear_line(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _clear_error(tmp_path, capsys, "data=folder", f"data.path={empty}")
    assert f"data.path={empty} is an empty folder" in err


def test_truncated_checkpoint_is_one_clear_line(tmp_path: Path, capsys) -> None:
    path = _checkpoint_of(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    err = _clear_error(tmp_path, capsys, f"ckpt_path={path}")
    assert f"checkpoint {path} cannot be read" in err


def test_checkpoint_of_other_architecture_names_the_change(tmp_path: Path, capsys) -> None:
    path = _checkpoint_of(tmp_path, "model.generator.base_width=16")
    err = _clear_error(tmp_path, capsys, f"ckpt_path={path}")
    assert "was written for another architecture" in err
    assert "model.generator.base_width: 16 -> 8" in err


def test_metric_weights_missing_offline_is_one_clear_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "pt_inception.pth"
    err = _clear_error(
        tmp_path,
        capsys,
        "callbacks.metrics.feature_space=inception",
        f"callbacks.metrics.feature_extractor_weights_path={missing}",
        base=[o for o in TINY if not o.startswith("callbacks.metrics")],
    )
    assert f"Inception weights not found at feature_extractor_weights_path={missing}" in err


def test_unknown_group_option_through_the_cli(tmp_path: Path) -> None:
    out = run_cli(["src/train.py", "model=nosuch", f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 1
    assert "Could not find 'model/nosuch'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("offline_works", [True, False], ids=["to-offline", "to-csv"])
def test_wandb_failure_falls_back_and_training_goes_on(
    tmp_path: Path, monkeypatch, offline_works: bool
) -> None:
    import wandb

    real_init = wandb.init

    def init(*args, **kwargs):
        if os.environ.get("WANDB_MODE") == "online" or not offline_works:
            raise wandb.errors.CommError("network is unreachable")
        return real_init(*args, **kwargs)

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb, "init", init)
    cfg = compose_config(
        [
            *TINY,
            "callbacks.progress=null",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
        ],
        tmp_path,
    )
    start = time.monotonic()
    run_job(train, cfg)
    assert time.monotonic() - start < 60  # no network timeout was waited on
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    csv_logs = list((tmp_path / "csv").rglob("metrics.csv"))
    assert (len(offline_runs), len(csv_logs)) == ((1, 0) if offline_works else (0, 1))


def test_resume_continues_the_same_wandb_run(tmp_path: Path) -> None:
    common = [*TINY, "callbacks.progress=null", "+trainer.limit_train_batches=2"]
    run_job(train, compose_config([*common, "trainer.max_epochs=1"], tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    run_id = torch.load(last, weights_only=False)["wandb_run_id"]
    assert run_id

    second = compose_config(
        [*common, "trainer.max_epochs=2", f"ckpt_path={last}"], tmp_path / "second"
    )
    run_job(train, second)
    assert OmegaConf.select(second, "logger.wandb.id") == run_id
    resumed = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["wandb_run_id"] == run_id
