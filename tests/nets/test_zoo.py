"""The GAN zoo: every architecture x loss x conditioning trains through the real configs, the
conditional models learn their classes, and the ResNet, DiffAugment, EMA, BatchNorm/penalty
rule, sample grids and experiment configs behave as documented."""

from __future__ import annotations

import itertools
import logging
import math
from functools import partial
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ganforge.augment import DiffAugment, rand_cutout, rand_translation
from ganforge.build import build_module
from ganforge.callbacks import SampleGrid
from ganforge.data.loader import TensorBatches
from ganforge.data.mnist5k import MNIST5kDataModule
from ganforge.errors import GanforgeError
from ganforge.losses import NonSaturatingLoss
from ganforge.module import GANModule
from ganforge.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    ResNetDiscriminator,
    ResNetGenerator,
    VectorDiscriminator,
    VectorGenerator,
)
from ganforge.nets.base import TanhOutput, as_images
from ganforge.run import train
from tests.conftest import CONF, compose_config

# one step through everything, tiny batches, no callbacks: for "survives fast_dev_run" tests
FAST_DEV_RUN = [
    "data.batch_size=2",
    "data.num_val=8",
    "callbacks=none",
    "+trainer.fast_dev_run=true",
    "trainer.enable_model_summary=false",
    "++trainer.enable_progress_bar=false",
]

ARCHS = {
    "gan_mlp": [
        "data.image_size=16",
        "model.generator.hidden=[8]",
        "model.discriminator.hidden=[8]",
        "model.discriminator.pieces=2",
    ],
    "dcgan": [
        "data.image_size=16",
        "model.generator.base_width=2",
        "model.discriminator.base_width=2",
    ],
    "resnet": [
        "data.image_size=32",
        "model.generator.base_width=2",
        "model.discriminator.base_width=2",
    ],
}
LOSSES = ["minimax", "nonsaturating", "lsgan", "wgan", "wgan_gp", "hinge"]
CONDITIONINGS = ["none", "concat", "acgan", "projection"]


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tensors here are tiny: torch's intra-op threads only contend for the shared cores
    (a 64x64 ResNet forward at width 2 took ~2.7 s with 2 threads, ~0.03 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_digits():
    """Real configs, tiny data: the mnist5k datamodule serves 48 random labelled images of the
    configured size (enough for 5 critic batches of 2 and 8 validation images)."""

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(48, 1, self.image_size, self.image_size, generator=g) * 2 - 1
        return x, torch.arange(48) % 10

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MNIST5kDataModule, "load_tensors", load_tensors)
        yield


@pytest.mark.parametrize(
    ("arch", "loss", "conditioning"),
    list(itertools.product(ARCHS, LOSSES, CONDITIONINGS)),
)
def test_every_architecture_loss_and_conditioning_survives_fast_dev_run(
    tiny_digits, tmp_path, arch, loss, conditioning
):
    overrides = [
        "logger=csv",
        f"model={arch}",
        f"loss={loss}",
        f"model.conditioning={conditioning}",
        *ARCHS[arch],
        "model.generator.latent_dim=4",
        "model.num_fixed_samples=10",
        *FAST_DEV_RUN,
    ]
    # no metrics callback runs, so there is no metric to return
    assert train(compose_config(overrides, tmp_path)) is None


# ---------------------------------------------------------------- conditional toy mixture
MODES = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])


class LabelledMixture(L.LightningDataModule):
    """Points around mode k labelled k, served by the in-memory loader."""

    def __init__(self, n: int = 1024, std: float = 0.1, batch_size: int = 64):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % len(MODES)
        self.x = MODES[self.y] + std * torch.randn(n, 2, generator=g)
        self.batch_size = batch_size

    def train_dataloader(self) -> TensorBatches:
        return TensorBatches(self.x, self.y, self.batch_size, seed=0)


