"""The vanishing-gradients study: minimax vs non-saturating generator loss.

Goodfellow et al. 2014 note that with the minimax loss log(1 - D(G(z))) the generator's
gradient vanishes when D confidently rejects its samples: per sample, dL/da = -D(G(z)) for
D's logit a, against 1 - D(G(z)) for the non-saturating -log D(G(z)). The study shows it:

1. train a GAN with the non-saturating loss from ``seed`` and keep the networks after each of
   ``checkpoints`` generator iterations (the same checkpoints serve both losses);
2. at each checkpoint freeze G and train D alone for ``d_steps`` updates, so D grows confident;
   every ``every`` updates measure, on one fixed noise batch, mean D(G(z)) and the norm of G's
   gradient under each loss (same G, same D, same samples);
3. train one GAN with each loss from the same seed for ``curve_steps`` iterations and record
   their training curves (G's loss, mean D(G(z)), G's gradient norm).

Writes ``study.md`` (table), ``grad_norms.png`` and ``training_curves.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganforge.losses import MinimaxLoss, NonSaturatingLoss
from ganforge.module import GANModule, grad_norm
from ganforge.noise import latent_noise
from ganforge.study.jobs import compose_train, fit, machine

log = logging.getLogger(__name__)

LOSSES = {"minimax": MinimaxLoss(), "nonsaturating": NonSaturatingLoss()}


def g_grad_norms(module: GANModule, z: torch.Tensor) -> dict[str, float]:
    """Mean D(G(z)) and, for each loss, the norm of its gradient w.r.t. G's weights."""
    g, d = module.generator, module.discriminator
    out: dict[str, float] = {}
    for name, loss in LOSSES.items():
        g.zero_grad(set_to_none=True)
        logits = d(g(z, None))
        loss.g_loss(logits).backward()
        out[name] = float(grad_norm(g.parameters()))
        out["d_fake"] = float(torch.sigmoid(logits.detach()).mean())
    g.zero_grad(set_to_none=True)
    d.zero_grad(set_to_none=True)
    return out


def train_d_against_fixed_g(module: GANModule, job_data, cfg: DictConfig) -> list[dict[str, Any]]:
    """Train D alone against the frozen G; log G's gradient norms as D grows confident."""
    study = cfg.study
    gen = torch.Generator().manual_seed(study.seed)
    z = latent_noise(study.batch_size, module.latent_dim, gen, prior=module.latent_prior)
    real_all = job_data.load_tensors()[0]
    opt = torch.optim.Adam(module.discriminator.parameters(), lr=study.d_lr, betas=(0.5, 0.999))
    ns = LOSSES["nonsaturating"]
    rows = []
    for step in range(study.d_steps + 1):
        if step % study.every == 0:
            rows.append({"d_step": step, **g_grad_norms(module, z)})
        idx = torch.randint(len(real_all), (study.batch_size,), generator=gen)
        with torch.no_grad():
            z_d = latent_noise(study.batch_size, module.latent_dim, None, prior=module.latent_prior)
            fake = module.generator(z_d, None)
        loss = ns.d_loss(module.discriminator(real_all[idx]), module.discriminator(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return rows


def run(cfg: DictConfig) -> Path:
    """Run the study; write ``study.md`` and the figures into the job folder."""
    out = Path(HydraConfig.get().runtime.output_dir)
    study = cfg.study
    torch.set_num_threads(study.threads)
    header = machine()
    base = [f"data={study.data}", f"seed={study.seed}", *study.overrides]
    probes: dict[int, list[dict[str, Any]]] = {}
    for ckpt in study.checkpoints:
        overrides = [*base, "loss=nonsaturating", f"max_g_steps={ckpt}"]
        job = fit(compose_train(overrides, out / f"checkpoint_{ckpt}"))
        probes[ckpt] = train_d_against_fixed_g(job.module, job.datamodule, cfg)
        log.info("checkpoint %d: %s", ckpt, probes[ckpt][-1])
    keys = ("loss/g", "d/fake", "grad_norm/g")
    curves = {}
    for name in LOSSES:
        overrides = [*base, f"loss={name}", f"max_g_steps={study.curve_steps}"]
        curves[name] = fit(compose_train(overrides, out / f"curve_{name}"), keys).history
    header["load_end"] = machine()["load"]
    (out / "study.md").write_text(table(probes, curves, study, header))
    figures(probes, curves, out)
    log.info("vanishing-gradients study: %s", out / "study.md")
    return out / "study.md"


def table(probes, curves, study: DictConfig, header: dict[str, Any]) -> str:
    """Markdown: G's gradient norm under both losses as D trains against each fixed G."""
    lines = [
        "# Vanishing-gradients study",
        "",
        f"- date: {header['date']}; machine: {header['machine']}",
        f"- load average (1/5/15 min) at start: {header['load']}; at end: {header['load_end']}",
        f"- data={study.data}, seed={study.seed}; D trained alone for {study.d_steps} Adam steps "
        f"(lr {study.d_lr}) against each fixed G; norms on one fixed batch of "
        f"{study.batch_size} noise vectors",
        "",
        "| G checkpoint (iterations) | D steps | mean D(G(z)) | ‖∇G‖ minimax | ‖∇G‖ non-saturating "
        "| minimax / non-sat. |",
        "|---|---|---|---|---|---|",
    ]
    for ckpt, rows in probes.items():
        for r in rows:
            ratio = r["minimax"] / max(r["nonsaturating"], 1e-30)
            lines.append(
                f"| {ckpt} | {r['d_step']} | {r['d_fake']:.2e} | {r['minimax']:.2e} | "
                f"{r['nonsaturating']:.2e} | {ratio:.2e} |"
            )
    lines += [
        "",
        f"Training from the same seed for {study.curve_steps} iterations (mean of the last "
        "10% of steps):",
        "",
        "| loss | G loss | mean D(G(z)) | ‖∇G‖ |",
        "|---|---|---|---|",
    ]
    for name, hist in curves.items():
        tail = max(1, len(hist["loss/g"]) // 10)
        cells = [sum(hist[k][-tail:]) / tail for k in ("loss/g", "d/fake", "grad_norm/g")]
        lines.append(f"| {name} | {cells[0]:.3f} | {cells[1]:.3f} | {cells[2]:.2e} |")
    return "\n".join(lines) + "\n"


def figures(probes, curves, out: Path) -> None:
    """``grad_norms.png`` (norm vs mean D(G(z))) and ``training_curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for ckpt, rows in probes.items():
        x = [r["d_fake"] for r in rows]
        for name, style in (("minimax", "-o"), ("nonsaturating", "--s")):
            ax.plot(x, [r[name] for r in rows], style, ms=3, label=f"{name}, G after {ckpt} it.")
    ax.set(xscale="log", yscale="log", xlabel="mean D(G(z))", ylabel="‖∇ G's loss‖ (G weights)")
    ax.invert_xaxis()
    ax.set_title("D trained to confidence against a fixed G")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "grad_norms.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for name, hist in curves.items():
        for ax, key in zip(axes, ("loss/g", "d/fake", "grad_norm/g"), strict=True):
            ax.plot(hist[key], label=name, lw=0.8)
            ax.set_title(key)
    axes[2].set_yscale("log")
    axes[0].legend()
    for ax in axes:
        ax.set_xlabel("generator iteration")
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    plt.close(fig)
