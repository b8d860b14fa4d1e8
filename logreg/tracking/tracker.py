"""Tracker: one MLflow store. Runs are written whole by its RunWriter; the few other calls (an
experiment, a study's parent run, the runs reconcile reads) go straight to the store."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from logreg.tracking.client import make_client, store_errors
from logreg.tracking.runs import RunRecord, RunWriter, param_text, writer_id
from logreg.tracking.uri import resolve_tracking_uri, sqlite_path

# The MLflow UI's model-training view (newer UIs read this tag; 3.17 reads ?workflowType=...).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


class Tracker:
    """An MLflow store: `write(record)` (a Future), parent runs, reads; `close()` drains the writer."""

    def __init__(self, uri: str | None = None, mode: str = "process"):
        self.uri = resolve_tracking_uri(uri)
        self.writer = RunWriter(self.uri, mode)  # first: its process forks before any connection
        try:
            self.client = make_client(self.uri)  # for reads; also checks the store answers
        except BaseException:
            self.writer.close()
            raise

    def experiment_id(self, name: str) -> str:
        """Get or create an experiment (tagged for the UI's model-training view)."""
        from mlflow.exceptions import MlflowException

        with store_errors(self.uri):
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                for key, value in EXPERIMENT_KIND.items():
                    if exp.tags.get(key) != value:
                        self.client.set_experiment_tag(exp.experiment_id, key, value)
                return exp.experiment_id
            try:
                return self.client.create_experiment(name, self._artifacts(name), tags=EXPERIMENT_KIND)
            except MlflowException:  # another worker created it first
                return self.client.get_experiment_by_name(name).experiment_id

    def _artifacts(self, name: str) -> str | None:
        """An SQLite store keeps its artifacts beside it (mlartifacts/), not in the working directory."""
        path = sqlite_path(self.uri)
        if path is None:
            return None
        return (Path(path).resolve().parent / "mlartifacts" / name.replace("/", "_")).as_uri()

    def write(self, record: RunRecord) -> Future:
        """Write one run whole, off this process; a failure surfaces at check(), drain() or close()."""
        self.writer.check()
        return self.writer.submit(record)

    def check(self) -> None:
        self.writer.check()

    def drain(self) -> None:
        self.writer.drain()

    # -- runs that stay open while something runs (a study's parent run), written here
    def start_run(
        self, experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any], inputs=()
    ) -> str:
        """A RUNNING run with its tags, params and dataset inputs (a study's parent); its id."""
        from mlflow.entities import Param

        with store_errors(self.uri):
            tags = {**{k: str(v)[:5000] for k, v in tags.items()}, "logreg.writer": writer_id()}
            run_id = self.client.create_run(experiment_id, tags=tags, run_name=name).info.run_id
            self.client.log_batch(run_id, params=[Param(k, param_text(v)) for k, v in params.items()])
            if inputs:
                self.client.log_inputs(run_id, list(inputs))
            return run_id

    def resume_run(self, run_id: str) -> None:
        with store_errors(self.uri):
            self.client.update_run(run_id, status="RUNNING")

    def end_run(
        self,
        run_id: str,
        status: str = "FINISHED",
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        artifacts: list[tuple[str | Path, str]] = (),
    ) -> None:
        """Log final metrics, tags and artifacts, then end the run."""
        from mlflow.entities import Metric, RunTag

        with store_errors(self.uri):
            now = int(time.time() * 1000)  # a resumed study's parent logs its summary again, later
            ms = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
            ts = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
            self.client.log_batch(run_id, metrics=ms, tags=ts)
            for path, folder in artifacts:
                self.client.log_artifact(run_id, str(path), folder)
            self.client.set_terminated(run_id, status=status)

    # -- reads, for reconcile
    def find_runs(self, experiment_id: str, tags: Mapping[str, str]) -> list:
        """Active runs of an experiment whose tags equal `tags`, oldest first."""
        clauses = " and ".join(f"tags.`{k}` = {_quote(v)}" for k, v in tags.items())
        with store_errors(self.uri):
            runs = self.client.search_runs([experiment_id], clauses, max_results=50_000)
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def delete_run(self, run_id: str) -> None:
        with store_errors(self.uri):
            self.client.delete_run(run_id)

    def set_status(self, run_id: str, status: str) -> None:
        with store_errors(self.uri):
            self.client.set_terminated(run_id, status=status)

    def close(self) -> None:
        """Drain the writer and stop it (raises the first failed write)."""
        self.writer.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
