"""MLflow tracking: the only package that imports mlflow (imported lazily, where it is used).

uri          the default store; passwords masked in anything printed
environment  tags that say where a run ran and on which data
client       an MlflowClient checked reachable; store errors as one line
writer       Tracker: runs written in order by a writer process, and stale-run repair
queries      runs as DataFrames, experiment names
server       `mlflow server` on PostgreSQL for many workers
"""

from logreg.tracking.client import check_tracking_uri, make_client, store_errors
from logreg.tracking.environment import cpu_name, dataset_tags, environment_tags, git_commit
from logreg.tracking.queries import (
    check_stores,
    experiment_names,
    metric_histories,
    search_runs,
    stale_running_runs,
)
from logreg.tracking.schema import schema_guard
from logreg.tracking.uri import DEFAULT_TRACKING_URI, mask_uri, resolve_tracking_uri
from logreg.tracking.writer import RunHandle, Tracker

__all__ = [
    "DEFAULT_TRACKING_URI",
    "RunHandle",
    "Tracker",
    "check_stores",
    "check_tracking_uri",
    "cpu_name",
    "dataset_tags",
    "environment_tags",
    "experiment_names",
    "git_commit",
    "make_client",
    "mask_uri",
    "metric_histories",
    "resolve_tracking_uri",
    "search_runs",
    "stale_running_runs",
    "schema_guard",
    "store_errors",
]
