"""Tracking + storage overhead of a sweep, side by side in one run.

    python tests/benchmarks/tracking_overhead.py [--n-trials 25] [--repeats 3] [--baseline DIR]
    (or: nox -s overhead)

The same sweep (one cell: iris, numpy, sgd, 20 epochs, metrics every epoch, no pruning, no plots)
in fresh temporary stores, each measurement in a process of its own after a warm-up sweep there:
  off     no MLflow, Optuna in memory: the baseline;
  ours    the embedded default: Optuna journal + MLflow SQLite, each trial's run written whole by
          a writer process (tracking.runs, mode "process");
  thread  the same write in a thread of the sweep's process;
  sync    the same write in the sweep's own thread: one create + log_batch + end per trial, the
          honest baseline (MLflow's own async logging drains at set_terminated, so gains little);
  stock   Optuna SQLite storage + optuna-integration MLflowCallback with track_in_mlflow,
          mlflow.log_metric every epoch (the same params, per-epoch metrics, final metrics, tags);
  baseline (--baseline DIR) `ours` with the logreg package of another checkout.
Each runs at two sizes (N and 4N trials), interleaved, medians over repeats; the difference
between the sizes gives the marginal cost per trial. A second table times the writer modes where
training is heavier (digits, adam, 60 epochs, 60 trials): a writer thread then competes with
training for the GIL. Writes runs/tracking_overhead/ (--out results/tracking_overhead: the
committed figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXP = {
    "name": "overhead",
    "datasets": ["iris"],
    "impls": ["numpy"],
    "optimizers": ["sgd"],
    "epochs": 20,
    "eval_every": 1,
    "pruner": {"name": "none"},
    "sampler": {"name": "tpe", "n_startup_trials": 5},
}

# Run in a fresh process with the package to measure first on sys.path: prints the seconds.
ONE = """
import json, sys, tempfile, time, warnings
warnings.simplefilter("ignore")
from logreg.tune import SweepOptions, run_sweep
from logreg.tune import validate  # (old checkouts: logreg.tune.experiment)
exp_raw, n, variant = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
variant, _, writer = variant.partition(":")

def sweep(n):
    exp = validate({**exp_raw, "n_trials": n})
    with tempfile.TemporaryDirectory() as d:
        track = variant != "off"
        writer_mode = writer or (variant if variant in ("thread", "sync") else "")
        kw = {"writer": writer_mode} if writer_mode else {}
        opts = SweepOptions(storage=f"{d}/j.log" if track else ":memory:", tracking_uri=f"sqlite:///{d}/m.db",
                            track=track, progress=False, plots=False, results_dir=None, **kw)
        if track:  # schema creation is a one-off cost of a new store, not a per-trial one
            from logreg.tracking import make_client
            make_client(opts.tracking_uri)
        t0 = time.perf_counter()
        run_sweep(exp, opts)
        return time.perf_counter() - t0

