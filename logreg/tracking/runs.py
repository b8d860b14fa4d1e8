"""Runs written whole: a RunRecord, one `write_run` (create, log one batch, end), off the main process.

A trial's run is written once, when the trial has ended and Optuna holds it; a process that dies
leaves at most a run missing, which the cell's reconcile writes from Optuna's record. The writes go
to a `concurrent.futures` pool of one process, forked before this process opens any connection to
the store: training never waits for MLflow (about 25 ms of CPU a run on SQLite), and a failed write
comes back as its Future's exception. `mode="thread"` and `"sync"` write in this process instead:
tests/benchmarks/tracking_overhead.py measures all three (docs/speed.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from logreg.errors import LogregError, first_line
from logreg.tracking.client import quiet_logs
from logreg.tracking.uri import mask_uri

MODES = ("process", "thread", "sync")


@dataclass(frozen=True)
class RunRecord:
    """Everything one MLflow run holds, written by write_run in one go."""

    experiment_id: str
    name: str
    status: str = "FINISHED"
    """FINISHED, FAILED or KILLED."""
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Final values, logged at the last step."""
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Per-step series, at `steps`."""
    steps: Sequence[int] = ()
    parent_run_id: str | None = None
    artifacts: Sequence[tuple[str, str | None]] = ()
    """(local path, artifact folder) pairs."""
    inputs: Sequence[Any] = ()
    """mlflow.entities.DatasetInput of the data the run saw."""


def param_text(value: Any) -> str:
    """A param as MLflow stores it: lists comma-joined, None as 'None'."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def writer_id() -> str:
    """HOST:PID of this process (the tag logreg.writer: which process wrote a run)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def write_run(client, record: RunRecord) -> str:
    """Create the run, log everything in one batch, end it; return its id."""
    from mlflow.entities import Metric, Param

    tags = {**{k: str(v)[:5000] for k, v in record.tags.items()}, "logreg.writer": writer_id()}
    if record.parent_run_id:
        tags["mlflow.parentRunId"] = record.parent_run_id
    now = int(time.time() * 1000)
    run_id = client.create_run(
        record.experiment_id, start_time=now, tags=tags, run_name=record.name
    ).info.run_id
    steps = [int(s) for s in record.steps]
    metrics = [
        Metric(k, float(v), now, s)
        for k, vs in record.history.items()
        for s, v in zip(steps, vs, strict=True)
    ]
    metrics += [Metric(k, float(v), now, steps[-1] if steps else 0) for k, v in record.metrics.items()]
    client.log_batch(
        run_id, metrics=metrics, params=[Param(k, param_text(v)) for k, v in record.params.items()]
    )
    if record.inputs:
        client.log_inputs(run_id, list(record.inputs))
    for path, folder in record.artifacts:
        client.log_artifact(run_id, path, folder)
    client.set_terminated(run_id, status=record.status)
    return run_id


_WRITER: dict[str, Any] = {}  # this process's writer: the store's URI, then its own MlflowClient


def _start_writer(uri: str) -> None:
    """In the writer process: Ctrl-C and SIGTERM are the parent's to handle (it drains the pool);
    it dies with its parent (what was queued is then reconcile's)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent()
    _WRITER.clear()
    _WRITER["uri"] = uri


def _write(record: RunRecord) -> str:
    if "client" not in _WRITER:  # at the first write: the parent has made the store's schema by then
        from mlflow.tracking import MlflowClient

        quiet_logs()
        if _WRITER["uri"].startswith("sqlite:"):
            _sqlite_fast_commits()
        _WRITER["client"] = MlflowClient(tracking_uri=_WRITER["uri"])
    return write_run(_WRITER["client"], record)


def exit_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux): a pool process would otherwise block
    on its queue for ever once the parent is gone."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to do
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _sqlite_fast_commits() -> None:
    """SQLite: WAL with synchronous=NORMAL, so a commit is an append, still atomic and safe when a
    process dies (not on a power cut), and readers (the UI) do not block the writer."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(_sqlite_fast_commits, "on", False):
        return
    _sqlite_fast_commits.on = True  # type: ignore[attr-defined]

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, connection_record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class RunWriter:
    """submit(record) -> Future[run id]; check() raises the first failed write; close() drains."""

    def __init__(self, uri: str, mode: str = "process"):
        self.uri, self._futures = uri, []
        self._pool: cf.Executor | None = None
        if mode == "process" and "fork" in mp.get_all_start_methods():
            import mlflow.tracking  # noqa: F401 - imported once, before the fork, for both processes

            quiet_logs()
            fork = mp.get_context("fork")
            self._pool = cf.ProcessPoolExecutor(
                1, mp_context=fork, initializer=_start_writer, initargs=(uri,)
            )
            self._pool.submit(int).result()  # fork now: no connection to the store exists yet
            return
        _WRITER.clear()
        _WRITER["uri"] = uri
        if mode == "thread":
            self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix="logreg-writer")

    def submit(self, record: RunRecord) -> cf.Future:
        if self._pool is not None:
            future = self._pool.submit(_write, record)
        else:
            future = cf.Future()
            try:
                future.set_result(_write(record))
            except Exception as exc:  # noqa: BLE001 - reported by check(), as the pool's are
                future.set_exception(exc)
        self._futures.append(future)
        return future

    def check(self) -> None:
        """Raise LogregError for the first write that failed (done futures only: cheap)."""
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise self._error(future.exception())
        self._futures = [f for f in self._futures if not f.done()]

    def drain(self) -> None:
        """Wait for every write submitted so far; raise the first failure."""
        cf.wait(self._futures)
        self.check()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

    def _error(self, exc: BaseException) -> LogregError:
        why = "the writer process died" if isinstance(exc, cf.process.BrokenProcessPool) else (
            f"{type(exc).__name__}: {first_line(exc, 300)}")  # fmt: skip
        return LogregError(
            f"Writing to the MLflow tracking store {mask_uri(self.uri)} failed: {mask_uri(why)}. Completed "
            "trials are kept in the Optuna storage; fix the store and re-run to resume (their runs are "
            "written then)."
        )
