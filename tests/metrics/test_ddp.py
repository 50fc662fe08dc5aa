"""Under DDP (2 CPU processes, gloo) each rank scores its own samples and all agree with one
process scoring the same samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganforge.metrics import to_uint8
from ganforge.metrics.digits import DigitFeatures
from ganforge.metrics.evaluate import Evaluator

N, BATCH = 400, 100


def _evaluator() -> Evaluator:
    gen = torch.Generator().manual_seed(7)
    real = torch.rand(N, 1, 16, 16, generator=gen).mul(2).sub(1)
    extractor = DigitFeatures()
    feats, logits = extractor(to_uint8(real))
    return Evaluator(
        extractor, feats, logits, N, BATCH, count_modes=True, kid_subsets=5, kid_subset_size=200
    )


def _sampler(n: int, generator: torch.Generator) -> torch.Tensor:
    """A fixed 'generator': a smooth function of its noise."""
    z = torch.randn(n, 16, generator=generator)
    return torch.tanh(torch.einsum("ni,nj->nij", z, z.roll(1, 1)))[:, None]


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        drawn: list[torch.Tensor] = []

        def sampler(n: int, generator: torch.Generator) -> torch.Tensor:
            drawn.append(_sampler(n, generator))
            return drawn[-1]

        values = _evaluator().evaluate(sampler, rank, world)
        torch.save({"values": values, "samples": torch.cat(drawn)}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_generate_their_own_samples_and_agree_with_one_process(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert len(ranks[0]["samples"]) == len(ranks[1]["samples"]) == N // 2
    assert not torch.allclose(ranks[0]["samples"], ranks[1]["samples"])
    assert ranks[0]["values"] == ranks[1]["values"]
    single = _evaluator().evaluate(_sampler)
    assert ranks[0]["values"] == pytest.approx(single, rel=1e-9, abs=1e-12)
