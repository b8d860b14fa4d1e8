"""`logreg convergence`: suboptimality curves, time to eps and performance profiles from MLflow stores.

Reads every sweep experiment of each store (trial runs, and the `repeat` runs of `repeats`),
keeps the cells whose runs logged a suboptimality (logistic and linear; mlp has no F*), and
writes under --out (default runs/convergence):

    suboptimality_time.png, suboptimality_epochs.png
        (F(w_t) - F*) / (F(w_0) - F*) of each cell's best trial (lowest val_loss, the tuning
        objective) against training seconds and epochs, log y, one panel per dataset, one line
        per impl x optimizer (x device); with repeats: the median and the 10-90 % band
    time_to_eps.csv, time_to_eps.md
        per cell and eps: the fastest trial's time and epoch to reach it ("not reached" written out)
    profiles.png, profiles.csv, profiles.md
        performance profiles: problems = dataset x eps x device, methods = impl x optimizer,
        t = the cell's fastest time to eps (AlgoPerf takes the fastest trial); rho(tau) and the
        score (the area under rho up to tau = 4, normalised); see logreg/report/profiles.py
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from logreg.errors import LogregError
from logreg.report import profiles as pf
from logreg.report.tables import frame_table, markdown_table
from logreg.tracking import experiment_names, mask_uri, metric_histories, search_runs
from logreg.train import EPSILONS, eps_name

NOT_REACHED = "not reached"
CELL_KEYS = ["dataset", "impl", "optimizer", "device"]


def _num(series):
    import pandas as pd

    return pd.to_numeric(series, errors="coerce")


def load_convergence_runs(uris: Sequence[str]):
    """Trial and repeat runs that logged a suboptimality, from every store, as one DataFrame."""
    import pandas as pd

    frames = []
    for uri in uris:
        for name in experiment_names(uri):
            if name in ("throughput", "Default"):
                continue
            df = search_runs(uri, [name])
            if df.empty or "metrics.rel_suboptimality" not in df:
                continue
            df = df[df["metrics.rel_suboptimality"].notna()]
            kind = df.get("tags.logreg.run_kind")
            if kind is None:
                continue
            df = df[kind.isin(["trial", "repeat"])]
            if df.empty:
                continue
            model = df.get("params.model", pd.Series("logistic", index=df.index)).fillna("logistic")
            frame = pd.DataFrame(
                {
                    "source": mask_uri(uri),
                    "uri": uri,
                    "experiment": name,
                    "run_id": df["run_id"],
                    "kind": df["tags.logreg.run_kind"],
                    "study": df.get("tags.logreg.study"),
                    "dataset": [
                        d if m == "logistic" else f"{d} ({m})"
                        for d, m in zip(df["params.dataset"], model, strict=True)
                    ],
                    "impl": df["params.impl"],
                    "optimizer": df["params.optimizer"],
                    "device": df.get("tags.logreg.device_kind", df.get("params.device")),
                    "state": df.get("tags.logreg.trial_state"),
                    "val_loss": _num(df.get("metrics.val_loss")),
                }
            )
            for eps in EPSILONS:
                for what in ("time", "epochs"):
                    col = f"metrics.{what}_to_eps_{eps_name(eps)}"
                    frame[f"{what}_to_eps_{eps_name(eps)}"] = _num(df[col]) if col in df else math.nan
            frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def time_to_eps_table(runs):
    """Per cell and eps: the fastest run's time and epoch to reach eps (NaN: none did)."""
    import pandas as pd

    rows = []
    for key, g in runs.groupby(CELL_KEYS):
        for eps in EPSILONS:
            name = eps_name(eps)
            t = g[f"time_to_eps_{name}"]
            row = dict(zip(CELL_KEYS, key, strict=True), eps=eps, runs=len(g), reached=int(t.notna().sum()))
            if t.notna().any():
                best = g.loc[t.idxmin()]
                row.update(
                    seconds=float(best[f"time_to_eps_{name}"]), epochs=float(best[f"epochs_to_eps_{name}"])
                )
            else:
                row.update(seconds=math.nan, epochs=math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def profile_times(table) -> dict[str, dict[str, float]]:
    """t[problem][method]: problems = dataset x eps x device, methods = impl x optimizer."""
    times: dict[str, dict[str, float]] = {}
    for r in table.to_dict("records"):
        problem = f"{r['dataset']} / eps={eps_name(r['eps'])} / {r['device']}"
        method = f"{r['impl']} + {r['optimizer']}"
        t = r["seconds"]
        times.setdefault(problem, {})[method] = t if math.isfinite(t) else math.inf
    return times


def profile_table(r):
    import pandas as pd

    rows = [
        {
            "method": m,
            "score": pf.score(r, m),
            "fastest (rho(1))": pf.rho(r, m, 1.0),
            "within 2x (rho(2))": pf.rho(r, m, 2.0),
            "within 4x (rho(4))": pf.rho(r, m, pf.TAU_MAX),
            "solved": pf.solved(r, m),
        }
        for m in pf.methods_of(r)
    ]
    return pd.DataFrame(rows).sort_values("score", ascending=False).reset_index(drop=True)


def curve_runs(runs):
    """Per cell: the runs whose curves are drawn, the best trial's repeats (else the best trial)."""
    chosen = {}
    for key, g in runs.groupby(CELL_KEYS):
        trials = g[g["kind"] == "trial"]
        repeats = g[g["kind"] == "repeat"]
        if len(repeats):
            chosen[key] = repeats
        elif len(trials):
            complete = trials[trials["state"].fillna("COMPLETE") == "COMPLETE"]
            pool = complete if len(complete) else trials
            chosen[key] = pool.loc[[pool["val_loss"].fillna(math.inf).idxmin()]]
    return chosen


def _curves(chosen) -> dict:
    """Per cell: (epochs, median seconds, median rel, 10 %, 90 %) over its runs, step by step."""
    out = {}
    for key, g in chosen.items():
        hist = {}
        for uri, gg in g.groupby("uri"):
            hist.update(metric_histories(uri, list(gg["run_id"]), ["rel_suboptimality", "train_seconds"]))
        series = []
        for h in hist.values():
            rel = dict(h["rel_suboptimality"])
            sec = dict(h["train_seconds"])
            steps = sorted(set(rel) & set(sec))
            series.append({s: (sec[s], rel[s]) for s in steps})
        if not series:
            continue
        steps = sorted(set.intersection(*(set(s) for s in series)))
        if not steps:
            continue
        secs = np.array([[s[k][0] for k in steps] for s in series])
        rels = np.array([[s[k][1] for k in steps] for s in series])
        out[key] = (
            np.array(steps, dtype=float),
            np.median(secs, axis=0),
            np.median(rels, axis=0),
            np.percentile(rels, 10, axis=0),
            np.percentile(rels, 90, axis=0),
            len(series),
        )
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FLOOR = 1e-12  # a suboptimality at or below it (float rounding) is drawn at it on the log axis


def _plot_curves(curves, x: str, path: Path) -> Path:
    plt = _pyplot()
    datasets = sorted({k[0] for k in curves})
    cols = min(3, max(1, len(datasets)))
    rows = math.ceil(len(datasets) / cols) if datasets else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    devices = {k[3] for k in curves}
    methods = sorted({k[1:] for k in curves})
    for ax, ds in zip(axes.flat, datasets, strict=False):
        for key in sorted(k for k in curves if k[0] == ds):
            ep, sec, med, lo, hi, n = curves[key]
            xs = sec if x == "time" else ep
            label = f"{key[1]} + {key[2]}" + (f" ({key[3]})" if len(devices) > 1 else "")
            color = f"C{methods.index(key[1:]) % 10}"  # one colour per method in every panel
            ax.plot(xs, np.maximum(med, FLOOR), color=color, label=label + (f" x{n}" if n > 1 else ""))
            if n > 1:
                ax.fill_between(xs, np.maximum(lo, FLOOR), np.maximum(hi, FLOOR), color=color, alpha=0.15)
        for eps in EPSILONS:
            ax.axhline(eps, color="0.6", lw=0.7, ls=":")
        ax.set(
            yscale="log",
            xscale="log" if x == "time" else "linear",
            title=ds,
            xlabel="training seconds" if x == "time" else "epoch",
            ylabel="(F - F*) / (F0 - F*)",
        )
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower left")
    for ax in list(axes.flat)[len(datasets) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_profiles(r, table, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    taus = np.linspace(1.0, pf.TAU_MAX, 301)
    scores = dict(zip(table["method"], table["score"], strict=True))
    for i, m in enumerate(table["method"]):
        ax.step(
            taus,
            [pf.rho(r, m, t) for t in taus],
            where="post",
            color=f"C{i % 10}",
            label=f"{m} ({scores[m]:.2f})",
        )
    ax.set(
        xlim=(1, pf.TAU_MAX),
        ylim=(-0.02, 1.02),
        xlabel="tau (time / fastest method's time)",
        ylabel="fraction of problems solved within tau",
        title=f"Performance profiles ({len(r)} problems: dataset x eps x device); score in brackets",
    )
    ax.title.set_fontsize(9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cell_text(seconds: float, epochs: float) -> str:
    return NOT_REACHED if not math.isfinite(seconds) else f"{seconds:.3g} s (epoch {epochs:.0f})"


def time_to_eps_markdown(table) -> str:
    import pandas as pd

    if table.empty:
        return "No runs with a suboptimality.\n"
    wide = []
    for key, g in table.groupby(CELL_KEYS):
        row = dict(zip(CELL_KEYS, key, strict=True))
        for r in g.to_dict("records"):
            row[f"eps={eps_name(r['eps'])}"] = _cell_text(r["seconds"], r["epochs"])
        row["runs"] = str(int(g["runs"].iloc[0]))
        wide.append(row)
    return frame_table(pd.DataFrame(wide))


def convergence(uris: Sequence[str], out: Path, echo: Callable[[str], None] = print) -> dict:
    """Read the stores, write the curves, the time-to-eps table and the profiles; return them."""
    runs = load_convergence_runs(uris)
    if runs.empty:
        raise LogregError(
            f"No runs with a suboptimality found in {', '.join(mask_uri(u) for u in uris)}. Run "
            "`logreg sweep` (tracking on, logistic or linear cells) with that --tracking-uri first."
        )
    out.mkdir(parents=True, exist_ok=True)
    table = time_to_eps_table(runs)
    table.to_csv(out / "time_to_eps.csv", index=False)
    r = pf.ratios(profile_times(table))
    prof = profile_table(r)
    prof.to_csv(out / "profiles.csv", index=False)
    curves = _curves(curve_runs(runs))
    files = [
        _plot_curves(curves, "time", out / "suboptimality_time.png"),
        _plot_curves(curves, "epochs", out / "suboptimality_epochs.png"),
        _plot_profiles(r, prof, out / "profiles.png"),
    ]
    ttm = time_to_eps_markdown(table)
    (out / "time_to_eps.md").write_text(
        "# Time to eps: the fastest run of each cell to (F - F*) / (F0 - F*) <= eps\n\n"
        f"Stores: {', '.join(sorted(set(runs['source'])))}\n\n" + ttm
    )
    pct = {c: (lambda v: f"{v:.0%}") for c in prof.columns if c.startswith(("fastest", "within", "solved"))}
    prof_md = frame_table(prof, {"score": lambda v: f"{v:.3f}", **pct})
    (out / "profiles.md").write_text(
        "# Performance profiles\n\n"
        f"Problems (dataset x eps x device): {len(r)}; methods (impl x optimizer): {len(prof)}. "
        "Score: area under rho(tau) from 1 to 4, divided by 3 (1 = fastest on every problem).\n\n" + prof_md
    )
    echo(
        f"convergence: {len(table) // len(EPSILONS)} cells, {len(r)} problems -> {out} "
        f"({', '.join(p.name for p in files)})"
    )
    return {
        "runs": runs,
        "time_to_eps": table,
        "ratios": r,
        "profiles": prof,
        "files": files,
        "markdown": ttm,
        "profiles_markdown": prof_md,
    }


__all__ = ["NOT_REACHED", "convergence", "markdown_table"]
