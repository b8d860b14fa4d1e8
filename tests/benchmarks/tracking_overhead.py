"""Tracking + storage overhead of a sweep, side by side in one run.

    python tests/benchmarks/tracking_overhead.py [--n-trials 40] [--repeats 3]   (or: nox -s overhead)

Three ways to run the same sweep (one cell: iris, numpy, sgd, 20 epochs, metrics
every epoch, no pruning, no plots), each in fresh temporary stores:
  off    no MLflow, Optuna in memory: the baseline;
  ours   the embedded default: Optuna journal file + MLflow SQLite, via logreg's Tracker;
  stock  Optuna SQLite storage + optuna-integration MLflowCallback with track_in_mlflow,
         mlflow.log_metric every epoch (the same params, per-epoch metrics, final metrics, tags).
Each variant runs at two sizes (N and 4N trials), interleaved, medians over repeats; the
difference between the sizes gives the marginal cost per trial, the rest the fixed cost per
sweep (opening stores, starting the MLflow writer, draining it at the end). Reports the
marginal per-trial overhead of `ours` over `off` (target <= 20 ms), the whole overhead per
trial at 4N trials, and the trials/s of `ours` over `stock` at N trials (target >= 3x).
Writes results/tracking_overhead/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from logreg.tracking import cpu_name  # noqa: E402
from logreg.tune import SweepOptions, run_sweep  # noqa: E402
from logreg.tune.experiment import validate  # noqa: E402

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


def run_ours(n_trials: int, track: bool) -> float:
    exp = validate({**EXP, "n_trials": n_trials})
    with tempfile.TemporaryDirectory() as d:
        opts = SweepOptions(
            storage=f"{d}/optuna-journal.log" if track else ":memory:",
            tracking_uri=f"sqlite:///{d}/mlflow.db",
            track=track,
            progress=False,
            plots=False,
            results_dir=None,
        )
        if track:  # schema creation is a one-off cost of a new store, not a per-trial one
            from logreg.tracking import make_client

            make_client(opts.tracking_uri)
        t0 = time.perf_counter()
        run_sweep(exp, opts)
        return time.perf_counter() - t0


def run_stock(n_trials: int) -> float:
    import mlflow
    import optuna
    from optuna_integration.mlflow import MLflowCallback

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-trials", type=int, default=25, help="N: the small size (the large is 4N)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "results" / "tracking_overhead"))
    args = ap.parse_args(argv)
    small, large = args.n_trials, 4 * args.n_trials
    run_ours(5, True)  # warm-up: imports, caches
    times: dict[str, list[float]] = {
        k: [] for k in ("off_small", "off_large", "ours_small", "ours_large", "stock_small")
    }
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every variant alike
        times["off_small"].append(run_ours(small, False))
        times["ours_small"].append(run_ours(small, True))
        times["stock_small"].append(run_stock(small))
        times["off_large"].append(run_ours(large, False))
        times["ours_large"].append(run_ours(large, True))
    med = {k: statistics.median(v) for k, v in times.items()}
    marginal = {k: 1000 * (med[f"{k}_large"] - med[f"{k}_small"]) / (large - small) for k in ("off", "ours")}
    fixed = {k: 1000 * med[f"{k}_small"] - small * marginal[k] for k in ("off", "ours")}
    overhead_marginal = marginal["ours"] - marginal["off"]
    overhead_whole = 1000 * (med["ours_large"] - med["off_large"]) / large
    ratio = med["stock_small"] / med["ours_small"]
    load = os.getloadavg()[0]
    report = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores, {cpu_name()})",
        "load_average_1min_at_end": load,
        "sizes": [small, large],
        "repeats": args.repeats,
        "seconds": times,
        "marginal_ms_per_trial": marginal,
        "fixed_ms_per_sweep": fixed,
        "overhead_marginal_ms_per_trial": overhead_marginal,
        f"overhead_whole_ms_per_trial_at_{large}": overhead_whole,
        "stock_ms_per_trial": 1000 * med["stock_small"] / small,
        "ours_vs_stock_trials_per_second": ratio,
        "targets": {
            "overhead_marginal_ms_per_trial <= 20": overhead_marginal <= 20,
            "ratio >= 3": ratio >= 3,
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(report, indent=2))
    md = [
        f"Tracking + storage overhead of a sweep (iris, numpy, sgd, 20 epochs, metrics every epoch), "
        f"{small} and {large} trials, medians of {args.repeats} interleaved repeats, {report['machine']}, "
        f"load average {load:.1f}:",
        "",
        "| variant | marginal ms per trial | fixed ms per sweep | ms per trial at "
        + str(small)
        + " trials |",
        "|---|---|---|---|",
    ]
    for k in ("off", "ours"):
        md.append(f"| {k} | {marginal[k]:.1f} | {fixed[k]:.0f} | {1000 * med[f'{k}_small'] / small:.1f} |")
    md.append(f"| stock | | | {report['stock_ms_per_trial']:.1f} |")
    md += [
        "",
        f"- tracking + storage overhead, marginal: **{overhead_marginal:.1f} ms per trial** (target <= 20)",
        f"- whole overhead per trial at {large} trials, fixed costs included: {overhead_whole:.1f} ms",
        f"- ours vs stock, trials per second at {small} trials: **{ratio:.1f}x** (target >= 3x)",
        "",
        "Command: `python tests/benchmarks/tracking_overhead.py` (or `nox -s overhead`).",
    ]
    (out / "result.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
