"""Champion models in MLflow's Model Registry: a dataset's best trial as a pyfunc model.

`mlflow.pyfunc.load_model("models:/<experiment>-<dataset>@champion").predict(rows)` takes raw
feature rows (an array or a DataFrame, float64, one column per feature) and returns class labels (logistic,
mlp) or numbers (linear); `predict(rows, params={"output": "proba"})` returns the class
probabilities. The model is a pyfunc with this module as its loader (`loader_module`): it carries
the logreg package (code_paths) and the model file written by --save-model, and nothing pickled.
The sweep moves the `champion` alias only when its trial is better (tune.champions).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

import numpy as np

ALIAS = "champion"
OBJECTIVE_TAG = "logreg.objective_value"


class ChampionModel:
    """What pyfunc's predict calls: a logreg FittedModel on raw feature rows."""

    def __init__(self, fitted):
        self.model = fitted

    def predict(self, model_input, params=None):
        rows = np.asarray(model_input, dtype=np.float64)
        if (params or {}).get("output") == "proba":
            return self.model.predict_proba(rows)
        return self.model.predict(rows)


def _load_pyfunc(data_path: str) -> ChampionModel:
    """pyfunc's loader_module entry point: the model file logged as the model's data."""
    from logreg.model import load_model

    return ChampionModel(load_model(data_path))


def registered_name(experiment: str, dataset: str) -> str:
    """`<experiment>-<dataset>`, with characters a model name should not hold as '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{experiment}-{dataset}")


@contextlib.contextmanager
def _quiet():
    """MLflow's progress bars and registry messages are not the sweep's output."""
    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    logger = logging.getLogger("mlflow")
    level, logger.level = logger.level, logging.ERROR
    try:
        yield
    finally:
        logger.setLevel(level)
        if before is None:
            del os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"]
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before


def log_champion(uri: str, run_id: str, model_file: Path, fitted, example):
    """Log the model file as a pyfunc model in `run_id` of the store `uri`, with a signature and
    an input example."""
    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(uri)  # pyfunc.log_model writes through MLflow's fluent API
    client = mlflow.MlflowClient(uri)
    ended = client.get_run(run_id).info
    signature = infer_signature(example, fitted.predict(example), params={"output": "label"})
    with _quiet(), mlflow.start_run(run_id=run_id, nested=True, log_system_metrics=False):
        info = mlflow.pyfunc.log_model(
            name="champion",
            loader_module=__name__,
            data_path=str(model_file),
            code_paths=[str(Path(__file__).resolve().parents[1])],
            signature=signature,
            input_example=example,
            pip_requirements=["numpy", "torch", f"mlflow=={mlflow.__version__}"],
        )
    # The run's duration stays its study's, not the sweep's. Only an ended run's: a resumed study's
    # parent reads RUNNING with its earlier end time until its end is written.
    if ended.end_time is not None and ended.status in ("FINISHED", "FAILED", "KILLED"):
        client.set_terminated(run_id, ended.status, end_time=ended.end_time)
    return info


def champion_value(client, name: str) -> float | None:
    """The objective value of `name`'s current champion; None when it has none."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:  # no such model, or no champion yet
        return None
    value = float(version.tags.get(OBJECTIVE_TAG, "nan"))
    return value if np.isfinite(value) else None


def register_champion(client, info, run_id: str, name: str, value: float) -> str:
    """Register the logged model `info` as a new version of `name` and point the alias at it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {OBJECTIVE_TAG: str(value)}
    version = client.create_model_version(
        name, info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
    ).version
    client.set_registered_model_alias(name, ALIAS, version)
    return version
