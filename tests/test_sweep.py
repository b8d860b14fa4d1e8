"""Sweeps end to end on real stores: a temporary SQLite MLflow store and Optuna journal/SQLite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from logreg.errors import LogregError
from logreg.experiment import load_experiment, validate
from logreg.model import load_model
from logreg.tune import SweepOptions, run_name, run_sweep
from logreg.tune import study as st
from logreg.tune.trial import run_cell
from tests.helpers import free_port, start_mlflow_server
from tests.processes import is_pending, runs_of, stop_mid_trial, wait_for

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.toml"

TRIAL_PARAMS = [
    "dataset",
    "impl",
    "optimizer",
    "lr",
    "momentum",
    "betas",
    "eps",
    "weight_decay",
    "epochs",
    "batch_size",
    "device",
    "dtype",
    "seed",
    "test_size",
    "eval_every",
    "torch_threads",
    "compile",
]
TRIAL_METRICS = [
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "test_roc_auc",
    "fit_seconds",
    "epoch_seconds_median",
    "samples_per_second",
]
TRIAL_TAGS = [
    "logreg.trial_number",
    "logreg.trial_state",
    "logreg.device_kind",
    "logreg.device_name",
    "logreg.host",
    "logreg.torch_version",
    "logreg.numpy_version",
    "logreg.mlflow_version",
    "logreg.optuna_version",
    "logreg.git_commit",
    "logreg.dataset",
    "logreg.dataset_shape",
    "logreg.dataset_digest",
    "logreg.study",
    "mlflow.parentRunId",
]


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory):
    """One SQLite MLflow store for the module (creating a store's schema costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory, shared_uri):
    d = tmp_path_factory.mktemp("sweep")
    uri = shared_uri
    storage = str(d / "optuna-journal.log")
    exp = load_experiment(SMOKE).override(n_trials=3)
    opts = SweepOptions(storage=storage, tracking_uri=uri, progress=False, results_dir=d / "results")
    summary = run_sweep(exp, opts)
    return {"dir": d, "uri": uri, "storage": storage, "exp": exp, "summary": summary}


def test_run_counts_and_parent_child_structure(smoke_sweep):
    exp, runs = smoke_sweep["exp"], runs_of(smoke_sweep["uri"], "sweep/smoke")
    parents = runs[runs["tags.logreg.run_kind"] == "study"]
    children = runs[runs["tags.logreg.run_kind"] == "trial"]
    assert len(parents) == len(exp.cells()) == 8
    assert set(parents["tags.logreg.study"]) == {exp.study_name(c) for c in exp.cells()}
    # One child per Optuna trial; every child points at its own study's parent.
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(smoke_sweep["storage"])
    )
    n_trials = 0
    for cell in exp.cells():
        study = optuna.load_study(study_name=exp.study_name(cell), storage=storage)
        n_trials += len(study.trials)
        assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 3
    assert len(children) == n_trials
    parent_of = dict(zip(parents["tags.logreg.study"], parents["run_id"], strict=True))
    for _, child in children.iterrows():
        assert child["tags.mlflow.parentRunId"] == parent_of[child["tags.logreg.study"]]
    assert set(runs["status"]) == {"FINISHED"}  # nothing left RUNNING


