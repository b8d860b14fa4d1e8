"""What a sweep leaves in MLflow besides runs: each run's data as dataset inputs, and each
dataset's champion model in the Model Registry (a pyfunc loaded by `models:/<name>@champion`)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from logreg import TrainConfig, load_split, train
from logreg.experiment import load_experiment
from logreg.model import save_model
from logreg.tracking import log_champion, register_champion
from logreg.tracking.models import OBJECTIVE_TAG
from logreg.tune import SweepOptions, run_sweep
from logreg.tune.champions import register_champions
from tests.processes import runs_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two datasets, two cells each: a small sweep on a real SQLite store."""
    d = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{d}/mlflow.db"
    exp = load_experiment(ROOT / "experiments" / "smoke.toml").override(
        n_trials=3, impls=["numpy"], optimizers=["sgd", "adam"]
    )
    opts = SweepOptions(
        storage=str(d / "journal.log"), tracking_uri=uri, progress=False, plots=False, results_dir=None
    )
    summary = run_sweep(exp, opts)
    mlflow.set_tracking_uri(uri)
    yield {"uri": uri, "exp": exp, "summary": summary, "dir": d}
    mlflow.set_tracking_uri(None)


def _by_context(run) -> dict[str, object]:
    return {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
        for i in run.inputs.dataset_inputs
    }


@pytest.mark.parametrize("kind", ["trial", "study"])
def test_trial_and_parent_runs_carry_their_data_as_dataset_inputs(sweep, kind):
    runs = runs_of(sweep["uri"], "sweep/smoke")
    row = runs[runs["tags.logreg.run_kind"] == kind].iloc[0]
    datasets = _by_context(MlflowClient(sweep["uri"]).get_run(row["run_id"]))
    split = load_split(TrainConfig(dataset=row["params.dataset"]))
    assert {c: d.digest for c, d in datasets.items()} == {
        "training": split.part_digests["train"],
        "validation": split.part_digests["validation"],
        "testing": split.part_digests["test"],
    }
    train_set = datasets["training"]
    assert train_set.name == split.name and train_set.source_type == "logreg"
    assert json.loads(train_set.source)["dataset"] == split.name
    assert json.loads(train_set.profile)["features_shape"] == list(split.X_train.shape)
    features = json.loads(json.loads(train_set.schema)["mlflow_tensorspec"]["features"])
    assert features[0]["tensor-spec"]["shape"] == [-1, split.X_train.shape[1]]


def test_the_digest_covers_every_row():
    # MLflow's own digest reads the first 10,000 rows; ours changes with the last one.
    split = load_split(TrainConfig(dataset="synthetic:n=40000,d=3"))
    X = split.X_train.copy()
    X[-1, -1] += 1.0
    changed = dataclasses.replace(split, X_train=X)
    assert len(X) > 10_000 and changed.part_digests["train"] != split.part_digests["train"]
    assert changed.part_digests["test"] == split.part_digests["test"]


def test_each_dataset_has_one_champion_its_best_cell(sweep):
    client, exp = MlflowClient(sweep["uri"]), sweep["exp"]
    runs = runs_of(sweep["uri"], "sweep/smoke")
    parents = runs[runs["tags.logreg.run_kind"] == "study"]
    for dataset in exp.datasets:
        version = client.get_model_version_by_alias(f"smoke-{dataset}", "champion")
        mine = parents[parents["params.dataset"] == dataset]
        best = mine.loc[mine["metrics.best_value"].idxmin()]
        assert version.run_id == best["run_id"]
        assert float(version.tags[OBJECTIVE_TAG]) == pytest.approx(best["metrics.best_value"])
        model = mlflow.pyfunc.load_model(f"models:/smoke-{dataset}@champion")
        n_features = load_split(TrainConfig(dataset=dataset)).X_train.shape[1]
        assert tuple(model.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, n_features)


def _cell(parent: str, value: float, model_file=None, result=None):
    """What register_champions reads of a finalized cell."""
    return types.SimpleNamespace(
        best=(value, model_file, result),
        parent=parent,
        cell=types.SimpleNamespace(dataset="iris"),
        cell_label="iris/numpy/adam",
    )


def test_a_worse_sweep_keeps_the_champion_and_a_better_one_moves_it(sweep, tmp_path):
    client = MlflowClient(sweep["uri"])
    tracker = types.SimpleNamespace(uri=sweep["uri"], client=client)
    exp = types.SimpleNamespace(name="moves", direction="minimize", objective="val_loss")
    parent = client.create_run(client.get_experiment_by_name("sweep/smoke").experiment_id).info.run_id
    result = train(TrainConfig(dataset="iris", epochs=5))
    model_file = save_model(result, tmp_path / "model.pt")
    [line] = register_champions(exp, [_cell(parent, 0.2, model_file, result)], tracker)
    first = client.get_model_version_by_alias("moves-iris", "champion")
    assert int(first.version) == 1 and "version 1" in line
    [line] = register_champions(exp, [_cell(parent, 0.3)], tracker)  # worse: nothing is logged
    assert (
        "kept" in line
        and client.get_model_version_by_alias("moves-iris", "champion").version == first.version
    )
    [line] = register_champions(exp, [_cell(parent, 0.1, model_file, result)], tracker)
    moved = client.get_model_version_by_alias("moves-iris", "champion")
    assert int(moved.version) == 2 and "version 2" in line
    assert float(moved.tags[OBJECTIVE_TAG]) == pytest.approx(0.1)


@pytest.mark.parametrize(("model", "dataset"), [("linear", "diabetes"), ("mlp", "iris")])
def test_linear_champions_give_numbers_and_classifiers_labels_and_probabilities(
    sweep, tmp_path, model, dataset
):
    result = train(TrainConfig(dataset=dataset, model=model, epochs=20))
    client = MlflowClient(sweep["uri"])
    run = client.create_run(client.get_experiment_by_name("sweep/smoke").experiment_id)
    split = result.split
    raw = split.X_test.astype("float64") * split.scale + split.mean
    info = log_champion(
        sweep["uri"], run.info.run_id, save_model(result, tmp_path / "m.pt"), result.model, raw[:5]
    )
    name = f"test-{model}"
    register_champion(client, info, run.info.run_id, name, 0.5)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    got = loaded.predict(raw)
    np.testing.assert_array_equal(got, result.model.predict(raw))
    if model == "linear":
        assert got.dtype.kind == "f"
    else:
        assert set(got) <= set(split.class_names)
        proba = loaded.predict(raw, params={"output": "proba"})
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert (np.asarray(split.class_names)[proba.argmax(axis=1)] == got).all()


LOAD = """
import json, sys, mlflow, numpy as np
from logreg import TrainConfig, load_split
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/smoke-iris@champion")
split = load_split(TrainConfig(dataset="iris"))
raw = split.X_test.astype("float64") * split.scale + split.mean
labels = np.asarray(split.class_names)[split.y_test]
print(json.dumps(float((model.predict(raw) == labels).mean())))
"""


@pytest.mark.slow
def test_the_champion_loads_in_a_fresh_process_and_reproduces_its_test_accuracy(sweep):
    client = MlflowClient(sweep["uri"])
    version = client.get_model_version_by_alias("smoke-iris", "champion")
    expected = client.get_run(version.run_id).data.metrics["best_test_accuracy"]
    out = subprocess.run(
        [sys.executable, "-c", LOAD, sweep["uri"]],
        capture_output=True,
        text=True,
        check=True,
        cwd=sweep["dir"],
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == pytest.approx(expected)
