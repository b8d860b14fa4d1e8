"""The sweep's summary table: one row per cell (tune.summary), as Markdown and CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from logreg.paths import check_output_dir, write_text
from logreg.report.headline import as_markdown, headline
from logreg.report.tables import frame_table


def hyperparameters(params: dict[str, Any]) -> str:
    """'lr=0.05, momentum=0.9': a trial's sampled values, floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _number(v) -> str:
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def to_markdown(df) -> str:
    """The summary as a GitHub table: floats to 4 decimals (small ones in e-notation)."""
    return frame_table(df, {c: _number for c in df.columns if df[c].dtype.kind == "f"})


def write_summary(df, out_dir: Path) -> tuple[Path, Path]:
    """summary.csv and summary.md, each written whole."""
    check_output_dir(out_dir, "--results-dir")
    csv, md = out_dir / "summary.csv", out_dir / "summary.md"
    table = as_markdown(headline(df)) + "\n\n" + to_markdown(df)
    for path, text in ((csv, df.to_csv(index=False)), (md, table)):
        write_text(path, text)
    return csv, md