def test_documented_params_metrics_tags(smoke_sweep):
    runs = runs_of(smoke_sweep["uri"], "sweep/smoke")
    done = runs[(runs["tags.logreg.run_kind"] == "trial") & (runs["tags.logreg.trial_state"] == "COMPLETE")]
    assert len(done) > 0
    for p in TRIAL_PARAMS:
        assert done[f"params.{p}"].notna().all(), p
    for m in TRIAL_METRICS:
        assert done[f"metrics.{m}"].notna().all(), m
    for t in TRIAL_TAGS:
        assert done[f"tags.{t}"].notna().all(), t
    # SweepOptions.torch_threads (1 by default) is every trial's config and the count it ran with.
    assert (done["params.torch_threads"] == "1").all() and (done["params.compile"] == "False").all()
    torch_trials = done[done["params.impl"] != "numpy"]
    assert len(torch_trials) > 0 and (torch_trials["metrics.torch_threads"] == 1).all()
    child = done.iloc[0]
    assert child["tags.mlflow.runName"] == run_name(
        (child["params.dataset"], child["params.impl"], child["params.optimizer"], "cpu"),
        int(child["tags.logreg.trial_number"]),
    )
    # One scheme for parents and children: digits/module/adam and digits/module/adam/7.
    name = f"{child['params.dataset']}/{child['params.impl']}/{child['params.optimizer']}"
    assert child["tags.mlflow.runName"] == f"{name}/{child['tags.logreg.trial_number']}"
    parent = runs[runs["run_id"] == child["tags.mlflow.parentRunId"]].iloc[0]
    assert parent["tags.mlflow.runName"] == name
    # Per-epoch history with steps: every eval_every (5) epochs up to epochs (20).
    hist = MlflowClient(smoke_sweep["uri"]).get_metric_history(child["run_id"], "val_loss")
    assert [m.step for m in hist] == [5, 10, 15, 20]


def test_best_trial_agrees_between_optuna_and_mlflow(smoke_sweep):
    exp, runs = smoke_sweep["exp"], runs_of(smoke_sweep["uri"], "sweep/smoke")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(smoke_sweep["storage"])
    )
    for cell in exp.cells():
        name = exp.study_name(cell)
        study = optuna.load_study(study_name=name, storage=storage)
        parent = runs[(runs["tags.logreg.study"] == name) & (runs["tags.logreg.run_kind"] == "study")].iloc[0]
        assert int(parent["tags.best_trial_number"]) == study.best_trial.number
        # Each trial says which process ran it: this one (the sweep ran in-process).
        assert {t.user_attrs["worker"] for t in study.trials} == {f"{socket.gethostname()}:{os.getpid()}"}
        assert parent["metrics.best_value"] == pytest.approx(study.best_value, rel=1e-12)
        child = runs[
            (runs["tags.logreg.study"] == name)
            & (runs["tags.logreg.trial_number"] == str(study.best_trial.number))
        ].iloc[0]
        assert child["metrics.val_loss"] == pytest.approx(study.best_value, rel=1e-12)
        assert float(child["params.lr"]) == pytest.approx(study.best_params["lr"], rel=1e-12)


def test_study_artifacts_and_summary(smoke_sweep, tmp_path_factory):
    runs = runs_of(smoke_sweep["uri"], "sweep/smoke")
    client = MlflowClient(smoke_sweep["uri"])
    parents = runs[runs["tags.logreg.run_kind"] == "study"]
    for _, p in parents.iterrows():
        names = {Path(a.path).name for a in client.list_artifacts(p["run_id"], "plots")}
        assert {"optimization_history.png", "param_importances.png", "best_learning_curves.png"} <= names
        assert ("best_decision_boundary.png" in names) == p["tags.logreg.study"].startswith("smoke/blobs/")
        # The best trial's model, a state dict that loads with weights_only=True.
        model_dir = client.download_artifacts(p["run_id"], "model", str(tmp_path_factory.mktemp("model")))
        model = load_model(Path(model_dir) / "best_model.pt")
        assert len(model.class_names) == 2
    summary = pd.read_csv(smoke_sweep["dir"] / "results" / "smoke" / "summary.csv")
    assert len(summary) == 8
    assert {
        "best_val_loss",
        "test_accuracy",
        "sklearn_test_accuracy",
        "fit_seconds",
        "hyperparameters",
    } <= set(summary.columns)
    # scikit-learn's reference is computed on the same split: recompute it independently here.
    from sklearn.linear_model import LogisticRegression

    from logreg import TrainConfig, load_split

    for dataset, ref in summary.groupby("dataset")["sklearn_test_accuracy"].first().items():
        split = load_split(TrainConfig(dataset=dataset))
        sk = LogisticRegression(max_iter=5000).fit(split.X_train, split.y_train)
        assert ref == pytest.approx(sk.score(split.X_test, split.y_test))
    assert summary["test_accuracy"].between(0.5, 1.0).all()
    # The file opens with the headline the sweep prints, then the table.
    text = (smoke_sweep["dir"] / "results" / "smoke" / "summary.md").read_text()
    assert text.startswith("8 cells on 2 datasets") and "- gap to scikit-learn: worst" in text
    assert "\n| dataset | model | impl |" in text


