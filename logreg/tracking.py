"""MLflow tracking: the only module that imports mlflow.

Logging is buffered and batched: a run's params, per-epoch metrics and final
metrics go out in one `log_batch` (MlflowClient splits it at 1000 metrics), and
all writes run in order in one writer process, so training never waits for the
store. `Tracker.close()` (also on Ctrl-C) drains the queue and ends every run
it started that is still open, so none is left RUNNING.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logreg.errors import LogregError, first_line

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default


def resolve_tracking_uri(uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db."""
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


# ------------------------------------------------------------------- tags


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit (with '+dirty' when it has changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


@functools.lru_cache(maxsize=4)
def environment_tags(device: str) -> dict[str, str]:
    """Tags that say where a run ran: device kind and name, host, versions, commit."""
    import mlflow
    import numpy

    tags = {
        "logreg.device_kind": device,
        "logreg.device_name": cpu_name(),
        "logreg.host": socket.gethostname(),
        "logreg.git_commit": git_commit(),
        "logreg.numpy_version": numpy.__version__,
        "logreg.mlflow_version": mlflow.__version__,
        "logreg.python_version": platform.python_version(),
    }
    try:
        import torch

        tags["logreg.torch_version"] = torch.__version__
        if device == "cuda" and torch.cuda.is_available():
            tags["logreg.device_name"] = torch.cuda.get_device_name()
            tags["logreg.cuda_version"] = str(torch.version.cuda)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import optuna

        tags["logreg.optuna_version"] = optuna.__version__
    except ImportError:  # pragma: no cover
        pass
    return tags


def dataset_tags(split) -> dict[str, str]:
    """Tags naming the dataset, its shape and content digest."""
    return {
        "logreg.dataset": split.name,
        "logreg.dataset_shape": f"{split.n_samples}x{split.n_features}",
        "logreg.dataset_n_train": str(len(split.y_train)),
        "logreg.dataset_n_classes": str(split.n_classes),
        "logreg.dataset_digest": split.digest,
    }


# ------------------------------------------------------------------- client


def _check_reachable(client, uri: str) -> None:
    """Fail fast with one clear line when the tracking store cannot be reached."""
    from mlflow.exceptions import MlflowException

    try:
        client.search_experiments(max_results=1)
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

    from mlflow.tracking import MlflowClient

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
    client = MlflowClient(tracking_uri=uri)
    _check_reachable(client, uri)
    return client


class RunHandle:
    """A run created by the writer; `run_id` is filled in at the next flush."""

    def __init__(self, hid: int, run_id: str | None = None) -> None:
        self.hid = hid
        self.run_id = run_id
        self.ended = False


def _reset_after_fork() -> None:
    """In a forked writer: drop connections inherited from the parent (never share them)."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for engine in SqlAlchemyStore._engine_map.values():  # noqa: SLF001
            engine.dispose(close=False)
        SqlAlchemyStore._engine_map.clear()  # noqa: SLF001
    except (ImportError, AttributeError):
        pass
    try:
        from mlflow.utils import request_utils

        request_utils._cached_get_request_session.cache_clear()  # noqa: SLF001
    except (ImportError, AttributeError):
        pass


def _sqlite_fast_commits() -> None:
    """SQLite stores: write-ahead log with synchronous=NORMAL for the writer's connections.

    MLflow's default rollback journal fsyncs several times per commit (three
    commits a run); in WAL mode with synchronous=NORMAL a commit is an append,
    still atomic and safe against the process dying, and readers (the MLflow
    UI) are not blocked by the writer.
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, connection_record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


def _writer_loop(uri: str, ops, replies, parent_pid: int, forked: bool) -> None:
    """Apply queued operations in order; answer flushes with run ids and errors."""
    if forked:
        import signal

        # Ctrl-C reaches the whole process group: the parent decides how runs end.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _reset_after_fork()
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:"):
        _sqlite_fast_commits()
    client = MlflowClient(tracking_uri=uri)
    run_ids: dict[int, str] = {}
    errors: list[str] = []
    broken = False  # after a failed write, later writes are skipped: the sweep stops at once
    while True:
        try:
            op = ops.get(timeout=1.0)
        except queue.Empty:
            if forked and os.getppid() != parent_pid:
                return  # the parent died (e.g. SIGKILL): what was queued has been written
            continue
        kind = op[0]
        if kind == "stop":
            replies.put(("stopped", dict(run_ids), errors[:]))
            return
        if kind == "flush":
            replies.put(("flushed", dict(run_ids), errors[:]))
            errors.clear()
            continue
        if broken:
            continue
        try:
            if kind == "start":
                _, hid, experiment_id, run_name, tags, parent_hid = op
                if parent_hid is not None:
                    tags["mlflow.parentRunId"] = run_ids[parent_hid]
                run_ids[hid] = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
            elif kind == "resume":
                _, hid, run_id = op
                run_ids[hid] = run_id
                client.update_run(run_id, status="RUNNING")
            elif kind == "log":
                _, hid, metrics, params, tags = op
                client.log_batch(
                    run_ids[hid],
                    metrics=[Metric(k, v, t, st) for k, v, t, st in metrics],
                    params=[Param(k, v) for k, v in params],
                    tags=[RunTag(k, v) for k, v in tags],
                )
            elif kind == "artifact":
                _, hid, path, artifact_path = op
                client.log_artifact(run_ids[hid], path, artifact_path)
            elif kind == "end":
                _, hid, status = op
                client.set_terminated(run_ids[hid], status=status)
        except Exception as exc:  # noqa: BLE001 - reported to the parent at the next flush
            text = str(exc).strip().splitlines()
            errors.append(mask_uri(f"{type(exc).__name__}: {text[0][:300] if text else ''}"))
            # Tell the parent now (Tracker.check), not at the next flush; skip what is queued
            # (each write to a store that is down would wait for its HTTP retries).
            broken = True
            replies.put(("error", {}, errors[:1]))