@pytest.mark.parametrize("conditioning", ["concat", "acgan", "projection"])
def test_conditional_samples_land_on_their_class_mode(conditioning):
    torch.manual_seed(0)
    k = len(MODES)
    net = {"num_classes": k, "conditioning": conditioning, "hidden": (32, 32)}
    adam = partial(torch.optim.Adam, lr=2e-3, betas=(0.5, 0.999))
    module = GANModule(
        generator=VectorGenerator(latent_dim=4, **net),
        discriminator=VectorDiscriminator(**net),
        loss=NonSaturatingLoss(),
        optimizer_g=adam,
        optimizer_d=adam,
        num_fixed_samples=8,
    )
    trainer = L.Trainer(
        max_steps=2 * 150,  # 150 generator iterations (Lightning counts D and G steps)
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=LabelledMixture())
    hits = []
    gen = torch.Generator().manual_seed(1)
    for label in range(k):
        points, labels = module.sample(200, labels=torch.full((200,), label), generator=gen)
        assert labels.eq(label).all()
        nearest = torch.cdist(points, MODES).argmin(1)
        hits.append(nearest.eq(label).float().mean().item())
    assert sum(h > 0.5 for h in hits) >= k - 1, f"share of samples at their class's mode: {hits}"


# ---------------------------------------------------------------- sampling and the grid
class LabelPainter(nn.Module):
    """A stand-in generator whose image for label y is filled with y / (K - 1), mapped to
    [-1, 1], so the grid shows which label each cell was drawn for."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.latent_dim, self.num_classes = 2, num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        value = y.float() / (self.num_classes - 1) * 2 - 1
        return (self.scale * value).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)


def painter_module(**kwargs) -> GANModule:
    adam = partial(torch.optim.Adam, lr=1e-3)
    return GANModule(LabelPainter(), nn.Linear(1, 1), NonSaturatingLoss(), adam, adam, **kwargs)


def test_sample_grid_shows_one_row_per_class(tmp_path):
    module = painter_module(num_fixed_samples=8)  # rounded up to 9: three rows of three
    assert module.fixed_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    path = SampleGrid(str(tmp_path)).render(SimpleNamespace(loggers=[]), module, "grid")
    grid = torch.tensor(list(Image.open(path).convert("L").getdata())).view(20, 20)
    for row in range(3):  # cells are 4x4 with 2 pixels of padding around them
        top = 2 + 6 * row
        cells = grid[top : top + 4, 2:18].reshape(4, 16)
        cells = torch.cat([cells[:, 6 * c : 6 * c + 4] for c in range(3)], 1)
        assert cells.float().sub(255 * row / 2).abs().max() <= 1, f"row {row} is not class {row}"


def test_sample_takes_labels_and_draws_them_when_not_given():
    module = painter_module()
    labels = torch.tensor([2, 0, 1, 1])
    images, used = module.sample(4, labels=labels)
    assert used is labels
    assert images[:, 0, 0, 0].tolist() == [1.0, -1.0, 0.0, 0.0]
    images, drawn = module.sample(50, generator=torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {0, 1, 2}
    assert torch.equal(images[:, 0, 0, 0], drawn.float() - 1)


def test_sampling_uses_the_ema_generator_when_on():
    module = painter_module(ema_decay=0.5)
    with torch.no_grad():
        module.generator.scale.fill_(3.0)
    module.g_ema.update_parameters(module.generator)  # first update copies: 3
    with torch.no_grad():
        module.generator.scale.fill_(1.0)
    module.g_ema.update_parameters(module.generator)  # 0.5 * 3 + 0.5 * 1 = 2
    assert module.sampler is module.g_ema.module
    images, _ = module.sample(1, labels=torch.tensor([2]))
    assert images.unique().tolist() == [2.0]
    plain = painter_module()
    assert plain.sampler is plain.generator  # without EMA the generator itself samples


# ---------------------------------------------------------------- ResNet
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_resnet_shapes_at_both_sizes(size, conditioning):
    net = {"image_size": size, "base_width": 2, "num_classes": 10, "conditioning": conditioning}
    g, d = ResNetGenerator(latent_dim=4, **net), ResNetDiscriminator(**net)
    y = torch.tensor([1, 7, 3])
    images = g(torch.randn(3, 4), y if conditioning != "none" else None)
    assert images.shape == (3, 3, size, size)
    assert images.abs().max() <= 1
    out = d(images, y)
    logits, classes = out if conditioning == "acgan" else (out, None)
    assert logits.shape == (3,)
    assert classes is None or classes.shape == (3, 10)


@pytest.mark.parametrize("size", [16, 48, 128])
def test_resnet_rejects_other_sizes_naming_them(size):
    with pytest.raises(GanforgeError, match=rf"image_size={size}.*32 or 64"):
        ResNetGenerator(image_size=size)
    with pytest.raises(GanforgeError, match=rf"image_size={size}"):
        ResNetDiscriminator(image_size=size)


# ---------------------------------------------------------------- DCGAN shapes
def _feature_sizes(net: nn.Module, x: Tensor, kind: type[nn.Module]) -> list[tuple[int, ...]]:
    """(channels, height, width) after every layer of ``kind`` in ``net``'s forward on ``x``."""
    sizes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(tuple(out.shape[1:])))
        for m in net.modules()
        if isinstance(m, kind)
    ]
    net(x)
    for h in hooks:
        h.remove()
    return sizes


