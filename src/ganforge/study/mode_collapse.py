"""The mode-collapse study: GAN vs its remedies on ring8 and grid25 (and Stacked MNIST).

Every (dataset, variant, seed) job trains the same ganforge model with the variant's
overrides for ``steps`` generator iterations, then scores ``num_samples`` samples of the final
generator: on the 2-D mixtures with :class:`ganforge.metrics.toy.ModeCoverage` (the VEEGAN /
PacGAN protocol: 2,500 samples, a sample is high quality within 3 std of its nearest mode,
a mode counts as covered with at least ``min_count`` high-quality samples); on Stacked MNIST
with the embedded digit classifier (modes of 1,000 with at least one sample, and the KL of
the class histogram to uniform, over 26,000 samples). ``study.md`` gives mean +- std over
seeds beside the published rows; ``samples.png`` shows each variant's samples (first seed):
points over the mixture's modes, and an 8 x 8 image grid per variant on Stacked MNIST.
"""

from __future__ import annotations

import csv
import logging
import math
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganforge.config import register_resolvers
from ganforge.metrics.class_coverage import ClassCoverage
from ganforge.metrics.digits import DigitFeatures
from ganforge.metrics.toy import ModeCoverage
from ganforge.pixels import grid_of, to_uint8
from ganforge.study.jobs import compose_train, fit, machine, mean_std

log = logging.getLogger(__name__)

#: published rows: dataset -> [(source, method, modes, second column)]; the second column is
#: % high-quality samples for the 2-D mixtures and KL to uniform for Stacked MNIST.
PUBLISHED: dict[str, list[tuple[str, str, float, float]]] = {
    "ring8": [
        ("VEEGAN Table 1", "GAN", 1, 99.3),
        ("VEEGAN Table 1", "Unrolled GAN", 7.6, 35.6),
        ("VEEGAN Table 1", "VEEGAN", 8, 52.9),
        ("PacGAN Table 1", "GAN", 6.3, 98.2),
        ("PacGAN Table 1", "PacGAN4", 7.8, 95.9),
    ],
    "grid25": [
        ("VEEGAN Table 1", "GAN", 3.3, 0.5),
        ("VEEGAN Table 1", "Unrolled GAN", 23.6, 16),
        ("VEEGAN Table 1", "VEEGAN", 24.6, 40),
        ("PacGAN Table 1", "GAN", 17.3, 94.8),
        ("PacGAN Table 1", "PacGAN4", 24.8, 93.6),
    ],
    "stacked_mnist": [
        ("VEEGAN Table 2", "DCGAN", 99, 3.4),
        ("VEEGAN Table 2", "Unrolled GAN", 48.7, 4.32),
        ("VEEGAN Table 2", "VEEGAN", 150, 2.95),
        ("PacGAN Table 3", "PacDCGAN2", 1000, 0.06),
    ],
}


#: Stacked MNIST images per variant in ``samples.png`` (the first ones scored, first seed)
GRID_IMAGES = 64


