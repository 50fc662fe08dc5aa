"""What a GPU user types, run on CPU with 2 processes (gloo), the way multi-GPU runs fail.

Each 2-process run spawns two Python processes importing torch and Lightning (seconds each on
this CPU), so one run covers several features: compile + EMA + a conditional model; a
toy-mixture multirun with ``loss=wgan_gp``; errors from the headline command. Resuming a
2-process run, the 4-process headline command and the ``torchrun`` 2-node simulation are
``slow``.
"""

from __future__ import annotations

import csv
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.build import build_module, load_module
from ganforge.cli import EXIT_PREEMPTED
from ganforge.strategy import describe_run
from tests.conftest import ROOT, TF_DCGAN, run_cli, sigterm_once_training
from tests.data.test_files import make_celeba

QUIET = [
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress=null",
    "callbacks.model_summary=null",
]
DCGAN_TINY = [
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "data.image_size=16",
    "callbacks.metrics=null",
    "optimized_metric=loss/g",
]
SHORT = ["+trainer.limit_train_batches=2", "trainer.max_epochs=1"]


def train(root: Path, *args: str, multirun: bool = False, ok: bool = True, **env: str):
    """``src/train.py [-m] args`` with outputs under ``root``; asserts exit 0 when ``ok``."""
    flags = ["-m"] if multirun else []
    out = run_cli(["src/train.py", *flags, *args], GANFORGE_ROOT=str(root), **env)
    if ok:
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def processes_with(marker: str) -> list[int]:
    """Ids of the processes whose environment holds ``marker`` (this user's, where readable)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes():
                found.append(int(env.parent.name))
        except OSError:
            continue
    return found


# ------------------------------------------------------------------ in-process
def test_default_trainer_picks_the_gpus_when_there_are_any(make_cfg) -> None:
    assert make_cfg().trainer.accelerator == "auto"  # Lightning: CUDA/MPS if present, else CPU
    assert make_cfg("trainer=cpu").trainer.accelerator == "cpu"
    assert make_cfg("trainer=gpu").trainer.accelerator == "gpu"


def test_start_line_states_devices_processes_strategy_precision_and_batches(make_cfg) -> None:
    from hydra.utils import instantiate

    cfg = make_cfg("trainer.devices=2", "data.batch_size=16")
    line = describe_run(instantiate(cfg.trainer), cfg.data.batch_size)
    assert line == (
        "training on cpu (2 x cpu): 2 processes, strategy ddp (spawn, Lightning, "
        "find_unused_parameters=True), precision 32-true, batch 16 per device, 32 global"
    )
    one = describe_run(instantiate(make_cfg("trainer.precision=bf16-mixed").trainer), 64)
    assert one == (
        "training on cpu (1 x cpu): 1 process, strategy single device, precision bf16-mixed, "
        "batch 64 per device, 64 global"
    )


def test_ema_copy_is_neither_trainable_nor_synced_by_ddp(make_cfg, tmp_path: Path) -> None:
    module = build_module(make_cfg(*DCGAN_TINY, "model.ema_decay=0.999"))
    pickle.dumps(module)  # spawn pickles it for every rank (the EMA copy too)
    ema = list(module.g_ema.parameters())
    assert ema and not any(p.requires_grad for p in ema)
    nets = sum(p.numel() for n in (module.generator, module.discriminator) for p in n.parameters())
    assert ModelSummary(module).trainable_parameters == nets
    # DDP all-reduces exactly the parameters that require gradients
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1
    )
    try:
        ddp = DistributedDataParallel(module, find_unused_parameters=True)
        synced = {id(p) for p in ddp._build_params_for_reducer()[0]}
    finally:
        torch.distributed.destroy_process_group()
    assert not synced & {id(p) for p in ema}
    assert synced == {id(p) for p in module.parameters() if p.requires_grad}


def test_ema_update_is_torchs_averaged_model_update() -> None:
    """ganforge's sync-free update gives what ``AveragedModel(multi_avg_fn=ema)`` gives for
    every float tensor, BatchNorm statistics included; integer counters are G's own (torch
    averages them and truncates)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from ganforge.ema import ema_update

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ours = AveragedModel(net, use_buffers=True)
    theirs = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for step in range(3):
        net(torch.randn(8, 3))  # moves the BatchNorm statistics
        with torch.no_grad():
            net[0].weight.add_(1.0)
        ema_update(ours, net, 0.9, first=step == 0)
        theirs.update_parameters(net)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, msg=name)
    assert ours.module[1].num_batches_tracked == net[1].num_batches_tracked == 3
    assert ours.n_averaged == 3
    assert not torch.equal(ours.module[0].weight, net[0].weight)  # an average, not a copy


