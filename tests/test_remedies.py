"""Mode-collapse remedies: minibatch discrimination / stddev, PacGAN packing, the unrolled
generator update and feature matching. Each test shows the mechanism; the training tests run
every remedy under fast_dev_run with every loss, and once under 2-process DDP and resume."""

from __future__ import annotations

import copy
import csv
import math
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from PIL import Image

from ganforge.data.toy import ring_centers
from ganforge.losses import NonSaturatingLoss, WGANGPLoss, feature_matching_loss
from ganforge.module import GANModule
from ganforge.nets import DCGANDiscriminator, VectorDiscriminator, VectorGenerator
from ganforge.nets.features import capture_output
from ganforge.nets.minibatch import MinibatchDiscrimination, MinibatchStdDev, pack
from ganforge.run import train
from ganforge.study.mode_collapse import samples_figure
from ganforge.unrolled import unrolled_discriminator
from tests.conftest import CONF, compose_config, run_cli

LOSSES = ["minimax", "nonsaturating", "nonsaturating_r1", "lsgan", "hinge", "wgan", "wgan_gp"]
REMEDIES = {
    "pack4": ["model.discriminator.pack=4"],
    "minibatch": ["model.discriminator.minibatch={kind:discrimination,num_kernels:4,kernel_dim:3}"],
    "stddev": ["model.discriminator.minibatch=stddev"],
    "unrolled": ["model.unrolled_steps=2"],
    "surrogate": ["model.unrolled_steps=2", "model.unrolled_second_order=false"],
    "feature_matching": ["model.g_objective=feature_matching"],
}
TOY = [
    "data=ring8",
    "data.num_samples=256",
    "data.batch_size=8",
    "model.generator.hidden=[8]",
    "model.discriminator.hidden=[8]",
    "logger=none",
    "callbacks=none",
    "trainer.enable_model_summary=false",
    "++trainer.enable_progress_bar=false",
]


# ------------------------------------------------------------------ minibatch layers
@pytest.mark.parametrize("layer", [MinibatchDiscrimination(6, 4, 3), MinibatchStdDev(6, 0)])
def test_minibatch_feature_of_a_sample_changes_when_another_sample_changes(layer) -> None:
    torch.manual_seed(0)
    h = torch.randn(4, 6)
    out = layer(h)
    h2 = h.clone()
    h2[2] += 1.0  # change only sample 2
    out2 = layer(h2)
    assert out.shape == (4, layer.out_features)
    assert torch.equal(out[0, :6], out2[0, :6])  # sample 0's own features are passed through
    assert not torch.allclose(out[0, 6:], out2[0, 6:])  # its minibatch features see sample 2


def test_minibatch_discrimination_scores_a_collapsed_batch_higher() -> None:
    """D's features at initialisation are small (here 0.01): without the first batch's distance
    scale, every closeness would be about exp(0) and a diverse batch would look collapsed."""
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, 8, 3)
    diverse = layer(torch.randn(16, 6) * 0.01)[:, 6:]
    collapsed = layer(torch.randn(1, 6).expand(16, 6) * 0.01)[:, 6:]
    # 15 identical others, each at closeness exp(0) = 1, less the first batch's mean closeness
    assert torch.allclose(collapsed, 15.0 + layer.bias.detach().expand(16, 8))
    assert torch.allclose(diverse.mean(0), torch.zeros(8), atol=1e-5)  # centred on that batch
    assert diverse.max() < 5.0 < 10.0 < collapsed.min()