def test_resume_adds_only_missing_trials(smoke_sweep):
    exp = smoke_sweep["exp"].override(n_trials=4)
    opts = SweepOptions(
        storage=smoke_sweep["storage"],
        tracking_uri=smoke_sweep["uri"],
        progress=False,
        plots=False,
        results_dir=None,
    )
    before = runs_of(smoke_sweep["uri"], "sweep/smoke")
    run_sweep(exp, opts)
    after = runs_of(smoke_sweep["uri"], "sweep/smoke")
    # Parents are reused, not duplicated; each study finished exactly one more trial.
    assert (after["tags.logreg.run_kind"] == "study").sum() == 8
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(smoke_sweep["storage"])
    )
    for cell in exp.cells():
        study = optuna.load_study(study_name=exp.study_name(cell), storage=storage)
        assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 4
    assert len(after) - len(before) >= 8
    # Running again with everything done adds nothing.
    run_sweep(exp, opts)
    assert len(runs_of(smoke_sweep["uri"], "sweep/smoke")) == len(after)


def _tiny(tmp_path, name="tiny", **extra):
    raw = {
        "name": name,
        "datasets": ["iris"],
        "impls": ["numpy"],
        "optimizers": ["sgd"],
        "n_trials": 4,
        "epochs": 10,
        "eval_every": 5,
        "pruner": {"name": "none"},
        **extra,
    }
    return validate(raw, str(tmp_path / "tiny.toml"))


def _sweep_runs(exp, tmp_path, uri: str, kinds=("trial",), **options) -> pd.DataFrame:
    """Run `exp` quietly (journal in tmp_path, MLflow at uri); its runs of the given kinds."""
    opts = SweepOptions(
        storage=str(tmp_path / "j.log"), tracking_uri=uri, progress=False, plots=False,
        results_dir=None, **options,
    )  # fmt: skip
    run_sweep(exp, opts)
    runs = runs_of(uri, exp.mlflow_experiment)
    return runs[runs["tags.logreg.run_kind"].isin(kinds)]


def test_a_study_whose_trials_ran_but_whose_end_did_not_is_finalized_by_the_rerun(tmp_path, shared_uri):
    # By construction: every trial finished, but the parent run is RUNNING without its summary, as a
    # multi-worker sweep leaves it when a worker died (it exits before finalizing). The re-run has
    # no trial to run; it still ends the parent with its best trial's metrics.
    exp = _tiny(tmp_path, "unended")
    parent = _sweep_runs(exp, tmp_path, shared_uri, kinds=("study",)).iloc[0]
    client = MlflowClient(shared_uri)
    client.update_run(parent["run_id"], status="RUNNING")
    client.delete_tag(parent["run_id"], "best_trial_number")
    trials_before = len(_sweep_runs(exp, tmp_path, shared_uri))  # the re-run
    ended = client.get_run(parent["run_id"])
    assert ended.info.status == "FINISHED"
    assert ended.data.tags["best_trial_number"] == parent["tags.best_trial_number"]
    assert len(_sweep_runs(exp, tmp_path, shared_uri)) == trials_before == 4  # no trial was added


