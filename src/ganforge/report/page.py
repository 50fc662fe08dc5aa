"""The self-contained HTML page: inline CSS, every image inlined as base64, no scripts, so it
opens offline from a file, an e-mail attachment or an artifact store."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template

from PIL import Image


@dataclass(frozen=True)
class PageFigure:
    """One figure of the page: element id, heading, PNG bytes and a caption."""

    id: str
    title: str
    png: bytes
    caption: str = ""


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.path { color: #666; font-family: monospace; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25rem 0.8rem; text-align: left; }
td.value { font-family: monospace; }
figure { margin: 2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure.grid img { image-rendering: pixelated; }
figcaption { color: #555; font-size: 0.9rem; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="path">$run_dir</p>
$summary
$figures
</body>
</html>
""")


def _table(rows: Sequence[tuple[str, str]], caption: str) -> str:
    if not rows:
        return ""
    body = "\n".join(
        f'<tr><th scope="row">{html.escape(k)}</th><td class="value">{html.escape(v)}</td></tr>'
        for k, v in rows
    )
    return f"<table>\n<caption>{html.escape(caption)}</caption>\n{body}\n</table>"


def _figure(fig: PageFigure) -> str:
    width, height = Image.open(io.BytesIO(fig.png)).size
    data = base64.b64encode(fig.png).decode("ascii")
    kind = ' class="grid"' if fig.id == "final-grid" else ""
    return (
        f'<figure id="{html.escape(fig.id)}"{kind}>\n'
        f"<h2>{html.escape(fig.title)}</h2>\n"
        f'<img alt="{html.escape(fig.title)}" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{data}">\n'
        f"<figcaption>{html.escape(fig.caption)}</figcaption>\n</figure>"
    )


def render_page(
    title: str,
    run_dir: str,
    figures: Sequence[PageFigure],
    config_rows: Sequence[tuple[str, str]] = (),
    last_values: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole report page as a string."""
    summary = "\n".join(
        [_table(config_rows, "Configuration"), _table(last_values, "Last logged values")]
    )
    return PAGE.substitute(
        title=html.escape(title),
        run_dir=html.escape(run_dir),
        summary=summary,
        figures="\n".join(_figure(f) for f in figures),
    )
