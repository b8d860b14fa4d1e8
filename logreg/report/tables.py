"""Tables for people: one GitHub Markdown layout and one cell format (NaN as "-"), and CSV files."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

MISSING = "-"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table from a header and rows of already formatted cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def format_cell(value: Any, fmt: Callable[[Any], str] | None = None) -> str:
    """One cell: NaN and None as MISSING; numbers through `fmt` when given; the rest as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if fmt is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt(value)
    return str(value)


def records_table(
    records: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    default: Callable[[Any], str] | None = None,
) -> str:
    """A Markdown table of dict-like rows: `formats[column]` (else `default`) formats numbers."""
    formats = formats or {}
    return markdown_table(
        columns, ([format_cell(r.get(c), formats.get(c, default)) for c in columns] for r in records)
    )


def frame_table(df, formats=None, default=None) -> str:
    """records_table of a pandas DataFrame, every column."""
    return records_table(df.to_dict("records"), list(df.columns), formats, default)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Rows of dicts as CSV (the union of their keys as columns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path
