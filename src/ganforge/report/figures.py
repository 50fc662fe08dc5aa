"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display).

Each panel is a function drawing onto an ``Axes``, so the HTML page (one PNG per figure) and
the one-page ``report.png`` share the same drawing code.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ganforge.report.history import Series


@dataclass(frozen=True)
class CurvePanel:
    """A figure of training curves: an id for the page, a title, ``{key: legend label}`` and
    a caption saying how to read it."""

    id: str
    title: str
    keys: dict[str, str]
    caption: str = ""


CURVES = (
    CurvePanel("losses", "Losses of D and G", {"loss/d": "D", "loss/g": "G"}, "loss/d, loss/g"),
    CurvePanel(
        "d-outputs",
        "D(x) and D(G(z))",
        {"d/real": "D(x), real", "d/fake": "D(G(z)), generated"},
        "d/real, d/fake: D's mean output on real and generated batches (a probability for "
        "the probabilistic losses, the critic value for the Wasserstein ones)",
    ),
    CurvePanel(
        "grad-norms",
        "Gradient norms",
        {"grad_norm/d": "D", "grad_norm/g": "G"},
        "grad_norm/d, grad_norm/g: L2 norm of each network's gradient at its update "
        "(after clipping, when clipping is on)",
    ),
)

#: metrics shown first, with what their axis means; any other ``metrics/*`` key follows
METRIC_TITLES = {
    "metrics/fid": "FID (lower is better)",
    "metrics/is": "Inception Score (higher is better)",
    "metrics/modes": "Modes covered",
}

#: a labelled image: (step or None for the final grid, RGB array)
Picture = tuple[int | None, np.ndarray]


def metric_keys(history: dict[str, Series]) -> list[str]:
    """The ``metrics/*`` keys in ``history``: FID, IS and modes first, the rest by name."""
    named = [k for k in METRIC_TITLES if k in history]
    others = sorted(k for k in history if k.startswith("metrics/") and k not in METRIC_TITLES)
    return named + others


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


def draw_curves(ax: Axes, history: dict[str, Series], keys: dict[str, str], title: str) -> None:
    """Plot each of ``keys`` present in ``history`` against generator iterations."""
    ax.set_title(title, fontsize=10)
    present = {k: label for k, label in keys.items() if k in history}
    if not present:
        _note(ax, f"not logged in this run: {', '.join(keys)}")
        return
    for key, label in present.items():
        steps, values = history[key]
        ax.plot(steps, values, label=label, marker="o" if len(steps) < 20 else None, ms=3)
    ax.set_xlabel("generator iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_picture(ax: Axes, picture: Picture) -> None:
    """Show a sample grid, titled with its step."""
    step, image = picture
    ax.imshow(image, interpolation="nearest")
    ax.set_title("final" if step is None else f"step {step}", fontsize=9)
    ax.set_axis_off()


def render(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def curve_figure(history: dict[str, Series], panel: CurvePanel) -> bytes:
    """One panel of curves as a PNG."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    draw_curves(fig.subplots(), history, panel.keys, panel.title)
    return render(fig)


def metrics_figure(history: dict[str, Series]) -> bytes:
    """All logged metrics side by side, one axes each (their scales differ), as a PNG."""
    keys = metric_keys(history) or list(METRIC_TITLES)
    fig = Figure(figsize=(4.5 * len(keys), 3.6), layout="constrained")
    for ax, key in zip(np.atleast_1d(fig.subplots(1, len(keys))), keys, strict=True):
        draw_curves(ax, history, {key: key}, METRIC_TITLES.get(key, key))
    return render(fig)


def pictures_figure(pictures: Sequence[Picture]) -> bytes:
    """Sample grids over training, left to right, as a PNG."""
    fig = Figure(figsize=(2.4 * max(len(pictures), 1), 2.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(pictures), 1)))
    if not pictures:
        _note(axes[0], "no sample grids were saved during training")
    for ax, picture in zip(axes, pictures, strict=False):
        draw_picture(ax, picture)
    return render(fig)


def overview_figure(
    title: str,
    history: dict[str, Series],
    pictures: Sequence[Picture],
    final: Picture | None,
) -> bytes:
    """The one-page summary ``report.png``: curves, metrics, grids over time, final grid."""
    metrics = metric_keys(history)
    metric_rows = max(1, -(-len(metrics) // 3))
    fig = Figure(figsize=(15, 3.4 * (2 + metric_rows)), layout="constrained")
    fig.suptitle(title)
    grid = fig.add_gridspec(2 + metric_rows, 3)
    for col, panel in enumerate(CURVES):
        draw_curves(fig.add_subplot(grid[0, col]), history, panel.keys, panel.title)
    if not metrics:
        _note(fig.add_subplot(grid[1, :]), "no metrics/* were logged in this run")
    for i, key in enumerate(metrics):
        ax = fig.add_subplot(grid[1 + i // 3, i % 3])
        draw_curves(ax, history, {key: key}, METRIC_TITLES.get(key, key))
    row = grid[1 + metric_rows, :2].subgridspec(1, max(len(pictures), 1))
    if not pictures:
        _note(fig.add_subplot(row[0, 0]), "no sample grids were saved during training")
    for i, picture in enumerate(pictures):
        draw_picture(fig.add_subplot(row[0, i]), picture)
    final_ax = fig.add_subplot(grid[1 + metric_rows, 2])
    if final is None:
        _note(final_ax, "no final sample grid")
    else:
        draw_picture(final_ax, final)
    return render(fig)
