"""The package's layering is a checked contract: ``lint-imports`` (import-linter, configured in
pyproject.toml) finds no import circle and no lower layer importing a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the ``ganforge`` package found in ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_layers_and_acyclic_contracts_are_kept() -> None:
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    package = tmp_path / "ganforge"
    shutil.copytree(ROOT / "src" / "ganforge", package, ignore=shutil.ignore_patterns("assets"))
    with (package / "pixels.py").open("a") as f:
        f.write("\nfrom ganforge.module import GANModule  # noqa: E402, F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "ganforge.pixels is not allowed to import ganforge.module" in result.stdout
