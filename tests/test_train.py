"""Training end to end through the real configs: run folder, resume, DDP, the CLI.

Every model x loss x conditioning fast_dev_run lives in nets/test_zoo.py; DDP (ddp_sim, 4 CPU
processes, resume) in test_strategy.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.run import train
from tests.conftest import run_cli

TINY = {
    "dcgan": ["model.generator.base_width=8", "model.discriminator.base_width=8"],
    "gan_mlp": ["model.generator.hidden=[32]", "model.discriminator.hidden=[16]"],
}
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _short_run(make_cfg, *extra: str):
    return make_cfg(
        "data.image_size=16",
        "data.batch_size=16",
        *TINY["dcgan"],
        *QUIET,
        "callbacks.samples.every_n_steps=2",
        "trainer.log_every_n_steps=1",
        *extra,
    )


def test_run_folder_holds_config_checkpoints_logs_and_samples(make_cfg, tmp_path: Path) -> None:
    cfg = _short_run(make_cfg, "trainer.max_epochs=2", "+trainer.limit_train_batches=3")
    train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert (tmp_path / "samples" / "final.png").is_file()
    assert sorted(p.name for p in (tmp_path / "samples").glob("step_*.png"))[:1] == [
        "step_0000002.png"
    ]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["ganforge_config"]["model"]["generator"]["image_size"] == 16
    assert {"torch", "numpy", "python"} <= set(ckpt["rng_states"])


def test_resume_continues_from_saved_step_with_both_optimizers(make_cfg, tmp_path: Path) -> None:
    first = _short_run(make_cfg, "trainer.max_epochs=1", "+trainer.limit_train_batches=3")
    train(first)
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["global_step"] == 3 * 2
    for state in saved["optimizer_states"]:
        assert {int(v["step"]) for v in state["state"].values()} == {3}

    resumed = _short_run(
        make_cfg, "trainer.max_epochs=2", "+trainer.limit_train_batches=3", f"ckpt_path={last}"
    )
    train(resumed)
    final = torch.load(last, weights_only=False)
    assert final["global_step"] == 6 * 2
    for state in final["optimizer_states"]:
        assert {int(v["step"]) for v in state["state"].values()} == {6}


def test_cli_debug_run_and_clear_error(tmp_path: Path) -> None:
    common = ["logger=csv", f"hydra.run.dir={tmp_path}/run", *QUIET]
    ok = run_cli(["src/train.py", "debug=fdr", "data.image_size=16", *TINY["dcgan"], *common])
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()

    bad = run_cli(["src/train.py", "debug=fdr", "data.image_size=48", *common])
    assert bad.returncode == 1
    assert "image_size=48" in bad.stderr and "Traceback" not in bad.stderr