def test_minibatch_closeness_on_ring8_measures_local_density_not_only_collapse() -> None:
    """The mechanism docs/studies/mode_collapse.md reports: initialised on a real ring8 batch
    (tight modes, std 0.02), the closeness features rank batches by local density at the
    within-mode scale. A collapsed batch scores highest, as designed, but a batch spread over
    the plane, as G's becomes when it moves out towards the ring, scores *below* the real
    batch, so the features tell D "fake = too spread" rather than "fake = collapsed"."""
    torch.manual_seed(0)
    centers = ring_centers()

    def ring8(n: int) -> torch.Tensor:
        return centers[torch.randint(0, 8, (n,))] + 0.02 * torch.randn(n, 2)

    d = VectorDiscriminator(2, minibatch={"kind": "discrimination", "num_kernels": 10})
    d.train()(ring8(128))  # the first training batch sets the scale, as in training

    def closeness(x: torch.Tensor) -> float:
        h = d.body(x)
        return (d.minibatch(h)[:, h.shape[1] :] - d.minibatch.bias).mean().item()

    real, spread = closeness(ring8(128)), closeness(0.3 * torch.randn(128, 2))
    collapsed = closeness(centers[0] + 0.02 * torch.randn(128, 2))
    assert collapsed > 4 * real and real > 4 * spread


@pytest.mark.parametrize("init_distance", [2.0, 0.02])
def test_minibatch_discrimination_scales_distances_from_its_first_training_batch(
    init_distance: float,
) -> None:
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, 8, 3, init_distance=init_distance)
    h = torch.randn(32, 6) * 0.01
    layer.eval()(h)  # eval calls (the pre-flight check, sampling) leave the layer as it is
    assert not layer.initialized and torch.equal(layer.log_scale, torch.zeros(8))
    layer.train()(h)
    m = (h @ layer.T).view(32, 8, 3).transpose(0, 1)
    l1 = torch.cdist(m, m, p=1.0) * layer.log_scale.exp()[:, None, None]
    nearest = (l1 + torch.diag(torch.full((32,), math.inf))).min(2).values.mean(1)
    # the authors' rule (2 by default), per kernel
    assert torch.allclose(nearest, torch.full((8,), init_distance))
    assert layer.initialized
    before = copy.deepcopy(layer.state_dict())
    layer(torch.randn(32, 6))  # later batches do not re-initialise
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def test_minibatch_discrimination_resumes_without_reinitialising_and_loads_old_weights() -> None:
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, 4, 3)
    layer(torch.randn(8, 6))
    resumed = MinibatchDiscrimination(6, 4, 3)
    resumed.load_state_dict(layer.state_dict())
    h = torch.randn(8, 6) * 0.01  # would give a very different scale, were it taken again
    assert torch.equal(resumed(h), layer(h))
    # a checkpoint from before the scale and bias existed: the layer computes what it did then
    old = MinibatchDiscrimination(6, 4, 3)
    old.load_state_dict({"T": layer.T.detach()})
    m = (h @ layer.T).view(8, 4, 3).transpose(0, 1)
    expected = torch.exp(-torch.cdist(m, m, p=1.0)).sum(2).T - 1.0
    assert torch.allclose(old(h)[:, 6:], expected)