def test_dcgan_tensorflow_shape_goes_down_to_2x2_with_5x5_kernels():
    """kernel_size=5, bottom_size=2 at 32x32 is the DCGAN-TensorFlow layout of the published
    Stacked MNIST rows: G and D have one stage more than the default, 512 channels at 2x2."""
    shape = {"channels": 3, "image_size": 32, "base_width": 64, "kernel_size": 5, "bottom_size": 2}
    g, d = DCGANGenerator(**shape), DCGANDiscriminator(**shape)
    images = g(torch.randn(4, 100))
    assert images.shape == (4, 3, 32, 32)
    assert _feature_sizes(g, torch.randn(4, 100), nn.ConvTranspose2d) == [
        (512, 2, 2), (256, 4, 4), (128, 8, 8), (64, 16, 16), (3, 32, 32)
    ]  # fmt: skip
    assert _feature_sizes(d, images, nn.Conv2d) == [
        (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)
    ]  # fmt: skip
    assert {m.kernel_size for m in d.modules() if isinstance(m, nn.Conv2d)} == {(5, 5)}
    assert d.head.linear.in_features == 512 * 2 * 2
    assert d(images).shape == (4,)
    default = DCGANDiscriminator(channels=3, image_size=32, base_width=64)
    assert _feature_sizes(default, images, nn.Conv2d)[-1] == (256, 4, 4)


def test_dcgan_tensorflow_shape_at_28x28_matches_the_published_sides():
    """The published Stacked MNIST code's 28x28 digits: DCGAN-TensorFlow sizes each stage with
    ``ceil(size / stride)`` (28, 14, 7, 4, 2); G and D take exactly those sides, 7 included."""
    shape = {"channels": 3, "image_size": 28, "base_width": 64, "kernel_size": 5, "bottom_size": 2}
    g, d = DCGANGenerator(**shape), DCGANDiscriminator(**shape)
    published = [math.ceil(28 / 2**i) for i in range(5)]
    assert published == [28, 14, 7, 4, 2]
    images = g(torch.rand(4, 100) * 2 - 1)
    assert images.shape == (4, 3, 28, 28)
    assert _feature_sizes(g, torch.randn(4, 100), nn.ConvTranspose2d) == [
        (512, 2, 2), (256, 4, 4), (128, 7, 7), (64, 14, 14), (3, 28, 28)
    ]  # fmt: skip
    assert [s[-1] for s in _feature_sizes(d, images, nn.Conv2d)] == published[1:]
    assert d.head.linear.in_features == 512 * 2 * 2
    at32 = {**shape, "image_size": 32}
    for net, net32 in ((g, DCGANGenerator(**at32)), (d, DCGANDiscriminator(**at32))):
        assert net.state_dict().keys() == net32.state_dict().keys()
        assert sum(p.numel() for p in net.parameters()) == sum(
            p.numel() for p in net32.parameters()
        )  # the same weights: only the feature maps are smaller


