"""`logreg compare`: real SQLite stores (one per machine) -> tables, speedup, crossover, plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from logreg.report import compare as cmp
from tests.helpers import log_sweep_runs, log_throughput_rows
from tests.helpers import throughput_row as row


def _store(tmp_path, name):
    return f"sqlite:///{tmp_path}/{name}.db"


@pytest.fixture(scope="module")
def cpu_store(tmp_path_factory):
    """A real CPU store, written by the real command on a tiny grid."""
    from logreg.cli import main

    uri = _store(tmp_path_factory.mktemp("store"), "cpu")
    assert (
        main(
            [
                "throughput",
                "--sizes",
                "100,1000",
                "--dims",
                "10",
                "--impls",
                "numpy,module",
                "--batch-size",
                "0",
                "--repeats",
                "2",
                "--tracking-uri",
                uri,
            ]
        )
        == 0
    )
    return uri


def test_compiled_cells_are_their_own_implementation(tmp_path):
    uri = _store(tmp_path, "mixed")
    log_throughput_rows(
        uri,
        [
            row("module", "cpu", 1000, 1e6),
            row("module", "cpu", 1000, 4e6, compile=True),
        ],
    )
    runs, _ = cmp.load_runs([uri])
    table = cmp.throughput_table(runs).set_index("impl")
    assert table.loc["module", "samples_per_second"] == 1e6
    assert table.loc["module compiled", "samples_per_second"] == 4e6


def test_crossover_is_interpolated_on_log_log_axes():
    speedup = pd.DataFrame(
        {
            "impl": "module",
            "d": 10,
            "dtype": "float32",
            "batch_size": "full",
            "n": [10**2, 10**3, 10**5],
            "speedup": [0.1, 0.5, 2.0],
        }
    )
    cross = cmp.crossovers(speedup)
    assert cross.loc[0, "crossover_n"] == pytest.approx(10**4)  # 0.5 -> 2 is symmetric in log
    assert cross.loc[0, "note"] == "between n=1000 and n=100000"
    never = cmp.crossovers(speedup.assign(speedup=[0.1, 0.2, 0.9]))
    assert math.isnan(never.loc[0, "crossover_n"]) and never.loc[0, "note"] == "CUDA never faster"


def test_cpu_only_writes_tables_and_plots_and_says_no_cuda(cpu_store, tmp_path, capsys):
    out = tmp_path / "out"
    result = cmp.compare([cpu_store], out)
    table = result["throughput"]
    assert sorted(set(table["impl"])) == ["module", "numpy"] and set(table["n"]) == {100, 1000}
    assert result["speedup"].empty
    assert "No CUDA throughput runs found" in capsys.readouterr().out
    assert "No CUDA throughput runs found" in (out / "speedup.md").read_text()
    for name in ("throughput.csv", "throughput.md", "throughput.png"):
        assert (out / name).stat().st_size > 0
    assert not (out / "speedup.png").exists()  # no empty figure: speedup.md says why
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    csv = pd.read_csv(out / "throughput.csv")
    assert len(csv) == 4 and (csv["samples_per_second"] > 0).all()


def test_two_stores_give_speedup_and_crossover(tmp_path):
    gpu = _store(tmp_path, "gpu")
    cpu = _store(tmp_path, "cpu2")
    # Known numbers: CUDA is 0.5x the CPU at n=100 and 2x at n=10000 -> crossover at 1000.
    log_throughput_rows(cpu, [row("module", "cpu", 100, 1e6), row("module", "cpu", 10000, 1e7)])
    log_throughput_rows(gpu, [row("module", "cuda", 100, 5e5), row("module", "cuda", 10000, 2e7)])
    out = tmp_path / "out"
    result = cmp.compare([cpu, gpu], out)
    sp = result["speedup"].set_index("n")["speedup"]
    assert sp[100] == pytest.approx(0.5) and sp[10000] == pytest.approx(2.0)
    assert result["crossover"].loc[0, "crossover_n"] == pytest.approx(1000)
    text = (out / "speedup.md").read_text()
    assert "Crossover" in text and "0.50x" in text and "2.00x" in text
    assert (out / "crossover.csv").exists()
    assert (out / "speedup.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_comparison_takes_the_best_trial_by_val_loss(tmp_path):
    uri = _store(tmp_path, "sweep")
    params = {"dataset": "blobs", "impl": "numpy", "optimizer": "adam", "device": "cpu"}
    tags = {"logreg.study": "s1", "logreg.run_kind": "trial", "logreg.device_kind": "cpu"}
    children = [
        (params, {"val_loss": val_loss, "test_accuracy": acc, "fit_seconds": secs}, tags)
        for val_loss, acc, secs in [(0.30, 0.90, 0.2), (0.10, 0.95, 0.4), (0.20, 0.99, 0.1)]
    ]
    study = {"logreg.study": "s1", "logreg.run_kind": "study"}
    log_sweep_runs(uri, "smoke", {"blobs__numpy__adam__cpu": (study, children)})
    result = cmp.compare([uri], tmp_path / "out")
    sweeps = result["sweeps"]
    assert len(sweeps) == 1
    best = sweeps.iloc[0]
    assert (best["test_accuracy"], best["fit_seconds"], best["completed"]) == (0.95, 0.4, 3)
    # A store from before the model and compile axes: logistic, eager.
    assert (
        "| smoke | blobs | logistic | numpy | adam | False | cpu |"
        in (tmp_path / "out" / "sweeps.md").read_text()
    )


def test_sweep_comparison_counts_completed_trials_and_shows_the_tuned_hyperparameters(tmp_path):
    uri = _store(tmp_path, "sweep")
    base = {"dataset": "blobs", "impl": "numpy", "optimizer": "sgd", "device": "cpu", "seed": "0"}
    tags = {"logreg.study": "s1", "logreg.run_kind": "trial", "logreg.device_kind": "cpu"}
    trials = [("0.1", "32", 0.3, "COMPLETE"), ("0.25", "full", 0.1, "COMPLETE"), ("0.5", "32", 0.2, "PRUNED")]
    children = [
        (
            {**base, "lr": lr, "batch_size": bs},
            {"val_loss": v, "test_accuracy": 0.9},
            {**tags, "logreg.trial_state": st},
        )
        for lr, bs, v, st in trials
    ]
    log_sweep_runs(uri, "smoke", {"s1": ({"logreg.study": "s1", "logreg.run_kind": "study"}, children)})
    best = cmp.compare([uri], tmp_path / "out")["sweeps"].iloc[0]
    # Two completed of three trials; the varying parameters (not the fixed seed) of the best one.
    assert best["completed"] == 2
    assert best["hyperparameters"] == "batch_size=full, lr=0.25"


def test_sweep_comparison_keeps_models_apart_and_reports_r2_for_linear(tmp_path):
    uri = _store(tmp_path, "sweep")
    cells = [  # (model, dataset, val_loss, metrics)
        ("logistic", "moons", 0.30, {"test_accuracy": 0.86}),
        ("mlp", "moons", 0.05, {"test_accuracy": 0.99}),
        ("linear", "diabetes", 3000.0, {"test_r2": 0.45}),
    ]
    studies = {}
    for model, dataset, val_loss, metrics in cells:
        params = {"dataset": dataset, "model": model, "impl": "numpy", "optimizer": "adam", "device": "cpu"}
        child = (params, {"val_loss": val_loss, **metrics}, {"logreg.run_kind": "trial"})
        studies[f"{dataset}__{model}"] = ({"logreg.run_kind": "study"}, [child])
    log_sweep_runs(uri, "sweep/tutorials", studies)
    sweeps = cmp.compare([uri], tmp_path / "out")["sweeps"]
    rows = {(r.dataset, r.model): r for r in sweeps.itertuples()}
    assert set(rows) == {("moons", "logistic"), ("moons", "mlp"), ("diabetes", "linear")}
    assert rows[("moons", "mlp")].test_accuracy == 0.99 and rows[("moons", "logistic")].test_accuracy == 0.86
    assert rows[("diabetes", "linear")].test_r2 == 0.45
    assert math.isnan(rows[("diabetes", "linear")].test_accuracy)


def test_empty_store_is_bad_input(run_cli, tmp_path):
    from logreg.tracking import make_client

    make_client(_store(tmp_path, "empty"))  # a store with MLflow's tables and no runs
    status, _, err = run_cli("compare", _store(tmp_path, "empty"), "--out", tmp_path / "out")
    assert status == 2
    assert len(err.splitlines()) == 1 and "No throughput or sweep runs found" in err
    assert not (tmp_path / "out").exists()
