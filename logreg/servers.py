"""A shared MLflow tracking server on PostgreSQL, for many workers on one study.

`logreg server` (and `nox -s server`, logreg.cli.server) creates the PostgreSQL databases if
they are missing, starts `mlflow server` with a PostgreSQL backend store and served
artifacts on 127.0.0.1, waits until it answers /health, and prints the two
addresses workers need: the tracking URI and the Optuna storage URL.

MLflow and Optuna keep their tables in two databases (both use a table named
`alembic_version`, so they cannot share one). Only the standard library is
imported at module level; psycopg2 is imported where it is used.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from logreg.errors import LogregError, first_line
from logreg.tracking.uri import mask_uri
from logreg.validation import NONE, Interval, Options, check_params

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_MLFLOW_DB = "logreg_mlflow"
DEFAULT_OPTUNA_DB = "logreg_optuna"
DEFAULT_ARTIFACTS = "./runs/mlartifacts"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SERVER_CONSTRAINTS = {
    "port": Interval(int, 1, 65535),
    "workers": (Interval(int, 1), NONE),
    "app_name": (Options(("basic-auth",)), NONE),
}
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")


def _mask(url: str) -> str:
    return mask_uri(url)


def _split_postgres_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _POSTGRES_SCHEMES:
        raise LogregError(
            f"Expected a PostgreSQL URL like postgresql://USER@HOST:5432/DBNAME. Got {_mask(url)!r} instead."
        )
    return parts


def sqlalchemy_url(url: str) -> str:
    """The URL with an explicit driver that is installed, for SQLAlchemy (MLflow, Optuna).

    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg (version 3); this project
    installs psycopg2-binary, so postgresql:// and postgres:// become
    postgresql+psycopg2:// unless psycopg is importable. Other URLs pass unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        driver = "postgresql" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2"
        return f"{driver}://{rest}"
    return url


