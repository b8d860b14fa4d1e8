"""Command line: argument parsing and error reporting only."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from logreg.config import DEVICE_NAMES, DTYPE_NAMES, IMPL_NAMES, OPTIMIZER_NAMES
from logreg.errors import LogregError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit status 2."""

    def error(self, message: str):
        raise LogregError(f"{message} (see '{self.prog} --help').")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--dataset",
        default="blobs",
        help="registry name (see `logreg datasets`), e.g. iris or synthetic:n=100000,d=100",
    )
    src.add_argument("--data", metavar="FILE", help="your own CSV or Parquet file")
    p.add_argument("--target", metavar="COL", help="label column of --data")
    p.add_argument("--impl", default="numpy", help=f"one of {', '.join(IMPL_NAMES)}")
    p.add_argument("--optimizer", default="adam", help=f"one of {', '.join(OPTIMIZER_NAMES)}")
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    p.add_argument("--momentum", type=float, help="momentum of --optimizer momentum (default 0.9)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=0.0, help="coupled L2 on the weights")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: full batch)")
    p.add_argument("--device", default="cpu", help=f"one of {', '.join(DEVICE_NAMES)}")
    p.add_argument("--dtype", default="float32", help=f"one of {', '.join(DTYPE_NAMES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-size", type=float, default=0.25)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs")
    p.add_argument(
        "--target-accuracy",
        type=float,
        help="record time_to_target_seconds: training time until test accuracy >= this",
    )
    p.add_argument(
        "--save-model",
        metavar="PATH",
        help="write the trained model (a torch state dict; load with logreg.model_io.load_model)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _config_from_args(args):
    from logreg.config import TrainConfig

    return TrainConfig(
        dataset=args.dataset,
        data=args.data,
        target=args.target,
        impl=args.impl,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
        test_size=args.test_size,
        eval_every=args.eval_every,
        target_accuracy=args.target_accuracy,
    )


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def cmd_train(args) -> int:
    import numpy as np

    from logreg.train import train

    config = _config_from_args(args)
    if args.save_model:
        from logreg.model_io import check_model_path

        check_model_path(args.save_model)
    # A diverging run is reported below as one line (exit 3); NumPy's overflow
    # warnings on the way there would only add lines to stderr.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = train(config)
    if args.save_model and not result.diverged:
        from logreg.model_io import save_model

        save_model(result, args.save_model)
    if args.json:
        print(json.dumps(_json_safe(result.to_dict())))
    else:
        m, t = result.metrics, result.timings
        print(
            f"{result.split.name}: {config.impl} + {config.optimizer} (lr={config.lr}) on "
            f"{result.device}, {t['epochs_run']} epochs, {len(result.split.y_train)} training rows"
        )
        for part in ("train", "val", "test"):
            auc = f"  roc_auc {m[part + '_roc_auc']:.4f}" if part + "_roc_auc" in m else ""
            print(f"  {part:5s} loss {m[part + '_loss']:.4f}  accuracy {m[part + '_accuracy']:.4f}{auc}")
        print(
            f"  fit {t['fit_seconds']:.4f} s, median epoch {t['epoch_seconds_median'] * 1e6:.1f} us, "
            f"{t['samples_per_second']:.3g} samples/s"
        )
        if "time_to_target_seconds" in t:
            print(f"  time to test accuracy {config.target_accuracy}: {t['time_to_target_seconds']:.4f} s")
        if "p_pass_at_4_hours" in m:
            print(f"  P(pass | 4 hours) = {m['p_pass_at_4_hours']:.4f}")
    if result.diverged:
        print(f"logreg: {result.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def cmd_datasets(args) -> int:
    from logreg.data import describe_datasets

    rows = describe_datasets()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':15s} {'shape':28s} {'classes':>7s}  source")
    for r in rows:
        print(f"{r['name']:15s} {r['shape']:28s} {r['n_classes']:>7d}  {r['source']}")
    print("Your own data: logreg train --data FILE.csv|FILE.parquet --target COLUMN")
    return 0


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _add_sweep_args(p: argparse.ArgumentParser, *, worker: bool) -> None:
    p.add_argument(
        "experiment", metavar="EXPERIMENT.toml", help="experiment file, e.g. experiments/default.toml"
    )
    p.add_argument("--n-trials", type=int, help="finished trials per cell (overrides the file)")
    p.add_argument("--epochs", type=int, help="epochs per trial (overrides the file)")
    p.add_argument("--datasets", type=_csv, help="comma-separated, e.g. iris,digits")
    p.add_argument("--impls", type=_csv, help="comma-separated subset of numpy,autograd,module")
    p.add_argument("--optimizers", type=_csv, help="comma-separated subset of sgd,momentum,adam")
    p.add_argument("--devices", type=_csv, help="comma-separated subset of cpu,cuda,auto")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage: a journal file path (default optuna-journal.log) or an RDB URL "
        "(sqlite:///optuna.db, postgresql://user@host/db)",
    )
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--no-track", action="store_true", help="run without MLflow tracking")
    p.add_argument("--no-plots", action="store_true", help="skip the per-study PNG artifacts")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch CPU threads per process (default 1: trials are small, and a busy second "
        "core stalls torch's threads; 0 keeps torch's default)",
    )
    if worker:
        p.add_argument("--no-finalize", action="store_true", help=argparse.SUPPRESS)
    else:
        p.add_argument(
            "--workers",
            type=int,
            default=1,
            help="worker processes on this machine sharing each study (default 1)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument(
            "--results-dir",
            default="results",
            help="summary tables go to RESULTS_DIR/<experiment>/ (default results)",
        )


def _experiment_from_args(args):
    from logreg.experiment import load_experiment

    exp = load_experiment(args.experiment)
    return exp.override(
        n_trials=args.n_trials,
        epochs=args.epochs,
        datasets=args.datasets,
        impls=args.impls,
        optimizers=args.optimizers,
        devices=args.devices,
    )


def _override_args(args) -> list[str]:
    out = []
    for flag, value in (("--n-trials", args.n_trials), ("--epochs", args.epochs)):
        if value is not None:
            out += [flag, str(value)]
    for flag, value in (
        ("--datasets", args.datasets),
        ("--impls", args.impls),
        ("--optimizers", args.optimizers),
        ("--devices", args.devices),
    ):
        if value:
            out += [flag, ",".join(value)]
    if args.no_plots:
        out.append("--no-plots")
    out += ["--torch-threads", str(args.torch_threads)]
    return out


def _check_devices(exp) -> None:
    if "cuda" in exp.devices:
        from logreg.config import require_cuda

        require_cuda("Use --devices cpu.")


def cmd_sweep(args) -> int:
    from logreg.sweep import SweepOptions, run_sweep, to_markdown
    from logreg.tracking import mask_uri, resolve_tracking_uri

    exp = _experiment_from_args(args)
    _check_devices(exp)
    if args.workers < 1:
        raise LogregError(f"The 'workers' parameter must be an int >= 1. Got {args.workers} instead.")
    opts = SweepOptions(
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        track=not args.no_track,
        progress=not args.no_progress,
        plots=not args.no_plots,
        results_dir=Path(args.results_dir),
        workers=args.workers,
        torch_threads=args.torch_threads,
        worker_args=_override_args(args),
    )
    try:
        summary = run_sweep(exp, opts)
    except KeyboardInterrupt:
        print(
            "logreg: sweep interrupted: the running trials are marked failed and their MLflow runs "
            "KILLED; completed trials are kept. Re-run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    print(to_markdown(summary))
    out = Path(args.results_dir) / exp.name
    print(f"Summary written to {out / 'summary.csv'} and {out / 'summary.md'}.")
    if not args.no_track:
        uri = resolve_tracking_uri(args.tracking_uri)
        if uri.startswith(("http://", "https://")):
            print(f"Browse the runs: open {mask_uri(uri)} (MLflow experiment {exp.name!r}).")
        else:
            print(f"Browse the runs: nox -s ui   (or: mlflow ui --backend-store-uri {mask_uri(uri)})")
    return 0


def cmd_worker(args) -> int:
    from logreg.study import open_storage
    from logreg.sweep import SweepOptions, _open_tracker, run_cells

    exp = _experiment_from_args(args)
    _check_devices(exp)
    opts = SweepOptions(
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        track=not args.no_track,
        progress=False,
        plots=not args.no_plots,
        finalize=not args.no_finalize,
        torch_threads=args.torch_threads,
    )
    storage = open_storage(args.storage)
    tracker, experiment_id = _open_tracker(exp, opts)
    interrupted = False
    try:
        from logreg.sweep import _SigtermAsInterrupt

        with _SigtermAsInterrupt():
            run_cells(exp, opts, storage, tracker, experiment_id)
    except KeyboardInterrupt:
        interrupted = True
        print("logreg: worker interrupted; completed trials are kept.", file=sys.stderr)
        return 130
    finally:
        if tracker is not None:
            tracker.close("KILLED" if interrupted else "FINISHED")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="logreg", description="Logistic regression benchmark suite.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train one model and print its metrics")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("sweep", help="run (or resume) an experiment's Optuna studies, tracked in MLflow")
    _add_sweep_args(p, worker=False)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("worker", help="join an experiment's studies from this process or machine")
    _add_sweep_args(p, worker=True)
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)
    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Other modules' subcommands (sweep, worker, throughput, compare) register here.
_EXTRA_COMMANDS: list = []


def _register_server(sub) -> None:
    from logreg.server import add_parser  # standard library only at import

    add_parser(sub)


_EXTRA_COMMANDS.append(_register_server)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except LogregError as exc:
        print(f"logreg: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("logreg: interrupted", file=sys.stderr)
        return 130


def _register_throughput(sub) -> None:
    from logreg.throughput import add_parser  # numpy only at import; torch/mlflow when run

    add_parser(sub)


def _register_compare(sub) -> None:
    from logreg.compare import add_parser  # pandas/matplotlib/mlflow only when run

    add_parser(sub)


_EXTRA_COMMANDS.extend([_register_throughput, _register_compare])
