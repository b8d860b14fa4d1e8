"""`logreg report`: one static index.html, its images beside it, from one or more MLflow stores.

Sections: where the runs ran (the environment tags of each store), the sweep summary (best tuned
trial per cell against scikit-learn's LogisticRegression on the same split), throughput against
n per device with the CPU-vs-CUDA speedup and crossover (logreg.report.compare), roofline
fractions, and convergence: suboptimality curves, time to eps and performance profiles
(logreg.report.convergence). A section without data says so instead of disappearing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from logreg.errors import LogregError
from logreg.report.compare import compare, load_runs
from logreg.report.convergence import convergence
from logreg.report.reference import sklearn_test_accuracy
from logreg.tracking import mask_uri

ENV_TAGS = [
    ("device", "logreg.device_kind"),
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

CSS = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #dde2e7; --accent: #2563eb; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 18px 0 10px; }
main, .bar { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
h1 { font-size: 1.55rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 10px; }
h3 { font-size: 1rem; margin: 18px 0 6px; color: var(--muted); }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; font-size: .92rem; }
.meta { color: var(--muted); font-size: .88rem; margin: 2px 0 8px; }
code { background: #eef1f4; padding: 1px 5px; border-radius: 4px; font-size: .86em; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 18px 20px; margin: 18px 0; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0;
      border: 1px solid var(--line); border-radius: 4px; }
.scroll { overflow-x: auto; max-height: 420px; overflow-y: auto; }
table { border-collapse: collapse; font-size: .84rem; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; white-space: nowrap; }
th { background: #f1f4f7; position: sticky; top: 0; }
tr:hover td { background: #f8fafc; }
.note { color: var(--muted); font-size: .9rem; }
.empty { color: #9a3412; }
"""


def _table(df, formats: dict[str, Callable] | None = None) -> str:
    if df is None or len(df) == 0:
        return '<p class="empty">No data.</p>'
    formats = formats or {}
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for rec in df.to_dict("records"):
        cells = []
        for c in cols:
            v = rec[c]
            if isinstance(v, float) and math.isnan(v):
                text = "-"
            elif c in formats and isinstance(v, (int, float)):
                text = formats[c](v)
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows = "".join(body)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _img(path: Path, root: Path, alt: str) -> str:
    return f'<img src="{html.escape(str(path.relative_to(root)))}" alt="{html.escape(alt)}" loading="lazy">'


def environments(uris: Sequence[str]):
    """One row per store and device: the environment tags of its runs (the latest run's)."""
    import pandas as pd

    rows = []
    thr, sweeps = load_runs(uris)
    for df in (thr, sweeps):
        if df.empty:
            continue
        kind = df.get("tags.logreg.device_kind")
        for (source, device), g in df.groupby([df["source"], kind]):
            g = g.sort_values("start_time") if "start_time" in g else g
            last = g.iloc[-1]
            row = {"store": source}
            for label, tag in ENV_TAGS:
                row[label] = last.get(f"tags.{tag}", math.nan)
            row["device"] = device
            row["runs"] = len(g)
            rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).drop_duplicates(subset=["store", "device", "host", "commit"], keep="last")


def _by_column(env):
    """The environment table turned: one column per store and device, one row per field (a
    store's dozen fields side by side do not fit a laptop's width; a few stores do)."""
    if env is None or env.empty:
        return env
    names = env["store"].astype(str) + " (" + env["device"].astype(str) + ")"
    return env.drop(columns=["store", "device"]).set_axis(names).T.reset_index(names="")


def sweep_summary(sweeps):
    """The best trial per cell beside scikit-learn's test accuracy on the same split."""
    if sweeps is None or sweeps.empty:
        return sweeps
    df = sweeps.copy()
    refs = []
    for ds in df["dataset"]:
        try:
            refs.append(sklearn_test_accuracy(ds, 0, "float64"))
        except (LogregError, ValueError):  # a file dataset or a regression one: no reference
            refs.append(math.nan)
    df["sklearn_test_accuracy"] = refs
    df["difference"] = df["test_accuracy"] - df["sklearn_test_accuracy"]
    return df.drop(columns=["source"], errors="ignore")


def roofline_table(table):
    """Per impl x device x d x batch at the largest n: the fraction of the measured bandwidth."""
    if table is None or table.empty:
        return table
    idx = table.groupby(["impl", "device", "d", "batch_size"])["n"].idxmax()
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
    return table.loc[idx, cols].sort_values(["device", "d", "batch_size", "impl"]).reset_index(drop=True)


