"""A store's schema created once, however many processes open a fresh database at the same moment.

Optuna and MLflow create their tables when a storage is first opened; workers started together race
on a fresh database (PostgreSQL: `DuplicateTable: relation "alembic_version"`, `UniqueViolation ...
pg_type_typname_nsp_index`; SQLite: `UNIQUE constraint failed: alembic_version`). `schema_guard`
serialises the creation (PostgreSQL: an advisory lock; SQLite: a file lock named after the
database's path) and retries exactly these errors with a bounded back-off.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
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


def is_schema_race(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it wraps) is a lost race to create the same tables."""
    for _ in range(6):
        if exc is None:
            return False
        if any(s in f"{type(exc).__name__}: {exc}" for s in RACE_SIGNATURES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def _lock(url: str):
    """PostgreSQL: an advisory lock; SQLite (one machine): an exclusive flock; others: none."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    path = url.split(":///", 1)[-1].split("?", 1)[0] if scheme == "sqlite" else ""
    if scheme == "sqlite" and path and path != ":memory:":
        import fcntl

        name = f"logreg-schema-{zlib.crc32(os.path.abspath(path).encode()):08x}.lock"
        with open(os.path.join(tempfile.gettempdir(), name), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield  # closing the file releases the lock
        return
    if scheme not in ("postgresql", "postgres"):
        yield
        return
    import sqlalchemy

    key = zlib.crc32(b"logreg-schema:" + url.rsplit("/", 1)[-1].split("?")[0].encode())
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        conn = engine.connect()
    except Exception:  # unreachable: let the store's own open say so in one line
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
    """open_store() under the database's lock, retried on a lost schema race only."""
    for attempt in range(RETRIES):
        try:
            with _lock(url):
                return open_store()
        except Exception as exc:
            if attempt == RETRIES - 1 or not is_schema_race(exc):
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
