"""User tools: sampling, interpolation, export and the run report, on a real tiny training run."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.loggers import CSVLogger
from omegaconf import open_dict
from PIL import Image
from torch import Tensor, nn

from ganforge import jobs
from ganforge.build import load_module
from ganforge.callbacks.report import RunReport
from ganforge.ema import standing_stats
from ganforge.errors import GanforgeError
from ganforge.export import export_generator, run_onnx, run_torchscript
from ganforge.losses import NonSaturatingLoss
from ganforge.metrics.evaluate import module_sampler
from ganforge.module import GANModule
from ganforge.noise import latent_noise
from ganforge.report import build_report
from ganforge.run import train
from ganforge.sampling import sample_images, save_grid, slerp
from tests.conftest import CONF, compose_config, run_cli

SIZE = 8  # stub images are SIZE x SIZE; grids pad every tile by 2 pixels
FIGURES = ("losses", "d-outputs", "grad-norms", "metrics", "samples-over-time", "final-grid")
METRICS = ("metrics/fid", "metrics/is", "metrics/modes")


class ScoreStub(L.Callback):
    """Stands in for the metric callbacks: logs FID, IS and modes at every epoch end."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        pl_module.log_dict(
            {"metrics/fid": 100.0 / (epoch + 1), "metrics/is": 1.0 + epoch, "metrics/modes": 10.0}
        )


class LabelPainter(nn.Module):
    """A generator whose images are flat grey, the level encoding the label (0 black, 9 white);
    unconditional, it paints the sign of z's first coordinate."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.latent_dim = 4
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        level = y.float() / (self.num_classes - 1) * 2 - 1 if y is not None else z[:, 0].sign()
        return (self.scale * level).view(-1, 1, 1, 1).expand(-1, 1, SIZE, SIZE)


def stub_module(num_classes: int = 10) -> GANModule:
    return GANModule(
        LabelPainter(num_classes),
        nn.Linear(1, 1),
        NonSaturatingLoss(),
        partial(torch.optim.Adam),
        partial(torch.optim.Adam),
        num_fixed_samples=num_classes or 4,
    )


def tile_levels(grid_png: Path, rows: int, cols: int) -> np.ndarray:
    """The grey level (0..255) at the centre of every tile of a saved grid."""
    pixels = np.asarray(Image.open(grid_png).convert("L"))
    centre = 2 + SIZE // 2
    return np.array(
        [
            [pixels[centre + r * (SIZE + 2), centre + c * (SIZE + 2)] for c in range(cols)]
            for r in range(rows)
        ]
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A 2-epoch conditional DCGAN run with EMA, logger=none (so the report callback keeps its
    own CSV) and stub metrics; its folder holds checkpoints, samples and the report."""
    out = tmp_path_factory.mktemp("run")
    cfg = compose_config(
        [
            "logger=none",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=4",
            "trainer.log_every_n_steps=1",
            "callbacks.samples.every_n_steps=2",
            "data.image_size=16",
            "data.batch_size=16",
            "model.generator.base_width=8",
            "model.discriminator.base_width=8",
            "model.conditioning=concat",
            "model.ema_decay=0.9",
        ],
        out,
    )
    with open_dict(cfg):  # only the callbacks under test, whatever else the default list holds
        cfg.callbacks = {k: cfg.callbacks[k] for k in ("samples", "report", "checkpoint", "last")}
        cfg.callbacks.scores = {"_target_": "tests.test_jobs.ScoreStub"}
    train(cfg)
    return out


@pytest.fixture(scope="module")
def trained(run_dir: Path) -> GANModule:
    module, _ = load_module(run_dir / "checkpoints" / "last.ckpt")
    return module