def build_report(
    uris: Sequence[str], out: Path, command: str = "", echo: Callable[[str], None] = print
) -> Path:
    """Write out/index.html and its images; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    stores = ", ".join(mask_uri(u) for u in uris)
    quiet: Callable[[str], None] = lambda _msg: None  # noqa: E731 - the sections' own output
    try:
        cmp = compare(uris, out / "compare", echo=quiet)
    except LogregError:
        cmp = {}
    try:
        conv = convergence(uris, out / "convergence", echo=quiet)
    except LogregError:
        conv = {}
    env = environments(uris)
    if not cmp and not conv:
        raise LogregError(
            f"No sweep or throughput runs found in {stores}. Run `logreg sweep` or `logreg throughput` "
            "with that --tracking-uri first."
        )
    f3 = {
        "test_accuracy": lambda v: f"{v:.4f}",
        "sklearn_test_accuracy": lambda v: f"{v:.4f}",
        "difference": lambda v: f"{v:+.4f}",
        "val_loss": lambda v: f"{v:.4f}",
        "fit_seconds": lambda v: f"{v:.3g}",
    }
    parts = []
    parts.append(_section("environment", "Where the runs ran", _table(_by_column(env))))
    sweeps = sweep_summary(cmp.get("sweeps"))
    parts.append(
        _section(
            "sweeps",
            "Sweep summary: tuned against scikit-learn",
            '<p class="note">Per cell, the trial with the lowest validation loss (the tuning objective) '
            "and its test accuracy, beside scikit-learn's <code>LogisticRegression()</code> on the "
            "same split.</p>" + _table(sweeps, f3),
        )
    )
    thr_html = ""
    if cmp and not cmp["throughput"].empty:
        # The speedup figure only where there is a speedup (an empty frame says less than a line).
        figures = ("throughput.png",) if cmp["speedup"].empty else ("throughput.png", "speedup.png")
        imgs = [out / "compare" / name for name in figures if (out / "compare" / name).exists()]
        thr_html += "".join(_img(p, out, p.stem) for p in imgs)
        if cmp["speedup"].empty:
            thr_html += '<p class="note">No CUDA throughput runs: no speedup or crossover.</p>'
        else:
            thr_html += "<h3>CUDA / CPU speedup</h3>" + _table(
                cmp["speedup"], {"speedup": lambda v: f"{v:.2f}x"}
            )
            thr_html += "<h3>Crossover n</h3>" + _table(
                cmp["crossover"], {"crossover_n": lambda v: f"{v:.3g}"}
            )
        thr_html += "<h3>Samples per second</h3>" + _table(
            cmp["throughput"].drop(columns=["source"], errors="ignore"),
            {
                "samples_per_second": lambda v: f"{v:.3g}",
                "epoch_seconds_median": lambda v: f"{v * 1e3:.3f} ms",
                "bandwidth_fraction": lambda v: f"{v:.1%}",
                "roofline_ratio": lambda v: f"{v:.2f}",
            },
        )
        roof = roofline_table(cmp["throughput"])
        roof_html = (
            '<p class="note">At the largest n of each implementation x device: <code>roofline_ratio</code> '
            "is the epoch time over the time of one read of X at the bandwidth measured in the same "
            "cell (1.0 is the limit); <code>bandwidth_fraction</code> its inverse.</p>"
            + _table(
                roof,
                {
                    "roofline_ratio": lambda v: f"{v:.2f}",
                    "bandwidth_fraction": lambda v: f"{v:.1%}",
                    "samples_per_second": lambda v: f"{v:.3g}",
                },
            )
        )
    else:
        thr_html = (
            '<p class="empty">No throughput runs in these stores (run <code>logreg throughput</code>).</p>'
        )
        roof_html = thr_html
    parts.append(_section("throughput", "Throughput against n, per device", thr_html))
    parts.append(_section("roofline", "Roofline fractions", roof_html))
    if conv:
        cdir = out / "convergence"
        conv_html = (
            '<p class="note">Relative suboptimality (F(w<sub>t</sub>) - F*) / (F(w<sub>0</sub>) - F*) '
            "against the exact optimum F* (Newton in float64), of each cell's best trial; with "
            "repeats, the median and the 10-90 % band.</p>"
            + _img(cdir / "suboptimality_time.png", out, "suboptimality against time")
            + _img(cdir / "suboptimality_epochs.png", out, "suboptimality against epochs")
            + "<h3>Time to eps (the fastest run of each cell)</h3>"
            + _md_table(cdir / "time_to_eps.md")
            + "<h3>Performance profiles</h3>"
            + '<p class="note">Problems: dataset x eps x device; methods: implementation x optimizer. '
            "rho(tau): the fraction of problems a method solves within tau times the fastest method's "
            "time; score: the area under rho from 1 to 4 divided by 3.</p>"
            + _img(cdir / "profiles.png", out, "performance profiles")
            + _table(
                conv["profiles"],
                {
                    "score": lambda v: f"{v:.3f}",
                    **{
                        c: (lambda v: f"{v:.0%}")
                        for c in conv["profiles"].columns
                        if c != "method" and c != "score"
                    },
                },
            )
        )
    else:
        conv_html = '<p class="empty">No runs with a suboptimality in these stores.</p>'
    parts.append(_section("convergence", "Convergence against the exact optimum", conv_html))
    nav = "".join(
        f'<a href="#{k}">{t}</a>'
        for k, t in (
            ("environment", "Environment"),
            ("sweeps", "Sweeps"),
            ("throughput", "Throughput"),
            ("roofline", "Roofline"),
            ("convergence", "Convergence"),
        )
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    made = f"Made by <code>{html.escape(command)}</code> on {when}. " if command else f"Made on {when}. "
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>logreg report</title><style>{CSS}</style></head>
<body><header><div class="bar"><h1>logreg report</h1>
<p class="meta">{made}Stores: {html.escape(stores)}</p><nav>{nav}</nav></div></header>
<main>{"".join(parts)}</main></body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    echo(f"report -> {path}")
    return path


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


def _md_table(path: Path) -> str:
    """A Markdown table file (logreg.report.tables' layout) as an HTML table."""
    import pandas as pd

    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("|")]
    if len(lines) < 2:
        return '<p class="empty">No data.</p>'
    split = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return _table(pd.DataFrame(split[2:], columns=split[0]))
