"""Optuna storages: a journal file on one machine, an RDB (with heartbeats) for many.

Opening one creates its schema; `storage_errors` turns a lost database into one line.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

from logreg.errors import LogregError, LogregWarning, first_line
from logreg.tracking import mask_uri, schema_guard
from logreg.validation import check_env_seconds

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")
DEFAULT_STORAGE = "optuna-journal.log"  # in the working directory, git-ignored
HEARTBEAT_INTERVAL = 10  # seconds (RDB storages only); env LOGREG_HEARTBEAT_INTERVAL overrides
GRACE_PERIOD = 30  # a RUNNING trial with no heartbeat for this long is stale; env LOGREG_GRACE_PERIOD


@contextlib.contextmanager
def storage_errors(storage):
    """Turn a lost Optuna database (server down, connection dropped) into one clear LogregError."""
    try:
        yield
    except LogregError:
        raise
    except Exception as exc:
        from optuna.exceptions import StorageInternalError

        lost = _lost_storage_errors()
        # Optuna may replace the storage error while handling it (an AssertionError in its
        # trial post-processing when the final state cannot be read back): look down the chain.
        cause: BaseException | None = exc
        for _ in range(6):
            if cause is None or isinstance(cause, lost):
                break
            cause = cause.__cause__ or cause.__context__
        if cause is None or not isinstance(cause, lost):
            raise
        exc = cause
        if isinstance(exc, StorageInternalError) and exc.__cause__ is not None:
            exc = exc.__cause__  # Optuna's wrapper says only "an exception is raised during the commit"

        first = first_line(exc)
        if hasattr(exc, "code") and hasattr(exc, "details"):  # grpc.RpcError: its details say why
            first = f"{exc.code().name}: {exc.details()}"
        raise LogregError(
            f"Lost the Optuna storage {_where(storage)}: {mask_uri(first)[:200]}. Completed trials are "
            "kept; check that the database (or the storage proxy) is reachable, then re-run to resume."
        ) from None


def _lost_storage_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean the storage went away (not a bug of ours)."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    errors: tuple[type[BaseException], ...] = (SQLAlchemyError, StorageInternalError, OSError)
    try:
        import grpc

        errors += (grpc.RpcError,)
    except ImportError:  # pragma: no cover - grpcio is a dependency
        pass
    return errors


def _where(storage) -> str:
    """The storage's URL for messages, password masked."""
    if hasattr(storage, "logreg_url"):  # the gRPC proxy client (tune.proxy)
        return storage.logreg_url
    backend = getattr(storage, "_backend", storage)  # create_study's cache wraps RDBStorage
    url = getattr(getattr(backend, "engine", None), "url", None)
    return mask_uri(url.render_as_string(hide_password=False)) if url is not None else "storage"


def import_optuna():
    """optuna, imported quietly (this package is the only one that imports it)."""
    import optuna

    # Failed and interrupted trials are recorded (user attr fail_reason, MLflow tag
    # logreg.error); Optuna's own warnings would print their tracebacks again.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(url: str | None):
    """An Optuna storage for `url`: a path means a journal file; grpc://HOST:PORT the gRPC proxy
    (`logreg storage-proxy`); another URL an RDB storage.

    RDB storages (SQLite, PostgreSQL, MySQL) get heartbeats, so a trial whose
    worker died is marked failed and retried. Opening one creates its schema, once, however
    many workers open a fresh database together (tracking.schema.schema_guard).
    """
    optuna = import_optuna()
    url = url or DEFAULT_STORAGE
    if url == ":memory:":  # nothing kept: for benchmarks and throwaway runs
        return optuna.storages.InMemoryStorage()
    if url.startswith("grpc:"):  # Optuna's gRPC proxy in front of an RDB (tune.proxy)
        from logreg.tune.proxy import connect_proxy

        return connect_proxy(url)
    if "://" not in url:
        from optuna.storages.journal import JournalStorage

        try:
            return JournalStorage(_journal_backend(url))
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
    heartbeat = check_env_seconds(
        "LOGREG_HEARTBEAT_INTERVAL", os.environ.get("LOGREG_HEARTBEAT_INTERVAL"), HEARTBEAT_INTERVAL
    )
    grace = grace_period()
    _quiet_heartbeat_thread()
    try:
        # Workers opening a fresh database together race to create its tables: serialise that.
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
        first = first_line(exc)
        raise LogregError(
            f"Cannot open the Optuna storage {mask_uri(url)}: {mask_uri(first)[:200]}. "
            "Check --storage (is the database server running?)."
        ) from None


