"""The model axis and schedules in sweeps: cells, study names, MLflow params and the summary."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from logreg.errors import LogregError
from logreg.experiment import Cell, load_experiment, validate
from logreg.tune import SweepOptions, run_sweep

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "name": "models",
    "datasets": ["moons", "line"],
    "models": ["logistic", "mlp", "linear"],
    "impls": ["numpy", "module"],
    "optimizers": ["adam"],
    "n_trials": 2,
    "epochs": 10,
    "eval_every": 5,
    "pruner": {"name": "none"},
    "search": {
        "adam": {
            "lr": [1e-3, 0.1],
            "schedule": ["cosine", "exponential"],
            "gamma": [0.8, 0.95],
            "warmup_epochs": [0, 2],
            "hidden": [4, 8],
            "activation": ["relu", "tanh"],
        }
    },
}


def test_cells_pair_each_dataset_with_the_models_that_suit_it():
    exp = validate(TINY)
    assert exp.cells() == [
        Cell("moons", impl, "adam", "cpu", model)
        for model in ("logistic", "mlp")
        for impl in ("numpy", "module")
    ] + [Cell("line", impl, "adam", "cpu", "linear") for impl in ("numpy", "module")]
    # Logistic studies keep the names they had before the model axis (so old studies resume).
    assert exp.study_name(Cell("moons", "numpy", "adam", "cpu")) == "models/moons/numpy/adam/cpu"
    assert exp.study_name(("moons", "numpy", "adam", "cpu")) == "models/moons/numpy/adam/cpu"
    assert exp.study_name(Cell("moons", "numpy", "adam", "cpu", "mlp")) == "models/moons/mlp/numpy/adam/cpu"


def test_committed_experiment_files_load():
    for name in ("default", "smoke", "tutorials"):
        exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
        assert exp.cells()
    tutorials = load_experiment(ROOT / "experiments" / "tutorials.toml")
    assert {c.model for c in tutorials.cells()} == {"logistic", "mlp", "linear"}
    assert all(c.model == "logistic" for c in load_experiment(ROOT / "experiments" / "default.toml").cells())


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"models": ["svm"]}, r"The 'models' parameter must be a list of logistic, mlp, linear"),
        (
            {"models": ["linear"]},
            r"Dataset 'moons' suits none of models \['linear'\]: add 'logistic' or 'mlp'",
        ),
        (
            {"models": ["logistic"]},
            r"Dataset 'line' suits none of models \['logistic'\]: add 'linear' to models",
        ),
        (
            {"objective": "val_accuracy"},
            r"objective 'val_accuracy' does not apply to model 'linear'\. Use val_loss",
        ),
        ({"objective": "val_r2"}, r"objective 'val_r2' applies to model 'linear' only"),
        (
            {"search": {"adam": {"schedule": ["linear"]}}},
            r"'search\.adam\.schedule' must be a non-empty list of choices: names from constant, step",
        ),
        (
            {"search": {"adam": {"hidden": [0]}}},
            r"'search\.adam\.hidden' must be a non-empty list of choices: integers >= 1",
        ),
        ({"search": {"adam": {"gamma": [0, 0.5]}}}, r"'search\.adam\.gamma' must be \[low, high\] numbers"),
        (
            {"search": {"adam": {"warmup_epochs": [0, 10]}}},
            r"'search\.adam\.warmup_epochs' must stay below epochs \(10\)",
        ),
        (
            {"search": {"adam": {"decay": [0.1, 0.2]}}},
            r"Unknown key 'search\.adam\.decay'\. Allowed keys for adam:",
        ),
    ],
)
def test_bad_model_and_schedule_settings(changes, match):
    with pytest.raises(LogregError, match=match):
        validate({**TINY, **changes})


def test_sweep_over_models_and_schedules(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = str(tmp_path / "journal.log")
    exp = validate(TINY)
    opts = SweepOptions(
        storage=storage, tracking_uri=uri, progress=False, results_dir=tmp_path / "results", plots=False
    )
    summary = run_sweep(exp, opts)
    assert list(summary["model"]) == [c.model for c in exp.cells()]
    linear = summary[summary["model"] == "linear"]
    # The linear rows carry R^2 beside the closed form and scikit-learn, which agree on the toy.
    assert linear["lstsq_test_r2"].tolist() == pytest.approx([1.0, 1.0])
    assert linear["sklearn_test_r2"].tolist() == pytest.approx([1.0, 1.0])
    assert linear["test_r2"].notna().all() and linear["test_accuracy"].isna().all()
    assert summary[summary["model"] != "linear"]["test_accuracy"].between(0.0, 1.0).all()

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["sweep/models"], max_results=1000)
    trials = runs[runs["tags.logreg.run_kind"] == "trial"]
    parents = runs[runs["tags.logreg.run_kind"] == "study"]
    assert set(parents["params.model"]) == {"logistic", "mlp", "linear"}
    for p in ("model", "hidden", "activation", "schedule", "gamma", "step_size", "warmup_epochs"):
        assert trials[f"params.{p}"].notna().all(), p
    assert set(trials["params.schedule"]) <= {"cosine", "exponential"}
    mlp = trials[trials["params.model"] == "mlp"]
    assert set(mlp["params.hidden"]) <= {"4", "8"} and len(mlp)
    assert mlp["tags.mlflow.runName"].str.startswith("moons/mlp/").all()
    lin = trials[trials["params.model"] == "linear"]
    for m in ("test_mse", "test_rmse", "test_r2", "val_r2"):
        assert lin[f"metrics.{m}"].notna().all(), m
    # The learning rate of every evaluated epoch is a per-step metric.
    run = trials.iloc[0]
    steps = MlflowClient(uri).get_metric_history(run["run_id"], "lr")
    assert [s.step for s in steps] == [5, 10]
    assert steps[0].value <= float(run["params.lr"]) + 1e-12
    st = optuna.load_study(
        study_name="models/line/linear/numpy/adam/cpu",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage)),
    )
    assert len(st.trials) == 2