def _minibatch_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One DDP rank: the first training forward of a compiled D, under bf16 autocast."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial weights on every rank, as DDP broadcasts them
        d = VectorDiscriminator(2, hidden=(16,), minibatch="discrimination")
        compiled = torch.compile(d, backend="aot_eager")
        x = torch.randn(16, 2, generator=torch.Generator().manual_seed(rank)) * (1 + rank)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            first = compiled(x)
            second = compiled(x)
        layer = d.minibatch
        torch.save(
            {"layer": layer.state_dict(), "x": x, "first": first, "second": second},
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_minibatch_discrimination_ranks_start_from_the_same_scale(tmp_path: Path) -> None:
    """Under DDP each rank sees its own first batch; the scale and bias are averaged over the
    ranks, or the ranks' discriminators would silently differ from the first step on."""
    mp.spawn(_minibatch_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for key in ("log_scale", "bias", "T"):
        assert torch.equal(ranks[0]["layer"][key], ranks[1]["layer"][key]), key
    assert all(r["layer"]["initialized"] for r in ranks)
    assert all(torch.isfinite(r["first"]).all() for r in ranks)
    assert all(torch.equal(r["first"], r["second"]) for r in ranks)  # no second initialisation
    # the average of what each rank alone would have set
    singles = []
    for r in ranks:
        torch.manual_seed(0)
        d = VectorDiscriminator(2, hidden=(16,), minibatch="discrimination")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            d(r["x"])
        singles.append(d.minibatch.log_scale.detach())
    assert not torch.allclose(singles[0], singles[1])
    nearest = torch.stack([2.0 / s.exp() for s in singles]).mean(0)
    assert torch.allclose(ranks[0]["layer"]["log_scale"], torch.log(2.0 / nearest), atol=1e-5)


def test_plain_discriminator_output_of_a_sample_ignores_the_others() -> None:
    torch.manual_seed(0)
    d = VectorDiscriminator(2, hidden=(8,))
    x = torch.randn(4, 2)
    x2 = x.clone()
    x2[2] += 1.0
    assert torch.equal(d(x)[0], d(x2)[0])
    d_mb = VectorDiscriminator(2, hidden=(8,), minibatch="stddev")
    assert not torch.equal(d_mb(x)[0], d_mb(x2)[0])


def test_unknown_minibatch_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"model\.discriminator\.minibatch"):
        VectorDiscriminator(2, minibatch="average")


@pytest.mark.parametrize("init_distance", [0.0, -1.0, float("nan")])
def test_minibatch_discrimination_rejects_a_non_positive_init_distance(init_distance) -> None:
    spec = {"kind": "discrimination", "init_distance": init_distance}
    with pytest.raises(ValueError, match=rf"init_distance > 0, got {init_distance}"):
        VectorDiscriminator(2, minibatch=spec)


# ------------------------------------------------------------------ packing
def test_packing_groups_consecutive_samples_along_channels() -> None:
    x = torch.arange(6 * 3, dtype=torch.float32).view(6, 3)
    packed = pack(x, 2)
    assert packed.shape == (3, 6)
    for g in range(3):
        assert torch.equal(packed[g], torch.cat([x[2 * g], x[2 * g + 1]]))
    images = torch.randn(4, 3, 2, 2)
    packed = pack(images, 4)
    assert packed.shape == (1, 12, 2, 2)
    assert torch.equal(packed[0, 3:6], images[1])  # channels j*C .. j*C + C - 1 = sample j
    assert pack(x, 1) is x
    with pytest.raises(ValueError, match="pack=4"):
        pack(x, 4)


def test_packed_discriminator_judges_groups_and_only_its_own_group() -> None:
    torch.manual_seed(0)
    # norm=none: BatchNorm would couple the groups through batch statistics
    d = DCGANDiscriminator(channels=3, image_size=16, base_width=4, norm="none", pack=2)
    x = torch.randn(6, 3, 16, 16)
    out = d(x)
    assert out.shape == (3,)
    x2 = x.clone()
    x2[5] += 1.0  # group 2 only
    out2 = d(x2)
    assert torch.equal(out[:2], out2[:2]) and not torch.equal(out[2], out2[2])
    with pytest.raises(ValueError, match="conditioning"):
        VectorDiscriminator(2, num_classes=8, conditioning="projection", pack=2)


def _final_weights(tmp_path: Path, *overrides: str) -> dict[str, torch.Tensor]:
    cfg = compose_config([*TOY, "max_g_steps=3", "seed=3", *overrides], tmp_path)
    import ganforge.study.jobs as jobs  # the study's in-process fit returns the module

    return {k: v.clone() for k, v in jobs.fit(cfg).module.state_dict().items()}


@pytest.mark.parametrize(
    "option", ["model.discriminator.pack=1", "model.unrolled_steps=0"], ids=["pack1", "unroll0"]
)
def test_neutral_remedy_setting_trains_bitwise_like_the_plain_gan(tmp_path, option) -> None:
    plain = _final_weights(tmp_path / "plain")
    neutral = _final_weights(tmp_path / "neutral", option)
    assert plain.keys() == neutral.keys()
    assert [k for k in plain if not torch.equal(plain[k], neutral[k])] == []


# ------------------------------------------------------------------ unrolled GAN
def _module(loss=None, opt=None) -> GANModule:
    opt = opt or partial(torch.optim.Adam, lr=1e-2, betas=(0.5, 0.999))
    torch.manual_seed(0)
    g = VectorGenerator(latent_dim=4, dim=2, hidden=(16,))
    d = VectorDiscriminator(2, hidden=(16,))
    return GANModule(g, d, loss or NonSaturatingLoss(), opt, opt)


def _g_grads(module: GANModule, critic, fake, y=None) -> list[torch.Tensor]:
    module.generator.zero_grad(set_to_none=True)
    module.loss.g_loss(critic(fake, y)).backward()
    return [p.grad.clone() for p in module.generator.parameters()]


@pytest.mark.parametrize(
    "opt",
    [
        partial(torch.optim.Adam, lr=1e-2, betas=(0.5, 0.999), weight_decay=1e-3),
        partial(torch.optim.AdamW, lr=1e-2, weight_decay=1e-2),
        partial(torch.optim.SGD, lr=1e-2, momentum=0.9, nesterov=True),
        partial(torch.optim.RMSprop, lr=1e-3, momentum=0.5),
    ],
    ids=["adam", "adamw", "sgd", "rmsprop"],
)
def test_unrolled_d_equals_d_after_k_real_optimizer_steps(opt) -> None:
    module = _module(opt=opt)
    d = module.discriminator
    opt_d = opt(d.parameters())
    real = torch.randn(32, 2)
    fake = module.generator(torch.randn(32, 4))

    def d_step(net, optimizer) -> None:
        optimizer.zero_grad()
        module.loss.d_loss(net(real), net(fake.detach())).backward()
        optimizer.step()

    d_step(d, opt_d)  # so the optimizer has running state to carry into the unroll
    before = copy.deepcopy(d.state_dict())
    unrolled = unrolled_discriminator(module, opt_d, real, fake, None, steps=3)
    assert all(torch.equal(v, d.state_dict()[k]) for k, v in before.items())  # D untouched
    twin = copy.deepcopy(d)
    twin_opt = opt(twin.parameters())
    twin_opt.load_state_dict(opt_d.state_dict())
    for _ in range(3):
        d_step(twin, twin_opt)
    probe = torch.randn(64, 2)
    torch.testing.assert_close(unrolled(probe, None), twin(probe), rtol=1e-4, atol=1e-6)


def test_unrolled_gradient_flows_through_the_unroll_unless_surrogate() -> None:
    module = _module()
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=1e-2)
    real = torch.randn(32, 2)
    z = torch.randn(32, 4)

    def grads(steps: int, second_order: bool) -> list[torch.Tensor]:
        fake = module.generator(z)
        critic = unrolled_discriminator(module, opt_d, real, fake, None, steps, second_order)
        return _g_grads(module, critic, fake)

    plain = _g_grads(module, module.discriminator, module.generator(z))
    # k = 0 through the functional path is the plain gradient to the bit
    assert all(torch.equal(a, b) for a, b in zip(grads(0, True), plain, strict=True))
    full, surrogate = grads(3, True), grads(3, False)
    assert all(torch.isfinite(g).all() for g in full)
    assert not all(torch.allclose(a, b) for a, b in zip(full, surrogate, strict=True))
    assert not all(torch.allclose(a, b) for a, b in zip(surrogate, plain, strict=True))


