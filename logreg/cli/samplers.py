"""`logreg samplers`: grid, random, qmc, tpe and gp on the same cells and budget, over several seeds."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from logreg.cli.common import names


def add_parser(sub) -> None:
    p = sub.add_parser(
        "samplers",
        help="compare Optuna samplers: best validation loss against trials, median and spread over seeds",
    )
    p.add_argument(
        "experiment", metavar="EXPERIMENT.toml", help="experiment file: its cells, ranges and pruner"
    )
    p.add_argument(
        "--samplers",
        type=names,
        default=["grid", "random", "qmc", "tpe", "gp"],
        help="comma-separated subset of grid,random,qmc,tpe,gp (default: all)",
    )
    p.add_argument("--seeds", type=int, default=5, help="sampler seeds (replicates) per sampler (default 5)")
    p.add_argument("--n-trials", type=int, help="trial budget per study (default: the file's n_trials)")
    p.add_argument("--epochs", type=int, help="epochs per trial (overrides the file)")
    p.add_argument("--datasets", type=names, help="comma-separated, e.g. iris,breast_cancer")
    p.add_argument("--impls", type=names, help="comma-separated subset of numpy,autograd,module")
    p.add_argument("--optimizers", type=names, help="comma-separated subset of sgd,momentum,adam")
    p.add_argument(
        "--out",
        default="runs/samplers",
        help="folder for <name>.png, .md, .csv (default runs/samplers)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_samplers)


def cmd_samplers(args) -> int:
    from logreg.paths import check_output_dir
    from logreg.report.samplers import to_markdown, write_comparison
    from logreg.timing import set_torch_threads
    from logreg.tune import load_experiment
    from logreg.tune.samplers import compare_samplers
    from logreg.validation import NONE, Interval, check_params

    check_params({"seeds": Interval(int, 1), "n_trials": (Interval(int, 1), NONE)}, vars(args))
    check_output_dir(args.out, "--out", create=False)
    exp = load_experiment(args.experiment).override(
        epochs=args.epochs, datasets=args.datasets, impls=args.impls, optimizers=args.optimizers
    )
    n_trials = args.n_trials or exp.n_trials
    total = len(args.samplers) * len(exp.cells()) * args.seeds
    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="study", file=sys.stderr, leave=False)
    set_torch_threads(1)  # small trials, one process: torch's second thread only waits
    try:
        comp = compare_samplers(
            exp, args.samplers, args.seeds, n_trials, on_study=(lambda name: bar.update(1)) if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    command = "logreg samplers " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["samplers"] else ""
    files = write_comparison(comp, Path(args.out), command)
    print(to_markdown(comp, command))
    print(f"Written: {files['png']}, {files['md']}, {files['csv']}.")
    return 0