def test_divergence_is_failed_with_reason_and_never_best(tmp_path, shared_uri):
    exp = _tiny(tmp_path, "diverge", datasets=["digits"], search={"sgd": {"lr": [1e5, 1e6]}})
    uri = shared_uri
    storage = str(tmp_path / "j.log")
    summary = run_sweep(
        exp, SweepOptions(storage=storage, tracking_uri=uri, progress=False, plots=False, results_dir=None)
    )
    study = optuna.load_study(
        study_name="diverge/digits/numpy/sgd/cpu",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage)),
    )
    assert len(study.trials) == 4
    assert all(t.state.name == "FAIL" for t in study.trials)
    assert all(t.user_attrs["fail_reason"].startswith("diverged") for t in study.trials)
    runs = runs_of(uri, "sweep/diverge")
    trials = runs[runs["tags.logreg.run_kind"] == "trial"]
    assert set(trials["status"]) == {"FAILED"}
    assert trials["tags.logreg.error"].str.contains("diverged").all()
    assert summary["test_accuracy"].isna().all()  # no best trial


def test_a_trial_that_raises_fails_and_the_sweep_goes_on(tmp_path, monkeypatch, shared_uri):
    from logreg.tune import trial as trial_module

    real_train = trial_module.train
    calls = []

    def flaky(config, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom in trial")
        return real_train(config, **kw)

    monkeypatch.setattr(trial_module, "train", flaky)
    exp = _tiny(tmp_path, "raises")
    trials = _sweep_runs(exp, tmp_path, shared_uri)
    failed = trials[trials["status"] == "FAILED"]
    assert len(failed) == 1 and "boom in trial" in failed.iloc[0]["tags.logreg.error"]
    assert (trials["status"] == "FINISHED").sum() == 4  # the failure was not counted: 4 finished


def test_same_seed_same_suggestions(tmp_path):
    def params(sub):
        exp = _tiny(tmp_path / sub, sampler={"name": "tpe", "n_startup_trials": 2}, n_trials=5)
        (tmp_path / sub).mkdir()
        storage = str(tmp_path / sub / "j.log")
        run_sweep(exp, SweepOptions(storage=storage, track=False, progress=False, results_dir=None))
        study = optuna.load_study(
            study_name="tiny/iris/numpy/sgd/cpu",
            storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage)),
        )
        return [t.params for t in study.trials]

    first, second = params("a"), params("b")
    assert first == second and len(first) == 5


def test_sqlite_optuna_storage_and_load_study(tmp_path):
    exp = _tiny(tmp_path, n_trials=2)
    url = f"sqlite:///{tmp_path}/optuna.db"
    run_sweep(exp, SweepOptions(storage=url, track=False, progress=False, results_dir=None))
    study = optuna.load_study(study_name="tiny/iris/numpy/sgd/cpu", storage=url)
    assert len(study.trials) == 2 and study.best_trial is not None


SLOW_EXP = """
name = "slow"
datasets = ["synthetic:n=100000,d=50"]
impls = ["numpy"]
optimizers = ["sgd"]
n_trials = 6
epochs = 100
eval_every = 5
[pruner]
name = "none"
"""


