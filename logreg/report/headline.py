"""The answer a sweep is run for, in a few lines: how far the tuned cells are from scikit-learn,
and which implementation and optimizer got there fastest. The sweep prints it; the report and
the summary file open with it."""

from __future__ import annotations

import textwrap

# Cells within this much test accuracy (or R^2) of their dataset's best count as equally good.
EQUAL_ACCURACY = 0.005


def _column(df, name: str):
    return df[name] if name in df else df.index.to_series().map(lambda _: float("nan"))


def scores(df):
    """Each cell's test accuracy, or test R^2 for a linear cell."""
    return _column(df, "test_accuracy").fillna(_column(df, "test_r2"))


def with_gaps(df):
    """The summary with `gap_to_sklearn`: test accuracy (R^2 for linear) minus scikit-learn's."""
    reference = _column(df, "sklearn_test_accuracy").fillna(_column(df, "sklearn_test_r2"))
    return df.assign(gap_to_sklearn=scores(df) - reference)


def _label(row) -> str:
    parts = [row["dataset"], *([row["model"]] if row.get("model", "logistic") != "logistic" else [])]
    return "/".join(parts + [row["impl"], row["optimizer"]])


def _fastest(df) -> list[str]:
    """Per dataset: the fastest cell (fit time) among those within EQUAL_ACCURACY of the best."""
    out = []
    for dataset, cells in df.assign(_score=scores(df)).groupby("dataset", sort=False):
        good = cells[cells["_score"] >= cells["_score"].max() - EQUAL_ACCURACY]
        if good.empty or good["fit_seconds"].isna().all():
            continue
        best = good.loc[good["fit_seconds"].idxmin()]
        out.append(f"{dataset} {best['impl']}/{best['optimizer']} (fit {best['fit_seconds'] * 1e3:.3g} ms)")
    return out


def headline(df) -> list[str]:
    """3-4 lines: the gap to scikit-learn (worst, median, cells equal or better) and the fastest
    implementation and optimizer per dataset at the best accuracy."""
    gaps = df["gap_to_sklearn"].dropna()
    if gaps.empty:
        return ["No completed trial with a scikit-learn reference yet."]
    worst = df.loc[gaps.idxmin()]
    n, datasets = len(gaps), df.loc[gaps.index, "dataset"].nunique()
    equal = int((gaps >= -1e-9).sum())
    lines = [
        f"{n} cells on {datasets} datasets, each its best trial (lowest validation loss), against "
        "scikit-learn on the same split (test accuracy; R^2 for linear):",
        f"  gap to scikit-learn: worst {worst['gap_to_sklearn']:+.3f} ({_label(worst)}), median "
        f"{gaps.median():+.3f}; {equal} of {n} cells equal or better.",
    ]
    fastest = _fastest(df.loc[gaps.index])
    if fastest:
        lines.append(f"  fastest at the best accuracy (within {EQUAL_ACCURACY}): " + ", ".join(fastest) + ".")
    return lines


def wrapped(lines: list[str], width: int = 100) -> str:
    """The headline for a terminal or a file: long lines wrapped, their continuations indented."""
    return "\n".join(
        textwrap.fill(line, width=width, subsequent_indent=" " * (len(line) - len(line.lstrip()) + 2))
        for line in lines
    )


def as_markdown(lines: list[str]) -> str:
    """The headline in a Markdown file: its first line, then the others as a list."""
    return "\n".join([lines[0], "", *(f"- {line.strip()}" for line in lines[1:])])