@pytest.mark.parametrize(("kernel_size", "bottom_size"), [(3, 1), (4, 2), (5, 2), (5, 4), (7, 4)])
def test_dcgan_builds_every_size_that_halves_to_its_bottom(kernel_size, bottom_size):
    """Every size from 16 to 40 either builds, with G's sides doubling (or doubling less one)
    to exactly that size and D retracing them, or fails naming the size and the sizes that
    work; odd kernels reach more sizes than even ones."""
    built = []
    for size in range(16, 41):
        shape = {"image_size": size, "base_width": 2, "kernel_size": kernel_size}
        try:
            g = DCGANGenerator(latent_dim=4, bottom_size=bottom_size, **shape)
        except ValueError as err:
            assert f"image_size={size}:" in str(err) and "Set data.image_size" in str(err)
            with pytest.raises(ValueError, match=f"image_size={size}:"):
                DCGANDiscriminator(bottom_size=bottom_size, **shape)
            continue
        d = DCGANDiscriminator(bottom_size=bottom_size, **shape)
        sides = [s[-1] for s in _feature_sizes(g, torch.randn(2, 4), nn.ConvTranspose2d)]
        assert sides[0] == bottom_size and sides[-1] == size
        assert all(b in (2 * a, 2 * a - 1) for a, b in itertools.pairwise(sides))
        images = g(torch.randn(2, 4))
        assert [s[-1] for s in _feature_sizes(d, images, nn.Conv2d)] == sides[-2::-1]
        assert d(images).shape == (2,)
        built.append(size)
    # rounding up, s halvings take exactly the sides in ((bottom - 1) 2^s, bottom 2^s] to the
    # bottom; an even kernel only halves even sides, so only bottom 2^s itself
    stages = [2**s for s in range(1, 7)]
    reach = [range((bottom_size - 1) * m + 1, bottom_size * m + 1) for m in stages]
    expected = [n for n in range(16, 41) if any(n in r for r in reach)]
    if kernel_size % 2 == 0:
        expected = [n for n in expected if n in (bottom_size * m for m in stages)]
    assert built == expected
    assert (28 in built) == (kernel_size % 2 == 1)


@pytest.mark.parametrize("kernel_size", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("bottom_size", [1, 2, 4])
def test_dcgan_stages_halve_and_double_exactly_for_any_kernel(kernel_size, bottom_size):
    shape = {"image_size": 16, "base_width": 2, "kernel_size": kernel_size}
    g = DCGANGenerator(latent_dim=4, bottom_size=bottom_size, **shape)
    d = DCGANDiscriminator(bottom_size=bottom_size, **shape)
    sides = [s[-1] for s in _feature_sizes(g, torch.randn(2, 4), nn.ConvTranspose2d)]
    assert sides == [bottom_size * 2**i for i in range(len(sides))] and sides[-1] == 16
    images = g(torch.randn(2, 4))
    assert [s[-1] for s in _feature_sizes(d, images, nn.Conv2d)] == sides[-2::-1]
    assert d(images).shape == (2,)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("bottom_size", 3, "bottom_size=3"), ("bottom_size", 8, "bottom_size=8"),
     ("kernel_size", 1, "kernel_size >= 2, got 1"),
     ("image_size", 28, r"image_size=28: its side 7 is odd, which needs an odd kernel_size "
      r"\(got 4\)\. Set data.image_size to one of 16, 32, 64, 128, 256"),
     ("image_size", 24, r"image_size=24: halving it \(24, 12, 6, 3\) misses bottom_size=4"),
     ("image_size", 512, "image_size=512: it builds images of 16 to 256 pixels")],
)  # fmt: skip
def test_dcgan_rejects_shape_options_naming_the_value(option, value, message):
    for net in (DCGANGenerator, DCGANDiscriminator):
        with pytest.raises(ValueError, match=message):
            net(**{"image_size": 32, option: value})


def test_dcgan_size_error_lists_the_sizes_odd_kernels_reach():
    with pytest.raises(ValueError, match="one of 16, 25-32, 49-64, 97-128, 193-256 "):
        DCGANGenerator(image_size=24, kernel_size=5)