def with_database(url: str, database: str) -> str:
    """The same PostgreSQL server and credentials, another database."""
    parts = _split_postgres_url(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names (its path)."""
    name = urllib.parse.unquote(_split_postgres_url(url).path.lstrip("/"))
    if not name:
        raise LogregError(
            f"The PostgreSQL URL {_mask(url)!r} names no database. Add one: "
            f"postgresql://USER@HOST:5432/{DEFAULT_MLFLOW_DB}."
        )
    return name


def _libpq_url(url: str, database: str) -> str:
    # psycopg2 takes libpq's postgresql:// URIs, without SQLAlchemy's +driver.
    parts = _split_postgres_url(url)
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path="/" + database))


def ensure_postgres_database(url: str, *, maintenance_db: str = "postgres") -> bool:
    """Create the database `url` names unless it exists. True when it was created.

    Connects to `maintenance_db` on the same server with the same credentials.
    Safe when several processes call it at once.
    """
    import psycopg2
    from psycopg2 import errors, sql

    name = database_name(url)
    try:
        conn = psycopg2.connect(_libpq_url(url, maintenance_db), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        first = first_line(exc)
        raise LogregError(
            f"Cannot connect to PostgreSQL at {_mask(with_database(url, maintenance_db))}: {first}. "
            "Is the server running, and are user and password right?"
        ) from None
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return False
            try:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                return False  # another process created it first
            except errors.InsufficientPrivilege:
                raise LogregError(
                    f"The PostgreSQL user may not create database {name!r}. Create it once as an "
                    f"administrator (createdb {name}) or grant CREATEDB."
                ) from None
        return True
    finally:
        conn.close()


def tracking_uri(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The URI clients use; for a wildcard bind, this machine's host name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def server_command(
    backend_store_uri: str,
    artifacts_destination: str | Path = DEFAULT_ARTIFACTS,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    allowed_hosts: str | None = None,
    app_name: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The `mlflow server` argv (this interpreter's MLflow).

    A backend URI that carries a password stays out of the argv (where `ps`
    shows it to every local user): start_server passes it as
    MLFLOW_BACKEND_STORE_URI in the environment instead.
    """
    check_params(SERVER_CONSTRAINTS, {"port": port, "workers": workers, "app_name": app_name})
    argv = [sys.executable, "-m", "mlflow", "server"]
    backend = sqlalchemy_url(backend_store_uri)
    if _mask(backend) == backend:
        argv += ["--backend-store-uri", backend]
    argv += ["--artifacts-destination", str(artifacts_destination), "--host", host, "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if allowed_hosts:
        argv += ["--allowed-hosts", allowed_hosts]
    if app_name:
        argv += ["--app-name", app_name]
    return argv + list(extra)


def _health(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _check_port_free(host: str, port: int) -> None:
    local = tracking_uri("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port)
    if _health(local, timeout=1.0):
        raise LogregError(
            f"An MLflow server already answers on {local}. Use it (--tracking-uri {local}), "
            "or pass another --port."
        )
    check_bindable(host, port)


def check_bindable(host: str, port: int) -> None:
    """One line when nothing can listen on host:port, naming the flag to change (--host or --port)."""
    import errno

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a host name or address"
        raise LogregError(f"Cannot listen on {host}:{port}: {reason}. Pass another --host.") from None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((host, port))
        except OSError as exc:
            flag = "--port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "--host"
            raise LogregError(
                f"Cannot listen on {host}:{port}: {exc.strerror}. Pass another {flag}."
            ) from None


def _check_basic_auth_env(env: Mapping[str, str]) -> None:
    if not env.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        raise LogregError(
            "--app-name basic-auth needs MLFLOW_FLASK_SERVER_SECRET_KEY in the environment (a long "
            "random string, the same on every server) and, on first start, MLFLOW_AUTH_ADMIN_PASSWORD."
        )


def start_server(
    backend_store_uri: str,
    artifacts_destination: str | Path = DEFAULT_ARTIFACTS,
    *,
    log_path: str | Path | None = None,
    timeout: float = 90.0,
    env: Mapping[str, str] | None = None,
    **options,
) -> subprocess.Popen:
    """Start `mlflow server` (`options`: server_command's host, port, workers, allowed_hosts,
    app_name) and return its process once /health answers.

    The server runs in its own process group (stop it with stop_server). Output goes to `log_path`
    when given, else to this process's stdout/stderr. Raises LogregError when it exits early or does
    not answer within `timeout` seconds.
    """
    host, port = options.get("host", DEFAULT_HOST), options.get("port", DEFAULT_PORT)
    full_env = dict(os.environ if env is None else env)
    if options.get("app_name") == "basic-auth":
        _check_basic_auth_env(full_env)
    argv = server_command(backend_store_uri, artifacts_destination, **options)
    full_env["MLFLOW_BACKEND_STORE_URI"] = sqlalchemy_url(backend_store_uri)
    _check_port_free(host, port)
    Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - the child keeps it
    try:
        proc = subprocess.Popen(
            argv, env=full_env, stdout=log, stderr=subprocess.STDOUT if log else None,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    finally:
        if log is not None:
            log.close()
    local = tracking_uri("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port)
    try:
        _wait_until_healthy(proc, local, timeout, log_path)
    except BaseException:  # Ctrl-C while waiting, or no answer: leave no server behind
        stop_server(proc)
        raise
    return proc


def _wait_until_healthy(proc: subprocess.Popen, local: str, timeout: float, log_path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LogregError(
                f"mlflow server exited with status {proc.returncode} before answering on "
                f"{local}.{_log_tail(log_path)}"
            )
        if _health(local, timeout=1.0):
            return
        time.sleep(0.25)
    raise LogregError(
        f"mlflow server did not answer on {local}/health within {timeout:.0f} s.{_log_tail(log_path)}"
    )


def _log_tail(log_path, lines: int = 5) -> str:
    if log_path is None:
        return ""
    try:
        tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return " Its last output: " + " | ".join(_mask(line) for line in tail)


def stop_server(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """Stop the server's process group (SIGTERM, then SIGKILL); return its exit status."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode
