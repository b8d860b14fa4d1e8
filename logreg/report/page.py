"""What the HTML report shows, computed: every section as plain data (tables of display strings,
figure paths, notes) for report.html's template, which computes nothing.

Sections: where the runs ran (the environment tags of each store), the sweep summary (best tuned
trial per cell against scikit-learn's LogisticRegression on the same split), throughput against
n per device with the CPU-vs-CUDA speedup and crossover (report.compare), roofline fractions, and
convergence: suboptimality curves, time to eps and performance profiles (report.convergence). A
section without data says so instead of disappearing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from logreg.errors import LogregError
from logreg.report.compare import compare, load_runs
from logreg.report.convergence import convergence
from logreg.report.headline import headline, with_gaps
from logreg.report.reference import sklearn_test_accuracy
from logreg.report.tables import format_cell

ENV_TAGS = [
    ("device name", "logreg.device_name"),
    ("host", "logreg.host"),
    ("commit", "logreg.git_commit"),
    ("python", "logreg.python_version"),
    ("torch", "logreg.torch_version"),
    ("numpy", "logreg.numpy_version"),
    ("mlflow", "logreg.mlflow_version"),
    ("optuna", "logreg.optuna_version"),
    ("CUDA", "logreg.cuda_version"),
]
PERCENT = lambda v: f"{v:.1%}"  # noqa: E731
RATIO = lambda v: f"{v:.2f}"  # noqa: E731
SCI = lambda v: f"{v:.3g}"  # noqa: E731
FOUR = lambda v: f"{v:.4f}"  # noqa: E731


# Columns shown under a reader's name; the rest keep theirs.
HEADERS = {
    "val_loss": "val loss",
    "test_accuracy": "test accuracy",
    "sklearn_test_accuracy": "scikit-learn test accuracy",
    "gap_to_sklearn": "gap to scikit-learn",
    "test_r2": "test R^2",
    "fit_seconds": "fit seconds",
    "samples_per_second": "samples per second",
    "epoch_seconds_median": "epoch (median)",
    "bandwidth_fraction": "bandwidth fraction",
    "roofline_ratio": "roofline ratio",
    "batch_size": "batch size",
}
WRAP = {"hyperparameters", "note", ""}  # text columns that may wrap; numbers never do


def table(df, formats: dict[str, Callable] | None = None, fold: Sequence[str] = ()) -> dict[str, Any] | None:
    """A DataFrame as {'caption', 'columns', 'rows', 'wrap'} of display strings ('-' for NaN);
    the `fold` columns that hold one value in every row go to the caption instead. None when
    empty."""
    if df is None or len(df) == 0:
        return None
    formats = formats or {}
    constant = [c for c in fold if c in df and df[c].nunique(dropna=False) == 1]
    caption = ", ".join(f"{c} {format_cell(df[c].iloc[0], formats.get(c))}" for c in constant)
    df = df.drop(columns=constant)
    rows = [[format_cell(rec[c], formats.get(c)) for c in df.columns] for rec in df.to_dict("records")]
    columns = [HEADERS.get(str(c), str(c)) for c in df.columns]
    wrap = [i for i, c in enumerate(df.columns) if c in WRAP]
    return {"caption": caption, "columns": columns, "rows": rows, "wrap": wrap}


def environments(uris: Sequence[str]):
    """One column per store and device, one row per field: the latest run's environment tags."""
    import pandas as pd

    columns = {}
    for df in load_runs(uris):
        if df.empty or "tags.logreg.device_kind" not in df:
            continue
        for (source, device), g in df.groupby([df["source"], df["tags.logreg.device_kind"]]):
            last = g.sort_values("start_time").iloc[-1] if "start_time" in g else g.iloc[-1]
            fields = {label: last.get(f"tags.{tag}", math.nan) for label, tag in ENV_TAGS}
            columns[f"{source} ({device})"] = {**fields, "runs": len(g)}
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).reset_index(names="")


SWEEP_COLUMNS = ["experiment", "dataset", "model", "impl", "optimizer", "compile", "device", "completed",
                 "val_loss", "test_accuracy", "sklearn_test_accuracy", "gap_to_sklearn", "test_r2",
                 "fit_seconds", "hyperparameters"]  # fmt: skip
SWEEP_FOLD = ["experiment", "dataset", "model", "impl", "optimizer", "compile", "device"]
SWEEP_FORMATS = {"test_accuracy": FOUR, "sklearn_test_accuracy": FOUR, "val_loss": FOUR, "test_r2": FOUR,
                 "gap_to_sklearn": lambda v: f"{v:+.4f}", "fit_seconds": SCI}  # fmt: skip


