"""MLflow tracking: the only package that imports mlflow (imported lazily, where it is used).

uri          the default store; passwords masked in anything printed
client       an MlflowClient checked reachable; store errors as one line
runs         RunRecord and write_run: a run written whole, by a RunWriter off the main process
tracker      Tracker: one store (experiments, parent runs, reads) with its RunWriter
environment  tags that say where a run ran and on which data
queries      runs as DataFrames, experiment names
schema       a fresh database's schema created once, however many processes open it
server       `mlflow server` on PostgreSQL for many workers
"""

from logreg.tracking.client import check_tracking_uri, make_client, store_errors
from logreg.tracking.environment import cpu_name, dataset_inputs, dataset_tags, environment_tags, git_commit
from logreg.tracking.models import champion_value, log_champion, register_champion, registered_name
from logreg.tracking.queries import (
    check_stores,
    experiment_names,
    metric_histories,
    search_runs,
    sweep_experiment,
)
from logreg.tracking.runs import MODES, RunRecord, RunWriter, exit_with_parent, write_run
from logreg.tracking.schema import schema_guard
from logreg.tracking.tracker import Tracker
from logreg.tracking.uri import DEFAULT_TRACKING_URI, mask_uri, resolve_tracking_uri

__all__ = [
    "DEFAULT_TRACKING_URI",
    "MODES",
    "RunRecord",
    "RunWriter",
    "Tracker",
    "check_stores",
    "check_tracking_uri",
    "cpu_name",
    "dataset_inputs",
    "dataset_tags",
    "environment_tags",
    "exit_with_parent",
    "experiment_names",
    "git_commit",
    "make_client",
    "mask_uri",
    "metric_histories",
    "champion_value",
    "log_champion",
    "register_champion",
    "registered_name",
    "resolve_tracking_uri",
    "schema_guard",
    "search_runs",
    "store_errors",
    "sweep_experiment",
    "write_run",
]
