"""PostgreSQL fixtures: a fresh database per test (or module), dropped afterwards.

Import the fixtures a test file needs, e.g.
`from tests.postgres_fixtures import pg_url  # noqa: F401`, and mark the tests
`postgres`. They skip, with the reason, when no server answers. The server is
$LOGREG_TEST_POSTGRES, by default postgresql://postgres@127.0.0.1:5432 (trust auth).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES = os.environ.get("LOGREG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432").rstrip("/")


def _connect(database: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(f"{POSTGRES}/{database}", connect_timeout=3)
    conn.autocommit = True
    return conn


def postgres_unavailable() -> str | None:
    """Why no PostgreSQL server can be used, or None when one answers."""
    try:
        import psycopg2
    except ImportError as exc:  # pragma: no cover - psycopg2-binary is a dependency
        return f"psycopg2 is not installed: {exc}"
    try:
        _connect().close()
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL server answers on {POSTGRES.rsplit('@', 1)[-1]}: {first}"
    return None


def create_database(prefix: str = "logreg_test") -> str:
    """Create a database with a random name; return its URL (libpq form, postgresql://)."""
    from psycopg2 import sql

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return f"{POSTGRES}/{name}"


def drop_database(url: str) -> None:
    """Drop the database `url` names, terminating its open connections first."""
    from psycopg2 import sql

    name = url.rsplit("/", 1)[-1]
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL without a database; skips when none answers."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    return POSTGRES


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test (postgresql://... URL), dropped afterwards."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def make_pg_database(postgres_server: str) -> Iterator:
    """A factory: each call creates another fresh database; all are dropped afterwards."""
    urls: list[str] = []

    def make() -> str:
        urls.append(create_database())
        return urls[-1]

    yield make
    for url in urls:
        drop_database(url)


@pytest.fixture(scope="module")
def module_pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh database shared by one test module (e.g. behind one MLflow server)."""
    url = create_database()
    yield url
    drop_database(url)
