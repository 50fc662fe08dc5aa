"""Export the sampling generator (EMA weights when present) to TorchScript and ONNX.

Both files take latent noise ``z`` (N, latent_dim) float32, plus class labels ``y`` (N,)
int64 for conditional models, and return images (N, C, H, W) in [-1, 1]; N is free.
A ``generator.json`` beside them records these shapes for whoever loads the files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.module import GANModule
from ganforge.nets.base import as_images
from ganforge.noise import latent_noise

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")


class UnconditionalSampler(nn.Module):
    """``forward(z)``: the generator with the one input an unconditional model takes."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: Tensor) -> Tensor:
        return as_images(self.generator, self.generator(z))


class ConditionalSampler(nn.Module):
    """``forward(z, y)``: the generator with noise and class labels."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return as_images(self.generator, self.generator(z, y))


def sampler_of(module: GANModule) -> nn.Module:
    """The module's sampling generator in eval mode, with a fixed forward signature (export
    from a module on the CPU: the files then load anywhere)."""
    wrapper = ConditionalSampler if module.num_classes else UnconditionalSampler
    return wrapper(module.sampler).eval()


def example_inputs(module: GANModule, n: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
    """Noise (and labels for conditional models) to trace with and to compare outputs on."""
    gen = torch.Generator().manual_seed(seed)
    z = latent_noise(n, module.latent_dim, gen, prior=module.latent_prior)
    if not module.num_classes:
        return (z,)
    return z, torch.randint(module.num_classes, (n,), generator=gen)


def input_names(module: GANModule) -> list[str]:
    """Names of the exported inputs: ``z`` and, for conditional models, ``y``."""
    return ["z", "y"] if module.num_classes else ["z"]


def export_torchscript(module: GANModule, path: str | Path) -> Path:
    """Trace the sampling generator to a TorchScript file (load with ``torch.jit.load``)."""
    path = Path(path)
    with torch.no_grad():
        traced = torch.jit.trace(sampler_of(module), example_inputs(module))
    traced.save(str(path))
    return path


def export_onnx(module: GANModule, path: str | Path, opset: int | None = None) -> Path:
    """Export the sampling generator to one ONNX file with a dynamic batch dimension."""
    path = Path(path)
    names = input_names(module)
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        sampler_of(module),
        example_inputs(module),
        str(path),
        input_names=names,
        output_names=["images"],
        opset_version=opset,
        dynamic_shapes={name: {0: batch} for name in names},
        external_data=False,
        dynamo=True,
    )
    return path


def write_signature(module: GANModule, images: Tensor, path: str | Path) -> Path:
    """``generator.json``: the inputs and output the exported files expect and give."""
    path = Path(path)
    signature = {
        "inputs": {
            "z": {
                "shape": ["N", module.latent_dim],
                "dtype": "float32",
                "prior": module.latent_prior,
            },
            **({"y": {"shape": ["N"], "dtype": "int64"}} if module.num_classes else {}),
        },
        "num_classes": module.num_classes,
        "output": {"images": {"shape": ["N", *images.shape[1:]], "range": [-1, 1]}},
    }
    path.write_text(json.dumps(signature, indent=2))
    return path


def export_generator(
    module: GANModule, out_dir: str | Path, formats: Sequence[str] = FORMATS
) -> dict[str, Path]:
    """Write the requested formats (``generator.pt``, ``generator.onnx``) and
    ``generator.json`` into ``out_dir``; return the paths by format."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise GanforgeError(f"formats={list(formats)}: choose from {list(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if "torchscript" in formats:
        files["torchscript"] = export_torchscript(module, out_dir / "generator.pt")
    if "onnx" in formats:
        try:
            import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
        except ImportError:
            raise GanforgeError(
                "ONNX export needs the onnx extra: pip install -e '.[onnx]'"
            ) from None
        files["onnx"] = export_onnx(module, out_dir / "generator.onnx")
    with torch.no_grad():
        images = sampler_of(module)(*example_inputs(module, n=1))
    files["signature"] = write_signature(module, images, out_dir / "generator.json")
    return files


def run_torchscript(path: str | Path, inputs: Sequence[Tensor]) -> Tensor:
    """Images from an exported TorchScript generator."""
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(*inputs)


def run_onnx(path: str | Path, names: Sequence[str], inputs: Sequence[Tensor]) -> Tensor:
    """Images from an exported ONNX generator, run by ONNX Runtime."""
    try:
        import onnxruntime
    except ImportError:
        raise GanforgeError(
            "checking an ONNX file needs onnxruntime: pip install -e '.[onnx]'"
        ) from None

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(names, inputs, strict=True)}
    return torch.from_numpy(session.run(["images"], feeds)[0])


def check_exports(module: GANModule, files: dict[str, Path], n: int = 8) -> dict[str, float]:
    """Largest absolute pixel difference between each exported generator and the checkpoint's
    sampling generator on the same noise (and labels)."""
    inputs = example_inputs(module, n=n, seed=1)
    expected = module.generate(*inputs).cpu()
    diffs = {}
    if "torchscript" in files:
        got = run_torchscript(files["torchscript"], inputs)
        diffs["torchscript"] = (got - expected).abs().max().item()
    if "onnx" in files:
        got = run_onnx(files["onnx"], input_names(module), inputs)
        diffs["onnx"] = (got - expected).abs().max().item()
    return diffs
