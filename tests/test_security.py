"""Credentials stay out of logs, params, tags, messages and argv; the server binds 127.0.0.1 by default."""

from __future__ import annotations

import socket

import pytest

from logreg.cli import build_parser
from logreg.errors import LogregError
from logreg.servers import DEFAULT_HOST, ensure_postgres_database, server_command
from logreg.tracking import mask_uri


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user:pw@host:5432/db?sslmode=require",
            "postgresql://user:***@host:5432/db?sslmode=require",
        ),
        (
            "postgresql+psycopg2://optuna:s3cr3t!@10.0.0.5:5432/logreg_optuna",
            "postgresql+psycopg2://optuna:***@10.0.0.5:5432/logreg_optuna",
        ),
        ("http://user:pw@host", "http://user:***@host"),
        ("https://alice:pa:ss@mlflow.lan:443/", "https://alice:***@mlflow.lan:443/"),
        ("mysql+pymysql://root:hunter2@db.internal/mlflow", "mysql+pymysql://root:***@db.internal/mlflow"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),  # percent-encoded '@'
        ("redis://:pw@h:6379", "redis://:***@h:6379"),  # password only
        (
            "reach postgresql://a:b@h/x or http://c:d@e now",
            "reach postgresql://a:***@h/x or http://c:***@e now",
        ),
    ],
)
def test_mask_uri_hides_passwords(uri, masked):
    assert mask_uri(uri) == masked
    assert mask_uri(masked) == masked  # idempotent


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://postgres@127.0.0.1:5432/logreg_optuna",  # user, no password
        "postgresql://127.0.0.1/db",
        "http://127.0.0.1:5000",
        "sqlite:///mlflow.db",
        "sqlite:////abs/path/optuna.db",
        "file:///tmp/mlruns",
        "databricks",
        "",
    ],
)
def test_mask_uri_leaves_password_less_uris_alone(uri):
    assert mask_uri(uri) == uri


def test_mask_uri_none():
    assert mask_uri(None) is None


def test_mask_uri_raw_at_sign_in_password():
    assert mask_uri("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"


def test_mask_uri_password_query_parameter():
    assert "secret" not in mask_uri("postgresql://u@h/db?password=secret")


def test_mask_uri_keeps_port_before_at_in_query():
    uri = "http://127.0.0.1:5000/#/experiments?q=a@b"
    assert mask_uri(uri) == uri


def test_server_argv_never_carries_the_database_password():
    argv = server_command("postgresql://mlflow:hunter2@10.0.0.5:5432/logreg_mlflow", "/srv/mlartifacts")
    assert "hunter2" not in " ".join(argv)
    assert "--backend-store-uri" not in argv  # start_server passes it as MLFLOW_BACKEND_STORE_URI
    argv = server_command("postgresql://mlflow@10.0.0.5:5432/logreg_mlflow", "/srv/mlartifacts")
    assert argv[argv.index("--backend-store-uri") + 1].endswith("://mlflow@10.0.0.5:5432/logreg_mlflow")


def test_database_errors_mask_the_password():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    with pytest.raises(LogregError) as info:
        ensure_postgres_database(f"postgresql://postgres:hunter2@127.0.0.1:{port}/x")
    assert "hunter2" not in str(info.value) and ":***@" in str(info.value)


def test_bad_postgres_url_error_masks_the_password():
    with pytest.raises(LogregError, match="Expected a PostgreSQL URL") as info:
        ensure_postgres_database("mysql://root:hunter2@h/db")
    assert "hunter2" not in str(info.value)


def test_unreachable_tracking_server_error_masks_the_password(monkeypatch):
    from logreg.tracking import Tracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LogregError, match="Cannot reach the MLflow tracking store") as info:
        Tracker(f"http://alice:hunter2@127.0.0.1:{port}")
    assert "hunter2" not in str(info.value)


def test_server_binds_localhost_unless_told_otherwise():
    args = build_parser().parse_args(["server"])
    assert args.host == DEFAULT_HOST == "127.0.0.1"
    assert args.allowed_hosts is None and args.app_name is None
    argv = server_command("postgresql://p@h/x")
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    args = build_parser().parse_args(["server", "--host", "0.0.0.0", "--allowed-hosts", "mlflow.lan"])
    assert (args.host, args.allowed_hosts) == ("0.0.0.0", "mlflow.lan")
