"""`logreg compare`, `logreg convergence` and `logreg report`: tables, plots and the HTML page
from one or more MLflow stores."""

from __future__ import annotations

from pathlib import Path

URIS_HELP = "MLflow stores to read (default $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)"


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="tables and plots from one or more MLflow stores (CPU vs CUDA)")
    p.add_argument("tracking_uris", nargs="*", metavar="URI", help=URIS_HELP)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/compare"),
        help="output folder (default runs/compare; results/ only when asked)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "convergence",
        help="suboptimality curves, time to eps and performance profiles from one or more MLflow stores",
    )
    p.add_argument("tracking_uris", nargs="*", metavar="URI", help=URIS_HELP)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/convergence"),
        help="output folder (default runs/convergence; results/ only when asked)",
    )
    p.set_defaults(func=cmd_convergence)

    p = sub.add_parser(
        "report", help="one static HTML page (index.html + images) from one or more MLflow stores"
    )
    p.add_argument("tracking_uris", nargs="*", metavar="URI", help=URIS_HELP)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/report"),
        help="output folder (default runs/report; results/ only when asked)",
    )
    p.set_defaults(func=cmd_report)


def _uris(args) -> list[str]:
    """The stores to read (checked before any is opened): --out must be a folder, or free."""
    from logreg.paths import check_output_dir
    from logreg.tracking import check_stores, resolve_tracking_uri

    check_output_dir(args.out, "--out", create=False)
    uris = args.tracking_uris or [resolve_tracking_uri(None)]
    check_stores(uris)
    return uris


def cmd_compare(args) -> int:
    from logreg.report.compare import compare

    compare(_uris(args), args.out)
    return 0


def cmd_convergence(args) -> int:
    from logreg.report.convergence import convergence

    result = convergence(_uris(args), args.out)
    print(result["profiles_markdown"])
    return 0


def cmd_report(args) -> int:
    from logreg.report.html import build_report

    uris = _uris(args)
    build_report(
        uris, args.out, command=" ".join(["logreg report", *args.tracking_uris, "--out", str(args.out)])
    )
    return 0
