"""Under DDP, the DataLoader path gives every rank a distinct shard, reshuffled each epoch."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conftest import ROOT, run_cli

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import lightning as L
    import torch
    from lightning.pytorch.strategies import DDPStrategy
    from ganforge.data import GridDataModule

    class Record(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = {}

        def training_step(self, batch, batch_idx):
            x, _ = batch
            self.seen.setdefault(self.current_epoch, []).extend(x[:, 0].tolist())
            return (self.w * x.sum()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

        def on_train_end(self):
            with open(f"{sys.argv[1]}/rank{self.global_rank}.json", "w") as f:
                json.dump(self.seen, f)

    data = GridDataModule(num_samples=64, batch_size=8, in_memory=False, num_workers=0)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        strategy=DDPStrategy(process_group_backend="gloo"),
    )
    trainer.fit(Record(), datamodule=data)
    """
)


@pytest.mark.slow
def test_dataloader_path_shards_across_ranks(tmp_path):
    script = tmp_path / "ddp_record.py"
    script.write_text(SCRIPT)
    result = run_cli([str(script), str(tmp_path)], cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for epoch in ("0", "1"):
        a, b = set(ranks[0][epoch]), set(ranks[1][epoch])
        assert len(a) == len(b) == 32  # 64 samples, 2 ranks, 4 batches of 8 each
        assert not a & b  # distinct shards
    assert ranks[0]["0"] != ranks[0]["1"]  # the sampler reshuffles every epoch
