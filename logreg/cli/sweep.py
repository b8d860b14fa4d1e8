"""`logreg sweep` and `logreg worker`: the same experiment flags; a sweep also spawns and summarises."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from logreg.cli.common import EXIT_INTERRUPTED, names, torch_threads
from logreg.config import require_cuda


def _add_common(p: argparse.ArgumentParser) -> None:
    """The flags `sweep` and `worker` share: overrides of the file, stores, tracking, threads."""
    p.add_argument(
        "experiment", metavar="EXPERIMENT.toml", help="experiment file, e.g. experiments/default.toml"
    )
    p.add_argument("--n-trials", type=int, help="finished trials per cell (overrides the file)")
    p.add_argument("--epochs", type=int, help="epochs per trial (overrides the file)")
    p.add_argument(
        "--repeats",
        type=int,
        help="seeds each cell's best configuration runs with at the end, for median and 10-90%% "
        "bands in `logreg convergence` (overrides the file; default 1)",
    )
    p.add_argument("--datasets", type=names, help="comma-separated, e.g. iris,digits")
    p.add_argument("--impls", type=names, help="comma-separated subset of numpy,autograd,module")
    p.add_argument("--optimizers", type=names, help="comma-separated subset of sgd,momentum,adam")
    p.add_argument("--devices", type=names, help="comma-separated subset of cpu,cuda,auto")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage: a journal file path (default runs/optuna-journal.log) or an RDB URL "
        "(sqlite:///optuna.db, postgresql://user@host/db)",
    )
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)",
    )
    p.add_argument("--no-track", action="store_true", help="run without MLflow tracking")
    p.add_argument("--no-plots", action="store_true", help="skip the per-study PNG artifacts")
    p.add_argument(
        "--no-optimum",
        action="store_true",
        help="no exact optimum F* per weight decay: trials log no train_objective or "
        "suboptimality (for data where a Newton solve per trial costs too much)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--torch-threads",
        type=torch_threads,
        default=1,
        metavar="N",
        help="torch CPU threads of every trial (default 1: trials are small, and a busy second "
        "core stalls torch's threads; 0 or auto: chosen from the dataset's size, as train does)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="compiled cells only (the experiment's compile = [true]): autograd / module training "
        "steps under torch.compile (MLflow param compile); numpy and mlp cells stay eager",
    )


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run (or resume) an experiment's Optuna studies, tracked in MLflow")
    _add_common(p)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this machine sharing each study (default 1)",
    )
    p.add_argument(
        "--results-dir",
        default="runs/results",
        help="summary tables go to RESULTS_DIR/<experiment>/ (default runs/results)",
    )
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("worker", help="join an experiment's studies from this process or machine")
    _add_common(p)
    p.add_argument("--no-finalize", action="store_true", help=argparse.SUPPRESS)
    # A worker spawned by `sweep --workers N` gets its whole job as one JSON file (tune.workers).
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)


def _experiment(args):
    from logreg.tune import load_experiment

    exp = load_experiment(args.experiment).override(
        n_trials=args.n_trials,
        epochs=args.epochs,
        repeats=args.repeats,
        datasets=args.datasets,
        impls=args.impls,
        optimizers=args.optimizers,
        devices=args.devices,
        compile=(True,) if args.compile else None,
    )
    if "cuda" in exp.devices:
        require_cuda("Use --devices cpu.")
    return exp


def _options(args, **extra):
    from logreg.tune import SweepOptions

    return SweepOptions(
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        track=not args.no_track,
        progress=not args.no_progress,
        plots=not args.no_plots,
        optimum=not args.no_optimum,
        torch_threads=args.torch_threads,
        **extra,
    )


def cmd_sweep(args) -> int:
    from logreg.report.headline import headline, wrapped
    from logreg.tracking import mask_uri, resolve_tracking_uri
    from logreg.tune import run_sweep

    exp = _experiment(args)
    opts = _options(args, results_dir=args.results_dir, workers=args.workers)
    try:
        summary = run_sweep(exp, opts)
    except KeyboardInterrupt:
        print(
            "logreg: sweep interrupted: the running trials are marked failed and their MLflow runs "
            "KILLED; completed trials are kept. Re-run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(wrapped(headline(summary)))
    out = Path(args.results_dir) / exp.name
    print(f"The table, a row per cell: {out / 'summary.md'} (and .csv).")
    if summary.attrs.get("champions"):
        print("Champion models (mlflow.pyfunc.load_model):", *summary.attrs["champions"], sep="\n")
    if not args.no_track:
        uri = resolve_tracking_uri(args.tracking_uri)
        if uri.startswith(("http://", "https://")):
            print(f"Browse the runs: {mask_uri(uri)} (experiment {exp.mlflow_experiment!r}).")
        else:
            store = "" if args.tracking_uri is None else f" --tracking-uri {mask_uri(uri)}"
            print(f"Browse the runs: logreg ui{store}   (or nox -s ui{' --' + store if store else ''})")
    return 0


def cmd_worker(args) -> int:
    from logreg.tune import run_worker
    from logreg.tune.workers import read_spec

    if args.spec:
        from logreg.tune import SweepOptions

        exp, options = read_spec(args.spec)
        opts = SweepOptions(**options)
    else:
        exp, opts = _experiment(args), _options(args, finalize=not args.no_finalize)
    try:
        run_worker(exp, opts)
    except KeyboardInterrupt:
        print("logreg: worker interrupted; completed trials are kept.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
