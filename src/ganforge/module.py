"""The GAN LightningModule: alternating discriminator and generator updates, manual optimization.

Step semantics. One training step consumes one loader batch of ``n_critic * batch_size`` real
images and makes ``n_critic`` discriminator updates (each on a fresh real batch), then
``n_gen`` generator updates (the loss's counts; both 1 by default). Lightning counts every
optimizer step in ``trainer.global_step``, so a step advances it by ``n_critic + n_gen``; the
loggers' step axis counts training steps, which are generator iterations.
:attr:`GANModule.g_step` gives the generator iteration count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel

from ganforge.ema import ema_beta, ema_update, has_batchnorm, standing_stats
from ganforge.fast_path import FastPath, eager_forward, is_compiled
from ganforge.losses import GANLoss, acgan_d_class_loss, acgan_g_class_loss, feature_matching_loss
from ganforge.nets.base import as_images, split_output
from ganforge.nets.features import capture_output
from ganforge.noise import check_prior, latent_noise
from ganforge.pixels import class_rows
from ganforge.resume import ResumeState
from ganforge.step_logs import grad_norm, log_step
from ganforge.unrolled import unrolled_discriminator

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]
G_OBJECTIVES = ("adversarial", "feature_matching")


def float_betas(factory: Callable[..., Optimizer]) -> dict[str, tuple[float, ...]]:
    """``betas`` as floats: YAML and the command line read ``betas=[0,0.99]`` with an int,
    which torch's Adam refuses ("betas must be either both floats or both Tensors")."""
    betas = getattr(factory, "keywords", {}).get("betas")
    return {} if betas is None else {"betas": tuple(float(b) for b in betas)}