def test_unrolled_second_order_gradient_matches_finite_differences() -> None:
    """G's gradient through a 3-step Adam unroll of a BatchNorm DCGAN D (the study's Stacked
    MNIST setup, shrunk; float64) equals central differences of the unrolled loss."""
    torch.manual_seed(0)
    d = DCGANDiscriminator(channels=1, image_size=16, base_width=4, max_width=8).double()
    g = VectorGenerator(latent_dim=4, dim=2, hidden=(16,))  # unused by the unroll
    opt = partial(torch.optim.Adam, lr=1e-2, betas=(0.5, 0.999))
    module = GANModule(g, d, NonSaturatingLoss(), opt, opt)
    opt_d = opt(d.parameters())
    real, fake = torch.randn(2, 8, 1, 16, 16, dtype=torch.float64)
    opt_d.zero_grad()
    module.loss.d_loss(d(real), d(fake)).backward()
    opt_d.step()  # running Adam state, carried into the unroll

    def unrolled_loss(x: torch.Tensor) -> torch.Tensor:
        return module.loss.g_loss(unrolled_discriminator(module, opt_d, real, x, None, 3)(x, None))

    x = fake.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(unrolled_loss(x), x)
    eps, picked = 1e-6, [(i, j) for i in (0, 5) for j in range(0, 256, 17)]
    for i, j in picked:
        step = torch.zeros_like(fake)
        step[i].view(-1)[j] = eps
        numeric = (unrolled_loss(fake + step) - unrolled_loss(fake - step)) / (2 * eps)
        torch.testing.assert_close(exact[i].view(-1)[j], numeric, rtol=1e-5, atol=1e-9)
    surrogate = unrolled_discriminator(module, opt_d, real, x, None, 3, second_order=False)
    (first_order,) = torch.autograd.grad(module.loss.g_loss(surrogate(x, None)), x)
    assert not torch.allclose(exact, first_order)  # the checked terms are second order


