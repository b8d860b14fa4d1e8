"""Optuna storages, one policy object per kind, chosen where the storage is opened.

  JournalStore  a journal file on one machine (the default): no heartbeats, so no way to tell a
                dead worker from a slow one; nothing is failed as stale
  RdbStore      SQLite, PostgreSQL, MySQL: Optuna's heartbeats fail a dead worker's trial and
                queue its retry; a trial whose process died before its first heartbeat (which
                Optuna's check skips) is failed after the grace period
  ProxyStore    Optuna's gRPC proxy in front of an RDB (`logreg storage-proxy`): its client has no
                heartbeats, so trials RUNNING longer than LOGREG_PROXY_STALE_AFTER are failed

`store.fail_stale(study)` applies the policy; `store.errors()` turns a lost database, file or
proxy into one line.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import urllib.parse
from typing import Any

from logreg.errors import LogregError, first_line
from logreg.tracking import mask_uri, schema_guard
from logreg.tune.journal import journal_backend
from logreg.tune.optuna_lib import import_optuna
from logreg.validation import check_env_seconds

DEFAULT_STORAGE = "runs/optuna-journal.log"  # runs/: everything generated, git-ignored
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")
HEARTBEAT_INTERVAL = 10  # seconds; env LOGREG_HEARTBEAT_INTERVAL
GRACE_PERIOD = 30  # a RUNNING trial with no heartbeat for this long is stale; env LOGREG_GRACE_PERIOD
PROXY_STALE_AFTER = 1800  # longer than any trial of ours; env LOGREG_PROXY_STALE_AFTER
DEFAULT_PROXY_PORT = 13000


class Store:
    """An Optuna storage (`.optuna`) and what to do about trials of dead workers."""

    def __init__(self, storage, url: str):
        self.optuna, self.url = storage, mask_uri(url)

    def fail_stale(self, study) -> list[int]:
        """Fail the trials of dead workers; their numbers. The base policy: none can be told."""
        return []

    @contextlib.contextmanager
    def errors(self):
        """A lost storage (server down, connection dropped, proxy gone) as one LogregError."""
        try:
            yield
        except LogregError:
            raise
        except Exception as exc:
            lost = _lost(exc)
            if lost is None:
                raise
            raise LogregError(
                f"Lost the Optuna storage {self.url}: {mask_uri(_why(lost))[:200]}. Completed trials are "
                "kept; check that the database (or the storage proxy) is reachable, then re-run to resume."
            ) from None


class JournalStore(Store):
    pass


class RdbStore(Store):
    def fail_stale(self, study) -> list[int]:
        optuna = import_optuna()
        running = (optuna.trial.TrialState.RUNNING,)
        with self.errors():
            before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
            optuna.storages.fail_stale_trials(study)
            # Optuna's check skips trials with no heartbeat at all: a process killed between ask()
            # and its first heartbeat. A live trial sets `config` within milliseconds of its start.
            spare = lambda t: "config" in t.user_attrs  # noqa: E731
            unstarted = fail_running_trials(study, self.optuna, grace_period(), spare)
            after = {t.number for t in study.get_trials(deepcopy=False, states=running)}
        return sorted((before - after) | set(unstarted))


class ProxyStore(Store):
    def fail_stale(self, study) -> list[int]:
        after = check_env_seconds(
            "LOGREG_PROXY_STALE_AFTER", os.environ.get("LOGREG_PROXY_STALE_AFTER"), PROXY_STALE_AFTER
        )
        with self.errors():
            return fail_running_trials(study, self.optuna, after)


def open_storage(url: str | None) -> Store:
    """The Store for `url`: a path is a journal file, grpc://HOST:PORT the proxy, ':memory:' a
    throwaway in-memory storage, another URL an RDB (its schema created once, however many
    workers open a fresh database together: tracking.schema.schema_guard)."""
    optuna = import_optuna()
    url = url or DEFAULT_STORAGE
    if url == ":memory:":
        return Store(optuna.storages.InMemoryStorage(), url)
    if url.startswith("grpc:"):
        return ProxyStore(connect_proxy(url), url)
    if "://" not in url:
        from optuna.storages.journal import JournalStorage

        try:
            return JournalStore(JournalStorage(journal_backend(url)), url)
        except OSError as exc:
            raise LogregError(
                f"Cannot open the Optuna journal file {url!r}: {exc.strerror}. Check the --storage path."
            ) from None
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise LogregError(
            f"The Optuna storage {mask_uri(url)!r} has an unknown scheme {scheme!r}. Use a journal file "
            "path, sqlite:///optuna.db, postgresql://USER@HOST/DB, mysql://... or grpc://HOST:PORT."
        )
    return RdbStore(_open_rdb(url), url)


def _open_rdb(url: str):
    optuna = import_optuna()
    heartbeat = check_env_seconds(
        "LOGREG_HEARTBEAT_INTERVAL", os.environ.get("LOGREG_HEARTBEAT_INTERVAL"), HEARTBEAT_INTERVAL
    )
    grace = grace_period()
    _quiet_heartbeat_thread()
    try:
        return schema_guard(
            url,
            lambda: optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            ),
        )
    except Exception as exc:  # sqlalchemy errors: unreachable server, bad URL, missing driver
        raise LogregError(
            f"Cannot open the Optuna storage {mask_uri(url)}: {mask_uri(first_line(exc))}. "
            "Check --storage (is the database server running?)."
        ) from None


def parse_grpc_url(url: str) -> tuple[str, int]:
    """'grpc://HOST:PORT' -> (HOST, PORT), or a one-line error naming what is missing."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "grpc" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise LogregError(
            f"The gRPC storage URL must be grpc://HOST:PORT, e.g. grpc://127.0.0.1:{DEFAULT_PROXY_PORT}. "
            f"Got {url!r} instead."
        )
    return parts.hostname, port


