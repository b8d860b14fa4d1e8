"""F*, the exact optimum, against independent references; suboptimality and time to eps.

The reference for logistic F* is scikit-learn's LogisticRegression with C = 1 / (wd * n_train)
(it minimises C * sum(loss_i) + ||W||^2 / 2, i.e. our mean loss + wd / 2 ||W||^2, bias free),
solved by Newton (newton-cholesky / newton-cg) to tol 1e-14; its objective is evaluated here
with scipy's logsumexp. For linear, scikit-learn's Ridge(alpha = n wd / 2) and LinearRegression.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import log_expit, logsumexp

from logreg import TrainConfig, load_split, train
from logreg.config import IMPL_NAMES
from logreg.optimum import exact_optimum, optimum_for
from logreg.train import EPSILONS, eps_name, time_to_eps

pytestmark = pytest.mark.usefixtures("single_thread")

CLASSIFICATION = ["hours", "blobs", "classification", "iris", "breast_cancer", "digits", "moons"]


def _split(dataset: str, dtype: str = "float64"):
    return load_split(TrainConfig(dataset=dataset, dtype=dtype))


def _xy(split):
    """The training rows in float64 (a split may hold float32 features)."""
    return np.asarray(split.X_train, dtype=np.float64), split.y_train


def _objective(X, y, W, b, wd: float) -> float:
    """Our objective, written independently: mean cross-entropy, -log sigmoid(+-z) for one logit
    (scipy's log_expit, exact for large |z|), logsumexp(Z) - Z_y for K logits."""
    Z = X @ W + b
    if Z.shape[1] == 1:
        loss = -log_expit(np.where(y == 1, Z[:, 0], -Z[:, 0]))
    else:
        loss = logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
    return float(np.mean(loss) + 0.5 * wd * np.sum(W * W))


def _sklearn_optimum(X, y, n_classes: int, wd: float) -> float:
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    solver = "newton-cholesky" if n_classes <= 2 else "newton-cg"
    clf = LogisticRegression(C=1.0 / (wd * len(y)), tol=1e-14, max_iter=100_000, solver=solver).fit(X, y)
    return _objective(X, y, clf.coef_.T, clf.intercept_, wd)


@pytest.mark.parametrize("wd", [1e-2, 1e-4])
@pytest.mark.parametrize("dataset", CLASSIFICATION)
def test_logistic_optimum_matches_sklearn(dataset, wd):
    split = _split(dataset)
    X, y = _xy(split)
    opt = exact_optimum(X, y, split.n_classes, "logistic", wd)
    reference = _sklearn_optimum(X, y, split.n_classes, wd)
    assert opt.finite and opt.tolerance <= 1e-12 and opt.solver
    # Ours is no worse than scikit-learn's optimum and agrees with it to 1e-9 relative.
    assert opt.value <= reference + 1e-13 * abs(reference), (opt.value, reference)
    assert abs(opt.value - reference) <= 1e-9 * abs(reference), (opt.value, reference)
    # The value is the objective at the returned minimiser.
    assert _objective(X, y, opt.W, opt.b, wd) == pytest.approx(opt.value, rel=1e-14)


@pytest.mark.parametrize("dataset", ["moons", "iris"])
def test_unregularised_overlapping_classes_have_a_finite_optimum(dataset):
    from sklearn.linear_model import LogisticRegression

    X, y = _xy(_split(dataset))
    opt = exact_optimum(X, y, 2, "logistic", 0.0)
    clf = LogisticRegression(C=math.inf, tol=1e-14, max_iter=100_000, solver="newton-cholesky").fit(X, y)
    reference = _objective(X, y, clf.coef_.T, clf.intercept_, 0.0)
    assert opt.value <= reference + 1e-13 * reference
    assert abs(opt.value - reference) <= 1e-9 * reference


@pytest.mark.parametrize("dataset", ["hours", "blobs", "breast_cancer"])
def test_separable_classes_without_decay_have_no_finite_optimum(dataset):
    split = _split(dataset)
    # Independent witness that the classes are separable: a hard-margin linear SVM fits them all.
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=1e6, max_iter=200_000, tol=1e-8).fit(split.X_train, split.y_train)
    assert svm.score(split.X_train, split.y_train) == 1.0
    opt = exact_optimum(split.X_train, split.y_train, 2, "logistic", 0.0)
    assert not opt.finite and math.isnan(opt.value) and opt.W is None
    assert "no finite optimum" in opt.message and "weight_decay" in opt.message


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_linear_optimum_is_the_closed_form(wd):
    from sklearn.linear_model import LinearRegression, Ridge

    split = load_split(TrainConfig(dataset="diabetes", model="linear", dtype="float64"))
    X, y = _xy(split)
    est = LinearRegression() if wd == 0 else Ridge(alpha=len(y) * wd / 2, tol=1e-14)
    est.fit(X, y)
    reference = float(np.mean((X @ est.coef_ + est.intercept_ - y) ** 2) + 0.5 * wd * est.coef_ @ est.coef_)
    opt = exact_optimum(X, y, 0, "linear", wd)
    assert "closed form" in opt.solver
    assert abs(opt.value - reference) <= 1e-10 * reference


