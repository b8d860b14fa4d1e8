"""`logreg compare`: MLflow runs from one or more stores -> pandas -> tables and plots.

Reads the `throughput` experiment (and every sweep experiment: `sweep/<name>`, or `<name>` in
stores written before sweeps were named so) of each tracking
URI, e.g. a CPU machine's store and a GPU machine's store, and writes under
--out (default runs/compare):

    throughput.csv / throughput.md   samples per second per impl x n x device (x d, batch)
    speedup.csv / speedup.md         CUDA / CPU samples per second per impl x n, and the
                                     crossover n where CUDA overtakes the CPU
    throughput.png, speedup.png      log-log plots (speedup.png only with CUDA runs)
    sweeps.csv / sweeps.md           per sweep cell (model, compile too) and device: the best
                                     trial (lowest val_loss, the tuning objective) with its
                                     test accuracy (or R^2 for linear) and fit time
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from logreg.errors import LogregError
from logreg.paths import write_text
from logreg.report.tables import frame_table
from logreg.tracking import experiment_names, mask_uri, search_runs

THROUGHPUT_KEYS = ["impl", "device", "d", "dtype", "batch_size", "n"]
NO_CUDA = (
    "No CUDA throughput runs found: no speedup or crossover (run `logreg throughput --devices cuda` "
    "on a GPU machine and pass its store too)."
)


def _num(series):
    import pandas as pd

    return pd.to_numeric(series, errors="coerce")


def load_runs(uris: Sequence[str]):
    """(throughput runs, sweep trial runs) from every store, as two DataFrames."""
    import pandas as pd

    thr, sweeps = [], []
    for uri in uris:
        names = experiment_names(uri)
        if "throughput" in names:
            df = search_runs(uri, ["throughput"])
            if len(df):
                df["source"] = mask_uri(uri)
                thr.append(df)
        for name in names:
            if name == "throughput":
                continue
            df = search_runs(uri, [name])
            if len(df) and "params.impl" in df and ("metrics.test_accuracy" in df or "metrics.test_r2" in df):
                df["source"], df["experiment"] = mask_uri(uri), name
                sweeps.append(df)
    return (
        pd.concat(thr, ignore_index=True) if thr else pd.DataFrame(),
        pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame(),
    )


def throughput_table(runs):
    """One row per impl x device x d x dtype x batch x n: the median over repeated runs.

    Compiled cells (param compile True) count as the implementation 'IMPL compiled'.
    """
    import pandas as pd

    if runs.empty:
        return pd.DataFrame(columns=THROUGHPUT_KEYS + ["samples_per_second"])
    df = pd.DataFrame({k: runs[f"params.{k}"] for k in THROUGHPUT_KEYS})
    if "params.compile" in runs:  # compiled cells are their own line (stores before: eager only)
        compiled = runs["params.compile"].fillna("False") == "True"
        df["impl"] = [f"{i} compiled" if c else i for i, c in zip(df["impl"], compiled, strict=True)]
    df["n"], df["d"] = _num(df["n"]).astype("int64"), _num(df["d"]).astype("int64")
    for m in ("samples_per_second", "epoch_seconds_median", "bandwidth_fraction", "roofline_ratio"):
        df[m] = _num(runs.get(f"metrics.{m}"))
    df["device_name"] = runs.get("tags.logreg.device_name", "")
    df["source"] = runs["source"]
    agg = {
        "samples_per_second": "median",
        "epoch_seconds_median": "median",
        "bandwidth_fraction": "median",
        "roofline_ratio": "median",
        "device_name": "first",
        "source": "first",
    }
    out = df.groupby(THROUGHPUT_KEYS, as_index=False).agg(agg)
    out["runs"] = df.groupby(THROUGHPUT_KEYS).size().values
    return out.sort_values(["d", "batch_size", "impl", "device", "n"]).reset_index(drop=True)


def speedup_table(table):
    """CUDA / CPU samples per second of the same implementation, per n where both ran."""
    import pandas as pd

    keys = ["impl", "d", "dtype", "batch_size", "n"]
    cpu = table[table.device == "cpu"].set_index(keys)["samples_per_second"]
    cuda = table[table.device == "cuda"].set_index(keys)["samples_per_second"]
    both = pd.concat({"cpu": cpu, "cuda": cuda}, axis=1).dropna()
    both["speedup"] = both["cuda"] / both["cpu"]
    return both.reset_index().sort_values(keys).reset_index(drop=True)


def crossovers(speedup):
    """Per impl x d x batch: the n where CUDA overtakes the CPU, interpolated on log-log axes
    between the last size where the CPU is faster and the next (NaN when CUDA never wins,
    the smallest n when it always wins)."""
    import pandas as pd

    rows = []
    for key, g in speedup.groupby(["impl", "d", "dtype", "batch_size"]):
        g = g.sort_values("n")
        ns, s = g["n"].tolist(), g["speedup"].tolist()
        cross, note = math.nan, "CUDA never faster"
        for i, (n, v) in enumerate(zip(ns, s, strict=True)):
            if v >= 1 and all(x >= 1 for x in s[i:]):
                if i == 0:
                    cross, note = n, "CUDA faster at every size"
                else:
                    n0, v0 = ns[i - 1], s[i - 1]
                    t = (0 - math.log(v0)) / (math.log(v) - math.log(v0))
                    cross = math.exp(math.log(n0) + t * (math.log(n) - math.log(n0)))
                    note = f"between n={n0} and n={n}"
                break
        rows.append(
            dict(zip(["impl", "d", "dtype", "batch_size"], key, strict=True), crossover_n=cross, note=note)
        )
    return pd.DataFrame(rows)


def sweep_table(runs):
    """Per sweep cell (experiment, dataset, model, impl, optimizer, compile) and device: the best
    trial (lowest val_loss), with its test accuracy (classifiers) or test R^2 (linear), the number
    of completed trials and the best trial's hyperparameters (the parameters the cell tuned)."""
    import pandas as pd

    df = _trial_runs(runs)
    if df.empty:
        return pd.DataFrame()
    nan = pd.Series(float("nan"), index=df.index)
    device = df.get("tags.logreg.device_kind", df.get("params.device"))
    # Stores written before the model axis / the compile axis: logistic, eager.
    model = df["params.model"].fillna("logistic") if "params.model" in df else "logistic"
    compiled = df["params.compile"].fillna("False") == "True" if "params.compile" in df else False
    state = df.get("tags.logreg.trial_state", "COMPLETE")
    t = pd.DataFrame(
        {
            "experiment": df["experiment"],
            "dataset": df["params.dataset"],
            "model": model,
            "impl": df["params.impl"],
            "optimizer": df["params.optimizer"],
            "compile": compiled,
            "device": device,
            "val_loss": _num(df.get("metrics.val_loss")),
            "test_accuracy": _num(df["metrics.test_accuracy"]) if "metrics.test_accuracy" in df else nan,
            "test_r2": _num(df["metrics.test_r2"]) if "metrics.test_r2" in df else nan,
            "fit_seconds": _num(df.get("metrics.fit_seconds")),
            "source": df["source"],
            "_complete": pd.Series(state, index=df.index).fillna("COMPLETE") == "COMPLETE",
        }
    )
    if t["test_r2"].isna().all():
        t = t.drop(columns="test_r2")  # no linear cells: the table stays as it was
    keys = ["experiment", "dataset", "model", "impl", "optimizer", "compile", "device"]
    t["_rank"] = t["val_loss"].fillna(math.inf)
    t = t.sort_values("_rank")
    groups = t.groupby(keys, sort=True)
    best = groups.head(1).set_index(keys).sort_index()  # the first row of each group: its best
    best["completed"] = groups["_complete"].sum()
    tuned = {key: _tuned(df.loc[rows], rows[0]) for key, rows in groups.groups.items()}
    best["hyperparameters"] = pd.Series(tuned).reindex(best.index)
    return best.drop(columns=["_rank", "_complete"]).reset_index()