sweep(3)  # imports and caches
print(sweep(n))
"""


HEAVY = {**EXP, "datasets": ["digits"], "optimizers": ["adam"], "epochs": 60}


def run_variant(variant: str, n: int, package: Path = ROOT, exp: dict = EXP) -> float:
    if variant == "stock":
        return run_stock(n)
    mode = "ours" if variant == "baseline" else variant
    env = {**os.environ, "PYTHONPATH": str(package), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", ONE, json.dumps(exp), str(n), mode],
        env=env, cwd=package, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def run_stock(n_trials: int) -> float:
    import tempfile
    import time
    import warnings

    import mlflow
    import optuna
    from optuna_integration.mlflow import MLflowCallback

    sys.path.insert(0, str(ROOT))
    from logreg.experiment import validate
    from logreg.train import train
    from logreg.tune.study import suggest_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = validate({**EXP, "n_trials": n_trials})
    cell = exp.cells()[0]
    with tempfile.TemporaryDirectory() as d:
        uri = f"sqlite:///{d}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        mlflow.MlflowClient(uri).search_experiments()  # create the schema outside the timing
        storage = optuna.storages.RDBStorage(f"sqlite:///{d}/optuna.db")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cb = MLflowCallback(
                tracking_uri=uri,
                metric_name="val_loss",
                create_experiment=True,
                mlflow_kwargs={"nested": False},
            )

        @cb.track_in_mlflow()
        def objective(trial):
            config = suggest_config(trial, exp, cell)
            mlflow.log_params(config.to_params())
            mlflow.set_tags({"logreg.trial_number": trial.number, "logreg.dataset": cell[0]})

            def on_eval(epoch, m):
                for k, v in m.items():
                    mlflow.log_metric(k, v, step=epoch)
                trial.report(m["val_loss"], epoch)

            result = train(config, on_eval=on_eval)
            mlflow.log_metrics({**result.metrics, **result.timings})
            return result.metrics["val_loss"]

        t0 = time.perf_counter()
        study = optuna.create_study(
            storage=storage,
            study_name="stock",
            sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.optimize(objective, n_trials=n_trials, callbacks=[cb])
        return time.perf_counter() - t0


def measure(variants: dict[str, Path], small: int, large: int, repeats: int) -> dict[str, list[float]]:
    """Interleaved, so drifting machine load hits every variant alike."""
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, package in variants.items():
            for size in (small, large) if name != "stock" else (small,):
                times.setdefault(f"{name}_{size}", []).append(run_variant(name, size, package))
    return times


def heavy(repeats: int, n: int = 60) -> dict[str, float]:
    """Wall seconds of a heavier sweep per writer mode (medians of interleaved repeats)."""
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for mode in ("process", "thread", "sync"):
            times.setdefault(mode, []).append(run_variant(f"ours:{mode}", n, ROOT, HEAVY))
    return {mode: statistics.median(v) for mode, v in times.items()}


def summary(times, variants, small: int, large: int) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = {}
    for name in variants:
        if name == "stock":
            rows[name] = {"ms_per_trial": 1000 * med[f"stock_{small}"] / small}
            continue
        marginal = 1000 * (med[f"{name}_{large}"] - med[f"{name}_{small}"]) / (large - small)
        rows[name] = {
            "marginal_ms_per_trial": marginal,
            "ms_per_trial": 1000 * med[f"{name}_{small}"] / small,
        }
    for name, row in rows.items():
        if "marginal_ms_per_trial" in row and name != "off":
            row["overhead_ms_per_trial"] = row["marginal_ms_per_trial"] - rows["off"]["marginal_ms_per_trial"]
    return rows


def _commit(path: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def main(argv=None) -> int:
    from logreg.tracking import cpu_name

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-trials", type=int, default=25, help="N: the small size (the large is 4N)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="a checkout of an earlier logreg, run as `ours`")
    ap.add_argument("--out", default=str(ROOT / "runs" / "tracking_overhead"), help="(default runs/...)")
    args = ap.parse_args(argv)
    small, large = args.n_trials, 4 * args.n_trials
    variants = {name: ROOT for name in ("off", "ours", "thread", "sync", "stock")}
    if args.baseline:
        variants["baseline"] = args.baseline.resolve()
    times = measure(variants, small, large, args.repeats)
    rows = summary(times, variants, small, large)
    heavy_seconds = heavy(args.repeats)
    machine = f"{platform.node()} ({os.cpu_count()} cores, {cpu_name()})"
    report = {"machine": machine, "load_average_1min_at_end": os.getloadavg()[0], "sizes": [small, large],
              "repeats": args.repeats, "seconds": times, "variants": rows,
              "heavy_seconds_60_trials": heavy_seconds}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(report, indent=2))
    md = [
        "Tracking + storage overhead of a sweep (iris, numpy, sgd, 20 epochs, metrics every epoch), "
        f"{small} and {large} trials, medians of {args.repeats} interleaved repeats, {machine}, load average "
        f"{report['load_average_1min_at_end']:.1f} at the end:",
        "",
        "| variant | marginal ms per trial | overhead over off, ms per trial "
        f"| ms per trial at {small} trials |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        cells = [row.get(k) for k in ("marginal_ms_per_trial", "overhead_ms_per_trial", "ms_per_trial")]
        md.append(f"| {name} | " + " | ".join("" if c is None else f"{c:.1f}" for c in cells) + " |")
    ratio = rows["stock"]["ms_per_trial"] / rows["ours"]["ms_per_trial"]
    saved = rows["sync"]["overhead_ms_per_trial"] - rows["ours"]["overhead_ms_per_trial"]
    md += [
        "",
        f"- ours vs stock, trials per second at {small} trials: **{ratio:.1f}x**",
        f"- the writer process against the synchronous write: **{saved:.1f} ms per trial** saved",
        "",
        "Heavier training (digits, adam, 60 epochs, metrics every epoch), 60 trials, wall seconds:",
        "",
        "| writer | seconds |",
        "|---|---|",
        *[f"| {mode} | {sec:.2f} |" for mode, sec in heavy_seconds.items()],
        "",
        "Command: `python tests/benchmarks/tracking_overhead.py"
        + (f" --baseline {args.baseline}" if args.baseline else "")
        + "` (or `nox -s overhead`)."
        + (f" The baseline is commit {_commit(args.baseline)} of logreg." if args.baseline else ""),
    ]
    (out / "result.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
