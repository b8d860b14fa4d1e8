"""An MlflowClient checked reachable, and store errors worded as one line."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from logreg.errors import LogregError, first_line
from logreg.paths import node_kind
from logreg.tracking.schema import schema_guard
from logreg.tracking.uri import (
    KNOWN_SCHEMES,
    URI_EXAMPLES,
    mask_uri,
    resolve_tracking_uri,
    sqlite_path,
    uri_scheme,
)

UNREACHABLE = "Check --tracking-uri / MLFLOW_TRACKING_URI (is the server running?)."


def quiet_logs() -> None:
    """MLflow announces schema creation at INFO on stderr: keep the CLI quiet. Short HTTP retries:
    an unreachable server fails in seconds, not minutes."""
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def check_tracking_uri(uri: str, must_exist: bool = False) -> None:
    """A URI MLflow can open: a known scheme; an SQLite file that is a database, in a folder that
    can be written (read-only: said here in milliseconds, where MLflow retries for 100 s)."""
    scheme = uri_scheme(uri)
    if scheme not in KNOWN_SCHEMES:
        what = "is not a URI" if not scheme else f"has an unknown scheme {scheme!r}"
        raise LogregError(f"The tracking URI {mask_uri(uri)!r} {what}. Use e.g. {URI_EXAMPLES}.")
    path = sqlite_path(uri)
    if path is None:
        return
    where, kind = f"The SQLite tracking store {mask_uri(uri)}", node_kind(path)
    if must_exist and kind == "nothing":
        raise LogregError(f"{where} does not exist. Check the URI (a store is read, never created, here).")
    if kind not in ("nothing", "a regular file"):
        raise LogregError(f"{where} is {kind}, not a database file. Pass the path of an SQLite file.")
    if kind == "a regular file":
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise LogregError(f"{where} is not an SQLite database. Pass an MLflow store, or a new file name.")
    folder = Path(os.path.abspath(path)).parent
    above = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    target = Path(path) if kind == "a regular file" else above
    if not must_exist and not (os.access(target, os.W_OK) and os.access(above, os.W_OK)):
        raise LogregError(
            f"{where} cannot be written: '{target}' is read-only. Pass a store in a folder you can write."
        )


def _check_database(uri: str) -> None:
    """A database store (PostgreSQL, MySQL, MS SQL) answers within 10 s; MLflow alone retries
    creating its engine for about 100 s, a warning each time, then raises with a traceback."""
    if uri_scheme(uri) not in ("postgresql", "postgres", "mysql", "mssql"):
        return
    import sqlalchemy

    args = {"connect_timeout": 10} if uri_scheme(uri).startswith("postgres") else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=args)
        try:
            engine.connect().close()
        finally:
            engine.dispose()
    except Exception as exc:  # unreachable server, unknown database, bad credentials, no driver
        why = mask_uri(first_line(exc))
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {why}. {UNREACHABLE}"
        ) from None


def make_client(uri: str | None, must_exist: bool = False):
    """An MlflowClient for `uri` (resolve_tracking_uri's), its store checked to answer.

    `must_exist`: a store that is only read (compare, report, ui) is never created.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    quiet_logs()
    uri = resolve_tracking_uri(uri)
    check_tracking_uri(uri, must_exist)
    _check_database(uri)

    def answering():
        client = MlflowClient(tracking_uri=uri)  # a database store creates its tables here
        client.search_experiments(max_results=1)
        return client

    try:  # workers opening a fresh database together race to create its schema: once
        return schema_guard(uri, answering)
    except Exception as exc:  # connection errors come in many types
        why = mask_uri(first_line(exc)) if isinstance(exc, MlflowException) else type(exc).__name__
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {why}. {UNREACHABLE}"
        ) from None


@contextlib.contextmanager
def store_errors(uri: str):
    """A store that went away mid-sweep (server stopped, database down): one clear LogregError."""
    try:
        yield
    except LogregError:
        raise
    except Exception as exc:  # MlflowException, requests' and SQLAlchemy's connection errors
        why = f"{type(exc).__name__}: {mask_uri(first_line(exc))}"
        raise LogregError(
            f"Lost the MLflow tracking store {mask_uri(uri)}: {why}. "
            "Completed trials are kept in the Optuna storage; check --tracking-uri (is the server running?), "
            "then re-run."
        ) from None
