"""The benchmark scripts import the package API they time and parse their options.

They are not run here (they are measurements, not tests); this keeps them from drifting out
of step with the package between the times someone runs them.
"""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, run_cli

SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py")


def test_every_benchmark_script_is_covered() -> None:
    assert {"train_step.py", "fast_path.py", "end_to_end.py", "scaling.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_imports_and_lists_its_options(script: str) -> None:
    result = run_cli([f"benchmarks/{script}", "--help"], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--out" in result.stdout
