"""`logreg ui`: MLflow's UI on 127.0.0.1 over the sweep's store, opened on its runs table."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from logreg.servers import DEFAULT_PORT, start_server, stop_server, tracking_uri

# MLflow 3.17 opens an experiment in its GenAI view; the URL parameter picks the runs table.
# Sorted by the parents' `cell` param: every study on the first page (a trial has no such param).
RUNS_VIEW = (
    "#/experiments/{id}/runs?workflowType=machine_learning&orderByKey=params.%60cell%60&orderByAsc=true"
)


def add_parser(sub) -> None:
    p = sub.add_parser("ui", help="open MLflow's UI on the sweep's runs (127.0.0.1) until Ctrl-C")
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="the store (default $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"(default: {DEFAULT_PORT})")
    p.add_argument("--experiment", metavar="NAME", help="the sweep to open (default: the one written last)")
    p.set_defaults(func=cmd_ui)


def ui_url(base: str, experiment: tuple[str, str] | None) -> str:
    """The page to open: the experiment's runs table, or the list of experiments."""
    return f"{base}/{RUNS_VIEW.format(id=experiment[0])}" if experiment else f"{base}/#/experiments"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_ui(args) -> int:
    from logreg.tracking import mask_uri, resolve_tracking_uri, sweep_experiment
    from logreg.validation import Interval, check_param

    check_param("port", args.port, Interval(int, 1, 65535))
    uri = resolve_tracking_uri(args.tracking_uri)
    experiment = sweep_experiment(uri, args.experiment)  # the store must exist: never created here
    if uri.startswith(("http://", "https://")):  # a server already serves it
        print(f"Open {ui_url(mask_uri(uri).rstrip('/'), experiment)}")
        return 0
    log = Path("runs") / "ui.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    proc = start_server(uri, Path("runs") / "mlartifacts", port=args.port, workers=1, log_path=log)
    try:
        print(f"MLflow UI on {mask_uri(uri)} (its log: {log}); Ctrl-C stops it. Open:", flush=True)
        print(ui_url(tracking_uri("127.0.0.1", args.port), experiment), flush=True)
        if experiment is None:
            print("(no sweep in this store yet: run `logreg sweep` first)", file=sys.stderr)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)
    return 0
