"""Reading stores: runs as pandas DataFrames, experiment names, metric histories."""

from __future__ import annotations

from logreg.tracking.client import make_client
from logreg.tracking.uri import resolve_tracking_uri


def check_stores(uris) -> None:
    """Every store to be read exists and answers (one line naming the first that does not)."""
    for uri in uris:
        make_client(uri, must_exist=True)


def search_runs(uri: str | None, experiment_names: list[str], filter_string: str = ""):
    """Runs of the named experiments in one store as a pandas DataFrame ('' when none)."""
    import mlflow
    import pandas as pd

    client = make_client(uri, must_exist=True)
    ids = [e.experiment_id for n in experiment_names if (e := client.get_experiment_by_name(n)) is not None]
    if not ids:
        return pd.DataFrame()
    mlflow.set_tracking_uri(resolve_tracking_uri(uri))
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, max_results=100_000)


def experiment_names(uri: str | None) -> list[str]:
    """Names of the active experiments in one store (for `logreg compare`)."""
    client = make_client(uri, must_exist=True)
    return [e.name for e in client.search_experiments(max_results=1000)]


def metric_histories(uri: str | None, run_ids, keys) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per run id and metric key: its logged values as (step, value), in step order."""
    client = make_client(uri, must_exist=True)
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run_id in run_ids:
        out[run_id] = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys
        }
    return out


def sweep_experiment(uri: str | None, name: str | None = None) -> tuple[str, str] | None:
    """(id, name) of the named sweep experiment ('default' or 'sweep/default'), else of the one
    written last; None when the store holds none. Tags it for the UI's model-training view."""
    from logreg.errors import LogregError
    from logreg.tracking.tracker import EXPERIMENT_KIND

    client = make_client(uri, must_exist=True)
    experiments = client.search_experiments(max_results=1000)
    if name is not None:
        wanted = {name, f"sweep/{name}"}
        found = [e for e in experiments if e.name in wanted]
        if not found:
            names = ", ".join(e.name for e in experiments if e.name != "Default") or "none"
            raise LogregError(f"No experiment {name!r} in this store. Its experiments: {names}.")
    else:
        found = sorted(
            (e for e in experiments if e.name.startswith("sweep/")), key=lambda e: -e.last_update_time
        )
    if not found:
        return None
    for key, value in EXPERIMENT_KIND.items():
        client.set_experiment_tag(found[0].experiment_id, key, value)
    return found[0].experiment_id, found[0].name