class GANModule(L.LightningModule):
    """A generator and a discriminator trained against each other under a :class:`GANLoss`.

    Args:
        generator: maps ``(z, y)`` to images; must expose ``latent_dim`` and ``num_classes``.
        discriminator: maps ``(x, y)`` to raw outputs (and class logits for ACGAN).
        loss: the objective, which also sets ``n_critic`` and any penalty.
        optimizer_g, optimizer_d: factories taking parameters (Hydra ``_partial_`` configs).
        scheduler_g, scheduler_d: optional factories taking the optimizer.
        scheduler_interval: step the schedulers every ``epoch`` or every generator ``step``.
        grad_clip_norm: clip each network's gradient norm with Lightning's ``clip_gradients``.
        ema_kimg: keep an exponential moving average of G's weights, which sampling uses, with
            a half-life of this many thousand images (StyleGAN2-ADA's ``ema_kimg``), capped at
            ``ema_rampup`` times the images seen.
        ema_decay: keep the average with this fixed decay per step instead (replaces
            ``ema_kimg``).
        ema_rampup: the ramp-up factor (null: the half-life is fixed from the first step).
        ema_standing_stats: sample from the average with BatchNorm statistics recomputed for
            its weights (:func:`ganforge.ema.standing_stats`) instead of averaged ones.
        aux_weight: weight of ACGAN's auxiliary classification terms.
        instance_noise: std of Gaussian noise added to D's inputs, decaying linearly to zero
            over ``instance_noise_steps`` generator iterations (Sonderby et al. 2016).
        d_augment: differentiable augmentation applied to real and fake batches before D.
        latent_prior: the distribution of ``z`` (:data:`ganforge.noise.LATENT_PRIORS`), for
            training, sampling and the fixed noise.
        num_fixed_samples: size of the fixed noise batch used for sample grids.
        noise_seed: seed of the fixed noise batch (independent of the global seed).
        conditioning: how labels enter the networks (``none``, ``concat``, ``acgan``,
            ``projection``); the network configs read it, the module records it.
        fast_path: speed options for the networks and optimizers (channels_last, compile,
            fused optimizers); see :class:`ganforge.fast_path.FastPath`.
        g_objective: ``adversarial`` (the loss's G term) or ``feature_matching`` (Salimans et
            al. 2016: match the mean of D's penultimate features on real and fake batches).
        unrolled_steps: take G's loss against D after this many unrolled D updates (Metz et
            al. 2017, :mod:`ganforge.unrolled`); 0 is the plain update.
        unrolled_second_order: backpropagate through the unroll; false gives the surrogate.
        log_steps: send each step's losses, D outputs and gradient norms to Lightning's
            ``self.log`` (loggers, progress bar, ``callback_metrics``). False skips it for runs
            nobody watches step by step, such as study jobs, which read ``training_step``'s
            returned values instead: on a toy MLP ``self.log`` is a third of a step on CPU.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        scheduler_g: SchedulerFactory | None = None,
        scheduler_d: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        grad_clip_norm: float | None = None,
        ema_decay: float | None = None,
        ema_kimg: float | None = None,
        ema_rampup: float | None = 0.05,
        ema_standing_stats: bool = True,
        aux_weight: float = 1.0,
        instance_noise: float = 0.0,
        instance_noise_steps: int = 10_000,
        d_augment: Callable[[Tensor], Tensor] | None = None,
        latent_prior: str = "normal",
        num_fixed_samples: int = 64,
        noise_seed: int = 1234,
        conditioning: str = "none",
        fast_path: FastPath | None = None,
        g_objective: str = "adversarial",
        unrolled_steps: int = 0,
        unrolled_second_order: bool = True,
        log_steps: bool = True,
    ):
        super().__init__()
        self.automatic_optimization = False
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.scheduler_g, self.scheduler_d = scheduler_g, scheduler_d
        self.scheduler_interval = scheduler_interval
        if g_objective not in G_OBJECTIVES:
            raise ValueError(f"g_objective must be one of {G_OBJECTIVES}, got {g_objective!r}")
        if unrolled_steps < 0:
            raise ValueError(f"unrolled_steps must be >= 0, got {unrolled_steps}")
        self.g_objective = g_objective
        self.unrolled_steps = unrolled_steps
        self.unrolled_second_order = unrolled_second_order
        self.log_steps = log_steps
        self._checkpoint_step = 0  # optimizer steps of a loaded checkpoint, without a trainer
        self.grad_clip_norm = grad_clip_norm
        self.aux_weight = aux_weight
        self.instance_noise = instance_noise
        self.instance_noise_steps = instance_noise_steps
        self.d_augment = d_augment
        self.conditioning = conditioning
        self.latent_dim: int = generator.latent_dim
        self.latent_prior = check_prior(latent_prior)
        self.num_classes: int = getattr(generator, "num_classes", 0) or 0
        self.fast_path = fast_path or FastPath()
        for net in (generator, discriminator):
            self.fast_path.prepare(net)  # before the EMA copy, so it shares the memory format
        self.ema_kimg = None if ema_decay else ema_kimg  # a fixed decay replaces the ramp
        self.ema_decay, self.ema_rampup = ema_decay, ema_rampup
        self.g_ema = AveragedModel(generator, use_buffers=True) if ema_decay or ema_kimg else None
        if self.g_ema is not None:  # a copy, not a network: DDP must not all-reduce it
            self.g_ema.requires_grad_(False)
        self.ema_standing_stats = ema_standing_stats and has_batchnorm(generator)
        # ((EMA updates, device) it was computed at, the copy); a tuple, so it is no submodule
        self._standing: tuple[tuple[int, torch.device], nn.Module] | None = None
        self._step_grad_norm: Tensor | None = None
        # the sample grid's batch: whole rows per class for a conditional model
        if self.num_classes:
            fixed_labels = class_rows(num_fixed_samples, self.num_classes)
        else:
            fixed_labels = torch.zeros(num_fixed_samples, dtype=torch.long)
        gen = torch.Generator().manual_seed(noise_seed)
        fixed_noise = latent_noise(len(fixed_labels), self.latent_dim, gen, prior=latent_prior)
        self.register_buffer("fixed_noise", fixed_noise)
        self.register_buffer("fixed_labels", fixed_labels)
        #: the composed run configuration, stored in checkpoints so tools can rebuild the model.
        self.run_config: dict[str, Any] | None = None

    # ------------------------------------------------------------------ sampling

    @property
    def sampler(self) -> nn.Module:
        """The generator used for evaluation and sampling: the EMA copy when it exists, with
        standing BatchNorm statistics (recomputed after each update, when next used)."""
        if self.g_ema is None:
            return self.generator
        if not self.ema_standing_stats:
            return self.g_ema.module
        updates = (int(self.g_ema.n_averaged), self.g_ema.n_averaged.device)
        if self._standing is None or self._standing[0] != updates:
            net = standing_stats(
                self.g_ema.module, self.latent_dim, self.num_classes, prior=self.latent_prior
            )
            self._standing = (updates, net)
        return self._standing[1]

    @torch.no_grad()
    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Images in [-1, 1] for noise ``z`` (and labels ``y``), from the sampling generator in
        eval mode; the generator's train/eval mode is restored afterwards."""
        g = self.sampler
        was_training = g.training
        g.eval()
        try:
            return as_images(g, g(z.to(self.device), None if y is None else y.to(self.device)))
        finally:
            g.train(was_training)

    def sample(
        self,
        n: int,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``n`` fresh samples and the labels they were drawn for; ``truncation`` bounds the
        noise (:func:`ganforge.noise.latent_noise`).

        Noise comes from ``generator`` (a CPU ``torch.Generator``) when given, so sampling
        leaves the global RNG stream, and thus training, untouched.
        """
        z = latent_noise(n, self.latent_dim, generator, truncation, self.latent_prior)
        if self.num_classes and labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator)
        return self.generate(z, labels if self.num_classes else None), labels

    @property
    def _optimizer_steps(self) -> int:
        return self.trainer.global_step if self._trainer else self._checkpoint_step

    @property
    def g_step(self) -> int:
        """Generator iterations so far (the loggers' step axis); for a module loaded from a
        checkpoint outside a trainer, the checkpoint's."""
        return self._optimizer_steps // self.loss.steps_per_iteration

    @property
    def d_step(self) -> int:
        """Discriminator updates so far (lazy R1 counts them)."""
        return self._optimizer_steps - self.loss.n_gen * self.g_step

    # ------------------------------------------------------------------ training
    def configure_model(self) -> None:
        """Compile G and D (when ``fast_path.compile`` is on) in each process, after the ranks
        exist: a compiled forward does not pickle, and the preflight checks run uncompiled."""
        for net, name in ((self.generator, "generator"), (self.discriminator, "discriminator")):
            if not is_compiled(net):
                self.fast_path.compile_net(net, name)

    def configure_optimizers(self):
        scaler = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        extra_d = self.fast_path.optimizer_kwargs(self.optimizer_d, self.device, scaler)
        extra_g = self.fast_path.optimizer_kwargs(self.optimizer_g, self.device, scaler)
        extra_d |= float_betas(self.optimizer_d)
        extra_g |= float_betas(self.optimizer_g)
        opt_d = self.optimizer_d(self.discriminator.parameters(), **extra_d)
        opt_g = self.optimizer_g(self.generator.parameters(), **extra_g)
        optimizers = [opt_d, opt_g]
        factories = [self.scheduler_d, self.scheduler_g]
        schedulers = [f(o) for f, o in zip(factories, optimizers, strict=True) if f is not None]
        return optimizers, schedulers

    def _d_input(self, x: Tensor) -> Tensor:
        if self.d_augment is not None:
            x = self.d_augment(x)
        if self.instance_noise > 0:
            frac = max(0.0, 1.0 - self.g_step / max(self.instance_noise_steps, 1))
            if frac > 0:
                x = x + self.instance_noise * frac * torch.randn_like(x)
        return x

    def _critic(self, y: Tensor | None) -> Callable[[Tensor], Tensor]:
        """D's adversarial output as a function of its input, for gradient penalties (eager: a
        compiled D does not support the penalty's double backward)."""
        forward = eager_forward(self.discriminator)
        return lambda x: split_output(forward(x, y))[0]

    def _noise(self, n: int) -> Tensor:
        """Training noise: ``n`` draws from the prior, from the global (per-rank) RNG stream."""
        return latent_noise(n, self.latent_dim, None, prior=self.latent_prior, device=self.device)

    def _labels(self, y: Tensor) -> Tensor | None:
        return y if self.num_classes else None

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        # Lightning calls this inside opt.step(), after AMP's GradScaler (16-mixed) has unscaled
        # the gradients, so clipping and the logged norm see their true values.
        if self.grad_clip_norm:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.grad_clip_norm, gradient_clip_algorithm="norm"
            )
        self._step_grad_norm = grad_norm(p for g in optimizer.param_groups for p in g["params"])

    def _clip_and_step(self, opt) -> Tensor:
        """Step ``opt`` (clipping in :meth:`on_before_optimizer_step`); return the grad norm."""
        opt.step()
        norm = self._step_grad_norm
        assert norm is not None, "on_before_optimizer_step did not run"
        # free the gradients now: the other network's update must not see or keep them
        opt.zero_grad(set_to_none=True)
        return norm

    def discriminator_step(
        self, opt, real: Tensor, y: Tensor | None, fake: Tensor | None = None
    ) -> dict[str, Tensor]:
        """One discriminator update on a real batch and a fake batch (fresh unless given)."""
        with self.toggled_optimizer(opt):
            if fake is None:
                z = self._noise(real.shape[0])
                with torch.no_grad():
                    fake = self.generator(z, y)
            fake = fake.detach()
            real_in, fake_in = self._d_input(real), self._d_input(fake)
            real_out, real_cls = split_output(self.discriminator(real_in, y))
            fake_out, fake_cls = split_output(self.discriminator(fake_in, y))
            loss = self.loss.d_loss(real_out, fake_out)
            penalty = self.loss.penalty(self._critic(y), real_in, fake_in, self.d_step)
            if penalty is not None:
                loss = loss + penalty
            if real_cls is not None:
                loss = loss + self.aux_weight * acgan_d_class_loss(real_cls, fake_cls, y)
            self.manual_backward(loss)
            norm = self._clip_and_step(opt)
            self.loss.after_d_step(self.discriminator)
        return {
            "loss/d": loss.detach(),
            "d/real": self.loss.d_value(real_out.detach()).mean(),
            "d/fake": self.loss.d_value(fake_out.detach()).mean(),
            "grad_norm/d": norm,
        }

    def generator_step(
        self, opt, fake: Tensor, y: Tensor | None, real: Tensor | None = None
    ) -> dict[str, Tensor]:
        """One generator update against the current discriminator on ``fake = G(z, y)``, whose
        graph back to G's weights is kept. ``real`` (the last critic batch) is needed by the
        unrolled and feature-matching objectives."""
        with self.toggled_optimizer(opt):
            d: Callable[..., Any] = self.discriminator
            if self.unrolled_steps:
                opt_d = self.optimizers()[0].optimizer
                d = unrolled_discriminator(
                    self, opt_d, real, fake, y, self.unrolled_steps, self.unrolled_second_order
                )
            if self.g_objective == "feature_matching":
                with capture_output(self.discriminator.body) as features:
                    d(self._d_input(real), y)
                    _, fake_cls = split_output(d(self._d_input(fake), y))
                loss = feature_matching_loss(*features)
            else:
                fake_out, fake_cls = split_output(d(self._d_input(fake), y))
                loss = self.loss.g_loss(fake_out)
            if fake_cls is not None:
                loss = loss + self.aux_weight * acgan_g_class_loss(fake_cls, y)
            self.manual_backward(loss)
            norm = self._clip_and_step(opt)
        return {"loss/g": loss.detach(), "grad_norm/g": norm}

    def _update_ema(self, batch: int) -> None:
        step = self.g_step  # generator iterations done, this one included
        decay = self.ema_decay
        if self.ema_kimg:
            batch *= self.trainer.world_size if self._trainer else 1
            decay = ema_beta(batch, step * batch, self.ema_kimg, self.ema_rampup)
        ema_update(self.g_ema, self.generator, decay, first=step <= 1)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        x, y = batch
        x = self.fast_path.format_batch(x)
        opt_d, opt_g = self.optimizers()
        n_critic = self.loss.n_critic
        if x.shape[0] % n_critic:
            raise ValueError(
                f"batch of {x.shape[0]} images does not split into n_critic={n_critic} parts"
            )
        chunks = list(zip(x.chunk(n_critic), y.chunk(n_critic), strict=True))
        for real, labels in chunks[:-1]:
            self.discriminator_step(opt_d, real, self._labels(labels))
        # The last critic step's fake batch, made with its graph, also serves G's update, as in
        # the DCGAN reference loop: one generator forward per step fewer.
        real, labels = chunks[-1][0], self._labels(chunks[-1][1])
        z = self._noise(real.shape[0])
        fake = self.generator(z, labels)
        d_logs = self.discriminator_step(opt_d, real, labels, fake)
        g_logs = self.generator_step(opt_g, fake, labels, real=real)
        for _ in range(self.loss.n_gen - 1):
            # the DCGAN-TensorFlow loop's extra G updates reuse the iteration's noise
            g_logs = self.generator_step(opt_g, self.generator(z, labels), labels, real=real)
        if self.g_ema is not None:
            self._update_ema(fake.shape[0])
        logs = {**d_logs, **g_logs}
        if self.log_steps:
            log_step(self, logs, live_bar=self.fast_path.live_progress_bar)
        # Epoch schedulers step with the epoch's last batch, before the batch-end hooks (as
        # Lightning does for automatic optimization), so a checkpoint written after that batch
        # already holds the stepped schedulers and resumes exactly.
        if self.scheduler_interval == "step" or self.trainer.is_last_batch:
            self._step_schedulers()
        return logs  # detached step scalars, for callbacks (the divergence guard checks them)

    def _step_schedulers(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for sch in schedulers if isinstance(schedulers, list) else [schedulers]:
            sch.step()

    def configure_callbacks(self) -> list[L.Callback]:
        """Exact resume and per-rank noise in any trainer this module runs in."""
        return [ResumeState()]

    # ------------------------------------------------------------------ checkpoints
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._checkpoint_step = checkpoint.get("global_step", 0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["ganforge_config"] = self.run_config