def _trial_runs(runs):
    """The trials of the sweeps (not the parents, not the repeats) that have a test score."""
    df = runs
    if df.empty:
        return df
    if "tags.mlflow.parentRunId" in df:  # trials are the child runs of a study's parent run
        df = df[df["tags.mlflow.parentRunId"].notna()]
    if "tags.logreg.run_kind" in df:  # not the repeats of a best config
        df = df[df["tags.logreg.run_kind"].fillna("trial") == "trial"]
    scored = [c for c in ("metrics.test_accuracy", "metrics.test_r2") if c in df]
    return df[df[scored].notna().any(axis=1)] if scored else df.iloc[:0]


def _tuned(trials, best_row) -> str:
    """The best trial's values of the parameters that differ between a cell's trials."""
    cols = sorted(c for c in trials.columns if c.startswith("params.") and trials[c].nunique(dropna=True) > 1)
    return ", ".join(f"{c[len('params.') :]}={_short(trials.at[best_row, c])}" for c in cols)


def _short(value) -> str:
    """A parameter's value with its numbers to 4 significant digits: '(0.8587, 0.998)'."""
    return re.sub(r"-?\d+\.\d+(?:e[-+]?\d+)?", lambda m: f"{float(m.group()):.4g}", str(value))


def _markdown(df, floatfmt: dict[str, Callable] | None = None) -> str:
    return frame_table(df, floatfmt)