def connect_proxy(url: str, timeout: float = 5.0):
    """A GrpcStorageProxy client for `url`, checked to answer within `timeout` seconds."""
    optuna = import_optuna()
    host, port = parse_grpc_url(url)
    proxy = optuna.storages.GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=timeout)
    except ConnectionError:
        raise LogregError(
            f"Cannot reach the Optuna storage proxy {url} within {timeout:.0f} s. Start it with "
            f"`logreg storage-proxy --storage URL --port {port}` (or check --storage)."
        ) from None
    return proxy


def fail_running_trials(study, storage, older_than: float, spare=lambda trial: False) -> list[int]:
    """Fail the study's trials RUNNING for more than `older_than` seconds (but those `spare` keeps)."""
    optuna = import_optuna()
    now = datetime.datetime.now()
    stale = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if t.datetime_start and (now - t.datetime_start).total_seconds() > older_than and not spare(t)
    ]
    if stale:
        study_id = storage.get_study_id_from_name(study.study_name)
    for t in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    return [t.number for t in stale]


def grace_period() -> float:
    """Seconds without a heartbeat after which an RDB trial is stale (LOGREG_GRACE_PERIOD)."""
    return check_env_seconds("LOGREG_GRACE_PERIOD", os.environ.get("LOGREG_GRACE_PERIOD"), GRACE_PERIOD)


def _lost(exc: BaseException) -> BaseException | None:
    """The error in `exc`'s chain that means the storage went away (Optuna may replace it while
    handling it, with an AssertionError in its trial post-processing), or None."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    lost: tuple[type[BaseException], ...] = (SQLAlchemyError, StorageInternalError, OSError)
    with contextlib.suppress(ImportError):
        import grpc

        lost += (grpc.RpcError,)
    cause: BaseException | None = exc
    for _ in range(6):
        if cause is None or isinstance(cause, lost):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _why(exc: BaseException) -> str:
    from optuna.exceptions import StorageInternalError

    if isinstance(exc, StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__  # Optuna's wrapper says only "an exception is raised during the commit"
    if hasattr(exc, "code") and hasattr(exc, "details"):  # grpc.RpcError: its details say why
        return f"{exc.code().name}: {exc.details()}"
    return first_line(exc)


def _quiet_heartbeat_thread() -> None:
    """A lost database kills Optuna's heartbeat thread with a traceback; the trial's own next write
    fails too and says so in one line, so the thread's traceback is left out."""
    previous = threading.excepthook
    if getattr(previous, "logreg_heartbeat", False):
        return

    def hook(args) -> None:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        lost = isinstance(args.exc_value, (SQLAlchemyError, StorageInternalError))
        if lost and "_record_heartbeat" in (getattr(args.thread, "name", "") or ""):
            return
        previous(args)

    hook.logreg_heartbeat = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # wait for a lock instead of failing at once
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}
