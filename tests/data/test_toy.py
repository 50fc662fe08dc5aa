"""2-D mixtures: mode centres and spread, mode coverage, scatter plots, a training smoke run."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.callbacks.scatter import figure_to_tensor, scatter_figure
from ganforge.data import GridDataModule, RingDataModule
from ganforge.data.toy import grid_centers, ring_centers
from ganforge.errors import GanforgeError
from ganforge.metrics.toy import ModeCoverage
from ganforge.run import train


def test_ring_centres_lie_on_the_circle_evenly_spaced():
    centers = ring_centers(8, radius=2.0)
    torch.testing.assert_close(centers.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(centers[:, 1], centers[:, 0]).remainder(2 * math.pi)
    torch.testing.assert_close(angles.diff(), torch.full((7,), 2 * math.pi / 8))


def test_grid_centres_span_minus_four_to_four():
    centers = grid_centers(5, spacing=2.0)
    assert centers.shape == (25, 2)
    assert sorted(set(centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(c) for c in centers.tolist()}) == 25


@pytest.mark.parametrize(
    ("cls", "modes", "std"), [(RingDataModule, 8, 0.02), (GridDataModule, 25, 0.05)]
)
def test_mixture_samples_sit_on_their_modes_with_the_configured_spread(cls, modes, std):
    dm = cls(num_samples=20_000, num_classes=modes, std=std, batch_size=64)
    dm.setup()
    x, y = dm.real_images("train")
    assert x.shape == (20_000, 2) and dm.sample_shape == (2,)
    offsets = x - dm.centers[y]
    assert offsets.std(0) == pytest.approx([std, std], rel=0.05)
    assert offsets.mean(0).abs().max() < 3 * std / math.sqrt(len(x) / modes)
    counts = torch.bincount(y, minlength=modes).float()
    assert counts.min() > 0.8 * counts.mean()  # equal weights
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (64, 2) and yb.shape == (64,)


def test_mixture_rejects_bad_config():
    with pytest.raises(GanforgeError, match="num_classes must be 8"):
        RingDataModule(num_classes=10)
    with pytest.raises(GanforgeError, match="std must be positive"):
        RingDataModule(std=0.0)


def test_mode_coverage_counts_all_modes_on_real_data_and_one_when_collapsed():
    dm = RingDataModule(num_samples=2500, num_classes=8)
    real, _ = dm.load_tensors()
    metric = ModeCoverage(dm.centers, dm.std)
    metric.update(real)
    scores = metric.compute()
    assert scores["modes_covered"] == 8
    assert scores["high_quality"] > 0.98  # 3 std in 2-D holds ~98.9% of the mass

    collapsed = dm.centers[3] + 0.5 * dm.std * torch.randn(2500, 2)
    metric = ModeCoverage(dm.centers, dm.std)
    metric.update(collapsed)
    assert metric.compute()["modes_covered"] == 1

    scattered = 3 * torch.randn(2500, 2)  # mostly far from every mode
    metric = ModeCoverage(dm.centers, dm.std)
    metric.update(scattered)
    assert metric.compute()["high_quality"] < 0.05


def test_scatter_figure_renders_an_rgb_image():
    real = ring_centers() + 0.02 * torch.randn(8, 2)
    image = figure_to_tensor(scatter_figure(real, torch.randn(100, 2), ring_centers()))
    assert image.shape[0] == 3 and image.shape[1] > 100
    assert 0 <= image.min() < image.max() <= 1


def test_ring8_trains_with_toy_mlp_and_writes_scatter_plots(make_cfg, tmp_path):
    cfg = make_cfg(
        "data=ring8",
        "model=toy_mlp",
        "data.num_samples=2048",
        "data.batch_size=64",
        "callbacks.scatter.every_n_steps=2",
        "callbacks.scatter.num_points=256",
        "callbacks.scatter.min_count=5",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=4",
        "trainer.enable_progress_bar=false",
    )
    assert cfg.callbacks.samples is None
    train(cfg)
    scatter = tmp_path / "scatter"
    assert (scatter / "final.png").is_file() and (scatter / "step_0000002.png").is_file()
    metrics = (next(tmp_path.rglob("metrics.csv"))).read_text()
    assert "toy/modes_covered" in metrics and "toy/high_quality" in metrics


def test_toy_data_with_image_grid_callback_fails_with_the_fix(make_cfg):
    cfg = make_cfg("data=ring8", "model=toy_mlp", "callbacks=default", "trainer.max_epochs=1")
    with pytest.raises(GanforgeError, match="callbacks=toy"):
        train(cfg)
