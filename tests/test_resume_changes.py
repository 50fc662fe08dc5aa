"""Resuming with changed hyperparameters: the new values are what the run trains with (not the
optimizer state the checkpoint restores), each change is logged, and checkpoints are written
atomically in their own folder, group-readable, with no temporary file left behind."""

from __future__ import annotations

import logging
import pickle
import stat
from pathlib import Path

import pytest
import torch

from ganforge.atomic import atomic_torch_save, remove_partial_files
from ganforge.errors import GanforgeError
from ganforge.run import train
from tests.conftest import QUIET_RUN, TINY_DCGAN, compose_config, run_cli

TINY = ["logger=csv", "callbacks.progress=null", "callbacks.model_summary=null"]
TINY += [*TINY_DCGAN, *QUIET_RUN]
STEP_LR = "{_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:0.5}"


def _optimizer_state(ckpt: Path) -> tuple[list[dict], list[dict]]:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    groups = [s["param_groups"][0] for s in state["optimizer_states"]]
    return groups, state.get("lr_schedulers", [])


def test_resume_trains_with_the_new_learning_rate_and_says_so(tmp_path: Path, caplog) -> None:
    first = tmp_path / "first"
    cfg = compose_config([*TINY, "max_g_steps=2", f"+model.scheduler_g={STEP_LR}"], first)
    train(cfg)
    last = first / "checkpoints" / "last.ckpt"
    groups, _ = _optimizer_state(last)
    assert {g["lr"] for g in groups} == {8e-4}  # the DCGAN default

    second = tmp_path / "second"
    cfg = compose_config(
        [
            *TINY,
            "max_g_steps=4",
            f"ckpt_path={last}",
            "model.optimizer_d.lr=1e-3",
            "model.optimizer_g.lr=3e-3",
            "model.optimizer_g.betas=[0.0,0.99]",
            f"+model.scheduler_g={STEP_LR.replace('0.5', '0.1')}",
        ],
        second,
    )
    with caplog.at_level(logging.INFO, logger="ganforge.resume_changes"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resume:")]
    for key in ("model.optimizer_d.lr", "model.optimizer_g.lr", "model.optimizer_g.betas"):
        assert sum(key in line for line in lines) == 1, lines
    assert any("model.scheduler_g.gamma changed from 0.5 to 0.1" in line for line in lines)
    assert any("max_g_steps changed from 2 to 4" in line for line in lines)

    groups, schedulers = _optimizer_state(second / "checkpoints" / "last.ckpt")
    d_group, g_group = groups  # configure_optimizers returns [D, G]
    assert d_group["lr"] == pytest.approx(1e-3)
    assert g_group["betas"] == (0.0, 0.99)
    assert g_group["initial_lr"] == pytest.approx(3e-3)
    # G's StepLR has not stepped (one short epoch), so it trains at exactly the new rate
    assert g_group["lr"] == pytest.approx(3e-3)
    assert schedulers[0]["base_lrs"] == [pytest.approx(3e-3)]
    assert schedulers[0]["gamma"] == 0.1


ADDED_SINCE = [
    ("loss", "n_gen"),
    ("model", "latent_prior"),
    ("model.generator", "output_range"),
    ("model.discriminator", "input_range"),
    *(
        (f"model.{net}", key)
        for net in ("generator", "discriminator")
        for key in ("kernel_size", "bottom_size")
    ),
]


def test_a_checkpoint_from_before_the_added_keys_resumes_and_says_no_change(
    tmp_path: Path, caplog
) -> None:
    """Checkpoints written before ``loss.n_gen``, ``model.latent_prior``, DCGAN's
    ``kernel_size``/``bottom_size`` and the pixel ranges were added were trained with their
    defaults: resuming one is not a change of a fixed key (which would refuse the resume)."""
    first = tmp_path / "first"
    train(compose_config([*TINY, "max_g_steps=2"], first))
    last = first / "checkpoints" / "last.ckpt"
    old = torch.load(last, weights_only=False)
    for path, key in ADDED_SINCE:
        node = old["ganforge_config"]
        for part in path.split("."):
            node = node[part]
        del node[key]
    torch.save(old, last)

    second = tmp_path / "second"
    with caplog.at_level(logging.INFO, logger="ganforge.resume_changes"):
        train(compose_config([*TINY, "max_g_steps=3", f"ckpt_path={last}"], second))
    messages = [r.getMessage() for r in caplog.records]
    assert not any(key in m for m in messages for _, key in ADDED_SINCE), messages
    resumed = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 3 * 2


def test_resuming_with_another_latent_prior_is_refused_naming_it(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(compose_config([*TINY, "max_g_steps=1"], first))
    last = first / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    cfg = compose_config(
        [*TINY, "max_g_steps=2", f"ckpt_path={last}", "model.latent_prior=uniform"],
        tmp_path / "second",
    )
    with pytest.raises(GanforgeError, match=r"model.latent_prior: normal -> uniform"):
        train(cfg)
    assert last.read_bytes() == before


def test_issue_resume_with_a_huge_learning_rate_diverges_at_once(tmp_path: Path) -> None:
    """The issue's example, shortened: resuming at lr=1e30 must train at 1e30 (and so diverge
    on the first resumed step), not silently continue at the checkpoint's 2e-4."""
    args = TINY
    first = run_cli(["src/train.py", *args, "max_g_steps=2", f"hydra.run.dir={tmp_path / 'a'}"])
    assert first.returncode == 0, first.stderr
    resumed = run_cli(
        [
            "src/train.py",
            *args,
            "model.optimizer_d.lr=1e30",
            "model.optimizer_g.lr=1e30",
            "max_g_steps=4",
            f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'b'}",
        ]
    )
    output = resumed.stdout + resumed.stderr
    assert "model.optimizer_d.lr changed from 0.0008 to 1e+30" in output
    assert "model.optimizer_g.lr changed from 0.0008 to 1e+30" in output
    assert resumed.returncode == 1
    assert "error: training diverged at generator step 3" in resumed.stderr
    assert "Traceback" not in resumed.stderr


def test_checkpoints_are_atomic_in_their_folder_and_group_readable(
    tmp_path: Path, monkeypatch
) -> None:
    staged: list[str] = []
    real_mkstemp = __import__("tempfile").mkstemp

    def spy(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        staged.append(name)
        return fd, name

    monkeypatch.setattr("ganforge.atomic.tempfile.mkstemp", spy)
    out = tmp_path / "run"
    folder = out / "checkpoints"
    folder.mkdir(parents=True)
    leftover = folder / ".last.ckpt.abc123.partial"  # as a SIGKILL mid-write leaves it
    leftover.write_bytes(b"half a checkpoint")
    train(compose_config([*TINY, "max_g_steps=1"], out))
    assert not leftover.exists()
    assert staged and all(Path(name).parent == folder for name in staged)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 2


def test_atomic_save_is_group_readable_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "stats.pt"
    atomic_torch_save({"x": torch.ones(2)}, path)
    assert stat.S_IMODE(path.stat().st_mode) & stat.S_IRGRP
    with pytest.raises((pickle.PicklingError, AttributeError)):
        atomic_torch_save({"bad": lambda: None}, path)  # unpicklable: the old file stays
    assert torch.load(path)["x"].sum() == 2
    assert [p.name for p in path.parent.iterdir()] == ["stats.pt"]
    (path.parent / ".stats.pt.x.partial").write_bytes(b"")
    assert [p.name for p in remove_partial_files(path.parent)] == [".stats.pt.x.partial"]
