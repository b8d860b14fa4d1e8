"""Creating a store's schema once, however many processes open a fresh database at the same moment.

Optuna and MLflow both create their tables when a storage is first opened. Workers started
together (a job array, `for i in 1..8; do logreg worker ... & done`) race on a fresh database:
PostgreSQL answers `DuplicateTable: relation "alembic_version"` or `UniqueViolation ...
pg_type_typname_nsp_index`, SQLite `UNIQUE constraint failed: alembic_version`. `schema_guard`
serialises the creation (PostgreSQL: an advisory lock; SQLite: an exclusive lock on a file
named after the database's path), and on every backend retries exactly these errors with a bounded
back-off (the loser of the race finds the tables made).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import zlib
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Fragments of the errors a lost schema-creation race produces, and nothing else.
RACE_SIGNATURES = (
    "DuplicateTable",
    "pg_type_typname_nsp_index",
    "alembic_version",
    "already exists",
    "UniqueViolation",
    "duplicate key value violates unique constraint",
    "database is locked",
)
RETRIES = 8


def is_schema_race(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a lost race to create the same tables."""
    seen = 0
    while exc is not None and seen < 6:
        text = f"{type(exc).__name__}: {exc}"
        if any(s in text for s in RACE_SIGNATURES):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@contextlib.contextmanager
def _file_lock(url: str):
    """SQLite: an exclusive flock on a file in the temp folder named after the database's path.

    SQLite is local to one machine, so a lock local to that machine serialises every opener.
    """
    import fcntl
    import tempfile

    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        yield
        return
    key = zlib.crc32(os.path.abspath(path).encode())
    with open(os.path.join(tempfile.gettempdir(), f"logreg-schema-{key:08x}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(url: str):
    """The lock that serialises schema creation: PostgreSQL advisory lock, SQLite file lock."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        with _file_lock(url):
            yield
        return
    if scheme not in ("postgresql", "postgres"):
        yield
        return
    import sqlalchemy

    key = zlib.crc32(b"logreg-schema:" + url.rsplit("/", 1)[-1].split("?")[0].encode())
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        conn = engine.connect()
    except Exception:  # unreachable: let the store's own open report it as one line
        yield
        return
    try:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        yield
    finally:
        with contextlib.suppress(Exception):
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.close()
        engine.dispose()


def schema_guard(url: str, open_store: Callable[[], T]) -> T:
    """open_store() under the database's advisory lock, retried on a lost schema race only."""
    for attempt in range(RETRIES):
        try:
            with _advisory_lock(url):
                return open_store()
        except Exception as exc:
            if attempt == RETRIES - 1 or not is_schema_race(exc):
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