def fail_running_trials(study, storage, older_than: float, spare=lambda trial: False) -> list[int]:
    """Fail the study's trials RUNNING for more than `older_than` seconds (but those `spare(trial)`
    keeps): trials of processes that died. Returns their numbers."""
    import datetime

    optuna = import_optuna()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    now = datetime.datetime.now()
    stale = [
        t
        for t in running
        if t.datetime_start and (now - t.datetime_start).total_seconds() > older_than and not spare(t)
    ]
    if not stale:
        return []
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    return [t.number for t in stale]


def grace_period() -> float:
    """Seconds without a heartbeat after which an RDB trial is stale (LOGREG_GRACE_PERIOD)."""
    return check_env_seconds("LOGREG_GRACE_PERIOD", os.environ.get("LOGREG_GRACE_PERIOD"), GRACE_PERIOD)


def _quiet_heartbeat_thread() -> None:
    """A lost database kills Optuna's heartbeat thread with a traceback on stderr; keep it quiet.

    The trial's own next write fails too, and storage_errors reports that as one line.
    """
    import threading

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


def _journal_backend(path: str):
    """Optuna's journal file, appended under its lock but without an fsync per append, checked.

    Optuna fsyncs every record (one per reported value, parameter and state
    change): about 3 ms each on these machines, most of a trial's storage cost.
    Without it a record survives the death of any process (it is in the OS page
    cache) but not a power loss or OS crash, which a local experiment store can
    afford; use an RDB storage URL for more. check_journal runs under the same lock.
    """
    import json

    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class NoFsyncJournalFileBackend(JournalFileBackend):
        def append_logs(self, logs):
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:  # noqa: SLF001
                f.write(text.encode("utf-8"))

    if os.path.exists(path) and not os.path.isfile(path):
        raise LogregError(
            f"The Optuna journal {path!r} is not a regular file. Pass a file path to --storage."
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    backend = NoFsyncJournalFileBackend(path)
    if os.path.getsize(path) if os.path.exists(path) else 0:
        with get_lock_file(backend._lock):  # noqa: SLF001 - no process appends while we read
            check_journal(path)
    return backend


JOURNAL_RECORD = b'{"op_code"'


def _is_record(line: bytes) -> bool:
    import json

    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and "op_code" in record


def check_journal(path: str) -> None:
    """A journal file whose every line is a record; a torn last record (a crash or a full disk
    mid-write) is cut off, the original kept beside it. Anything else is one line: not a journal."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if line.endswith(b"\n") and _is_record(line):
            offset += len(line)
            continue
        torn = offset + len(line) == len(data) and (
            line.startswith(JOURNAL_RECORD) or JOURNAL_RECORD.startswith(line.rstrip(b"\r\n"))
        )
        if not torn or offset == 0 and not line.startswith(JOURNAL_RECORD):
            raise LogregError(
                f"{path!r} is not an Optuna journal file: line {number} is not a journal record. Pass a "
                "journal path to --storage (a new file is created) or an RDB URL such as sqlite:///optuna.db."
            )
        _drop_torn_tail(path, offset, len(data) - offset)
        return


def _drop_torn_tail(path: str, offset: int, size: int) -> None:
    import shutil
    import time

    backup = f"{path}.torn-{time.strftime('%Y%m%d-%H%M%S')}"
    shutil.copy2(path, backup)
    os.truncate(path, offset)
    warnings.warn(
        f"The Optuna journal {path!r} ended in a torn record ({size} bytes, from a crash or a full disk "
        f"mid-write): dropped; every complete record is kept, the original is in {backup!r}.",
        LogregWarning,
        stacklevel=2,
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing at once when several processes write.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}
