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


def test_a_sweep_with_compile_keeps_numpy_trials_eager_and_logs_the_overrides():
    import optuna

    from logreg.tune import load_experiment
    from logreg.tune import study as st

    smoke = Path(__file__).resolve().parent.parent / "experiments" / "smoke.toml"
    exp = load_experiment(smoke).override(
        datasets=["blobs"], impls=["numpy"], optimizers=["sgd"], n_trials=1, epochs=2
    )
    (cell,) = exp.cells()
    study = optuna.create_study(direction=exp.direction)
    hooks = {"start": lambda trial, config: None, "finish": lambda *a: None, "done": lambda outcome: None}
    st.run_cell(exp, cell, study, hooks, overrides={"torch_threads": 1, "compile": True})
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE"
    config = trial.user_attrs["config"]
    assert config["torch_threads"] == 1 and config["compile"] is False
