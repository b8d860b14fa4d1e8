"""The command line: `logreg train --json`, `logreg datasets`, divergence, `python -m logreg`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logreg.config import IMPL_NAMES
from logreg.data import REGISTRY

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_train_json_prints_exactly_one_object(impl, run_cli):
    status, out, err = run_cli(
        "train", "--dataset", "iris", "--impl", impl, "--optimizer", "momentum", "--epochs", "7", "--json"
    )
    assert status == 0, err
    assert err == ""
    assert out.endswith("\n") and out.count("\n") == 1  # one line, one object
    report = json.loads(out)
    assert isinstance(report, dict)
    assert {"config", "metrics", "timings", "history"} <= set(report)
    config = report["config"]
    assert (config["dataset"], config["impl"], config["optimizer"], config["epochs"]) == (
        "iris",
        impl,
        "momentum",
        7,
    )
    assert (config["lr"], config["momentum"]) == (0.1, 0.9)  # the defaults actually used
    metrics = report["metrics"]
    for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        assert isinstance(metrics[key], float)
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert 0 < metrics["train_loss"] < 0.7
    timings = report["timings"]
    for key in ("fit_seconds", "epoch_seconds_median", "samples_per_second"):
        assert isinstance(timings[key], float) and timings[key] > 0
    history = report["history"]
    assert len(history["train_loss"]) == 7
    assert all(isinstance(v, float) for v in history["train_loss"])
    assert history["train_loss"][-1] == pytest.approx(metrics["train_loss"])
    assert report["status"] == "completed"


def test_train_json_eval_every_and_target_accuracy(run_cli):
    status, out, _ = run_cli(
        "train",
        "--dataset",
        "blobs",
        "--epochs",
        "10",
        "--eval-every",
        "4",
        "--target-accuracy",
        "0.9",
        "--json",
    )
    assert status == 0
    report = json.loads(out)
    assert report["history"]["epoch"] == [4, 8, 10]  # and always after the last epoch
    assert report["timings"]["epochs_run"] == 10
    assert 0 < report["timings"]["time_to_target_seconds"] <= report["timings"]["fit_seconds"]


def test_train_human_output(run_cli):
    status, out, err = run_cli("train", "--dataset", "hours", "--impl", "module", "--optimizer", "momentum")
    assert status == 0 and err == ""
    assert out.startswith("hours: module + momentum (lr=0.1) on cpu, 100 epochs, 3 training rows")
    assert "P(pass | 4 hours) = 0.9" in out
    for part in ("train", "val", "test"):
        assert f"  {part}" in out


def test_train_with_a_data_file(write_table, run_cli):
    path = write_table({"x": [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.7, 0.95] * 5, "ok": ["no", "yes"] * 20})
    status, out, err = run_cli("train", "--data", path, "--target", "ok", "--epochs", "3", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["dataset"]["class_names"] == ["no", "yes"]
    assert report["config"]["data"] == str(path)


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_datasets_lists_every_name(as_json, run_cli):
    status, out, err = run_cli("datasets", *(["--json"] if as_json else []))
    assert status == 0 and err == ""
    if as_json:
        names = [row["name"] for row in json.loads(out)]
    else:
        names = [line.split()[0] for line in out.splitlines()[1 : 1 + len(REGISTRY)]]
    assert names[: len(REGISTRY)] == list(REGISTRY)  # then LIBSVM's names, fetched or not
    assert set(names[: len(REGISTRY)]) == {
        "hours",
        "blobs",
        "moons",
        "classification",
        "iris",
        "breast_cancer",
        "digits",
        "synthetic",
        "text",
        "line",
        "diabetes",
    }


@pytest.mark.parametrize(
    ("impl", "dtype"),
    [(impl, "float32") for impl in IMPL_NAMES] + [("numpy", "float64"), ("module", "float64")],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_divergence_exits_3_with_one_line(impl, dtype, as_json, run_cli):
    argv = ["train", "--dataset", "digits", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "20"]
    argv += ["--impl", impl, "--dtype", dtype] + (["--json"] if as_json else [])
    status, out, err = run_cli(*argv)
    assert status == 3
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("logreg: Training diverged at epoch 1:")
    assert "Lower the learning rate (lr=1e+30)" in lines[0]
    if as_json:
        report = json.loads(out)  # still one valid JSON object (no NaN literals)
        assert report["status"] == "diverged"
        assert report["timings"]["epochs_run"] == 1


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_nan_divergence_exits_3_with_one_line(impl, run_cli):
    # lr near the float32 limit: the weights become inf and the loss NaN at the first step.
    status, out, err = run_cli(
        "train", "--dataset", "breast_cancer", "--impl", impl, "--optimizer", "sgd", "--lr", "3e38"
    )
    assert status == 3
    assert err.count("\n") == 1 and "loss became nan" in err


@pytest.mark.slow
def test_python_dash_m_logreg(repo_root):
    proc = subprocess.run(
        [sys.executable, "-m", "logreg", "train", "--dataset", "hours", "--epochs", "5", "--json"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["dataset"] == "hours"
    help_proc = subprocess.run(
        [sys.executable, "-m", "logreg", "--help"], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert help_proc.returncode == 0 and "train" in help_proc.stdout and "datasets" in help_proc.stdout


@pytest.mark.slow
def test_divergence_in_a_real_process(repo_root):
    # The real stderr: nothing else (no NumPy RuntimeWarning lines) besides the one message.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "logreg",
            "train",
            "--dataset",
            "digits",
            "--optimizer",
            "sgd",
            "--lr",
            "1e38",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("logreg: Training diverged")


def test_python_dash_m_logreg_in_this_process(monkeypatch, capsys):
    # `python -m logreg` runs logreg.__main__ (the real process is the slow test above).
    import runpy

    monkeypatch.setattr("sys.argv", ["logreg", "datasets", "--json"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("logreg", run_name="__main__")
    assert exit_.value.code == 0 and '"name": "iris"' in capsys.readouterr().out


def test_a_spawned_worker_gets_the_experiment_and_options_as_they_were(tmp_path):
    # sweep --workers N hands each worker one JSON file, not a rebuilt command line.
    from logreg.experiment import load_experiment
    from logreg.tune import SweepOptions
    from logreg.tune.workers import read_spec, write_spec

    exp = load_experiment("experiments/smoke.toml").override(n_trials=3, datasets=["iris"], repeats=2)
    opts = SweepOptions(
        storage="j.log", tracking_uri="sqlite:///m.db", torch_threads=0, optimum=False, workers=4
    )
    got_exp, got = read_spec(write_spec(exp, opts, tmp_path / "spec.json"))
    assert got_exp == exp
    assert SweepOptions(**got) == SweepOptions(
        storage=str(Path("j.log").resolve()), tracking_uri="sqlite:///m.db", torch_threads=0, optimum=False,
        workers=1, finalize=False, progress=False,
    )  # fmt: skip