def sweep_summary(sweeps):
    """The best trial per cell beside scikit-learn's test accuracy on the same split, and the gap."""
    if sweeps is None or sweeps.empty:
        return sweeps
    refs = []
    for dataset in sweeps["dataset"]:
        try:
            refs.append(sklearn_test_accuracy(dataset, 0, "float64"))
        except (LogregError, ValueError):  # a file dataset or a regression one: no reference
            refs.append(math.nan)
    df = with_gaps(sweeps.assign(sklearn_test_accuracy=refs))
    return df[[c for c in SWEEP_COLUMNS if c in df]]


def sweep_tables(summary) -> list[dict[str, Any]]:
    """One table per experiment and device, the columns that do not vary in its caption."""
    if summary is None or summary.empty:
        return []
    groups = summary.groupby(["experiment", "device"], sort=False)
    return [table(g, SWEEP_FORMATS, SWEEP_FOLD) for _, g in groups]


THROUGHPUT_FOLD = ["impl", "device", "d", "dtype", "batch_size", "device_name"]


def roofline_table(throughput):
    """Per impl x device x d x batch at the largest n: the fraction of the measured bandwidth."""
    if throughput is None or throughput.empty:
        return throughput
    idx = throughput.groupby(["impl", "device", "d", "batch_size"])["n"].idxmax()
    cols = [
        "impl",
        "device",
        "d",
        "batch_size",
        "n",
        "roofline_ratio",
        "bandwidth_fraction",
        "samples_per_second",
    ]
    return throughput.loc[idx, cols].sort_values(["device", "d", "batch_size", "impl"]).reset_index(drop=True)


def _throughput(cmp: dict, out: Path) -> dict[str, Any] | None:
    if not cmp or cmp["throughput"].empty:
        return None
    speedup = not cmp["speedup"].empty
    names = ("throughput.png", "speedup.png") if speedup else ("throughput.png",)
    return {
        "figures": [
            str((out / "compare" / n).relative_to(out)) for n in names if (out / "compare" / n).exists()
        ],
        "speedup": table(cmp["speedup"], {"speedup": lambda v: f"{v:.2f}x"}) if speedup else None,
        "crossover": table(cmp["crossover"], {"crossover_n": SCI}) if speedup else None,
        "samples": table(
            cmp["throughput"].drop(columns=["source"], errors="ignore"),
            {
                "samples_per_second": SCI,
                "epoch_seconds_median": lambda v: f"{v * 1e3:.3f} ms",
                "bandwidth_fraction": PERCENT,
                "roofline_ratio": RATIO,
            },
            THROUGHPUT_FOLD,
        ),  # fmt: skip
        "roofline": table(
            roofline_table(cmp["throughput"]),
            {"roofline_ratio": RATIO, "bandwidth_fraction": PERCENT, "samples_per_second": SCI},
            THROUGHPUT_FOLD,
        ),
    }


def _convergence(conv: dict, out: Path) -> dict[str, Any] | None:
    if not conv:
        return None
    import pandas as pd

    cdir = out / "convergence"
    shares = {c: (lambda v: f"{v:.0%}") for c in conv["profiles"].columns if c not in ("method", "score")}
    lines = [ln for ln in (cdir / "time_to_eps.md").read_text().splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return {
        "curves": [
            str((cdir / n).relative_to(out)) for n in ("suboptimality_time.png", "suboptimality_epochs.png")
        ],
        "time_to_eps": table(pd.DataFrame(cells[2:], columns=cells[0])) if len(cells) > 2 else None,
        "profiles_figure": str((cdir / "profiles.png").relative_to(out)),
        "profiles": table(conv["profiles"], {"score": lambda v: f"{v:.3f}", **shares}),
    }


def page_data(uris: Sequence[str], out: Path) -> dict[str, Any]:
    """Every section's data; the compare and convergence files are written under `out` first."""
    quiet: Callable[[str], None] = lambda _msg: None  # noqa: E731 - the sections' own output
    try:
        cmp = compare(uris, out / "compare", echo=quiet)
    except LogregError:
        cmp = {}
    try:
        conv = convergence(uris, out / "convergence", echo=quiet)
    except LogregError:
        conv = {}
    if not cmp and not conv:
        raise LogregError(
            f"No sweep or throughput runs found in {', '.join(uris)}. Run `logreg sweep` or "
            "`logreg throughput` with that --tracking-uri first."
        )
    summary = sweep_summary(cmp.get("sweeps"))
    lines = headline(summary) if summary is not None and not summary.empty else []
    return {
        "headline": [line.strip() for line in lines],
        "environment": table(environments(uris)),
        "sweeps": sweep_tables(summary),
        "throughput": _throughput(cmp, out),
        "convergence": _convergence(conv, out),
    }