def test_the_default_dcgan_keeps_its_layout_and_parameter_count():
    """The shape options default to the PyTorch DCGAN: 4x4 kernels down to 4x4, so older
    checkpoints still load into the default nets."""
    g = DCGANGenerator(channels=1, image_size=32, base_width=64)
    d = DCGANDiscriminator(channels=1, image_size=32, base_width=64)
    assert sum(p.numel() for p in g.parameters()) == 1_066_881
    assert sum(p.numel() for p in d.parameters()) == 661_313
    explicit = DCGANGenerator(
        channels=1, image_size=32, base_width=64, kernel_size=4, bottom_size=4
    )
    assert explicit.state_dict().keys() == g.state_dict().keys()


IMAGE_GENERATORS = {
    "dcgan": partial(DCGANGenerator, latent_dim=4, image_size=16, base_width=2),
    "mlp": partial(MLPGenerator, latent_dim=4, image_size=8, hidden=(4,)),
    "resnet": partial(ResNetGenerator, latent_dim=4, base_width=2),
}


@pytest.mark.parametrize("arch", sorted(IMAGE_GENERATORS))
def test_output_range_stretches_tanh_and_images_are_clamped(arch):
    """output_range=[-3, 1] maps tanh's centre to black (-1) and its asymptotes to -3 and 1;
    the default is tanh itself; images made from either are in [-1, 1]."""
    make = IMAGE_GENERATORS[arch]
    torch.manual_seed(0)
    plain = make()
    torch.manual_seed(0)
    wide = make(output_range=[-3, 1])
    assert plain.output_range == (-1.0, 1.0) and wide.output_range == (-3.0, 1.0)
    assert plain.state_dict().keys() == wide.state_dict().keys()
    z = torch.randn(6, 4) * 3
    with torch.no_grad():
        a, b = plain.eval()(z), wide.eval()(z)
    torch.testing.assert_close(b, 2 * a - 1)  # the same net, tanh stretched
    assert float(a.abs().max()) <= 1
    assert as_images(wide, b).min() >= -1 and torch.equal(as_images(plain, a), a)
    points = torch.full((4, 2), 3.0)  # a toy generator's samples are points, not images
    assert as_images(VectorGenerator(), points) is points
    for x, lo_hi in ((0.0, -1.0), (50.0, 1.0), (-50.0, -3.0)):
        assert TanhOutput((-3, 1))(torch.tensor(x)).item() == pytest.approx(lo_hi)


@pytest.mark.parametrize("output_range", [[-0.5, 1], [-1, 0.9], [1, -1]])
def test_output_range_must_cover_the_images(output_range):
    with pytest.raises(GanforgeError, match=r"output_range=\[" + str(output_range[0])):
        DCGANGenerator(image_size=16, output_range=output_range)


def test_a_wide_range_module_samples_images_in_range_and_trains_on_raw_outputs(make_cfg):
    """Grids, metrics and the study's scoring read ``generate``/``sample`` (clamped); D's
    training batches are G's raw outputs, which reach below -1."""
    module = build_module(
        make_cfg(*ARCHS["dcgan"], "model.generator.output_range=[-3,1]", "model.ema_kimg=null")
    )
    with torch.no_grad():
        module.generator.net[-2].bias.fill_(-4.0)  # push every pixel towards tanh's -1
    images, _ = module.sample(8, generator=torch.Generator().manual_seed(0))
    assert float(images.min()) == -1.0 and float(images.max()) <= 1
    with torch.no_grad():
        raw = module.generator(module.fixed_noise[:8])
    assert float(raw.min()) < -2.5


SMALL_DISCRIMINATORS = {
    "resnet": (partial(ResNetDiscriminator, base_width=2), (3, 32, 32)),
    "dcgan": (partial(DCGANDiscriminator, channels=3, image_size=16, base_width=2), (3, 16, 16)),
    "mlp": (partial(MLPDiscriminator, channels=3, image_size=8, hidden=(4,)), (3, 8, 8)),
    "vector": (partial(VectorDiscriminator, hidden=(4,)), (2,)),
}


