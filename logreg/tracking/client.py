"""An MlflowClient checked reachable, and store errors worded as one line."""

from __future__ import annotations

import contextlib
import os

from logreg.errors import LogregError, first_line
from logreg.tracking.schema import schema_guard
from logreg.tracking.uri import mask_uri, resolve_tracking_uri


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


def make_client(uri: str | None):
    """An MlflowClient for `uri` (resolved as resolve_tracking_uri), checked reachable."""
    import logging

    # MLflow announces schema creation and migrations at INFO on stderr; keep the CLI quiet.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = resolve_tracking_uri(uri)
    if "://" not in uri and not uri.startswith("file:"):
        raise LogregError(
            f"The tracking URI {uri!r} is not a URI. Use e.g. sqlite:///mlflow.db, "
            "http://127.0.0.1:5000 or postgresql://user@host/db."
        )
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
