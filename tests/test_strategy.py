"""Scaling out: DDP from ``trainer.devices``, multiruns, Optuna, submitit, W&B grouping.

The command-line tests share a few runs (each DDP rank is a Python process importing torch and
Lightning, slow on CPU): one 2-job multirun, ``trainer.devices=4,1`` (the README's 4-process
command as one job), logging to offline W&B; a ``trainer=ddp_sim`` run resuming the 4-process
job's checkpoint; and a 2-trial Optuna study launched through submitit's local executor.
"""

from __future__ import annotations

import csv
import json
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from hydra.core.utils import JobReturn, JobStatus
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import OmegaConf

from ganforge.checkpoint import resume_path
from ganforge.errors import GanforgeError
from ganforge.strategy import select_strategy
from ganforge.sweep import RESULT_FILE, job_result, read_results, write_summary
from tests.conftest import run_cli

TINY = [
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "data.image_size=16",
    "+trainer.limit_train_batches=2",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress=null",
    "callbacks.model_summary=null",
    "callbacks.metrics=null",
    # a metric every run logs, so the sweeps have values to minimise and summarise
    "optimized_metric=loss/g",
]


def train(root: Path, *args: str, multirun: bool = False, **env: str):
    """``src/train.py [-m] TINY args`` with outputs under ``root``; later overrides win."""
    flags = ["-m"] if multirun else []
    out = run_cli(["src/train.py", *flags, *TINY, *args], GANFORGE_ROOT=str(root), **env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def wandb_records(path: Path) -> Iterator[object]:
    """The protobuf records of an offline ``run-*.wandb`` file (a LevelDB-style log:
    a 7-byte header, then 32 KiB blocks of chunks with crc32, length and type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, chunks = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or kind == 0:  # block padding
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


# ------------------------------------------------------------------ strategy choice
def test_one_device_uses_lightnings_default_strategy() -> None:
    assert select_strategy("cpu", 1) == "auto"
    assert select_strategy("auto", 1) == "auto"


def test_several_cpu_processes_spawn_ddp_for_alternating_updates() -> None:
    strategy = select_strategy("cpu", 4)
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert strategy._start_method == "spawn"
    assert type(strategy.cluster_environment) is LightningEnvironment


def test_slurm_tasks_are_used_not_relaunched(monkeypatch: pytest.MonkeyPatch) -> None:
    # what sbatch --nodes=2 --ntasks-per-node=4 (as submitit writes it) sets for each task
    slurm = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_NAME": "train"}
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    strategy = select_strategy("cpu", 4, num_nodes=2)
    env = strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.creates_processes_externally
    assert env.requeue_signal == signal.SIGUSR2  # submitit's signal


def test_bad_device_requests_are_explained() -> None:
    with pytest.raises(GanforgeError, match="num_nodes=2"):
        select_strategy("cpu", 2, num_nodes=2)
    with pytest.raises(GanforgeError, match=r"trainer\.devices=-3"):
        select_strategy("cpu", -3)


def test_trainer_config_builds_ddp_with_sync_batchnorm(make_cfg) -> None:
    from hydra.utils import instantiate
    from lightning.pytorch.plugins import TorchSyncBatchNorm

    cfg = make_cfg("trainer.devices=2", "trainer.sync_batchnorm=true")
    trainer = instantiate(cfg.trainer)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.world_size == 2
    assert isinstance(trainer.strategy._layer_sync, TorchSyncBatchNorm)
    single = instantiate(make_cfg().trainer)
    assert not isinstance(single.strategy, DDPStrategy)


def test_single_runs_get_no_wandb_group(make_cfg) -> None:
    wandb = make_cfg("logger=wandb").logger.wandb
    assert wandb.group is None and wandb.name is None


def test_ckpt_path_last_resumes_only_when_the_folder_has_a_last_checkpoint(tmp_path: Path) -> None:
    assert resume_path("last", tmp_path) is None  # first start of a job: fresh
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert resume_path("last", tmp_path) == str(tmp_path / "last.ckpt")  # requeued: continue
    assert resume_path("/runs/a.ckpt", tmp_path) == "/runs/a.ckpt"
    assert resume_path(None, tmp_path) is None


# ------------------------------------------------------------------ sweep summary
def test_summary_keeps_failed_jobs_with_empty_values(tmp_path: Path) -> None:
    def job(num: int, status: JobStatus, value: object) -> None:
        folder = tmp_path / str(num)
        cfg = OmegaConf.create(
            {
                "optimized_metric": "metrics/fid",
                "callbacks": {"checkpoint": {"dirpath": str(folder / "checkpoints")}},
                "hydra": {"job": {"num": num}, "runtime": {"output_dir": str(folder)}},
            }
        )
        ret = JobReturn(overrides=[f"seed={num}"], status=status, _return_value=value)
        folder.mkdir(exist_ok=True)
        (folder / RESULT_FILE).write_text(json.dumps(job_result(cfg, ret)))

    job(1, JobStatus.COMPLETED, float("nan"))  # diverged: no usable final value
    (tmp_path / "2" / "checkpoints").mkdir(parents=True)
    state = {"best_model_score": torch.tensor(3.5)}
    torch.save(
        {"callbacks": {"ModelCheckpoint{'monitor': 'metrics/fid'}": state}},
        tmp_path / "2" / "checkpoints" / "last.ckpt",
    )
    job(2, JobStatus.COMPLETED, torch.tensor(4.0))
    job(0, JobStatus.FAILED, RuntimeError("crashed"))

    write_summary(read_results(tmp_path), tmp_path)
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    got = [(r["job"], r["status"], r["final"], r["best"]) for r in rows]
    assert got == [
        ("0", "FAILED", "", ""),
        ("1", "COMPLETED", "", ""),
        ("2", "COMPLETED", "4.0", "3.5"),
    ]
    assert (
        "| 2 | seed=2 | COMPLETED | metrics/fid | 4 | 3.5 |"
        in (tmp_path / "summary.md").read_text()
    )


# ------------------------------------------------------------------ command lines
@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``-m trainer.devices=4,1`` with offline W&B: the multirun folder."""
    root = tmp_path_factory.mktemp("sweep")
    out = train(root, "logger=wandb", "trainer.devices=4,1", multirun=True, WANDB_MODE="offline")
    assert (out.stdout + out.stderr).count("MEMBER: 4/4") == 1  # job 0 only, on 4 ranks
    assert not (root / "outputs" / "train" / "runs").exists()  # no rank re-ran the command
    return only(list((root / "outputs" / "train" / "multiruns").iterdir()))


def test_ddp_multirun_has_one_folder_config_and_checkpoint_set_per_job(ddp_sweep: Path) -> None:
    jobs = sorted(p.name for p in ddp_sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    for job in jobs:
        folder = ddp_sweep / job
        assert len(list(folder.rglob("config.yaml"))) == 1
        ckpts = sorted(p.name for p in (folder / "checkpoints").iterdir())
        assert len(ckpts) == 2 and ckpts[1] == "last.ckpt" and ckpts[0].startswith("best")
        assert not list(folder.rglob("*.temp*"))
        ckpt = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)
        assert ckpt["global_step"] == 2 * 2  # 2 generator iterations of n_critic=1 + 1 steps


def test_each_job_is_a_wandb_run_in_the_sweep_group(ddp_sweep: Path) -> None:
    runs = []
    for job, devices in (("0", "trainer.devices=4"), ("1", "trainer.devices=1")):
        records = list(wandb_records(only(list((ddp_sweep / job).rglob("run-*.wandb")))))
        run = only([r.run for r in records if r.WhichOneof("record_type") == "run"])
        assert devices in run.display_name.split(",")
        assert any(r.WhichOneof("record_type") == "exit" for r in records)  # finished
        # rank 0 alone logs: one row per generator iteration (2), not one per rank
        rows = [r.history for r in records if r.WhichOneof("record_type") == "history"]
        keys = [{i.key or "/".join(i.nested_key) for i in row.item} for row in rows]
        assert sum("loss/d" in k for k in keys) == 2
        runs.append(run)
    assert runs[0].run_group == runs[1].run_group == f"train-{ddp_sweep.name}"
    assert runs[0].run_id != runs[1].run_id


def test_sweep_summary_has_a_row_per_job(ddp_sweep: Path) -> None:
    rows = list(csv.DictReader((ddp_sweep / "summary.csv").open()))
    assert [r["job"] for r in rows] == ["0", "1"]
    for row, devices in zip(rows, ("trainer.devices=4", "trainer.devices=1"), strict=True):
        assert devices in row["overrides"].split() and row["status"] == "COMPLETED"
        assert row["metric"] == "loss/g" and float(row["final"]) > 0 and float(row["best"]) > 0
        assert Path(row["run_dir"]) == ddp_sweep / row["job"]
    assert len((ddp_sweep / "summary.md").read_text().splitlines()) == 2 + 2


def test_resuming_a_four_rank_checkpoint_on_two_ranks_is_one_clear_line(
    ddp_sweep: Path, tmp_path: Path
) -> None:
    """The global batch and each rank's noise stream belong to the checkpoint's device count,
    so a changed count is refused before any rank starts (a 2-rank run resumed on 2 ranks is
    tested bit for bit in test_reliability)."""
    last = ddp_sweep / "0" / "checkpoints" / "last.ckpt"
    args = ["src/train.py", *TINY, "trainer=ddp_sim", "logger=csv", f"ckpt_path={last}"]
    out = run_cli(args, GANFORGE_ROOT=str(tmp_path))
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1
    assert len(errors) == 1 and "trainer.devices: 4 -> 2" in errors[0]
    assert "MEMBER" not in out.stdout + out.stderr  # no rank was started


def test_optuna_study_through_submitit_local_launcher(tmp_path: Path) -> None:
    train(
        tmp_path,
        "hparams_search=optuna",
        "hydra/launcher=local",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "logger=csv",
        multirun=True,
    )
    sweep = only(list((tmp_path / "outputs" / "train" / "multiruns").iterdir()))
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    assert best["best_value"] == pytest.approx(min(float(r["best"]) for r in rows))
    assert set(best["best_params"]) >= {"model.optimizer_g.lr", "loss.n_critic"}
    assert list(sweep.glob(".submitit/*/*_result.pkl"))  # ran as submitit jobs
