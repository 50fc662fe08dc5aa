"""Data at scale: the decoded cache, LitData streaming shards and Hugging Face datasets, built
from small files in the real on-disk formats; exact resume from each of them."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from PIL import Image

from ganforge.cli import EXIT_PREEMPTED
from ganforge.data import (
    CelebADataModule,
    HFDataModule,
    ImageDataModule,
    ImageFolderDataModule,
)
from ganforge.data.cache import DecodedCache
from ganforge.data.streaming import StreamingDataModule, write_shards
from ganforge.errors import GanforgeError
from ganforge.run import train
from tests.conftest import ROOT, run_cli
from tests.data.test_files import make_folder
from tests.test_reliability import TINY, SignalAt, extra_callback, make, weights


def make_celeba_tree(root: Path, n: int = 36, n_val: int = 2) -> None:
    """``n`` 178x218 JPEG faces of noise in torchvision's layout; the last ``2 * n_val`` are
    the valid and test partitions; attributes Male/Smiling vary by index."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name, quality=90)
    parts = ["0"] * (n - 2 * n_val) + ["1"] * n_val + ["2"] * n_val
    (root / "celeba" / "list_eval_partition.txt").write_text(
        "".join(f"{a} {b}\n" for a, b in zip(names, parts, strict=True))
    )
    rows = "".join(f"{m} {1 if i % 2 else -1} {1 if i % 3 else -1}\n" for i, m in enumerate(names))
    (root / "celeba" / "list_attr_celeba.txt").write_text(f"{n}\nMale Smiling\n{rows}")