def test_unrolled_works_with_gradient_penalty_loss() -> None:
    module = _module(loss=WGANGPLoss())
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=1e-3)
    fake = module.generator(torch.randn(16, 4))
    critic = unrolled_discriminator(module, opt_d, torch.randn(16, 2), fake, None, 2)
    assert all(torch.isfinite(g).all() for g in _g_grads(module, critic, fake))


# ------------------------------------------------------------------ feature matching
def test_feature_matching_matches_mean_penultimate_features() -> None:
    module = _module()
    d = module.discriminator
    real, fake = torch.randn(32, 2), torch.randn(32, 2)
    with capture_output(d.body) as feats:
        d(real)
        d(fake)
    expected = (d.body(real).mean(0) - d.body(fake).mean(0)).pow(2).sum()
    torch.testing.assert_close(feature_matching_loss(*feats), expected)
    same = feature_matching_loss(d.body(real), d.body(real))
    assert same == 0


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("remedy", list(REMEDIES))
def test_every_remedy_trains_with_every_loss(tmp_path, remedy: str, loss: str) -> None:
    cfg = compose_config([*TOY, f"loss={loss}", "max_g_steps=2", *REMEDIES[remedy]], tmp_path)
    import ganforge.study.jobs as jobs

    module = jobs.fit(cfg).module
    assert module.g_step == 2
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize(
    ("minibatch", "prior"),
    [("stddev", "normal"), ("{kind:discrimination,num_kernels:4,kernel_dim:3}", "uniform")],
)
def test_all_remedies_together_train_under_ddp_and_resume(
    tmp_path: Path, minibatch: str, prior: str
) -> None:
    common = [
        *TOY,
        "logger=csv",
        "callbacks=default",
        "callbacks.samples=null",
        "callbacks.metrics=null",
        "callbacks.report=null",
        "callbacks.progress=null",
        "callbacks.model_summary=null",
        "callbacks.checkpoint=null",
        "optimized_metric=null",
        "model.discriminator.pack=2",
        f"model.discriminator.minibatch={minibatch}",
        "model.unrolled_steps=2",
        "model.g_objective=feature_matching",
        f"model.latent_prior={prior}",
    ]
    out = tmp_path / "run"
    train(compose_config([*common, "trainer=ddp_sim", "max_g_steps=2"], out))
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4
    # resumed under the same 2-process DDP (a checkpoint resumes on the devices it was made on)
    train(compose_config([*common, "trainer=ddp_sim", "max_g_steps=4", f"ckpt_path={last}"], out))
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == 8
    assert all(
        torch.isfinite(v).all() for v in resumed["state_dict"].values() if v.is_floating_point()
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.discriminator.pack=0", "positive integer"),
        ("model.unrolled_steps=-1", ">= 0"),
        ("model.g_objective=moments", "adversarial or feature_matching"),
    ],
)
def test_bad_remedy_option_is_one_clear_error_naming_the_key(tmp_path, override, expected) -> None:
    from ganforge.errors import GanforgeError
    from ganforge.validate import validate_train

    with pytest.raises(GanforgeError, match=expected) as err:
        validate_train(compose_config([*TOY, override], tmp_path))
    assert override.split("=")[0] in str(err.value)


