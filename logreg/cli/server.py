"""`logreg server`: the databases, Optuna's schema, then `mlflow server` until Ctrl-C."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from logreg.servers import (
    DEFAULT_ARTIFACTS,
    DEFAULT_HOST,
    DEFAULT_MLFLOW_DB,
    DEFAULT_OPTUNA_DB,
    DEFAULT_PORT,
    DEFAULT_POSTGRES,
    LOOPBACK_HOSTS,
    database_name,
    ensure_postgres_database,
    sqlalchemy_url,
    start_server,
    stop_server,
    tracking_uri,
    with_database,
)
from logreg.tracking import mask_uri as _mask
from logreg.tune import open_storage


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_server(args) -> int:
    postgres = args.postgres.rstrip("/")
    mlflow_db = args.backend_store_uri or with_database(postgres, DEFAULT_MLFLOW_DB)
    optuna_db = args.optuna_storage or with_database(postgres, DEFAULT_OPTUNA_DB)
    for url in (mlflow_db, optuna_db):
        if ensure_postgres_database(url):
            print(f"created database {database_name(url)!r} on {_mask(with_database(url, ''))}")
    open_storage(sqlalchemy_url(optuna_db))  # Optuna's schema, once, before workers race to create it
    artifacts = Path(args.artifacts_destination).resolve()
    if args.host not in LOOPBACK_HOSTS and not args.allowed_hosts:
        print(
            "logreg: note: binding beyond localhost; pass --allowed-hosts with the names clients use "
            "and consider --app-name basic-auth (see docs/scale.md).",
            file=sys.stderr,
        )
    # The server runs in its own process group: stop it on `kill` and on a closed terminal too.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    proc = start_server(
        mlflow_db,
        artifacts,
        host=args.host,
        port=args.port,
        workers=args.workers,
        allowed_hosts=args.allowed_hosts,
        app_name=args.app_name,
        timeout=args.timeout,
    )
    uri = tracking_uri(args.host, args.port)
    print(
        f"MLflow tracking server: {uri}  (backend {_mask(sqlalchemy_url(mlflow_db))}, artifacts {artifacts})"
    )
    print(f"  --tracking-uri {uri}")
    print(f"  --storage {_mask(sqlalchemy_url(optuna_db))}")
    print("Ctrl-C stops the server.", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(proc)


def add_parser(sub) -> None:
    """Register `logreg server` on the CLI's subparsers."""
    p = sub.add_parser("server", help="start an MLflow tracking server on PostgreSQL for many workers")
    p.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        metavar="URL",
        help=f"PostgreSQL server (no database); both databases live there (default: {DEFAULT_POSTGRES})",
    )
    p.add_argument(
        "--backend-store-uri",
        metavar="URL",
        help=f"MLflow's database (default: {DEFAULT_MLFLOW_DB} on --postgres)",
    )
    p.add_argument(
        "--optuna-storage",
        metavar="URL",
        help=f"Optuna's database, printed for workers (default: {DEFAULT_OPTUNA_DB} on --postgres)",
    )
    p.add_argument(
        "--artifacts-destination",
        default=DEFAULT_ARTIFACTS,
        metavar="DIR",
        help=f"where served artifacts are stored (default: {DEFAULT_ARTIFACTS})",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"interface to bind (default: {DEFAULT_HOST}); 0.0.0.0 for other machines, with --allowed-hosts",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"(default: {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, help="server worker processes (MLflow's default: 4)")
    p.add_argument(
        "--allowed-hosts",
        metavar="HOSTS",
        help="comma-separated Host headers accepted beyond localhost, e.g. 'mlflow.lan,10.0.0.5:5000'",
    )
    p.add_argument(
        "--app-name",
        choices=["basic-auth"],
        help="basic-auth: users and passwords (needs MLFLOW_FLASK_SERVER_SECRET_KEY)",
    )
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for /health (default: 90)")
    p.set_defaults(func=cmd_server)