def make_class_folder(root: Path, per_class: int = 16) -> None:
    """Two class subfolders of small PNGs whose red value tells the class (0 dark, 1 bright)."""
    rng = np.random.default_rng(1)
    for c, name in enumerate(["cats", "dogs"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (20, 20, 3), dtype=np.uint8)
            pixels[..., 0] = 30 + 190 * c
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")


def folder_shards(tmp_path: Path, image_size: int = 16) -> Path:
    """The class folder prepared into the decoded cache and written as LitData shards."""
    make_class_folder(tmp_path / "images")
    dm = ImageFolderDataModule(
        path=str(tmp_path / "images"),
        labels_from_subfolders=True,
        num_classes=2,
        image_size=image_size,
        num_workers=0,
    )
    entry = DecodedCache(dm, tmp_path / "cache").prepare()
    write_shards(entry, str(tmp_path / "shards"))
    return tmp_path / "shards"


# --- decoded cache -------------------------------------------------------------------------


def test_cache_reports_corrupt_images_then_reuses_detects_stale_and_truncated(
    tmp_path, caplog
) -> None:
    make_folder(tmp_path / "img")
    dm = ImageFolderDataModule(path=str(tmp_path / "img"), image_size=16, num_workers=0)
    cache = DecodedCache(dm, tmp_path / "cache")
    with caplog.at_level(logging.INFO):
        folder = cache.prepare()
    assert "no decoded cache for folder" in caplog.text  # says it prepares
    assert "skipped 1 unreadable image(s) of 6" in caplog.text and "broken.jpg" in caplog.text
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["count"] == 5 and folder.name.startswith("folder-train-cropnone-16px3c-")
    x, y = cache.load()
    assert x.dtype == torch.uint8 and x.shape == (5, 3, 16, 16) and y.tolist() == [0] * 5
    direct, _ = ImageFolderDataModule(
        path=str(tmp_path / "img"), image_size=16, num_workers=0, in_memory=True
    ).load_tensors()
    assert torch.equal(x, direct)  # the same pixels as decoding without the cache

    caplog.clear()
    with caplog.at_level(logging.INFO):
        cache.prepare()
    assert "is up to date (5 images)" in caplog.text
    Image.new("RGB", (30, 30), (9, 9, 9)).save(tmp_path / "img" / "new.png")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert len(DecodedCache(dm, tmp_path / "cache").load()[0]) == 6
    assert "is stale (source changed); rebuilding it" in caplog.text

    images = folder / "images.npy"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(GanforgeError, match=r"decoded cache file .*images\.npy is truncated"):
        DecodedCache(dm, tmp_path / "cache").load()


def test_celeba_trains_from_cache_with_attribute_labels(tmp_path) -> None:
    make_celeba_tree(tmp_path, n=12, n_val=1)
    kwargs = dict(root=str(tmp_path), image_size=16, batch_size=2, num_workers=0, num_val=2)
    kwargs.update(attributes=["Male"], num_classes=2)
    direct = CelebADataModule(**kwargs, in_memory=True)
    cached = CelebADataModule(**kwargs, in_memory=True, cache_dir=str(tmp_path / "cache"))
    cached.prepare_data()  # what Lightning runs once per node before setup
    (entry,) = (tmp_path / "cache").iterdir()
    assert entry.name.startswith("celeba-train-crop178-16px3c-")
    for dm in (direct, cached):
        dm.setup()
    for split in ("train", "val"):
        a, b = direct.real_images(split), cached.real_images(split)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert sorted(cached.real_images("train")[1].tolist() + cached.real_images("val")[1].tolist())
    assert set(cached.real_images("train")[1].tolist()) == {0, 1}


# --- streaming shards ----------------------------------------------------------------------


def test_streaming_shards_carry_labels_and_truncation_is_named(tmp_path) -> None:
    ctrl_c = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup
    shards = folder_shards(tmp_path)
    # writing them leaves the process's Ctrl-C handling as it was (LitData installs its own)
    assert signal.getsignal(signal.SIGINT) is ctrl_c
    dm = StreamingDataModule(
        path=str(shards), image_size=16, num_classes=2, batch_size=4, num_workers=0
    )
    dm.setup()
    x, y = dm.real_images()
    assert x.shape == (32, 3, 16, 16) and sorted(y.tolist()) == [0] * 16 + [1] * 16
    red = x[:, 0].mean((1, 2))
    assert ((red > 0) == (y == 1)).all()  # each label still belongs to its image
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 8
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == sorted(y.tolist())  # one epoch: every sample once
    with pytest.raises(GanforgeError, match="augment"):
        StreamingDataModule(path=str(shards), augment="hflip")

    def ids(batches) -> list[list[int]]:  # images are noise: their sums identify them
        return [b[0].sum((1, 2, 3)).mul(100).round().long().tolist() for b in batches]

    epochs = [ids(loader) for _ in range(2)]
    assert epochs[0] != epochs[1]  # reshuffled every epoch, by a seeded order
    straight = dm.train_dataloader()
    it = iter(straight)
    head = ids(next(it) for _ in range(3))
    state = straight.state_dict()  # what Lightning puts in the checkpoint after 3 batches
    resumed = StreamingDataModule(
        path=str(shards), image_size=16, num_classes=2, batch_size=4, num_workers=0
    )
    resumed.setup()
    loader = resumed.train_dataloader()
    loader.load_state_dict(state)
    # Lightning reads len(loader) batches and never asks for the end of a pass
    rest = iter(loader)
    rest = ids(next(rest) for _ in range(len(loader) - 3))
    assert rest == ids(it) and len(head + rest) == 8  # no replayed or skipped batch
    after = ids(loader)  # the following pass is a whole fresh epoch, as without the stop
    assert after == ids(straight) and len(after) == 8

    chunk = next(shards.glob("*.bin"))
    chunk.write_bytes(chunk.read_bytes()[:500])
    with pytest.raises(GanforgeError, match=rf"shard {chunk} is truncated"):
        StreamingDataModule(path=str(shards), image_size=16).setup()


# --- Hugging Face datasets -----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_hf_local_dataset_through_the_cache(tmp_path, layout) -> None:
    import datasets

    images = [Image.new("RGB", (24, 20), (20 * i, 0, 0)) for i in range(10)]
    data = datasets.Dataset.from_dict(
        {"img": images, "digit": [i % 3 for i in range(10)]},
        features=datasets.Features(
            {"img": datasets.Image(), "digit": datasets.ClassLabel(num_classes=3)}
        ),
    )
    where = tmp_path / layout
    if layout == "save_to_disk":
        data.save_to_disk(str(where))
    else:
        where.mkdir()
        data.to_parquet(str(where / "train-0.parquet"))
    dm = HFDataModule(
        name=str(where),
        image_column="img",
        label_column="digit",
        num_classes=3,
        image_size=8,
        num_workers=0,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.setup()
    x, y = dm.real_images("train")
    assert x.shape == (10, 3, 8, 8)
    reds = ((x[:, 0].mean((1, 2)) + 1) * 127.5 / 20).round().long()
    assert torch.equal(y, reds % 3)  # labels travel with their images
    assert len(list((tmp_path / "cache").iterdir())) == 1
    with pytest.raises(GanforgeError, match="'pixels'"):
        HFDataModule(name=str(where), image_column="pixels", cache_dir=None).setup()


class RecordBatches(L.Callback):
    """Appends each training batch's epoch and sample identities to ``<path>/rank<r>.txt``."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        ids = batch[0].sum((1, 2, 3)).mul(100).round().long().tolist()
        with open(f"{self.path}/rank{trainer.global_rank}.txt", "a") as f:
            f.write(f"{trainer.current_epoch} {ids}\n")


# --- exact resume --------------------------------------------------------------------------

RESUME = [
    *TINY,
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "data.batch_size=4",
    "data.num_workers=0",
    "model.ema_decay=0.9",
]


def _straight_and_resumed(tmp_path: Path, overrides: list[str], stop_at: int = 3):
    train(make(tmp_path / "straight", *overrides))
    straight = weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    out = tmp_path / "interrupted"
    stop = extra_callback("stop", SignalAt, step=stop_at, signum=signal.SIGTERM)
    with pytest.raises(SIGTERMException):
        train(make(out, *overrides, *stop))
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == stop_at * 2
    train(make(out, *overrides, f"ckpt_path={last}"))
    return straight, weights(last)


def _source(tmp_path: Path, source: str) -> tuple[ImageDataModule, list[str]]:
    """A CelebA tree (32 training faces, Male attribute as label) or a class folder (32
    images, 2 classes), as a datamodule and the overrides that train from it."""
    if source == "celeba":
        make_celeba_tree(tmp_path / "data")
        root = str(tmp_path / "data")
        dm = CelebADataModule(root=root, attributes=["Male"], num_classes=2, image_size=16)
        overrides = ["data=celeba", f"data.root={root}", "data.attributes=[Male]"]
        return dm, [*overrides, "data.num_classes=2", "data.num_val=4"]
    make_class_folder(tmp_path / "data")
    dm = ImageFolderDataModule(
        path=str(tmp_path / "data"), labels_from_subfolders=True, num_classes=2, image_size=16
    )
    overrides = ["data=folder", f"data.path={tmp_path / 'data'}"]
    return dm, [*overrides, "data.labels_from_subfolders=true", "data.num_classes=2"]


@pytest.mark.parametrize("source", ["celeba", "folder"])
def test_cache_path_resumes_bitwise_after_sigterm_mid_epoch(tmp_path, source) -> None:
    _, data = _source(tmp_path, source)  # 8 batches of 4 per epoch
    overrides = [*RESUME, *data, f"data.cache_dir={tmp_path / 'cache'}", "data.augment=hflip"]
    straight, resumed = _straight_and_resumed(tmp_path, overrides)
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []


@pytest.mark.parametrize("source", ["celeba", "folder"])
def test_streaming_path_resumes_bitwise_after_sigterm_mid_epoch(tmp_path, source) -> None:
    dm, _ = _source(tmp_path, source)
    dm.num_workers = 0
    entry = DecodedCache(dm, tmp_path / "cache").prepare()
    write_shards(entry, str(tmp_path / "shards"))
    overrides = [
        *RESUME,
        "data=streaming",
        f"data.path={tmp_path / 'shards'}",
        "data.image_size=16",
        "data.num_classes=2",
    ]
    straight, resumed = _straight_and_resumed(tmp_path, overrides)
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []


# --- the prepare command -------------------------------------------------------------------


def test_prepare_command_reports_skips_and_writes_cache_and_shards(tmp_path) -> None:
    make_folder(tmp_path / "img")
    result = run_cli(
        [
            "src/prepare.py",
            "data=folder",
            f"data.path={tmp_path / 'img'}",
            "data.image_size=16",
            "data.num_workers=0",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"shards={tmp_path / 'shards'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "broken.jpg" in log and "skipped 1 unreadable image(s) of 6" in log
    assert "streaming shards:" in result.stdout
    assert (tmp_path / "shards" / "index.json").is_file()
    (entry,) = (tmp_path / "cache" / "data").iterdir()
    images = entry / "images.npy"
    images.write_bytes(images.read_bytes()[:100])
    again = run_cli(
        [
            "src/train.py",
            "data=folder",
            f"data.path={tmp_path / 'img'}",
            "data.image_size=16",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run2'}",
            "debug=fdr",
        ],
        cwd=ROOT,
    )
    assert again.returncode == 1
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(images) in errors[0] and "truncated" in errors[0]


@pytest.mark.slow
def test_streaming_path_resumes_exactly_under_two_process_ddp(tmp_path) -> None:
    """Two CPU ranks (gloo) read their own shards; a SIGTERM mid-epoch, then resume: each
    rank sees exactly the samples of the uninterrupted run, in the same order, and the final
    weights are the uninterrupted run's bit for bit."""
    shards = folder_shards(tmp_path)  # 32 samples: 4 batches of 4 per rank and epoch
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}

    def args(out: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "src/train.py",
            "logger=csv",
            f"hydra.run.dir={out}",
            "trainer=ddp_sim",
            *RESUME,
            "data=streaming",
            f"data.path={shards}",
            "data.image_size=16",
            f"+callbacks.record._target_={__name__}.RecordBatches",
            f"+callbacks.record.path={out}",
            *extra,
        ]

    (tmp_path / "straight").mkdir()
    straight = subprocess.run(args(tmp_path / "straight"), cwd=ROOT, env=env, timeout=600)
    assert straight.returncode == 0
    out = tmp_path / "interrupted"
    stop = extra_callback("stop", SignalAt, step=2, signum=signal.SIGTERM)
    stopped = subprocess.run(args(out, *stop), cwd=ROOT, env=env, timeout=600)
    assert stopped.returncode == EXIT_PREEMPTED
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2 * 2
    resumed = subprocess.run(args(out, f"ckpt_path={last}"), cwd=ROOT, env=env, timeout=600)
    assert resumed.returncode == 0
    for rank in (0, 1):
        seen = (out / f"rank{rank}.txt").read_text().splitlines()
        assert seen == (tmp_path / "straight" / f"rank{rank}.txt").read_text().splitlines()
    assert len(seen) == 2 * 4  # 2 epochs of 4 batches per rank, none replayed or skipped
    expected = weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    final = weights(last)
    assert [k for k in expected if not torch.equal(expected[k], final[k])] == []
