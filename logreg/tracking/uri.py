"""Tracking URIs: the default store, and passwords masked in anything printed."""

from __future__ import annotations

import os
import re

DEFAULT_TRACKING_URI = "sqlite:///runs/mlflow.db"  # runs/: everything generated, git-ignored


def resolve_tracking_uri(uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# user:password@ inside the authority (up to the last '@' before any '/', '?' or '#',
# so a raw '@' in the password is masked whole), and libpq's ?password=... parameter.
_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/?#@]*):(?P<pw>[^/?#]*)@")
_PASSWORD_PARAM = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def mask_uri(uri: str | None) -> str | None:
    """The URI (or any text holding URIs) with passwords replaced by '***'."""
    if uri is None:
        return None
    uri = _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", uri)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}***", uri)


# Backend schemes MLflow's client understands (database stores take a +driver suffix).
KNOWN_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "http", "https", "file", "databricks")
URI_EXAMPLES = "sqlite:///mlflow.db, postgresql://USER@HOST/DB, http://127.0.0.1:5000 or file:///PATH"


def uri_scheme(uri: str) -> str:
    """'postgresql' for postgresql+psycopg2://...; '' when `uri` has no scheme."""
    if "://" not in uri and not uri.startswith("file:"):
        return ""
    return uri.split(":", 1)[0].split("+", 1)[0].lower()


def sqlite_path(uri: str) -> str | None:
    """The database file of a sqlite:/// URI (None for other URIs and in-memory databases)."""
    if uri_scheme(uri) != "sqlite":
        return None
    path = uri.split(":///", 1)[-1].split("?", 1)[0] if ":///" in uri else ""
    return path if path and path != ":memory:" else None
