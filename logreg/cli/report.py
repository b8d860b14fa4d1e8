"""`logreg compare`: tables and plots from one or more MLflow stores."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="tables and plots from one or more MLflow stores (CPU vs CUDA)")
    p.add_argument(
        "tracking_uris",
        nargs="*",
        metavar="URI",
        help="MLflow stores to read (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    p.add_argument("--out", type=Path, default=Path("results/compare"), help="output folder")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from logreg.report.compare import compare
    from logreg.tracking import resolve_tracking_uri

    uris = args.tracking_uris or [resolve_tracking_uri(None)]
    compare(uris, args.out)
    return 0
