"""MLflow tracking: the only module that imports mlflow.

Logging is buffered and batched: a run's params, per-epoch metrics and final
metrics go out in one `log_batch` (MlflowClient splits it at 1000 metrics), and
all writes run in order on one background thread, so training never waits for
the store. `Tracker.close()` (also on Ctrl-C) drains the queue and ends every
run it started that is still open, so none is left RUNNING.
"""

from __future__ import annotations

import functools
import os
import platform
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from logreg.errors import LogregError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default


def resolve_tracking_uri(uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@]*)@")


def mask_uri(uri: str | None) -> str | None:
    """The URI with any password replaced by '***' (for logs, tags and messages)."""
    if uri is None:
        return None
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", uri)


# ------------------------------------------------------------------- tags


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
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
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
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
        "logreg.device_name": _cpu_name(),
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {first[:200]}. "
            "Check --tracking-uri / MLFLOW_TRACKING_URI (is the server running?)."
        ) from None
    except Exception as exc:  # connection errors come in many types
        raise LogregError(
            f"Cannot reach the MLflow tracking store {mask_uri(uri)}: {type(exc).__name__}. "
            "Check --tracking-uri / MLFLOW_TRACKING_URI (is the server running?)."
        ) from None


def make_client(uri: str | None):
    """An MlflowClient for `uri` (resolved as resolve_tracking_uri), checked reachable."""
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(uri)
    if "://" not in uri and not uri.startswith("file:"):
        raise LogregError(
            f"The tracking URI {uri!r} is not a URI. Use e.g. sqlite:///mlflow.db, "
            "http://127.0.0.1:5000 or postgresql://user@host/db."
        )
    # Short HTTP retries so an unreachable server fails in seconds, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    client = MlflowClient(tracking_uri=uri)
    _check_reachable(client, uri)
    return client


class RunHandle:
    """A run created on the writer thread; `run_id` is known once the writer got to it."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.ended = False


class Tracker:
    """Writes runs to one MLflow store from a background thread, in order.

    Every method only enqueues work and returns at once; `flush()` waits for the
    queue, `close()` flushes and ends the runs that are still open as KILLED.
    """

    def __init__(self, uri: str | None = None, *, client=None):
        self.uri = resolve_tracking_uri(uri)
        self.client = client if client is not None else make_client(self.uri)
        self._queue: queue.Queue = queue.Queue()
        self._open: list[RunHandle] = []
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, name="logreg-tracker", daemon=True)
        self._thread.start()

    # -- the writer thread
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
            except BaseException as exc:  # kept and raised on flush()
                self._errors.append(exc)
            finally:
                self._queue.task_done()

    def _submit(self, job: Callable[[], None]) -> None:
        if self._errors:
            self._raise_errors()
        self._queue.put(job)

    def _raise_errors(self) -> None:
        exc = self._errors[0]
        self._errors.clear()
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException | ConnectionError | OSError):
            raise LogregError(
                f"Writing to the MLflow tracking store {mask_uri(self.uri)} failed: "
                f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}. "
                "Completed runs are kept; fix the store and re-run to resume."
            ) from exc
        raise exc

    def flush(self) -> None:
        """Wait until every queued write is done; raise the first write error."""
        self._queue.join()
        if self._errors:
            self._raise_errors()

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

    def start_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str] | None = None,
                  parent: RunHandle | None = None) -> RunHandle:
        handle = RunHandle()
        self._open.append(handle)

        def job():
            all_tags = {k: str(v) for k, v in (tags or {}).items()}
            if parent is not None:
                all_tags["mlflow.parentRunId"] = parent.run_id
            run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
            handle.run_id = run.info.run_id

        self._submit(job)
        return handle

    def resume_run(self, run_id: str) -> RunHandle:
        """A handle on an existing run (e.g. a study's parent run on resume)."""
        handle = RunHandle()
        handle.run_id = run_id
        self._submit(lambda: self.client.update_run(run_id, status="RUNNING"))
        self._open.append(handle)
        return handle

    def log(self, handle: RunHandle, *, params: Mapping[str, Any] | None = None,
            metrics: Mapping[str, float] | None = None, tags: Mapping[str, Any] | None = None,
            history: Mapping[str, list] | None = None, steps: list[int] | None = None) -> None:
        """One batch: params, final metrics (step 0... or the last step), tags, per-step history."""
        from mlflow.entities import Metric, Param, RunTag

        def job():
            now = int(time.time() * 1000)
            ms = []
            if history:
                for key, values in history.items():
                    for step, value in zip(steps, values):
                        ms.append(Metric(key, _finite(value), now, int(step)))
            last = int(steps[-1]) if steps else 0
            for key, value in (metrics or {}).items():
                ms.append(Metric(key, _finite(value), now, last))
            ps = [Param(k, _param_str(v)) for k, v in (params or {}).items()]
            ts = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
            self.client.log_batch(handle.run_id, metrics=ms, params=ps, tags=ts)

        self._submit(job)

    def log_artifact(self, handle: RunHandle, path: str | Path, artifact_path: str | None = None) -> None:
        self._submit(lambda: self.client.log_artifact(handle.run_id, str(path), artifact_path))

    def end_run(self, handle: RunHandle, status: str = "FINISHED") -> None:
        """status: FINISHED, FAILED or KILLED."""
        if handle.ended:
            return
        handle.ended = True
        if handle in self._open:
            self._open.remove(handle)
        self._submit(lambda: self.client.set_terminated(handle.run_id, status=status))

    def close(self, status_for_open: str = "KILLED") -> None:
        """Drain the queue, end runs still open (children first), stop the writer."""
        for handle in reversed(list(self._open)):
            self.end_run(handle, status_for_open)
        self._queue.put(None)
        self._thread.join()
        if self._errors:
            self._raise_errors()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("KILLED" if exc_type is not None else "FINISHED")


def _finite(value) -> float:
    value = float(value)
    # MLflow stores NaN; +-inf are clipped by some backends: keep them explicit.
    return value


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
    ids = [e.experiment_id for n in experiment_names
           if (e := client.get_experiment_by_name(n)) is not None]
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


def find_runs(tracker: Tracker, experiment_id: str, tags: Mapping[str, str],
              status: str | None = None) -> list:
    """Runs of an experiment whose tags equal `tags` (after the writer caught up)."""
    tracker.flush()
    clauses = [f"tags.`{k}` = {_quote(v)}" for k, v in tags.items()]
    if status:
        clauses.append(f"attributes.status = {_quote(status)}")
    return tracker.client.search_runs([experiment_id], " and ".join(clauses), max_results=10_000)


def end_stale_runs(tracker: Tracker, runs, status: str = "KILLED", reason: str = "") -> int:
    """End RUNNING runs left behind by a dead or interrupted process."""
    for run in runs:
        if reason:
            tracker.client.set_tag(run.info.run_id, "logreg.error", reason)
        tracker.client.set_tag(run.info.run_id, "logreg.trial_state", "STALE")
        tracker.client.set_terminated(run.info.run_id, status=status)
    return len(runs)


# --- throughput / compare helpers


def experiment_names(uri: str | None) -> list[str]:
    """Names of the active experiments in one store (for `logreg compare`)."""
    client = make_client(uri)
    return [e.name for e in client.search_experiments(max_results=1000)]
