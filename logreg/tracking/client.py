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


def _answering_client(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)  # a database store creates its tables here
    client.search_experiments(max_results=1)
    return client


def connect(uri: str):
    """An MlflowClient whose store answered; fail fast with one clear line when it cannot be reached."""
    from mlflow.exceptions import MlflowException

    try:
        # Workers opening a fresh database store together race to create its schema: once.
        return schema_guard(uri, lambda: _answering_client(uri))
    except MlflowException as exc:
        first = first_line(exc)
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {mask_uri(first)[:200]}. "
            "Check --tracking-uri / MLFLOW_TRACKING_URI (is the server running?)."
        ) from None
    except Exception as exc:  # connection errors come in many types
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {type(exc).__name__}. "
            "Check --tracking-uri / MLFLOW_TRACKING_URI (is the server running?)."
        ) from None


def _check_database(uri: str) -> None:
    """A database backend store (PostgreSQL, MySQL, MS SQL) answers within 10 s, or one clear error.

    MLflow itself retries creating its engine for about 100 s, printing a warning each time,
    and then raises with a traceback.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres", "mysql", "mssql"):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(
            uri, connect_args={"connect_timeout": 10} if scheme.startswith("postgres") else {}
        )
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # unreachable server, unknown database, bad credentials, no driver
        first = first_line(exc)
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {mask_uri(first)[:200]}. "
            "Check --tracking-uri / MLFLOW_TRACKING_URI (is the database server running?)."
        ) from None


def check_tracking_uri(uri: str, must_exist: bool = False) -> None:
    """A URI MLflow can open: a known scheme; an SQLite file that is a database in a folder that
    can be written (read-only: checked here in milliseconds, where MLflow retries for 100 s)."""
    scheme = uri_scheme(uri)
    if not scheme:
        raise LogregError(f"The tracking URI {uri!r} is not a URI. Use e.g. {URI_EXAMPLES}.")
    if scheme not in KNOWN_SCHEMES:
        raise LogregError(
            f"The tracking URI {mask_uri(uri)!r} has an unknown scheme {scheme!r}. Use e.g. {URI_EXAMPLES}."
        )
    path = sqlite_path(uri)
    if path is None:
        return
    where = f"The SQLite tracking store {mask_uri(uri)}"
    kind = node_kind(path)
    if must_exist and kind == "nothing":
        raise LogregError(f"{where} does not exist. Check the URI (a store is read, never created, here).")
    if kind not in ("nothing", "a regular file"):
        raise LogregError(f"{where} is {kind}, not a database file. Pass the path of an SQLite file.")
    if kind == "a regular file":
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise LogregError(f"{where} is not an SQLite database. Pass an MLflow store, or a new file name.")
    if must_exist:
        return
    folder = os.path.dirname(os.path.abspath(path))
    above = next((p for p in [folder, *map(str, Path(folder).parents)] if os.path.exists(p)), "/")
    target = path if kind == "a regular file" else above
    if not os.access(target, os.W_OK) or (os.path.isdir(above) and not os.access(above, os.W_OK)):
        raise LogregError(
            f"{where} cannot be written: '{target}' is read-only. Pass a store in a folder you can write."
        )


def make_client(uri: str | None, must_exist: bool = False):
    """An MlflowClient for `uri` (resolved as resolve_tracking_uri), checked reachable.

    `must_exist`: a store that is only read (compare, report, ui) must already be there; it is
    never created (MLflow would create an empty database and its folders).
    """
    import logging

    # MLflow announces schema creation and migrations at INFO on stderr; keep the CLI quiet.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = resolve_tracking_uri(uri)
    check_tracking_uri(uri, must_exist)
    _check_database(uri)
    # Short HTTP retries so an unreachable server fails in seconds, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return connect(uri)


@contextlib.contextmanager
def store_errors(uri: str):
    """A store that went away mid-sweep (server stopped, database down): one clear LogregError."""
    try:
        yield
    except LogregError:
        raise
    except Exception as exc:  # MlflowException, requests' and SQLAlchemy's connection errors
        text = str(exc).strip().splitlines()
        first = f"{type(exc).__name__}: {text[0][:200] if text else ''}"
        raise LogregError(
            f"Lost the MLflow tracking store {mask_uri(uri)}: {mask_uri(first)}. Completed trials are "
            "kept in the Optuna storage; check --tracking-uri (is the server running?), then re-run."
        ) from None
