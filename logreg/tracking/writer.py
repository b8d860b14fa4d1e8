"""The MLflow writer: runs written in order by a writer process, so training never waits.

Logging is buffered and batched: a run's params, per-epoch metrics and final
metrics go out in one `log_batch` (MlflowClient splits it at 1000 metrics), and
all writes run in order in one writer process, so training never waits for the
store. `Tracker.close()` (also on Ctrl-C) drains the queue and ends every run
it started that is still open, so none is left RUNNING.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logreg.errors import LogregError
from logreg.tracking.client import make_client, store_errors
from logreg.tracking.uri import mask_uri, resolve_tracking_uri


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
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group SIGTERM: the parent drains us
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


def _concurrent_insert(exc: Exception) -> bool:
    """A unique-key violation (PostgreSQL, SQLite, MySQL): another writer inserted the row first."""
    text = str(exc)
    keys = ("UniqueViolation", "UNIQUE constraint failed", "IntegrityError", "Duplicate entry")
    return any(k in text for k in keys)


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

    # -- repairing runs a dead or interrupted process left RUNNING (synchronous, on the client)
    def find_runs(
        self,
        experiment_id: str,
        tags: Mapping[str, str],
        status: str | None = None,
        flush: bool = True,
    ) -> list:
        """Runs of an experiment whose tags equal `tags` (after the writer caught up, with flush)."""
        if flush:
            self.flush()
        clauses = [f"tags.`{k}` = {_quote(v)}" for k, v in tags.items()]
        if status:
            clauses.append(f"attributes.status = {_quote(status)}")
        with store_errors(self.uri):
            return self.client.search_runs([experiment_id], " and ".join(clauses), max_results=10_000)

    def end_stale_runs(
        self,
        runs,
        status: str = "KILLED",
        reason: str = "",
        state: str = "STALE",
        metrics: Mapping[str, Mapping[str, float]] | None = None,
    ) -> int:
        """End RUNNING runs left behind by a dead or interrupted process; return how many.

        metrics: final metrics by run id, for runs whose trial finished but whose end was never written.
        """
        from mlflow.entities import Metric

        now = int(time.time() * 1000)

        def repair(run_id: str) -> None:
            values = (metrics or {}).get(run_id)
            if values:
                found = [Metric(k, float(v), now, 0) for k, v in values.items()]
                self.client.log_batch(run_id, metrics=found)
            if reason:
                self.client.set_tag(run_id, "logreg.error", reason)
            self.client.set_tag(run_id, "logreg.trial_state", state)
            self.client.set_terminated(run_id, status=status)

        with store_errors(self.uri):
            for run in runs:
                try:
                    repair(run.info.run_id)
                except Exception as exc:
                    # Workers that finish a cell together repair the same dead run together: the
                    # loser of a race to insert the same tag row gets a unique-key error. The run
                    # is being ended by the other worker: done once that one is, else retried.
                    if not _concurrent_insert(exc):
                        raise
                    time.sleep(0.5)
                    if self.client.get_run(run.info.run_id).info.status == "RUNNING":
                        repair(run.info.run_id)
        return len(runs)

    def discard_run(self, handle: RunHandle) -> None:
        """End a run this Tracker started (KILLED), wait for the writer, then delete it."""
        self.end_run(handle, "KILLED")
        self.flush()
        with store_errors(self.uri):
            self.client.delete_run(handle.run_id)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("KILLED" if exc_type is not None else "FINISHED")


def _param_str(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "None" if value is None else str(value)


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