@pytest.mark.slow
def test_ctrl_c_ends_cleanly_and_rerun_resumes(tmp_path):
    (tmp_path / "slow.toml").write_text(SLOW_EXP)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [
        sys.executable,
        "-m",
        "logreg",
        "sweep",
        str(tmp_path / "slow.toml"),
        "--no-progress",
        "--no-plots",
        "--storage",
        str(tmp_path / "j.log"),
        "--tracking-uri",
        uri,
        "--results-dir",
        str(tmp_path / "results"),
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log"))
    )
    # The sweep stopped while a trial trains; Ctrl-C's SIGINT waits (pending) until it goes on,
    # so it lands mid-trial by construction (see stop_mid_trial).
    study_name = "slow/synthetic:n=100000,d=50/numpy/sgd/cpu"
    _, inflight = stop_mid_trial([proc.pid], str(tmp_path / "j.log"), study_name, 120, proc)
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: is_pending(proc.pid, signal.SIGINT), 30, "the SIGINT to wait")
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    study = optuna.load_study(study_name=study_name, storage=storage)
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and "COMPLETE" in states
    # The trial in flight stops after its epoch (FAIL, its run KILLED), or completes if it was
    # past its last one (computing its final metrics).
    assert states[inflight.number] in ("FAIL", "COMPLETE")
    runs = runs_of(uri, "sweep/slow")
    assert "RUNNING" not in set(runs["status"])  # none left RUNNING
    mine = runs[runs["tags.logreg.trial_number"] == str(inflight.number)]
    want = ("KILLED", "INTERRUPTED") if states[inflight.number] == "FAIL" else ("FINISHED", "COMPLETE")
    assert list(zip(mine["status"], mine["tags.logreg.trial_state"], strict=True)) == [want]
    completed_before = states.count("COMPLETE")
    # Re-running resumes: only the missing trials run.
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 6
    assert len(study.trials) == 6 + states.count("FAIL")
    assert completed_before < 6


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('name = "x"\ndatasets = ["iris"]\nbogus = 1\n', "Unknown key 'bogus'. Allowed keys: name, datasets"),
        ('name = "x"\ndatasets = ["nope"]\n', "Unknown dataset 'nope'. Available datasets: hours"),
        ('name = "x"\ndatasets = ["no/such.svm"]\n', r"File 'no/such\.svm' not found\. Check the path"),
        (
            'name = "x"\ndatasets = ["iris"]\nimpls = ["jax"]\n',
            "The 'impls' parameter must be a list of numpy, autograd, module. Got 'jax' instead",
        ),
        ('name = "x"\ndatasets = ["iris"]\nn_trials = 0\n', "The 'n_trials' parameter must be an int >= 1"),
        (
            'name = "x"\ndatasets = ["iris"]\n[pruner]\nname = "asha"\n',
            "The 'pruner.name' parameter must be one of median",
        ),
        ('name = "x"\ndatasets = ["iris"]\n[search.adam]\nlr = [0, 1]\n', "'search.adam.lr' must be"),
        (
            'name = "x"\ndatasets = ["iris"]\n[search.sgd]\nmomentum = [0.5, 0.9]\n',
            "Unknown key 'search.sgd.momentum'",
        ),
        ('name = "x"\ndatasets = [iris\n', "not valid TOML"),
        ("", "is empty"),
    ],
)
def test_bad_experiment_files(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(LogregError, match=match):
        load_experiment(f)


@pytest.mark.slow
def test_bad_experiment_exits_2_with_one_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\ndatasets = ["iris"]\nbogus = 1\n')
    r = subprocess.run(
        [sys.executable, "-m", "logreg", "sweep", str(f)], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Unknown key 'bogus'" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "logreg", "sweep", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "not found" in r.stderr


@pytest.mark.slow
def test_sweep_against_a_real_mlflow_server(tmp_path):
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        exp = _tiny(tmp_path, n_trials=2)
        run_sweep(
            exp,
            SweepOptions(storage=str(tmp_path / "j.log"), tracking_uri=uri, progress=False, results_dir=None),
        )
        runs = runs_of(uri, "sweep/tiny")  # over HTTP
        assert (runs["tags.logreg.run_kind"] == "trial").sum() == 2
        assert (runs["tags.logreg.run_kind"] == "study").sum() == 1
        parent = runs[runs["tags.logreg.run_kind"] == "study"].iloc[0]
        arts = MlflowClient(uri).list_artifacts(parent["run_id"], "plots")
        assert any(a.path.endswith("optimization_history.png") for a in arts)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_optuna_dashboard_reads_the_default_storage(smoke_sweep):
    import json
    import urllib.request

    port = free_port()
    dash = subprocess.Popen(
        ["optuna-dashboard", smoke_sweep["storage"], "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.load(r)
                break
            except OSError:
                if time.time() > deadline or dash.poll() is not None:
                    pytest.fail("optuna-dashboard did not answer")
                time.sleep(0.3)
        names = {s["study_name"] for s in body["study_summaries"]}
        assert names == {smoke_sweep["exp"].study_name(c) for c in smoke_sweep["exp"].cells()}
    finally:
        dash.terminate()
        dash.wait(timeout=30)


def _one_cell(n_trials: int = 2):
    """blobs x numpy x sgd from smoke.toml, and an in-memory study and storage."""
    from logreg.tune.storage import open_storage

    one = {"datasets": ["blobs"], "impls": ["numpy"], "optimizers": ["sgd"]}
    exp = load_experiment(SMOKE).override(**one, n_trials=n_trials)
    (cell,) = exp.cells()
    store = open_storage(":memory:")
    return exp, cell, optuna.create_study(direction=exp.direction, storage=store.optuna), store


def test_a_config_that_cannot_train_stops_the_cell_with_one_error():
    # An override TrainConfig refuses (compile on numpy) fails the trial before training: it is
    # counted as the cell's error (so the loop ends), not retried for ever.
    exp, cell, study, store = _one_cell()
    with pytest.raises(
        LogregError, match=r"2 trials raised errors \(last: LogregError: The 'compile' parameter"
    ):
        run_cell(exp, cell, study, store, overrides={"compile": True})
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


def test_an_observer_that_raises_stops_the_cell_at_once():
    # Recording a trial (its MLflow write) that fails stops the cell with that error, after Optuna
    # kept the trial: the sweep is not left looping, and a re-run writes the run (reconcile).
    class Broken:
        def trial_ended(self, outcome):
            raise LogregError("the store broke")

    exp, cell, study, store = _one_cell()
    with pytest.raises(LogregError, match="the store broke"):
        run_cell(exp, cell, study, store, [Broken()])
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


@pytest.mark.parametrize("optimum", [True, False])
def test_no_optimum_logs_no_suboptimality(tmp_path, shared_uri, optimum):
    # sweep --no-optimum: no F* solved, nothing of it logged; by default every completed run says
    # how F* was found (iris's classes are separable at weight_decay 0: F* is NaN, with the reason).
    exp = _tiny(tmp_path, f"optimum-{optimum}", n_trials=2, repeats=2)
    runs = _sweep_runs(exp, tmp_path, shared_uri, kinds=("trial", "repeat"), optimum=optimum)
    assert len(runs) == 4
    for column in ("tags.logreg.optimum_solver", "metrics.train_objective"):
        logged = runs[column].notna() if column in runs else pd.Series(False, index=runs.index)
        assert logged.all() if optimum else not logged.any(), column


@pytest.mark.parametrize("where", ["inline", "helper"])
def test_suboptimality_is_logged_whether_f_star_is_solved_inline_or_in_the_helper(
    tmp_path, shared_uri, monkeypatch, where
):
    # Small problems are solved in the trial process and logged with the trial; larger ones in
    # the helper process and logged when the answer comes in. Both give every completed trial
    # train_objective - F*, with F* the optimum of its own weight decay (solved again here).
    from logreg import TrainConfig, load_split
    from logreg.optimum import optimum_for
    from logreg.tune import solver

    monkeypatch.setattr(solver, "cheap", lambda split: where == "inline")
    search = {"sgd": {"lr": [0.05, 1.0], "weight_decay": [1e-4, 1e-2]}}
    name = f"where-{where}"
    exp = _tiny(tmp_path, name, datasets=["digits"], n_trials=3, dtype="float64", search=search)
    runs = _sweep_runs(exp, tmp_path, shared_uri)
    client = MlflowClient(shared_uri)
    assert len(runs) == 3 and (runs["tags.logreg.trial_state"] == "COMPLETE").all()
    for _, run in runs.iterrows():
        objective = [m.value for m in client.get_metric_history(run["run_id"], "train_objective")]
        sub = [m.value for m in client.get_metric_history(run["run_id"], "suboptimality")]
        f_star = run["metrics.optimum_value"]
        assert len(sub) == len(objective) == 2
        assert sub == pytest.approx([v - f_star for v in objective], abs=1e-15)
        assert min(sub) >= -1e-12 * f_star
        wd = float(run["params.weight_decay"])
        config = TrainConfig(dataset="digits", weight_decay=wd, dtype="float64")
        assert f_star == pytest.approx(optimum_for(config, load_split(config)).value, rel=1e-12)


def test_an_inline_solve_that_fails_is_a_tag_not_a_failed_trial(tmp_path, shared_uri, monkeypatch):
    # As for the helper's answers (test_optimum): the trial completes, its run says why F* is missing.
    from logreg.tune import solver

    def broken(config, split):
        raise RuntimeError("singular Hessian")

    monkeypatch.setattr(solver, "optimum_for", broken)
    search = {"sgd": {"lr": [0.05, 1.0], "weight_decay": [1e-4, 1e-2]}}
    exp = _tiny(tmp_path, "inline-fails", n_trials=2, search=search)
    runs = _sweep_runs(exp, tmp_path, shared_uri)
    assert len(runs) == 2 and (runs["tags.logreg.trial_state"] == "COMPLETE").all()
    why = "F* could not be computed: RuntimeError: singular Hessian"
    assert (runs["tags.logreg.optimum_message"] == why).all()
    assert "metrics.suboptimality" not in runs or runs["metrics.suboptimality"].isna().all()


@pytest.fixture
def reconciled(tmp_path):
    """A finished cell (3 trials) with its runs, and a CellRuns on its store, for reconcile tests."""
    from logreg.tracking import Tracker
    from logreg.tune.cell import CellRuns
    from logreg.tune.storage import open_storage

    exp = _tiny(tmp_path, "rec", n_trials=3)
    uri, journal = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "j.log")
    run_sweep(
        exp, SweepOptions(storage=journal, tracking_uri=uri, progress=False, plots=False, results_dir=None)
    )
    store = open_storage(journal)
    study = st.open_study(exp, exp.cells()[0], store)
    with Tracker(uri) as tracker:
        runs = CellRuns(tracker, tracker.experiment_id(exp.mlflow_experiment), exp, exp.cells()[0])
        runs.open_parent()
        yield runs, study, tracker


def _trial_runs(runs):
    found = runs.tracker.find_runs(runs.experiment_id, {"logreg.run_kind": "trial"})
    return {int(r.data.tags["logreg.trial_number"]): r for r in found}, found


def test_reconcile_writes_a_missing_run_from_the_optuna_trial(reconciled):
    # A process that died between Optuna's tell and its write left no run: Optuna's record has it.
    runs, study, tracker = reconciled
    by_number, _ = _trial_runs(runs)
    lost = by_number[1]
    tracker.delete_run(lost.info.run_id)
    assert runs.reconcile(study) == 1
    by_number, found = _trial_runs(runs)
    assert len(found) == 3
    rebuilt = by_number[1]
    assert rebuilt.info.status == "FINISHED" and "logreg.rebuilt" in rebuilt.data.tags
    assert rebuilt.data.params == lost.data.params  # the trial's config, from Optuna
    assert rebuilt.data.metrics["test_accuracy"] == lost.data.metrics["test_accuracy"]
    assert runs.reconcile(study) == 0  # nothing more to do


@pytest.mark.slow
def test_reconcile_replaces_a_run_cut_short_and_leaves_a_live_write_alone(reconciled):
    # A run is RUNNING only while its writer writes it: one whose writer process ended was cut
    # short (written again from Optuna); one whose writer lives is left to finish.
    runs, study, tracker = reconciled
    by_number, _ = _trial_runs(runs)
    tracker.delete_run(by_number[0].info.run_id)
    tracker.delete_run(by_number[2].info.run_id)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        tags = {**runs.tags("trial"), "logreg.trial_state": "COMPLETE"}
        for number, pid in ((0, ended.stdout.strip()), (2, live.pid)):
            run = tracker.client.create_run(
                runs.experiment_id, tags={**tags, "logreg.trial_number": str(number)}
            )
            tracker.client.set_tag(run.info.run_id, "logreg.writer", f"{socket.gethostname()}:{pid}")
        runs.reconcile(study)
        by_number, found = _trial_runs(runs)
        assert by_number[0].info.status == "FINISHED" and "logreg.rebuilt" in by_number[0].data.tags
        assert by_number[2].info.status == "RUNNING"  # its writer lives: left to finish
    finally:
        live.kill()
        live.wait()


def test_reconcile_keeps_the_oldest_of_duplicates(reconciled):
    # Two processes reconciling one cell together may both write a missing run: every process
    # deletes all but the oldest, so they cannot delete both.
    runs, study, tracker = reconciled
    by_number, _ = _trial_runs(runs)
    oldest = by_number[1].info.run_id
    again = tracker.write(runs.rebuilt_record(study.trials[1])).result()
    assert runs.reconcile(study) == 1
    by_number, found = _trial_runs(runs)
    assert len(found) == 3 and by_number[1].info.run_id == oldest
    assert tracker.client.get_run(again).info.lifecycle_stage == "deleted"


def test_a_stale_trial_gets_a_killed_run(reconciled):
    # A trial Optuna failed as stale (its process died mid-trial) has no run of its own.
    runs, study, tracker = reconciled
    trial = study.ask()
    trial.set_user_attr("config", {"dataset": "iris"})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # what the heartbeat check does
    runs.reconcile(study)
    by_number, _ = _trial_runs(runs)
    run = by_number[trial.number]
    assert run.info.status == "KILLED" and run.data.tags["logreg.trial_state"] == "STALE"
    assert "died" in run.data.tags["logreg.error"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_process_died_before_its_first_heartbeat_is_failed(tmp_path, monkeypatch):
    # Optuna's heartbeat check skips RUNNING trials with no heartbeat at all: a process killed (or a
    # database lost) between ask() and the first heartbeat left its trial RUNNING for ever.
    from logreg.tune.storage import open_storage

    monkeypatch.setenv("LOGREG_GRACE_PERIOD", "1")
    store = open_storage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(storage=store.optuna, study_name="s")
    dead = study.ask()  # no heartbeat, never reached the objective
    live = study.ask()
    live.set_user_attr("config", {"dataset": "iris"})  # reached the objective: Optuna's to judge
    time.sleep(1.5)  # past the grace period
    assert store.fail_stale(study) == [dead.number]
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    assert states == {dead.number: "FAIL", live.number: "RUNNING"}


def test_a_journal_with_a_torn_last_line_resumes_keeping_every_trial(tmp_path, shared_uri):
    # A crash or a full disk mid-append leaves half a record at the end: it used to break every
    # later run (JSONDecodeError). It is dropped, with a backup and one warning; nothing else is.
    exp = _tiny(tmp_path, "torn")
    journal = tmp_path / "j.log"
    _sweep_runs(exp, tmp_path, shared_uri)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    before = {
        t.number: t.value
        for t in optuna.load_study(study_name="torn/iris/numpy/sgd/cpu", storage=storage).trials
    }
    good = journal.read_bytes()
    with journal.open("ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "ab')
    with pytest.warns(Warning, match=r"The Optuna journal '.*j\.log' ended in a torn record \(31 bytes"):
        _sweep_runs(exp.override(n_trials=6), tmp_path, shared_uri)
    assert journal.read_bytes().startswith(good)  # every complete record kept, then new ones
    backups = list(tmp_path.glob("j.log.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == good + b'{"op_code": 4, "worker_id": "ab'
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="torn/iris/numpy/sgd/cpu", storage=storage).trials
    assert {t.number: t.value for t in trials if t.number in before} == before
    assert sum(t.state.name == "COMPLETE" for t in trials) == 6


def test_a_storage_file_that_is_not_a_journal_is_one_line(tmp_path, run_cli):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "tiny.toml").write_text(
        'name = "t"\ndatasets = ["iris"]\nimpls = ["numpy"]\noptimizers = ["sgd"]\n'
    )
    status, out, err = run_cli(
        "sweep", tmp_path / "tiny.toml", "--no-track", "--storage", tmp_path / "data.csv"
    )
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert "data.csv' is not an Optuna journal file: line 1 is not a journal record" in err
    assert (tmp_path / "data.csv").read_text() == "a,b\n1,2\n3,4\n"