def test_mlp_has_no_optimum():
    split = _split("moons")
    assert exact_optimum(split.X_train, split.y_train, 2, "mlp", 1e-3) is None


def test_optimum_is_cached_per_digest_model_and_weight_decay():
    config = TrainConfig(dataset="iris", dtype="float64", weight_decay=3e-3)
    split = load_split(config)
    first = optimum_for(config, split)
    assert optimum_for(config, split) is first
    other = optimum_for(config.replace(weight_decay=4e-3), split)
    assert other is not first and other.value > first.value  # more decay, higher minimum
    reference = _sklearn_optimum(*_xy(split), 2, 4e-3)
    assert abs(other.value - reference) <= 1e-9 * reference  # the warm start changes nothing


@pytest.mark.parametrize("k", [1, 4])
def test_the_log_loss_has_no_cancellation_on_confident_rows(k):
    # Rows classified with margins ~20 have losses ~1e-9: the textbook log(1 + e^z) - y z loses
    # them to rounding; the mean must match 50-digit arithmetic (mpmath) to 1e-14 relative.
    mpmath = pytest.importorskip("mpmath")  # installed with torch (sympy's)
    from logreg.optimum import mean_log_loss

    rng = np.random.default_rng(0)
    n = 50
    y = rng.integers(0, 2 if k == 1 else k, n)
    Z = rng.normal(size=(n, k))
    if k == 1:
        Z[:, 0] = np.where(y == 1, 1.0, -1.0) * rng.uniform(15, 25, n)
    else:
        Z[np.arange(n), y] += rng.uniform(15, 25, n)
    mpmath.mp.dps = 50
    rows = []
    for z, label in zip(Z.tolist(), y.tolist(), strict=True):
        if k == 1:
            rows.append(mpmath.log(1 + mpmath.exp(z[0])) - label * mpmath.mpf(z[0]))
        else:
            rows.append(mpmath.log(sum(mpmath.exp(mpmath.mpf(v)) for v in z)) - z[label])
    exact = float(sum(rows) / n)
    assert mean_log_loss(Z, y) == pytest.approx(exact, rel=1e-14, abs=0)


@pytest.mark.parametrize("dataset", ["hours", "breast_cancer"])
def test_binary_newton_stops_when_its_gradient_is_at_rounding_level(dataset):
    # Near the optimum F changes below its rounding error: a line search that compared values
    # alone looped (2,577 evaluations at one weight decay on 'hours'). Newton converges
    # quadratically: at most 100 evaluations (damped steps from w = 0 included) on a grid of
    # weight decays, and an F* no worse than scikit-learn's to 1e-13 relative.
    split = _split(dataset)
    X, y = _xy(split)
    for wd in np.geomspace(1e-6, 1e-2, 20):
        opt = exact_optimum(X, y, 2, "logistic", wd)
        assert opt.solver.startswith("Newton") and not opt.message
        assert 0 < opt.evaluations <= 100, (wd, opt.evaluations)
        assert opt.value <= _sklearn_optimum(X, y, 2, wd) * (1 + 1e-13)


@pytest.mark.parametrize("impl", IMPL_NAMES)
@pytest.mark.parametrize("dataset", CLASSIFICATION)
def test_suboptimality_is_never_negative(dataset, impl):
    config = TrainConfig(
        dataset=dataset, impl=impl, dtype="float64", weight_decay=1e-3, epochs=60, eval_every=5, lr=0.1
    )
    split = load_split(config)
    optimum = optimum_for(config, split)
    result = train(config, split=split, optimum=optimum)
    history = result.history
    sub = np.array(history["suboptimality"])
    assert len(sub) == 12 and np.all(sub >= -1e-12 * optimum.value), sub.min()
    # The objective the history holds is the loss plus the decay term of the final weights.
    W = result.weights[0].astype(np.float64)
    expected = result.metrics["train_loss"] + 0.5e-3 * float(np.sum(W * W))
    assert history["train_objective"][-1] == pytest.approx(expected, rel=1e-12)
    rel = np.array(history["rel_suboptimality"])
    assert np.allclose(rel * rel[0] ** 0 * (sub[0] / rel[0]), sub, rtol=1e-9)  # one denominator
    assert np.all(np.diff(history["train_seconds"]) > 0)