def score(job, num_samples: int, seed: int, threshold: float, min_count: int) -> dict[str, Any]:
    """Modes covered and % high quality (mixtures) or modes and KL (Stacked MNIST)."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    dm = job.datamodule
    job.module.to(job.device)
    if hasattr(dm, "centers"):
        samples = job.module.sample(num_samples, generator=gen)[0].cpu()
        metric = ModeCoverage(dm.centers, dm.std, threshold=threshold, min_count=min_count)
        metric.update(samples)
        out = metric.compute()
        return {
            "modes": int(out["modes_covered"]),
            "high_quality_pct": 100 * float(out["high_quality"]),
            "samples": samples,
        }
    classifier = DigitFeatures(channels=3).to(job.device).eval()
    coverage = ClassCoverage(dm.num_classes).to(job.device)
    shown = None
    for start in range(0, num_samples, 1000):
        images = job.module.sample(min(1000, num_samples - start), generator=gen)[0]
        if start == 0:
            shown = images[:GRID_IMAGES].cpu()
        with torch.no_grad():
            coverage.update(classifier(to_uint8(images))[1])  # as saved images, as eval.py
    modes, kl = coverage.compute()
    return {"modes": int(modes), "kl_uniform": float(kl), "samples": shown}


def run(cfg: DictConfig) -> Path:
    """Run every job of the study and write ``study.md``, ``results.csv`` and figures."""
    out = Path(HydraConfig.get().runtime.output_dir)
    study = cfg.study
    torch.set_num_threads(study.threads)
    specs = [
        JobSpec(
            data,
            name,
            seed,
            job_overrides(study, data, seed, extra),
            str(out / data / name / f"seed{seed}"),
        )
        for data in study.datasets
        for name, extra in variants(study).items()
        for seed in range(study.seeds)
    ]
    scoring = (dict(study.num_samples), study.threshold, study.min_count)
    header = machine()
    results: dict[str, tuple[dict[str, Any], torch.Tensor | None, torch.Tensor | None]] = {}
    for spec, result in run_jobs(specs, scoring, study):
        results[spec.key] = result
        # a study stopped early keeps its finished jobs
        write_results([results[s.key][0] for s in specs if s.key in results], out)
    rows = [results[s.key][0] for s in specs]
    first_samples = {
        (s.data, s.variant): results[s.key][1]
        for s in specs
        if s.seed == 0 and results[s.key][1] is not None
    }
    centers = {s.data: results[s.key][2] for s in specs if results[s.key][2] is not None}
    header["load_end"] = machine()["load"]
    write_results(rows, out)
    (out / "study.md").write_text(table(rows, study, header))
    if first_samples:
        samples_figure(first_samples, centers, out / "samples.png")
    log.info("mode-collapse study: %s", out / "study.md")
    return out / "study.md"


@dataclass(frozen=True)
class JobSpec:
    """One (dataset, variant, seed) job: its train overrides and its folder."""

    data: str
    variant: str
    seed: int
    overrides: list[str]
    job_dir: str

    @property
    def key(self) -> str:
        return f"{self.data}/{self.variant}/seed{self.seed}"


Scoring = tuple[dict[str, int], float, int]


def run_jobs(specs: list[JobSpec], scoring: Scoring, study: DictConfig):
    """Yield ``(spec, result)`` for every job, as they finish: in this process when
    ``study.workers`` is 1, else in that many spawned processes (``study.threads`` torch
    threads each), which a small CPU runs side by side better than one process's threads."""
    if study.workers <= 1:
        for spec in specs:
            yield spec, run_one(spec, scoring)
        return
    conf_dir = next(
        s["path"].removeprefix("file://")
        for s in HydraConfig.get().runtime.config_sources
        if s["provider"] == "main"
    )
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        study.workers, mp_context=ctx, initializer=_worker_init, initargs=(conf_dir, study.threads)
    ) as pool:
        futures = {pool.submit(run_one, spec, scoring): spec for spec in specs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _worker_init(conf_dir: str, threads: int) -> None:
    torch.set_num_threads(threads)
    register_resolvers()
    initialize_config_dir(config_dir=conf_dir, version_base="1.3")


def run_one(
    spec: JobSpec, scoring: Scoring
) -> tuple[dict[str, Any], torch.Tensor | None, torch.Tensor | None]:
    """Train and score one job: its results row, scored samples and the data's modes."""
    num_samples, threshold, min_count = scoring
    row: dict[str, Any] = {"data": spec.data, "variant": spec.variant, "seed": spec.seed}
    row.update(key=spec.key, overrides=" ".join(spec.overrides))
    try:
        job = fit(compose_train(spec.overrides, Path(spec.job_dir)))
        scores = score(job, num_samples[spec.data], spec.seed, threshold, min_count)
    except Exception as err:  # one failed job must not lose the study
        log.exception("job %s failed", spec.key)
        row.update(status=f"FAILED: {type(err).__name__}: {err}")
        return row, None, None
    samples = scores.pop("samples")
    digits = getattr(job.datamodule, "digit_pool", None)
    row.update(scores, status="COMPLETED", wall_s=round(job.wall_s, 1), digits=digits)
    log.info("%s: %s (%.0f s)", spec.key, scores, job.wall_s)
    return row, samples, getattr(job.datamodule, "centers", None)


def job_overrides(study: DictConfig, data: str, seed: int, extra: list[str]) -> list[str]:
    """The train config overrides of one job: the study's, the dataset's arm, the variant's."""
    return [
        f"data={data}",
        f"seed={seed}",
        f"max_g_steps={study.steps}",
        *study.overrides,
        *study.get("data_overrides", {}).get(data, []),
        *extra,
    ]


def variants(study: DictConfig) -> dict[str, Any]:
    """The variants to run: all of ``study.variants``, or those ``study.only`` names."""
    only = study.get("only")
    unknown = set(only or ()) - set(study.variants)
    if unknown:
        raise ValueError(f"study.only names unknown variants {sorted(unknown)}")
    return {k: v for k, v in study.variants.items() if not only or k in only}


def write_results(rows: list[dict[str, Any]], out: Path) -> None:
    """One row per job in ``results.csv``."""
    cols = ["data", "variant", "seed", "status", "modes", "high_quality_pct", "kl_uniform"]
    cols += ["wall_s", "digits", "overrides"]
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fmt(values: list[float], digits: int) -> str:
    m, s = mean_std(values)
    return "n/a" if math.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def table(rows: list[dict[str, Any]], study: DictConfig, header: dict[str, Any]) -> str:
    """The study's Markdown report: per dataset, ganforge rows then the published rows."""
    lines = [
        "# Mode-collapse study",
        "",
        f"- date: {header['date']}; machine: {header['machine']}",
        f"- load average (1/5/15 min) at start: {header['load']}; at end: {header['load_end']}",
        f"- {study.seeds} seeds per row, {study.steps} generator iterations per job, "
        f"mean ± std over seeds (population std)",
        "",
    ]
    for data in study.datasets:
        mixture = data != "stacked_mnist"
        second = "high quality %" if mixture else "KL to uniform"
        n = study.num_samples[data]
        lines += [f"## {data} ({n} samples scored per run)", ""]
        pools = Counter(r["digits"] for r in rows if r["data"] == data and r.get("digits"))
        if pools:
            stacked = "; ".join(f"{p} in {k} job{'s' * (k > 1)}" for p, k in pools.items())
            lines += [
                f"Digits stacked: {stacked}. The published rows stack all 70,000 MNIST digits.",
                "",
            ]
        lines += [
            f"| method | modes | {second} | runs ok | s/run | source |",
            "|---|---|---|---|---|---|",
        ]
        for name in variants(study):
            ok = [r for r in rows if r["data"] == data and r["variant"] == name]
            done = [r for r in ok if r["status"] == "COMPLETED"]
            modes = _fmt([r["modes"] for r in done], 1)
            key = "high_quality_pct" if mixture else "kl_uniform"
            sec = _fmt([r[key] for r in done], 1 if mixture else 2)
            wall = _fmt([r["wall_s"] for r in done], 0).split(" ±")[0]
            lines.append(
                f"| {name} | {modes} | {sec} | {len(done)}/{len(ok)} | {wall} | ganforge |"
            )
        for source, method, modes, sec in PUBLISHED.get(data, []):
            lines.append(f"| {method} | {modes:g} | {sec:g} | | | {source} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def samples_figure(
    samples: dict[tuple[str, str], torch.Tensor], centers: dict[str, torch.Tensor], path: Path
) -> None:
    """One panel per (dataset, variant), first seed: generated points over the true modes
    for a 2-D mixture, an 8 x 8 grid of images for Stacked MNIST."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = list(dict.fromkeys(d for d, _ in samples))
    variants = list(dict.fromkeys(v for _, v in samples))
    fig, axes = plt.subplots(
        len(datas), len(variants), figsize=(2.6 * len(variants), 2.6 * len(datas)), squeeze=False
    )
    for i, d in enumerate(datas):
        for j, v in enumerate(variants):
            ax = axes[i][j]
            ax.set(xticks=[], yticks=[])
            ax.set_title(f"{d} / {v}", fontsize=8)
            if d not in centers:
                if (d, v) in samples:
                    ax.imshow(grid_of(samples[d, v], 8).permute(1, 2, 0).numpy())
                continue
            if (d, v) in samples:
                pts = samples[d, v]
                ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.3)
            ax.scatter(centers[d][:, 0], centers[d][:, 1], s=12, c="red", marker="x")
            lim = float(centers[d].abs().max()) * 1.4
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