@pytest.mark.parametrize("arch", sorted(SMALL_DISCRIMINATORS))
def test_spectral_norm_parametrizes_every_discriminator_weight(arch):
    make, shape = SMALL_DISCRIMINATORS[arch]
    d = make(spectral_norm=True, num_classes=10, conditioning="projection")
    weighted = [m for m in d.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)]
    assert len(weighted) >= 3
    assert all(parametrize.is_parametrized(m, "weight") for m in weighted)
    d(torch.randn(2, *shape), torch.tensor([0, 1]))  # the power iteration runs
    plain = make(num_classes=10, conditioning="projection")
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


@pytest.mark.parametrize("arch", ["dcgan", "mlp", "resnet"])
def test_input_range_rescales_the_images_before_labels_and_packing(arch):
    """D with input_range [0, 1] judges x exactly as the same D (same weights) judges
    (x + 1) / 2 with the default range: the images are mapped first, the cGAN label planes
    stay one-hot, and the packed groups are formed after the map."""
    make, shape = SMALL_DISCRIMINATORS[arch]
    kwargs = {"num_classes": 3, "conditioning": "concat", "pack": 2}
    plain, unit = make(**kwargs).eval(), make(input_range=[0, 1], **kwargs).eval()
    for net in (plain, unit):  # the same weights, large enough for outputs of order 1
        torch.manual_seed(1)
        for param in net.parameters():
            nn.init.uniform_(param, -0.5, 0.5)
    assert plain.input_range == (-1.0, 1.0) and unit.input_range == (0.0, 1.0)
    x, y = torch.rand(4, *shape) * 2 - 1, torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        assert unit(x, y).abs().min() > 1e-3
        torch.testing.assert_close(unit(x, y), plain((x + 1) / 2, y))
        assert not torch.allclose(unit(x, y), plain(x, y), atol=1e-4)


@pytest.mark.parametrize("input_range", [[1, 0], [0, 0], [0, float("inf")]])
def test_input_range_must_be_an_interval(input_range):
    with pytest.raises(GanforgeError, match=r"input_range=\[" + str(input_range[0])):
        DCGANDiscriminator(image_size=16, input_range=input_range)


def test_the_published_stacked_mnist_pixel_ranges_are_two_options():
    """The DCGAN-TensorFlow code behind the published Stacked MNIST rows feeds D the images
    divided by 255 and G's plain tanh. ganforge keeps images in [-1, 1]: with
    ``output_range=[-3, 1]`` and D's ``input_range=[0, 1]`` its D reads the same numbers."""
    small = {"image_size": 16, "base_width": 2}
    torch.manual_seed(0)
    g_published = DCGANGenerator(latent_dim=4, **small)
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=4, output_range=[-3, 1], **small)
    torch.manual_seed(1)
    d_published = DCGANDiscriminator(**small)
    torch.manual_seed(1)
    d = DCGANDiscriminator(input_range=[0, 1], **small)
    z = torch.rand(8, 4) * 2 - 1
    pixels = torch.randint(0, 256, (8, 1, 16, 16)).float()
    with torch.no_grad():
        torch.testing.assert_close(d(g(z)), d_published(g_published(z)))
        torch.testing.assert_close(d(pixels / 127.5 - 1), d_published(pixels / 255))