def test_time_to_eps_reads_the_first_point_below_each_eps():
    history = {
        "epoch": [5, 10, 15, 20],
        "train_seconds": [0.1, 0.2, 0.3, 0.4],
        "rel_suboptimality": [0.5, 0.009, 2e-5, 1e-4],
    }
    out = time_to_eps(history)
    assert [eps_name(e) for e in EPSILONS] == ["1e-2", "1e-4", "1e-6"]
    assert out["time_to_eps_1e-2"] == 0.2 and out["epochs_to_eps_1e-2"] == 10
    assert out["time_to_eps_1e-4"] == 0.3 and out["epochs_to_eps_1e-4"] == 15
    assert math.isnan(out["time_to_eps_1e-6"]) and math.isnan(out["epochs_to_eps_1e-6"])


def test_no_suboptimality_without_an_optimum():
    result = train(TrainConfig(dataset="iris", epochs=10, eval_every=5))
    assert "suboptimality" not in result.history and "time_to_eps_1e-2" not in result.timings
    assert len(result.history["train_seconds"]) == 2


def test_the_solver_gives_the_optimum_train_logs_against():
    # A sweep starts each new F* in a helper process as its trial starts; train() asks for it
    # after its last epoch.
    from logreg.tune import solver as solver_module

    config = TrainConfig(
        dataset="digits", dtype="float64", weight_decay=2.345e-3, epochs=10, eval_every=5, lr=0.1
    )
    split = load_split(config)
    assert not solver_module.cheap(split)  # digits' softmax: solved in the helper
    solver = solver_module.OptimumSolver()
    try:
        pending = solver.start(config, split)
        assert solver._pool is not None  # noqa: SLF001 - the helper process took it
        result = train(config, split=split, optimum=pending)
        cached = solver.start(config, split)()  # the answer is cached in this process now
        assert solver.start(config.replace(model="mlp"), split)() is None  # not convex: no F*
    finally:
        solver.close()
    reference = _sklearn_optimum(*_xy(split), 10, 2.345e-3)
    assert abs(cached.value - reference) <= 1e-9 * reference
    objective = np.array(result.history["train_objective"])
    np.testing.assert_allclose(result.history["suboptimality"], objective - cached.value, rtol=0, atol=1e-15)
    assert "time_to_eps_1e-2" in result.timings


def test_a_failed_solve_is_a_tag_on_the_run_not_a_stopped_sweep(tmp_path, monkeypatch):
    # The helper's error reaches the trial when it asks for F*: the trial completes, its run says
    # why, the suboptimality is left out, and nothing is retried for ever.
    import mlflow

    from logreg.tune import SweepOptions, run_sweep, solver, validate

    def broken(digest, *args):
        raise RuntimeError("singular Hessian")

    monkeypatch.setattr(solver, "solve", broken)  # in the helper too: it is forked from here
    exp = validate(
        {"name": "broken", "datasets": ["digits"], "impls": ["numpy"], "optimizers": ["sgd"], "n_trials": 1,
         "epochs": 4, "eval_every": 2, "search": {"sgd": {"weight_decay": [1e-3, 1e-2]}}}
    )  # fmt: skip
    uri = f"sqlite:///{tmp_path}/m.db"
    opts = SweepOptions(storage=str(tmp_path / "j.log"), tracking_uri=uri, progress=False, plots=False,
                        results_dir=None)  # fmt: skip
    run_sweep(exp, opts)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(
        experiment_names=["sweep/broken"], filter_string="tags.logreg.run_kind = 'trial'"
    )
    assert list(runs["tags.logreg.trial_state"]) == ["COMPLETE"]
    assert list(runs["tags.logreg.optimum_message"]) == [
        "F* could not be computed: RuntimeError: singular Hessian"
    ]
    assert "metrics.suboptimality" not in runs or runs["metrics.suboptimality"].isna().all()
