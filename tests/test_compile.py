"""The `compile` axis: autograd and module under torch.compile agree with eager; numpy and mlp
refuse it with one line; the compile time is reported apart from the epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from logreg.config import TrainConfig, can_compile
from logreg.errors import LogregError
from logreg.train import train


def test_numpy_with_compile_is_a_one_line_error(run_cli):
    with pytest.raises(
        LogregError, match=r"The 'compile' parameter applies to the torch implementations only\."
    ):
        TrainConfig(impl="numpy", compile=True)
    status, _, err = run_cli("train", "--impl", "numpy", "--compile")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "--impl autograd|module" in err


def test_mlp_with_compile_is_a_one_line_error():
    with pytest.raises(LogregError, match=r"applies to models logistic and linear only\. Got compile=True"):
        TrainConfig(impl="module", model="mlp", compile=True)


def test_sweeps_compile_only_where_it_applies():
    assert can_compile("autograd", "logistic") and can_compile("module", "linear")
    assert not can_compile("numpy", "logistic") and not can_compile("module", "mlp")


def test_eager_runs_report_no_compile_time():
    assert "compile_seconds" not in train(TrainConfig(impl="module", dataset="blobs", epochs=2)).timings


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["autograd", "module"])
def test_compiled_training_matches_eager(impl):
    """Tolerance: inductor generates its own kernels for the product, the loss and its backward,
    and may sum the rows in another order than eager's BLAS; in float64 that moves results by
    rounding only (about 1e-16 relative per operation, a few hundred operations per epoch), so
    rtol 1e-9 has a wide margin while any difference in the maths (a wrong gradient, a missed
    bias) shows at 1e-3 or more. One small problem only: each compilation takes about 20 s here."""
    config = TrainConfig(impl=impl, dataset="iris", optimizer="momentum", epochs=5, dtype="float64")
    eager = train(config)
    compiled = train(config.replace(compile=True))
    np.testing.assert_allclose(compiled.weights[0], eager.weights[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(compiled.weights[1], eager.weights[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(compiled.history["train_loss"], eager.history["train_loss"], rtol=1e-9)
    t = compiled.timings
    # The first epoch's compilation is reported apart and left out of fit_seconds.
    assert t["compile_seconds"] > 10 * t["epoch_seconds_median"]
    assert t["fit_seconds"] < t["compile_seconds"]


def test_the_compile_axis_keeps_numpy_cells_eager():
    import optuna

    from logreg.tune import load_experiment, open_storage
    from logreg.tune.trial import run_cell

    smoke = Path(__file__).resolve().parent.parent / "experiments" / "smoke.toml"
    exp = load_experiment(smoke).override(
        datasets=["blobs"], impls=["numpy"], optimizers=["sgd"], n_trials=1, epochs=2, compile=(True,)
    )
    (cell,) = exp.cells()  # numpy has no compiled cell: its one cell is eager
    assert cell.compile is False and not exp.study_name(cell).endswith("/compiled")
    store = open_storage(":memory:")
    study = optuna.create_study(direction=exp.direction, storage=store.optuna)
    run_cell(exp, cell, study, store, overrides={"torch_threads": 1})
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE"
    config = trial.user_attrs["config"]
    assert config["torch_threads"] == 1 and config["compile"] is False


def test_bad_compile_axis_is_a_one_line_error(tmp_path):
    from logreg.tune import load_experiment

    path = tmp_path / "e.toml"
    path.write_text('name = "e"\ndatasets = ["blobs"]\ncompile = ["yes"]\n')
    with pytest.raises(LogregError, match=r"e\.toml: The 'compile' parameter must be a list of"):
        load_experiment(path)


@pytest.mark.slow
def test_a_sweep_runs_eager_and_compiled_cells_side_by_side(tmp_path):
    # compile = [false, true]: module gets an eager and a compiled study, numpy one eager study;
    # the compiled trials log compile=True, their compile time apart, and run names that say so.
    import mlflow

    from logreg.tune import SweepOptions, load_experiment, run_sweep

    path = tmp_path / "axis.toml"
    path.write_text(
        'name = "axis"\ndatasets = ["blobs"]\nimpls = ["numpy", "module"]\noptimizers = ["sgd"]\n'
        'compile = [false, true]\nn_trials = 1\nepochs = 3\neval_every = 1\n[pruner]\nname = "none"\n'
    )
    exp = load_experiment(path)
    assert [(c.impl, c.compile) for c in exp.cells()] == [
        ("numpy", False),
        ("module", False),
        ("module", True),
    ]
    assert exp.study_name(exp.cells()[2]) == "axis/blobs/module/sgd/cpu/compiled"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    opts = SweepOptions(
        storage=str(tmp_path / "j.log"),
        tracking_uri=uri,
        progress=False,
        plots=False,
        results_dir=tmp_path / "r",
    )
    summary = run_sweep(exp, opts)
    assert list(summary["compile"]) == [False, False, True] and (summary["completed"] == 1).all()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(
        experiment_names=["sweep/axis"], filter_string="tags.`logreg.run_kind` = 'trial'"
    )
    compiled = runs[runs["params.compile"] == "True"]
    assert list(compiled["tags.mlflow.runName"]) == ["blobs/module/sgd/compiled/0"]
    assert compiled["metrics.compile_seconds"].iloc[0] > 0
    assert runs[runs["params.compile"] == "False"]["metrics.compile_seconds"].isna().all()
