"""Metric cost on this CPU: ganforge's evaluation vs torchmetrics called directly, same tensors.

1. Generated samples/s: the default DCGAN generator (32 px, random weights) sampling through
   ``GANModule.sample``, then the ``digits`` extractor, and both together.
2. FID + IS + KID on ``--samples`` generated images against the 4,500 real training digits:
   - ``ganforge``: the extractor runs once per batch; :class:`MetricSuite` feeds its features
     and logits to torchmetrics' FID, IS and KID (FID/KID in float64);
   - ``torchmetrics``: the three metric classes each given the digits network as ``feature``
     (each runs it on every update, as they do with Inception), float32 features.
   Both use the same uint8 tensors, KID 100 subsets of 1,000, IS 10 splits, seeded alike.
3. The whole suite (adding precision/recall and mode coverage), as ``src/eval.py`` runs it.

    python benchmarks/metrics.py [--samples 10000] [--out benchmarks/results/metrics.json]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
from common import RESULTS, compose_config, print_table, write_json
from torch import Tensor, nn
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from ganforge.build import build_module
from ganforge.data.mnist5k import load_mnist5k
from ganforge.metrics import MetricSuite, to_uint8
from ganforge.metrics.digits import DigitFeatures

warnings.filterwarnings("ignore", "Metric .* will save all extracted features")


class Output(nn.Module):
    """One output of the digits extractor, as torchmetrics' ``feature`` module expects."""

    def __init__(self, extractor: DigitFeatures, index: int):
        super().__init__()
        self.extractor, self.index = extractor, index
        self.num_features = extractor.num_features if index == 0 else extractor.num_classes

    def forward(self, images: Tensor) -> Tensor:
        return self.extractor(images)[self.index]


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def generate(module, n: int, batch: int) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.cat([module.sample(batch, generator=gen)[0] for _ in range(n // batch)])


def extract(extractor: DigitFeatures, images: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    outs = [extractor(b) for b in images.split(batch)]
    return torch.cat([f for f, _ in outs]), torch.cat([lg for _, lg in outs])


def filled_suite(extractor, real: Tensor, fake: Tensor, batch: int) -> MetricSuite:
    """A :class:`MetricSuite` fed the way :class:`~ganforge.metrics.Evaluator` feeds it."""
    suite = MetricSuite(extractor.num_features, extractor.num_classes, count_modes=True, seed=0)
    for images, is_real in ((real, True), (fake, False)):
        for b in images.split(batch):
            suite.update(*extractor(b), real=is_real)
    return suite


def ganforge_metrics(extractor, real: Tensor, fake: Tensor, batch: int) -> dict[str, float]:
    suite = filled_suite(extractor, real, fake, batch)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        is_mean, _ = suite.inception_score.compute()
        kid_mean, _ = suite.kid.compute()
    return {"fid": float(suite.fid.compute()), "is": float(is_mean), "kid": float(kid_mean)}


def torchmetrics_direct(extractor, real: Tensor, fake: Tensor, batch: int) -> dict[str, float]:
    fid = FrechetInceptionDistance(feature=Output(extractor, 0))
    kid = KernelInceptionDistance(feature=Output(extractor, 0), subsets=100, subset_size=1000)
    inception = InceptionScore(feature=Output(extractor, 1), splits=10)
    for images, is_real in ((real, True), (fake, False)):
        for b in images.split(batch):
            fid.update(b, real=is_real)
            kid.update(b, real=is_real)
            if not is_real:
                inception.update(b)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        is_mean, _ = inception.compute()
        kid_mean, _ = kid.compute()
    return {"fid": float(fid.compute()), "is": float(is_mean), "kid": float(kid_mean)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "metrics.json")
    args = parser.parse_args()

    module = build_module(compose_config(["logger=csv"])).eval()
    extractor = DigitFeatures()
    gen_s, fake = timed(lambda: generate(module, args.samples, args.batch))
    fake = to_uint8(fake)
    ext_s, _ = timed(lambda: extract(extractor, fake, args.batch))
    real = to_uint8(load_mnist5k(32)[0][:4500])

    ours_s, ours = timed(lambda: ganforge_metrics(extractor, real, fake, args.batch))
    direct_s, direct = timed(lambda: torchmetrics_direct(extractor, real, fake, args.batch))
    all_s, every = timed(lambda: filled_suite(extractor, real, fake, args.batch).compute())

    n = args.samples
    throughput = [
        {"stage": "generate (DCGAN 32px)", "samples/s": n / gen_s},
        {"stage": "digits extractor", "samples/s": n / ext_s},
        {"stage": "generate + extract", "samples/s": n / (gen_s + ext_s)},
    ]
    print_table(throughput, ["stage", "samples/s"])
    print()
    rows = [
        {"path": "ganforge (MetricSuite)", "seconds": ours_s, **ours},
        {"path": "torchmetrics direct", "seconds": direct_s, **direct},
    ]
    print(f"FID + IS + KID, {n} generated vs {len(real)} real digits")
    print_table(rows, ["path", "seconds", "fid", "is", "kid"])
    ratio = direct_s / ours_s
    print(f"torchmetrics direct / ganforge time: {ratio:.2f}x")
    print(f"\nevery metric (adds precision/recall, modes): {all_s:.3g} s")
    print(", ".join(f"{k}={v:.4g}" for k, v in every.items()))
    write_json(
        args.out,
        {
            "samples": n,
            "real": len(real),
            "throughput": throughput,
            "fid_is_kid": rows,
            "direct_over_ganforge": ratio,
            "all_metrics": {"seconds": all_s, **every},
        },
    )


if __name__ == "__main__":
    with torch.no_grad():
        main()
