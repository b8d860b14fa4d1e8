"""`logreg report`: one static index.html, its images beside it, from one or more MLflow stores.

The page is the Jinja2 template report/templates/report.html.j2 filled from report.page's data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from logreg.paths import write_text
from logreg.report.page import page_data
from logreg.tracking import mask_uri

SECTIONS = [("environment", "Environment"), ("sweeps", "Sweeps"), ("throughput", "Throughput"),
            ("roofline", "Roofline"), ("convergence", "Convergence")]  # fmt: skip


def render(data: dict, command: str, stores: str) -> str:
    """The page's HTML from its data (autoescaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("logreg.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    template = env.get_template("report.html.j2")
    return template.render(**data, command=command, when=when, stores=stores, sections=SECTIONS)


def build_report(
    uris: Sequence[str], out: Path, command: str = "", echo: Callable[[str], None] = print
) -> Path:
    """Write out/index.html and its images; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    data = page_data(uris, out)
    path = write_text(out / "index.html", render(data, command, ", ".join(mask_uri(u) for u in uris)))
    echo(f"report -> {path}")
    return path