def tool_config(name: str, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


# ---------------------------------------------------------------------------------- sampling
def test_sampling_is_deterministic_for_a_seed(trained: GANModule) -> None:
    first, labels, _ = sample_images(trained, n=12, seed=7)
    again, _, _ = sample_images(trained, n=12, seed=7)
    other, _, _ = sample_images(trained, n=12, seed=8)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-3
    assert labels is not None and labels.tolist() == [c for c in range(10) for _ in range(2)][:20]


def test_sampling_uses_the_ema_generator(trained: GANModule) -> None:
    z = torch.randn(4, trained.latent_dim)
    y = torch.arange(4)
    with torch.no_grad():  # the EMA copy with its standing BatchNorm statistics
        ema = standing_stats(trained.g_ema.module, trained.latent_dim, trained.num_classes)(z, y)
        raw = trained.generator.eval()(z, y)
    assert (ema - raw).abs().max() > 1e-4  # the two differ, and generate() picks the EMA copy
    torch.testing.assert_close(trained.generate(z, y), ema)


def test_truncated_prior_stays_in_bounds_and_is_seeded() -> None:
    z = latent_noise(2000, 8, torch.Generator().manual_seed(0), truncation=0.5)
    again = latent_noise(2000, 8, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    torch.testing.assert_close(z, again, rtol=0, atol=0)
    with pytest.raises(GanforgeError, match="truncation=-1"):
        latent_noise(2, 8, torch.Generator(), truncation=-1)


def test_the_evaluation_sampler_draws_truncated_noise(trained: GANModule, monkeypatch) -> None:
    drawn: list[Tensor] = []
    generate = GANModule.generate

    def spy(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        drawn.append(z)
        return generate(self, z, y)

    monkeypatch.setattr(GANModule, "generate", spy)
    plain = module_sampler(trained)(500, torch.Generator().manual_seed(3))
    truncated = module_sampler(trained, 0.5)(500, torch.Generator().manual_seed(3))
    assert drawn[0].abs().max() > 2 and drawn[1].abs().max() <= 0.5
    assert (plain - truncated).abs().max() > 1e-3
    assert truncated.std(0).mean() < plain.std(0).mean()  # the truncation trick: less variety


@pytest.mark.parametrize(
    ("n", "nrow", "rows", "cols"), [(10, 4, 3, 4), (16, None, 4, 4), (5, 5, 1, 5)]
)
def test_grid_shape_follows_n_and_nrow(n, nrow, rows, cols, tmp_path: Path) -> None:
    images, _, used_nrow = sample_images(stub_module(num_classes=0), n=n, nrow=nrow)
    assert images.shape == (n, 1, SIZE, SIZE) and used_nrow == cols
    png = save_grid(images, used_nrow, tmp_path / "grid.png")
    assert Image.open(png).size == (cols * (SIZE + 2) + 2, rows * (SIZE + 2) + 2)


def test_class_rows_carry_their_labels(tmp_path: Path) -> None:
    module = stub_module()
    images, labels, nrow = sample_images(module, n=25)  # rounded up to 3 per class
    assert (len(images), nrow) == (30, 3)
    levels = tile_levels(save_grid(images, nrow, tmp_path / "rows.png"), rows=10, cols=3)
    decoded = np.rint(levels / 255 * 9).astype(int)
    assert (decoded == np.arange(10)[:, None]).all()
    assert labels.view(10, 3).tolist() == decoded.tolist()


@pytest.mark.parametrize(("labels", "expected"), [(3, [3] * 6), ([1, 7], [1, 7] * 3)])
def test_requested_labels_are_drawn(labels, expected, tmp_path: Path) -> None:
    images, used, nrow = sample_images(stub_module(), n=6, nrow=6, labels=labels)
    levels = tile_levels(save_grid(images, nrow, tmp_path / "labels.png"), rows=1, cols=6)
    assert np.rint(levels[0] / 255 * 9).astype(int).tolist() == expected == used.tolist()


def test_bad_labels_name_the_value() -> None:
    with pytest.raises(GanforgeError, match=r"labels=12 must be classes in \[0, 9\]"):
        sample_images(stub_module(), n=4, labels=12)
    with pytest.raises(GanforgeError, match="unconditional"):
        sample_images(stub_module(num_classes=0), n=4, labels=3)


def test_slerp_keeps_endpoints_and_norm() -> None:
    z0 = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    z1 = torch.tensor([[0.0, 1.0], [4.0, 0.0]])  # orthogonal; parallel (straight-line fallback)
    path = slerp(z0, z1, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[:, 0], z0)
    torch.testing.assert_close(path[:, -1], z1)
    torch.testing.assert_close(path[0].norm(dim=1), torch.ones(5))
    torch.testing.assert_close(path[1, 2], torch.tensor([3.0, 0.0]))


def test_sample_cli_writes_the_grid_and_single_images(
    run_dir: Path, trained: GANModule, tmp_path: Path
) -> None:
    result = run_cli(
        [
            "src/sample.py",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            "n=20",
            "seed=3",
            "save_individual=true",
            f"output_dir={tmp_path}",
            f"hydra.run.dir={tmp_path / 'job'}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    images, labels, nrow = sample_images(trained, n=20, seed=3)
    expected = save_grid(images, nrow, tmp_path / "expected.png")
    got = np.asarray(Image.open(tmp_path / "samples.png"))
    np.testing.assert_array_equal(got, np.asarray(Image.open(expected)))
    singles = sorted(p.name for p in (tmp_path / "images").glob("*.png"))
    assert len(singles) == 20 and singles[3] == f"00003_y{int(labels[3])}.png"
    assert Image.open(tmp_path / "images" / singles[3]).size == (16, 16)


def test_interpolation_writes_a_grid_and_a_looping_gif(run_dir: Path, tmp_path: Path) -> None:
    cfg = tool_config(
        "sample",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        "mode=interpolate",
        "interpolation.paths=3",
        "interpolation.steps=4",
        "truncation=1.0",
        f"output_dir={tmp_path}",
    )
    jobs.sample(cfg)
    assert Image.open(tmp_path / "interpolation.png").size == (4 * 18 + 2, 3 * 18 + 2)
    gif = Image.open(tmp_path / "interpolation.gif")
    assert gif.n_frames == 4 + 2  # forwards, then back without repeating the ends
    assert gif.info["loop"] == 0


# ------------------------------------------------------------------------------------ export
def test_exported_generators_match_the_checkpoint(
    run_dir: Path, trained: GANModule, tmp_path: Path
) -> None:
    pytest.importorskip("onnxscript", reason="ONNX export needs the onnx extra")
    pytest.importorskip("onnxruntime", reason="the ONNX check needs the onnx extra")
    cfg = tool_config(
        "export", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"output_dir={tmp_path}"
    )
    files = jobs.export(cfg)
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(5, trained.latent_dim, generator=gen)  # another batch size than traced
    y = torch.randint(10, (5,), generator=gen)
    expected = trained.generate(z, y)
    torch.testing.assert_close(run_torchscript(files["torchscript"], (z, y)), expected)
    torch.testing.assert_close(run_onnx(files["onnx"], ["z", "y"], (z, y)), expected)
    signature = json.loads(files["signature"].read_text())
    assert signature["inputs"]["z"]["shape"] == ["N", trained.latent_dim]
    assert signature["output"]["images"]["shape"] == ["N", 1, 16, 16]


def test_export_rejects_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(GanforgeError, match="formats=\\['tflite'\\]"):
        export_generator(stub_module(), tmp_path, ["tflite"])


# ------------------------------------------------------------------------------------ report
def inlined_images(html: str) -> dict[str, Image.Image]:
    """Every figure's inlined PNG, by figure id."""
    found = re.findall(
        r'<figure id="([^"]+)"[^>]*>.*?<img [^>]*src="data:image/png;base64,([^"]+)"', html, re.S
    )
    return {fid: Image.open(io.BytesIO(base64.b64decode(data))) for fid, data in found}


def test_training_run_ends_with_a_complete_report(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    images = inlined_images(html)
    assert set(images) == set(FIGURES)
    for fid in FIGURES[:-1]:
        width, height = images[fid].size
        assert width >= 400 and height >= 250, (fid, images[fid].size)
    assert images["final-grid"].size == Image.open(run_dir / "samples" / "final.png").size
    assert images["samples-over-time"].size[0] >= 4 * 200  # grids at steps 2, 4, 6, 8
    for key in (*METRICS, "loss/d", "loss/g", "d/real", "d/fake", "grad_norm/d", "grad_norm/g"):
        assert f">{key}<" in html, key  # last-values table: the scalar reached the report
    assert re.findall(r'(?:src|href)="(?!data:)', html) == []  # nothing loaded from outside
    assert Image.open(run_dir / "report.png").size[0] >= 1400
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(METRICS) <= set(header)


def test_report_callback_reuses_a_csv_logger_or_adds_one(tmp_path: Path) -> None:
    own = CSVLogger(tmp_path / "user", name="csv")
    trainer = L.Trainer(logger=[own], enable_checkpointing=False, enable_progress_bar=False)
    RunReport(str(tmp_path)).setup(trainer, None, "fit")
    assert trainer.loggers == [own]
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    RunReport(str(tmp_path)).setup(trainer, None, "fit")
    (added,) = trainer.loggers
    assert isinstance(added, CSVLogger) and Path(added.log_dir) == tmp_path / "csv"


def test_report_job_rebuilds_from_a_run_folder(run_dir: Path, tmp_path: Path) -> None:
    jobs.report(tool_config("report", f"run_dir={run_dir}", f"output_dir={tmp_path}"))
    assert set(inlined_images((tmp_path / "report.html").read_text())) == set(FIGURES)
    assert Image.open(tmp_path / "report.png").size == Image.open(run_dir / "report.png").size


def test_report_without_logged_scalars_shows_the_grids(run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir / "samples", tmp_path / "samples")  # a W&B-only run of old
    files = build_report(tmp_path)
    html = files.html.read_text()
    assert set(inlined_images(html)) == set(FIGURES)
    assert "none of metrics/fid, metrics/is, metrics/modes was logged" in html


def test_report_of_a_folder_without_a_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(GanforgeError, match="no logged scalars"):
        build_report(tmp_path)
    with pytest.raises(GanforgeError, match="is not a folder"):
        build_report(tmp_path / "missing")


PROBE = """<script>
window.__problems = [];
window.addEventListener("error", (e) => window.__problems.push(
  "error: " + (e.message || (e.target && e.target.outerHTML.slice(0, 80)))), true);
window.addEventListener("unhandledrejection", (e) => window.__problems.push("rejection"));
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__problems.push(level + ": " + args.join(" "));
                                  original.apply(console, args); };
}
window.addEventListener("load", () => {
  const images = [...document.images];
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    problems: window.__problems,
    images: images.length,
    broken: images.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.alt),
  });
  document.body.appendChild(out);
});
</script>"""


def test_report_renders_in_headless_chromium_without_errors(run_dir: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):  # .ci/run installs it: a skip there would hide a broken report
            pytest.fail("chromium is missing in CI, so the report was not rendered")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    page = tmp_path / "report.html"
    page.write_text((run_dir / "report.html").read_text().replace("<head>", "<head>" + PROBE, 1))
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the page did not finish loading: {result.stderr[-2000:]}"
    probe = json.loads(match.group(1))
    assert probe == {"problems": [], "images": len(FIGURES), "broken": []}
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