def _plot(table, speedup, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    panels = sorted({(d, b) for d, b in zip(table["d"], table["batch_size"], strict=True)}, key=str)
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
        for ax, (d, b) in zip(axes[0], panels, strict=True):
            sub = table[(table.d == d) & (table.batch_size == b)]
            for (impl, device), g in sub.groupby(["impl", "device"]):
                g = g.sort_values("n")
                ax.plot(
                    g["n"],
                    g["samples_per_second"],
                    marker="o",
                    linestyle="-" if device == "cuda" else "--",
                    label=f"{impl} / {device}",
                )
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="n (rows)",
                ylabel="samples per second",
                title=f"d={d}, batch={b}",
            )
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=100)
        plt.close(fig)
        written.append(out / "throughput.png")
    if speedup.empty:  # speedup.md says so; an empty frame would say less
        (out / "speedup.png").unlink(missing_ok=True)  # an earlier comparison's, now stale
        return written
    fig, ax = plt.subplots(figsize=(6, 4))
    for (impl, d, b), g in speedup.groupby(["impl", "d", "batch_size"]):
        ax.plot(g["n"], g["speedup"], marker="o", label=f"{impl} d={d} batch={b}")
    ax.axhline(1.0, color="grey", linewidth=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="n (rows)",
        ylabel="CUDA / CPU samples per second",
        title="CUDA speedup",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "speedup.png", dpi=100)
    plt.close(fig)
    written.append(out / "speedup.png")
    return written


G3 = lambda v: f"{v:.3g}"  # noqa: E731
THROUGHPUT_FORMATS = {
    "samples_per_second": G3,
    "epoch_seconds_median": lambda v: f"{v * 1e3:.3f} ms",
    "bandwidth_fraction": lambda v: f"{v:.1%}",
    "roofline_ratio": lambda v: f"{v:.2f}",
}
SWEEP_FORMATS = {"test_accuracy": lambda v: f"{v:.4f}", "test_r2": lambda v: f"{v:.4f}", "fit_seconds": G3,
                 "val_loss": lambda v: f"{v:.4f}"}  # fmt: skip


def compare(uris: Sequence[str], out: Path, echo: Callable[[str], None] = print) -> dict:
    """Read the stores, write the tables and plots; return the DataFrames."""
    thr_runs, sweep_runs = load_runs(uris)
    if thr_runs.empty and sweep_runs.empty:
        raise LogregError(
            f"No throughput or sweep runs found in {', '.join(uris)}. Run `logreg throughput` or "
            "`logreg sweep` with that --tracking-uri first."
        )
    out.mkdir(parents=True, exist_ok=True)
    table = throughput_table(thr_runs)
    speedup = speedup_table(table) if not table.empty else speedup_table(table.assign(device=[]))
    cross = crossovers(speedup)
    sweeps = sweep_table(sweep_runs)
    table.to_csv(out / "throughput.csv", index=False)
    write_text(out / "throughput.md", _throughput_markdown(table))
    speedup.to_csv(out / "speedup.csv", index=False)
    if speedup.empty:
        write_text(out / "speedup.md", f"# CUDA / CPU speedup\n\n{NO_CUDA}\n")
        echo(NO_CUDA)
    else:
        cross.to_csv(out / "crossover.csv", index=False)
        speeds = {"cpu": G3, "cuda": G3, "speedup": lambda v: f"{v:.2f}x"}
        write_text(
            out / "speedup.md",
            "# CUDA / CPU speedup (same implementation)\n\n" + _markdown(speedup, speeds)
            + "\n## Crossover n (CUDA overtakes the CPU)\n\n" + _markdown(cross, {"crossover_n": G3}),
        )  # fmt: skip
    if not sweeps.empty:
        sweeps.to_csv(out / "sweeps.csv", index=False)
        title = "# Sweeps: best trial (lowest val_loss) per cell and device\n\n"
        write_text(out / "sweeps.md", title + _markdown(sweeps, SWEEP_FORMATS))
    else:
        echo("No sweep runs found: no sweep comparison written.")
    plots = _plot(table, speedup, out) if not table.empty else []
    echo(
        f"compare: {len(table)} throughput rows, {len(speedup)} speedup rows, {len(sweeps)} sweep cells "
        f"-> {out} ({', '.join(p.name for p in plots)})"
    )
    return {"throughput": table, "speedup": speedup, "crossover": cross, "sweeps": sweeps}


def _throughput_markdown(table) -> str:
    md = [
        "# Throughput: samples per second\n",
        f"Stores: {', '.join(sorted(set(table.get('source', []))))}\n",
    ]
    if not table.empty:
        index = ["d", "batch_size", "impl", "n"]
        wide = table.pivot_table(index=index, columns="device", values="samples_per_second").reset_index()
        wide.columns.name = None
        md += [
            _markdown(wide, {c: G3 for c in ("cpu", "cuda")}),
            "\nAll columns:\n",
            _markdown(table.drop(columns=["source"]), THROUGHPUT_FORMATS),
        ]
    return "\n".join(md)