# ---------------------------------------------------------------- DiffAugment
def _shift(x: Tensor, dx: int, dy: int) -> Tensor:
    """Reference: content moved by (dx, dy) pixels, zeros where nothing moved in."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_translation_shifts_each_image_by_whole_pixels_within_the_ratio():
    torch.manual_seed(0)
    x = torch.rand(32, 2, 8, 8) + 0.5  # no zeros, so every shift is distinguishable
    out = rand_translation(x, ratio=0.25)
    shifts = set()
    for xi, oi in zip(x, out, strict=True):
        found = [
            (dx, dy)
            for dx, dy in itertools.product(range(-2, 3), repeat=2)
            if torch.equal(oi, _shift(xi, dx, dy))
        ]
        assert len(found) == 1
        shifts |= set(found)
    assert len(shifts) > 5  # drawn per sample


def test_cutout_zeroes_one_clipped_square_per_image():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8) + 0.5
    out = rand_cutout(x, ratio=0.5)
    zero = out.eq(0)
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # same square on every channel
    assert torch.equal(out[~zero], x[~zero])
    for mask in zero[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert mask.sum() == len(rows) * len(cols)  # a filled rectangle
    assert zero[:, 0].sum((1, 2)).eq(16).any()  # whole 4x4 squares away from the border


def test_diffaugment_is_differentiable_and_random_per_sample():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16).expand(8, -1, -1, -1).clone().requires_grad_(True)
    out = DiffAugment()(x)
    assert out.shape == x.shape
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_diffaugment_rejects_unknown_policies():
    with pytest.raises(GanforgeError, match="flip"):
        DiffAugment(policy=["color", "flip"])
    with pytest.raises(GanforgeError, match="cutout_ratio"):
        DiffAugment(cutout_ratio=1.5)


# ---------------------------------------------------------------- configs
def test_gradient_penalty_replaces_batchnorm_in_the_discriminator(make_cfg, caplog):
    def kinds(module) -> set[type]:
        return {type(m) for m in module.discriminator.modules()}

    penalised = (["loss=wgan_gp"], [], ["loss=hinge", "loss.r1_gamma=1.0"])  # [] = the default
    for overrides in penalised:
        with caplog.at_level(logging.WARNING):
            auto = build_module(make_cfg("model=dcgan", "data.image_size=16", *overrides))
            assert nn.BatchNorm2d not in kinds(auto) and nn.GroupNorm in kinds(auto)
            assert "norm=layer" not in caplog.text  # norm: auto chooses layer silently
            batch = ["model.discriminator.norm=batch", *overrides]
            explicit = build_module(make_cfg("model=dcgan", "data.image_size=16", *batch))
        assert nn.BatchNorm2d not in kinds(explicit) and nn.GroupNorm in kinds(explicit)
        assert "norm=layer" in caplog.text  # an explicit batch is overruled, with a warning
        caplog.clear()
    for plain in ("loss=wgan", "loss=nonsaturating"):
        module = build_module(make_cfg("model=dcgan", "data.image_size=16", plain))
        assert nn.BatchNorm2d in kinds(module)


@pytest.mark.parametrize(
    ("loss", "optimizer", "lr", "betas", "n_critic"),
    [
        ("wgan", torch.optim.RMSprop, 5e-5, None, 5),
        ("wgan_gp", torch.optim.Adam, 1e-4, (0.0, 0.9), 5),
    ],
)
def test_a_loss_alone_brings_its_optimizer(make_cfg, loss, optimizer, lr, betas, n_critic):
    module = build_module(make_cfg(f"loss={loss}", "data.image_size=16"))
    for factory, net in (
        (module.optimizer_d, module.discriminator),
        (module.optimizer_g, module.generator),
    ):
        opt = factory(net.parameters())
        assert isinstance(opt, optimizer)
        assert opt.defaults["lr"] == lr
        assert betas is None or tuple(opt.defaults["betas"]) == betas
    assert module.loss.n_critic == n_critic


def test_ttur_gives_the_networks_separate_learning_rates(make_cfg):
    module = build_module(make_cfg("experiment=dcgan_ttur_mnist"))
    opt_d = module.optimizer_d(module.discriminator.parameters())
    opt_g = module.optimizer_g(module.generator.parameters())
    assert (opt_d.defaults["lr"], opt_g.defaults["lr"]) == (4e-4, 1e-4)


# key hyperparameters of each paper, read off the composed config
PAPERS = {
    "gan_mnist": {
        "model.generator._target_": "ganforge.nets.MLPGenerator",
        "model.optimizer_d._target_": "torch.optim.SGD",
        "model.optimizer_d.momentum": 0.5,
        "data.batch_size": 100,
        "model.conditioning": "none",
    },
    "cgan_mnist": {
        "model.conditioning": "concat",
        "model.optimizer_g.momentum": 0.5,
        "data.batch_size": 100,
    },
    "dcgan_mnist": {
        "model.generator._target_": "ganforge.nets.DCGANGenerator",
        "model.optimizer_g.lr": 2e-4,
        "model.optimizer_g.betas": [0.5, 0.999],
        "data.batch_size": 128,
        "model.discriminator.norm": "batch",
    },
    "dcgan_celeba": {
        "data._target_": "ganforge.data.CelebADataModule",
        "data.image_size": 64,
        "data.batch_size": 128,
        "model.optimizer_d.lr": 2e-4,
    },
    "acgan_mnist": {
        "model.conditioning": "acgan",
        "model.aux_weight": 1.0,
        "model.optimizer_d.betas": [0.5, 0.999],
    },
    "lsgan_mnist": {
        "loss._target_": "ganforge.losses.LSGANLoss",
        "loss.a": 0.0,
        "loss.b": 1.0,
        "loss.c": 1.0,
    },
    "wgan_mnist": {
        "loss.clip_value": 0.01,
        "loss.n_critic": 5,
        "model.optimizer_d.lr": 5e-5,
        "model.optimizer_d._target_": "torch.optim.RMSprop",
    },
    "wgan_gp_cifar10": {
        "data._target_": "ganforge.data.CIFAR10DataModule",
        "model.generator._target_": "ganforge.nets.ResNetGenerator",
        "loss.gp_weight": 10.0,
        "loss.n_critic": 5,
        "model.optimizer_d.lr": 2e-4,
        "model.optimizer_d.betas": [0.0, 0.9],
        "model.discriminator.norm": "none",
    },
    "sngan_cifar10": {
        "loss._target_": "ganforge.losses.HingeLoss",
        "loss.n_critic": 5,
        "model.discriminator.spectral_norm": True,
        "model.generator.base_width": 256,
        "model.optimizer_g.betas": [0.0, 0.9],
    },
    "dcgan_ttur_mnist": {"model.optimizer_d.lr": 4e-4, "model.optimizer_g.lr": 1e-4},
    "dcgan_diffaug_mnist": {"model.d_augment._target_": "ganforge.augment.DiffAugment"},
}


EXPERIMENT_ARCH = {
    "gan_mnist": "gan_mlp",
    "cgan_mnist": "gan_mlp",
    "wgan_gp_cifar10": "resnet",
    "sngan_cifar10": "resnet",
}


@pytest.mark.parametrize("experiment", sorted(PAPERS))
def test_experiment_trains_one_step_with_its_stabilisers(tiny_digits, tmp_path, experiment):
    """Each experiment's own schedulers, EMA, DiffAugment, clipping and penalties run; on the
    tiny digits, with tiny widths, plus instance noise and R1 on top."""
    arch = EXPERIMENT_ARCH.get(experiment, "dcgan")
    overrides = [
        "logger=csv",
        f"experiment={experiment}",
        "data=mnist5k",
        *ARCHS[arch],
        "model.generator.latent_dim=4",
        "model.num_fixed_samples=10",
        "model.instance_noise=0.1",
        "loss.r1_gamma=1.0",
        *FAST_DEV_RUN,
    ]
    assert train(compose_config(overrides, tmp_path)) is None


def test_all_zoo_experiments_exist():
    assert set(PAPERS) <= {p.stem for p in (CONF / "experiment").glob("*.yaml")}


@pytest.mark.parametrize("experiment", sorted(PAPERS))
def test_experiment_has_the_papers_hyperparameters_and_builds(make_cfg, experiment):
    from omegaconf import OmegaConf

    cfg = make_cfg(f"experiment={experiment}")
    for key, want in PAPERS[experiment].items():
        got = OmegaConf.select(cfg, key)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        assert got == want, f"{experiment}: {key}={got}, the paper's value is {want}"
    module = build_module(cfg)
    assert module.loss.n_critic == cfg.loss.n_critic
    if cfg.model.d_augment is not None:
        assert isinstance(module.d_augment, DiffAugment)