# ------------------------------------------------------------------ 2 processes
class RecordMatmulPrecision(L.Callback):
    """Writes the float32 matmul precision a rank trains with to ``folder/rank<N>.txt``."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = Path(self.folder, f"rank{trainer.global_rank}.txt")
        path.write_text(torch.get_float32_matmul_precision())


@pytest.mark.parametrize(("arm", "size"), [([], 16), (TF_DCGAN, 28)], ids=["default", "tf_arm"])
def test_compiled_conditional_model_with_ema_trains_on_two_processes(
    tmp_path: Path, arm: list[str], size: int
) -> None:
    """The spawn pickling failure: compile happens in each rank, after spawn (configure_model).
    ``aot_eager`` traces G and D through dynamo and AOTAutograd without a C++ compiler.
    Each rank trains with the run's float32 matmul precision (``trainer=gpu``'s TF32), which
    torch keeps per process."""
    out = train(
        tmp_path,
        *QUIET,
        *DCGAN_TINY,
        *SHORT,
        "trainer.devices=2",
        "model.fast_path.compile=true",
        "+model.fast_path.compile_options.backend=aot_eager",
        "model.ema_decay=0.9",
        "model.conditioning=acgan",
        "float32_matmul_precision=high",
        f"+callbacks.precision._target_={__name__}.RecordMatmulPrecision",
        f"+callbacks.precision.folder={tmp_path}",
        *arm,
        PYTHONPATH=str(ROOT),
    )
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["high", "high"]
    text = out.stdout + out.stderr
    assert "MEMBER: 2/2" in text and "2 processes, strategy ddp (spawn" in text
    assert "running it eagerly" not in text  # no compile fallback in any rank
    run = only(list((tmp_path / "outputs" / "train" / "runs").iterdir()))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2 * 2
    keys = list(ckpt["state_dict"])
    assert any(k.startswith("g_ema.") for k in keys)
    assert not any("_orig_mod" in k for k in keys)  # loadable without special cases
    module, _ = load_module(run / "checkpoints" / "last.ckpt")
    assert module.g_step == 2  # the checkpoint's, without a trainer
    images = module.sample(4)[0]
    assert images.shape == (4, 1, size, size) and torch.isfinite(images).all()


def test_toy_mixtures_with_wgan_gp_as_a_two_process_multirun(tmp_path: Path) -> None:
    """Scatter callback under DDP: every rank scores, rank 0 writes; the checkpoint monitors
    ``toy/modes_covered``, which every rank must know."""
    train(
        tmp_path,
        *QUIET,
        *SHORT,
        "data=ring8,grid25",
        "model=toy_mlp",  # what the data configs select, named for the sweep's override check
        "callbacks=toy",
        "loss=wgan_gp",
        "data.batch_size=32",
        "trainer.devices=2",
        "callbacks.scatter.every_n_steps=1",
        "callbacks.scatter.num_points=200",
        "callbacks.scatter.min_count=1",
        "optimized_metric=toy/modes_covered",
        multirun=True,
    )
    sweep = only(list((tmp_path / "outputs" / "train" / "multiruns").iterdir()))
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    for job in ("0", "1"):
        folder = sweep / job
        pngs = sorted(p.name for p in (folder / "scatter").iterdir())
        assert pngs == ["final.png", "step_0000001.png", "step_0000002.png"]
        logged = [r for r in csv.DictReader((folder / "csv" / "metrics.csv").open())]
        assert [r["step"] for r in logged if r.get("toy/modes_covered")][:2] == ["0", "1"]
        ckpts = sorted(p.name for p in (folder / "checkpoints").iterdir())
        assert len(ckpts) == 2 and ckpts[0].startswith("best") and ckpts[1] == "last.ckpt"
        assert len(list(folder.rglob("config.yaml"))) == 1


@pytest.fixture(scope="module")
def celeba(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic CelebA tree (4 train images) in torchvision's layout."""
    root = tmp_path_factory.mktemp("celeba")
    make_celeba(root)
    return root