# ------------------------------------------------------------------ the study command
def run_mode_collapse_study(out: Path, *overrides: str) -> tuple[list[dict[str, str]], str]:
    """Run ``src/study.py`` (``study=mode_collapse`` unless a ``study=`` override is given) into
    ``out``; its results.csv rows and study.md."""
    if not any(o.startswith("study=") for o in overrides):
        overrides = ("study=mode_collapse", *overrides)
    args = ["src/study.py", *overrides, f"hydra.run.dir={out}"]
    result = run_cli(args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f)), (out / "study.md").read_text()


def test_mode_collapse_study_runs_its_jobs_in_two_processes(tmp_path: Path) -> None:
    """The one command, shrunk: 2 variants x 2 seeds on ring8, in two worker processes; the
    table lists every job in the study's order, beside the published rows."""
    out = tmp_path / "study"
    rows, study = run_mode_collapse_study(
        out,
        "study.datasets=[ring8]",
        "study.only=[gan,pacgan2]",
        "study.seeds=2",
        "study.steps=3",
        "study.workers=2",
    )
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("gan", "0", "COMPLETED"),
        ("gan", "1", "COMPLETED"),
        ("pacgan2", "0", "COMPLETED"),
        ("pacgan2", "1", "COMPLETED"),
    ]
    assert all("model.discriminator.pack=2" in r["overrides"] for r in rows[2:])
    assert all(0 <= float(r["high_quality_pct"]) <= 100 and not r["kl_uniform"] for r in rows)
    assert "| gan |" in study and "| pacgan2 |" in study and "PacGAN Table 1" in study
    assert (out / "samples.png").exists()


def test_vanishing_gradients_study_shows_the_minimax_gradient_collapse(tmp_path: Path) -> None:
    """The other study command, shrunk: D trained against the initial G grows confident, and
    the minimax loss's gradient for G shrinks relative to the non-saturating one."""
    out = tmp_path / "study"
    result = run_cli(
        [
            "src/study.py",
            "study=vanishing_gradients",
            "study.checkpoints=[0]",
            "study.d_steps=300",
            "study.every=150",
            "study.curve_steps=5",
            f"hydra.run.dir={out}",
        ],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        [float(c) for c in line.strip("|").split("|")]
        for line in (out / "study.md").read_text().splitlines()
        if line.startswith("| 0 |")
    ]
    assert [r[1] for r in rows] == [0, 150, 300]
    d_fake, ratio = [r[2] for r in rows], [r[5] for r in rows]
    assert d_fake[-1] < d_fake[0] / 2  # D grew confident against the fixed G
    assert ratio[-1] < ratio[0] / 2  # minimax's gradient vanishes faster than non-saturating's
    assert (out / "grad_norms.png").exists() and (out / "training_curves.png").exists()


def stacked_mnist_arm() -> list[str]:
    """The study's Stacked MNIST overrides (its published settings), as the jobs receive them."""
    published = OmegaConf.load(CONF / "study" / "mode_collapse.yaml")
    return list(published.data_overrides.stacked_mnist)


@pytest.mark.parametrize(("variant", "images"), [("gan", 64), ("pacgan2", 128), ("pacgan4", 256)])
def test_stacked_mnist_batches_hold_64_packed_samples(tmp_path, variant, images) -> None:
    """The PacGAN code's batch is 64 of D's packed inputs: 64 x pack images per side."""
    from ganforge.study.mode_collapse import job_overrides

    study = OmegaConf.load(CONF / "study" / "mode_collapse.yaml")
    overrides = job_overrides(study, "stacked_mnist", 0, list(study.variants[variant]))
    cfg = compose_config([*overrides, "data.source=mnist5k"], tmp_path)
    assert cfg.data.batch_size == images
    assert cfg.data.batch_size // cfg.model.discriminator.pack == 64
    assert cfg.model.latent_prior == "uniform" and cfg.model.generator.bottom_size == 2
    assert cfg.data.image_size == 28  # the published code's digits, not resized