class Tracker:
    """Writes runs to one MLflow store from a writer process, in order.

    Every method only queues work and returns at once: MLflow's store code runs
    on the other core (a forked process on Linux, a thread elsewhere), so
    training does not wait for it. `flush()` waits for the queue; `close()`
    flushes and ends the runs that are still open. If this process is killed,
    the writer still writes what was queued, then exits.
    """

    def __init__(self, uri: str | None = None):
        import multiprocessing as mp

        self.uri = resolve_tracking_uri(uri)
        self.client = make_client(self.uri)  # for reads; also checks the store answers
        self._open: list[RunHandle] = []
        self._handles: dict[int, RunHandle] = {}
        self._next = 0
        self._closed = False
        forked = "fork" in mp.get_all_start_methods()
        if forked:
            ctx = mp.get_context("fork")
            self._ops, self._replies = ctx.Queue(), ctx.Queue()
            self._worker = ctx.Process(
                target=_writer_loop,
                name="logreg-tracker",
                daemon=True,
                args=(self.uri, self._ops, self._replies, os.getpid(), True),
            )
        else:  # pragma: no cover - non-Linux fallback
            self._ops, self._replies = queue.Queue(), queue.Queue()
            self._worker = threading.Thread(
                target=_writer_loop,
                name="logreg-tracker",
                daemon=True,
                args=(self.uri, self._ops, self._replies, os.getpid(), False),
            )
        self._worker.start()

    def _handle(self, run_id: str | None = None) -> RunHandle:
        self._next += 1
        handle = RunHandle(self._next, run_id)
        self._handles[handle.hid] = handle
        self._open.append(handle)
        return handle

    def _answer(self, expected: str, timeout: float = 600.0) -> None:
        early: list[str] = []
        while True:
            try:
                kind, run_ids, errors = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise LogregError(
                    f"The MLflow writer did not answer within {timeout:.0f} s "
                    f"(store {mask_uri(self.uri)}). Check that the store is reachable, then re-run."
                ) from None
            if kind != "error":
                break
            early += errors  # already reported by check(), or about to be with the answer
        errors = errors or early
        for hid, run_id in run_ids.items():
            if hid in self._handles:
                self._handles[hid].run_id = run_id
        if errors:
            raise LogregError(
                f"Writing to the MLflow tracking store {mask_uri(self.uri)} failed: {errors[0]}. "
                "Completed runs are kept; fix the store and re-run to resume."
            )

    def check(self) -> None:
        """Raise at once if a write has failed (without waiting for the queue); cheap."""
        try:
            kind, _, errors = self._replies.get_nowait()
        except queue.Empty:
            return
        if kind != "error":  # pragma: no cover - replies only follow flush/stop, which wait for them
            raise RuntimeError(f"unexpected writer reply {kind!r}")
        raise LogregError(
            f"Writing to the MLflow tracking store {mask_uri(self.uri)} failed: {errors[0]}. "
            "Completed trials are kept in the Optuna storage; fix the store and re-run to resume."
        )

    def flush(self) -> None:
        """Wait until every queued write is done; fill in run ids; raise the first write error."""
        self._ops.put(("flush",))
        self._answer("flushed")

    # -- experiments and runs
    def experiment_id(self, name: str) -> str:
        """Get or create an experiment (synchronously)."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # another worker created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def start_run(
        self,
        experiment_id: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        parent: RunHandle | None = None,
    ) -> RunHandle:
        handle = self._handle()
        all_tags = {k: str(v)[:5000] for k, v in (tags or {}).items()}
        self._ops.put(
            (
                "start",
                handle.hid,
                experiment_id,
                run_name,
                all_tags,
                parent.hid if parent is not None else None,
            )
        )
        return handle

    def resume_run(self, run_id: str) -> RunHandle:
        """A handle on an existing run (e.g. a study's parent run on resume)."""
        handle = self._handle(run_id)
        self._ops.put(("resume", handle.hid, run_id))
        return handle

    def log(
        self,
        handle: RunHandle,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        history: Mapping[str, list] | None = None,
        steps: list[int] | None = None,
    ) -> None:
        """One batch: params, per-step history, final metrics (at the last step), tags."""
        now = int(time.time() * 1000)
        ms = []
        for key, values in (history or {}).items():
            ms += [(key, float(v), now, int(st)) for st, v in zip(steps, values, strict=True)]
        last = int(steps[-1]) if steps else 0
        ms += [(key, float(v), now, last) for key, v in (metrics or {}).items()]
        ps = [(k, _param_str(v)) for k, v in (params or {}).items()]
        ts = [(k, str(v)[:5000]) for k, v in (tags or {}).items()]
        self._ops.put(("log", handle.hid, ms, ps, ts))

    def log_artifact(self, handle: RunHandle, path: str | Path, artifact_path: str | None = None) -> None:
        self._ops.put(("artifact", handle.hid, str(path), artifact_path))

    def end_run(self, handle: RunHandle, status: str = "FINISHED") -> None:
        """status: FINISHED, FAILED or KILLED."""
        if handle.ended:
            return
        handle.ended = True
        if handle in self._open:
            self._open.remove(handle)
        self._ops.put(("end", handle.hid, status))

    def close(self, status_for_open: str = "KILLED") -> None:
        """End runs still open (children first), write everything queued, stop the writer."""
        if self._closed:
            return
        self._closed = True
        for handle in reversed(list(self._open)):
            self.end_run(handle, status_for_open)
        self._ops.put(("stop",))
        try:
            self._answer("stopped")
        finally:
            self._worker.join(timeout=30)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("KILLED" if exc_type is not None else "FINISHED")


def _param_str(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "None" if value is None else str(value)


# ------------------------------------------------------------------- reading


def search_runs(uri: str | None, experiment_names: list[str], filter_string: str = ""):
    """Runs of the named experiments in one store as a pandas DataFrame ('' when none)."""
    import mlflow
    import pandas as pd

    client = make_client(uri)
    ids = [e.experiment_id for n in experiment_names if (e := client.get_experiment_by_name(n)) is not None]
    if not ids:
        return pd.DataFrame()
    mlflow.set_tracking_uri(resolve_tracking_uri(uri))
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, max_results=100_000)


def stale_running_runs(uri: str | None, experiment_name: str, older_than_s: float):
    """Run ids of RUNNING runs in the experiment not updated for `older_than_s` seconds."""
    client = make_client(uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return []
    cutoff = (time.time() - older_than_s) * 1000
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=10_000)
    return [r.info.run_id for r in runs if (r.info.start_time or 0) < cutoff]


# ------------------------------------------------------------------- sweep helpers


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_runs(
    tracker: Tracker,
    experiment_id: str,
    tags: Mapping[str, str],
    status: str | None = None,
    flush: bool = True,
) -> list:
    """Runs of an experiment whose tags equal `tags` (after the writer caught up, with flush)."""
    if flush:
        tracker.flush()
    clauses = [f"tags.`{k}` = {_quote(v)}" for k, v in tags.items()]
    if status:
        clauses.append(f"attributes.status = {_quote(status)}")
    with _store_errors(tracker.uri):
        return tracker.client.search_runs([experiment_id], " and ".join(clauses), max_results=10_000)


def end_stale_runs(
    tracker: Tracker,
    runs,
    status: str = "KILLED",
    reason: str = "",
    state: str = "STALE",
    metrics: Mapping[str, Mapping[str, float]] | None = None,
) -> int:
    """End RUNNING runs left behind by a dead or interrupted process.

    metrics: final metrics by run id, for runs whose trial finished but whose end was never written.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    with _store_errors(tracker.uri):
        for run in runs:
            values = (metrics or {}).get(run.info.run_id)
            if values:
                tracker.client.log_batch(
                    run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()]
                )
            if reason:
                tracker.client.set_tag(run.info.run_id, "logreg.error", reason)
            tracker.client.set_tag(run.info.run_id, "logreg.trial_state", state)
            tracker.client.set_terminated(run.info.run_id, status=status)
    return len(runs)


@contextlib.contextmanager
def _store_errors(uri: str):
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


# --- throughput / compare helpers


def experiment_names(uri: str | None) -> list[str]:
    """Names of the active experiments in one store (for `logreg compare`)."""
    client = make_client(uri)
    return [e.name for e in client.search_experiments(max_results=1000)]