HEADLINE = ["model=dcgan", "data=celeba", "trainer.devices=2"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # found before spawning: the split and the metric weights
        ([], "celeba: 4 samples cannot spare data.num_val=1000"),
        (["data.num_val=0", "callbacks.metrics.download=false"], "missing and downloads are off"),
        # found only inside the ranks: carried back by ganforge.spawn.UserErrorLauncher
        (["data.num_val=0", "callbacks.metrics=null"], "batch_size=64 is larger than the 2"),
    ],
    ids=["num_val", "inception_weights", "in_rank"],
)
def test_headline_command_errors_are_one_line(
    celeba: Path, tmp_path: Path, overrides: list[str], message: str
) -> None:
    marker = f"GANFORGE_TEST_MARK={tmp_path.name}"
    out = train(
        tmp_path,
        *HEADLINE,
        f"data.root={celeba}",
        "logger=csv",
        *overrides,
        ok=False,
        TORCH_HOME=str(tmp_path / "torch"),  # no Inception weights
        GANFORGE_TEST_MARK=tmp_path.name,
    )
    text = out.stdout + out.stderr
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert out.returncode == 1, text[-3000:]
    assert len(errors) == 1 and message in errors[0], text[-3000:]
    assert "Traceback" not in text
    assert processes_with(marker) == []  # no rank left behind


def test_sigterm_to_the_parent_of_two_ranks_checkpoints_and_exits_143(tmp_path: Path) -> None:
    """A scheduler that signals only the launching process must not take the ranks down before
    they save: the parent forwards the signal, the ranks save at a step boundary, exit 143."""
    run = tmp_path / "run"
    args = [*QUIET, *DCGAN_TINY, "data.batch_size=8", "trainer.devices=2"]
    args += ["trainer.max_epochs=1000", "callbacks.samples.every_n_steps=1"]
    marker = f"GANFORGE_TEST_MARK={tmp_path.name}"
    status, text = sigterm_once_training(
        ["src/train.py", *args, f"hydra.run.dir={run}"],
        run,
        GANFORGE_ROOT=str(tmp_path),
        GANFORGE_TEST_MARK=tmp_path.name,
    )
    assert status == EXIT_PREEMPTED, text[-3000:]
    assert "Traceback" not in text
    assert processes_with(marker) == []
    stopped_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert stopped_at >= 4  # at least two generator iterations (D + G steps each)


# ------------------------------------------------------------------ slow
@pytest.mark.slow
def test_stacked_mnist_two_process_run_resumes_on_two_processes(tmp_path: Path) -> None:
    args = [
        *QUIET,
        *DCGAN_TINY,
        "data=stacked_mnist",
        "data.num_samples=256",
        "data.num_val=16",
        "data.batch_size=8",
        "loss=hinge",
        "trainer.devices=2",
        "+trainer.limit_train_batches=2",
    ]
    first, run = tmp_path / "first", tmp_path / "second"  # one data root: resume refuses others
    train(tmp_path, *args, "trainer.max_epochs=1", f"hydra.run.dir={first}")
    last = first / "checkpoints" / "last.ckpt"
    out = train(
        tmp_path, *args, "trainer.max_epochs=2", f"ckpt_path={last}", f"hydra.run.dir={run}"
    )
    assert "Restoring states from the checkpoint" in out.stdout + out.stderr
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 8
    rows = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r["loss/d"]]
    assert [int(r["step"]) for r in rows] == [2, 3]  # continued after 2 iterations; rank 0 only


@pytest.mark.slow
def test_headline_command_trains_on_four_processes(celeba: Path, tmp_path: Path) -> None:
    """docs/scaling.md's first example, exactly, on the synthetic CelebA tree (4 CPU ranks)."""
    out = train(
        tmp_path,
        "model=dcgan",
        "data=celeba",
        "trainer.devices=4",
        f"data.root={celeba}",
        *QUIET,
        "data.num_val=0",
        "data.batch_size=1",
        "data.num_workers=0",
        "callbacks.metrics=null",
        "optimized_metric=loss/g",
        *SHORT,
    )
    assert "4 processes" in out.stdout + out.stderr
    run = only(list((tmp_path / "outputs" / "train" / "runs").iterdir()))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_started_by_torchrun_write_one_set_of_outputs(tmp_path: Path) -> None:
    """2 nodes x 1 process on localhost: ``torchrun --nnodes=2 --node_rank=0/1``, as two
    machines of a cluster would run it, sharing one run folder."""
    run = tmp_path / "run"
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [
            *(sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1"),
            *(f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}"),
            "src/train.py",
            *(*QUIET, *DCGAN_TINY, *SHORT),
            *("trainer=cpu", "trainer.devices=1", "trainer.num_nodes=2", f"hydra.run.dir={run}"),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GANFORGE_ROOT": str(tmp_path)}
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "2 processes, strategy ddp (TorchElastic" in outs[0]
    assert "MEMBER: 2/2" in outs[0] + outs[1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert len(list(run.rglob("config.yaml"))) == 1
    rows = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r["loss/d"]]
    assert [int(r["step"]) for r in rows] == [0, 1]  # rank 0 alone logs
    assert not (tmp_path / "outputs").exists()  # no node made a folder of its own