def test_mode_collapse_study_scores_stacked_mnist(tmp_path: Path) -> None:
    """The Stacked MNIST arm of the study, shrunk: a job trains on stacked embedded digits with
    the arm's published settings and is scored by the digit classifier over the 1,000 triples
    (modes and KL to uniform); the figure shows its samples as an image grid. The shrunk study
    extends the real one through Hydra's search path, as a user's own study config would."""
    shrink = ["data.num_samples=2000", "data.num_val=100", "data.source=mnist5k"]
    arm = [o for o in stacked_mnist_arm() if not o.startswith("data.num_")]
    assert {"loss.n_gen=2", "model.latent_prior=uniform"} <= set(arm)
    assert {"model.generator.bottom_size=2", "model.discriminator.kernel_size=5"} <= set(arm)
    conf = tmp_path / "conf" / "study"
    conf.mkdir(parents=True)
    entries = "".join(f"    - {o}\n".replace("${", "\\${") for o in arm + shrink)
    (conf / "small_stacked.yaml").write_text(
        f"defaults:\n  - mode_collapse\n  - _self_\ndata_overrides:\n  stacked_mnist:\n{entries}"
    )
    out = tmp_path / "study"
    (row,), study = run_mode_collapse_study(
        out,
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "study=small_stacked",
        "study.datasets=[stacked_mnist]",
        "study.only=[gan]",
        "study.seeds=1",
        "study.steps=2",
        "study.workers=1",
        "study.num_samples.stacked_mnist=2000",
    )
    assert row["status"] == "COMPLETED", row["status"]
    assert 1 <= int(row["modes"]) <= 1000 and 0 < float(row["kl_uniform"]) <= math.log(1000)
    assert "## stacked_mnist (2000 samples scored per run)" in study
    assert row["digits"] == "embedded mnist5k (5,000 digits)"
    assert "Digits stacked: embedded mnist5k (5,000 digits) in 1 job." in study
    assert "VEEGAN Table 2" in study and "PacGAN Table 3" in study
    assert (out / "samples.png").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stacked_mnist_scoring_runs_on_the_gpu_the_job_trained_on(tmp_path: Path) -> None:
    """Lightning hands the trained module back on the CPU; the study scores its 26,000
    samples on the job's GPU instead (on the CPU that scoring outlasts a GPU job's training)."""
    import ganforge.study.jobs as jobs
    from ganforge.study.mode_collapse import score

    overrides = ["data=stacked_mnist", "max_g_steps=2", "data.num_samples=2000"]
    job = jobs.fit(
        compose_config([*overrides, "data.num_val=100", "trainer.accelerator=gpu"], tmp_path)
    )
    assert job.device.type == "cuda"
    on_gpu = score(job, 2000, seed=0, threshold=3.0, min_count=20)
    assert next(job.module.parameters()).device.type == "cuda"
    # the same samples scored on the CPU: only float rounding may flip a few digits
    on_cpu = score(replace(job, device=torch.device("cpu")), 2000, 0, 3.0, 20)
    assert abs(on_gpu["modes"] - on_cpu["modes"]) <= 3
    assert on_gpu["kl_uniform"] == pytest.approx(on_cpu["kl_uniform"], abs=0.05)


def test_mode_collapse_figure_shows_stacked_mnist_samples_as_an_image_grid(tmp_path: Path):
    """Stacked MNIST panels show the samples' pixels (a mixture's panels show points)."""
    images = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    samples_figure({("stacked_mnist", "gan"): images}, {}, tmp_path / "samples.png")
    figure = np.asarray(Image.open(tmp_path / "samples.png").convert("RGB")).reshape(-1, 3)
    assert len(np.unique(figure, axis=0)) > 10_000  # random RGB pixels, not an empty panel
