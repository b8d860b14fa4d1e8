"""Real worker processes under test: their Optuna trials and MLflow runs, read from outside, and
signals that land where a test needs them, by construction rather than by timing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy

from logreg.tune.study import worker_id


def optuna_storage(url: str):
    """Optuna's own view of a storage (a journal path or an RDB URL), without logreg's code."""
    if "://" not in url:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    # No pool: the tests poll many times a second, and pooled connections of storages that wait
    # for garbage collection would use up the server's max_connections beside eight workers.
    return optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})


def runs_of(uri: str, name: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[name], max_results=10_000)


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process exited ({proc.returncode}) while waiting for {what}:\n{err}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def poll_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def trials_of(storage_url: str, study_name: str):
    try:
        return optuna.load_study(study_name=study_name, storage=optuna_storage(storage_url)).trials
    except KeyError:
        return []


def worker_children(pid: int) -> list[int]:
    """Child processes of `pid` with the word `worker` in their command line (Linux /proc): a
    sweep's workers, or a worker's MLflow writer (a fork of it)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            cmdline = (status.parent / "cmdline").read_bytes().split(b"\0")
            if int(fields.get("PPid", "0").strip()) == pid and b"worker" in cmdline:
                out.append(int(status.parent.name))
    return out


def is_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def is_stopped(pid: int) -> bool:
    """Whether every thread of process `pid` is stopped (state T)."""
    try:
        tasks = [t.read_text() for t in Path(f"/proc/{pid}/task").glob("*/stat")]
    except OSError:  # a thread ended while its state was read: ask again
        return False
    return bool(tasks) and all(t.rsplit(")", 1)[1].split()[0] == "T" for t in tasks)


def is_pending(pid: int, signum: int) -> bool:
    """Whether signal `signum` waits to be delivered to process `pid` (stopped, say)."""
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return any(int(fields[k], 16) >> (signum - 1) & 1 for k in ("ShdPnd", "SigPnd"))


def run_written(uri: str, experiment: str):
    """A predicate: the trial's MLflow run is in the store, RUNNING."""

    def written(trial) -> bool:
        if mlflow.MlflowClient(uri).get_experiment_by_name(experiment) is None:
            return False
        runs = runs_of(uri, experiment)
        if runs.empty:
            return False
        running = runs[(runs["status"] == "RUNNING") & (runs["tags.logreg.run_kind"] == "trial")]
        return str(trial.number) in set(running["tags.logreg.trial_number"])

    return written


def group_members(pgid: int) -> list[int]:
    """Processes of process group `pgid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                out.append(int(stat.parent.name))
    return out


def stop_mid_trial(
    pids: list[int], storage: str, study_name: str, timeout: float, proc, *, written=None, group=None
):
    """Stop (SIGSTOP) the worker processes `pids` at a moment one of them trains a trial, after
    one trial of the study completed; return that worker's pid and its trial, read while stopped.

    By construction, not by timing: stopped, the workers write nothing more to Optuna. A trial
    read RUNNING with a stopped worker's `worker` attribute and its `config`, but without `result`
    (set when training returned, before the run's end is queued and before Optuna's tell), is then
    mid-training until that worker goes on. `written(trial)` (optional) must also hold: a worker's
    MLflow writer, a process of its own, goes on while the worker is stopped. Caught between
    trials, the workers go on (SIGCONT) and are tried again.
    """
    host = worker_id().rsplit(":", 1)[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group is not None:  # the whole process group: the workers and their helpers
            os.killpg(group, signal.SIGSTOP)
            wait_for(
                lambda: all(is_stopped(p) or not is_alive(p) for p in group_members(group)),
                30,
                "the group to stop",
            )
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: all(is_stopped(pid) for pid in pids), 30, "the workers to stop")
        trials = trials_of(storage, study_name)
        for t in trials if any(t.state.name == "COMPLETE" for t in trials) else ():
            owner = t.user_attrs.get("worker", "").rpartition(":")
            if (
                t.state.name == "RUNNING"
                and owner[0] == host
                and int(owner[2]) in pids
                and "config" in t.user_attrs
                and "result" not in t.user_attrs
                and (written is None or poll_until(lambda t=t: written(t), 60))
            ):
                return int(owner[2]), t
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        if group is not None:
            os.killpg(group, signal.SIGCONT)
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"process exited ({proc.returncode}) while waiting for a trial in flight:\n{err}")
        time.sleep(0.2)
    pytest.fail("timed out waiting for a trial in flight")


def kill_mid_trial(pid: int, storage: str, study_name: str, timeout: float, proc, *, written=None):
    """SIGKILL worker `pid` while a trial of its own trains (see stop_mid_trial); return that
    trial as read before the kill, and the worker's child processes (its MLflow writer)."""
    _, trial = stop_mid_trial([pid], storage, study_name, timeout, proc, written=written)
    children = worker_children(pid)
    os.kill(pid, signal.SIGKILL)
    return trial, children
