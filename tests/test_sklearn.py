"""LogregClassifier and LogregRegressor as scikit-learn estimators: the estimator checks, model
selection, pickling, labels, agreement with `logreg.train`, the mlp and schedules, and errors."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, make_blobs, make_moons
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from logreg import LogregError, TrainConfig, make_split, train
from logreg.config import IMPL_NAMES
from logreg.sklearn import LogregClassifier, LogregRegressor

# BLAS and torch on one thread: on the busy 2-core machine extra threads spin waiting for a core.
# Every test here takes under a second, the estimator checks of all three impls ~15 s together.
pytestmark = pytest.mark.usefixtures("single_thread")

CV = StratifiedKFold(5, shuffle=True, random_state=0)


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks an estimator is excused from, with the reason: none (all pass as of 1.9.1)."""
    return {}


ESTIMATORS = [
    *(LogregClassifier(impl=impl) for impl in IMPL_NAMES),
    *(LogregClassifier(impl=impl, model="mlp") for impl in IMPL_NAMES),
    *(LogregRegressor(impl=impl) for impl in IMPL_NAMES),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def breast_cancer():
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


def _reference_score(X, y) -> float:
    """scikit-learn's LogisticRegression, cross-validated the same way: the independent reference."""
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=10_000))
    return float(cross_val_score(reference, X, y, cv=CV).mean())


@pytest.mark.parametrize("impl", IMPL_NAMES)
@pytest.mark.parametrize("dataset", ["breast_cancer", "digits"])
def test_cross_val_score_is_within_002_of_logistic_regression(request, dataset, impl):
    X, y = request.getfixturevalue(dataset)
    ours = cross_val_score(make_pipeline(StandardScaler(), LogregClassifier(impl=impl)), X, y, cv=CV)
    # Measured: breast_cancer 0.981 (ours, every impl) vs 0.979; digits 0.951 vs 0.969.
    assert abs(ours.mean() - _reference_score(X, y)) <= 0.02


def test_grid_search_over_a_pipeline(breast_cancer):
    X, y = breast_cancer
    pipe = make_pipeline(StandardScaler(), LogregClassifier())
    grid = {"logregclassifier__optimizer": ["sgd", "adam"], "logregclassifier__epochs": [20, 100]}
    search = GridSearchCV(pipe, grid, cv=CV).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_score_ >= _reference_score(X, y) - 0.02
    assert search.best_estimator_[-1].coef_.shape == (1, X.shape[1])
    assert search.score(X, y) > 0.95


def test_optuna_search_cv_tunes_lr(breast_cancer):
    optuna = pytest.importorskip("optuna")
    from optuna_integration import OptunaSearchCV

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = breast_cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")  # its terminator
        search = OptunaSearchCV(
            LogregClassifier(epochs=50, standardize=True),
            {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)},
            cv=CV,
            n_trials=6,
            random_state=0,
        )
        search.fit(X, y)
    assert len(search.trials_) == 6
    assert len({t.params["lr"] for t in search.trials_}) == 6
    assert 1e-3 <= search.best_params_["lr"] <= 1.0
    assert search.best_estimator_.lr == search.best_params_["lr"]
    assert search.best_score_ >= _reference_score(X, y) - 0.02


def _pickled_modules(data: bytes) -> set[str]:
    """The modules a pickle imports from (the module strings before each STACK_GLOBAL)."""
    import pickletools

    ops = list(pickletools.genops(data))
    strings = [arg for op, arg, _ in ops if isinstance(arg, str)]
    found = {arg.split(" ")[0] for op, arg, _ in ops if op.name == "GLOBAL"}
    for i, (op, _, _) in enumerate(ops):
        if op.name == "STACK_GLOBAL":
            args = [a for _, a, _ in ops[:i] if isinstance(a, str)]
            found.add(args[-2])
    return found | {s for s in strings if s.startswith("torch.")}


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_pickle_and_clone(impl):
    X, y = make_blobs(60, 4, centers=3, random_state=0)
    est = LogregClassifier(impl=impl, lr=0.1, epochs=30).fit(X, y)
    data = pickle.dumps(est)
    # Plain NumPy state: unpickling needs neither torch nor a GPU (no module of torch is named;
    # the parameter torch_threads is just a name).
    assert not any(m.startswith("torch") for m in _pickled_modules(data))
    loaded = pickle.loads(data)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    assert not hasattr(fresh, "coef_")


@pytest.mark.parametrize(
    "labels", [["cat", "dog", "emu"], [3, 7, 42], ["no", "yes"], [-1, 1]], ids=["str3", "int3", "str2", "pm1"]
)
def test_labels_round_trip(labels):
    X, y_index = make_blobs(90, 3, centers=len(labels), random_state=1)
    y = np.asarray(labels)[y_index]
    est = LogregClassifier().fit(X, y)
    np.testing.assert_array_equal(est.classes_, np.unique(y))
    assert est.predict(X).dtype == y.dtype
    assert set(est.predict(X)) <= set(labels)
    assert est.score(X, y) > 0.9
    K = len(labels)
    k = 1 if K == 2 else K
    assert est.coef_.shape == (k, 3) and est.intercept_.shape == (k,)
    assert est.predict_proba(X).shape == (90, K)
    assert est.decision_function(X).shape == ((90,) if K == 2 else (90, K))


@pytest.mark.parametrize("impl", IMPL_NAMES)
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("centers", [2, 3])
def test_coef_is_what_train_learns(impl, standardize, centers):
    # The same config on the same rows through logreg.train (evaluated every epoch, which must not
    # change the weights): the estimator trains on exactly the data given, and its raw-space coef_
    # and intercept_ give the fitted model's logits.
    X, y = make_blobs(80, 5, centers=centers, cluster_std=3.0, random_state=2)
    X = X * [1, 10, 100, 0.1, 1] + [0, -5, 50, 2, 0]  # scales and offsets standardisation must undo
    params = dict(impl=impl, optimizer="momentum", batch_size=16, epochs=20, dtype="float64")
    est = LogregClassifier(**params, lr=0.05, standardize=standardize, random_state=3).fit(X, y)
    config = TrainConfig(**params, lr=0.05, standardize=standardize, seed=3)
    split = make_split(X, y, standardize=standardize, dtype="float64", evaluate_on_train=True)
    result = train(config, split)
    W, b = result.weights
    np.testing.assert_allclose(est.coef_ * split.scale, W.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(est.intercept_ + est.coef_ @ split.mean, b, rtol=1e-9, atol=1e-9)
    Z = est.decision_function(X).reshape(len(X), -1)
    np.testing.assert_allclose(Z, X @ est.coef_.T + est.intercept_, rtol=1e-12)
    np.testing.assert_allclose(Z, result.model.decision_function(X), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(est.predict_proba(X), result.predict_proba(X), rtol=1e-9, atol=1e-12)
    assert est.n_iter_ == 20
    assert est.history_["epoch"][-1] == 20 and len(est.history_["train_loss"]) == 20
    assert est.history_["train_loss"][-1] == pytest.approx(result.metrics["train_loss"], rel=1e-9)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": -1.0}, r"The 'lr' parameter must be a float > 0\. Got -1\.0 instead\."),
        ({"impl": "jax"}, r"The 'impl' parameter must be one of numpy, autograd, module\. Got 'jax' "),
        ({"epochs": 0}, r"The 'epochs' parameter must be an int >= 1\. Got 0 instead\."),
        ({"momentum": 0.5}, r"The 'momentum' parameter only applies to optimizer 'momentum'"),
    ],
)
def test_bad_parameters_raise_at_fit_not_at_init(params, message):
    est = LogregClassifier(**params)  # scikit-learn's rule: __init__ and set_params only store
    LogregClassifier().set_params(**params)
    X, y = make_blobs(20, 2, centers=2, random_state=0)
    with pytest.raises(LogregError, match=message):
        est.fit(X, y)


def test_numpy_scalar_parameters_are_taken_as_python_numbers():
    # e.g. a GridSearchCV grid written with np.arange / np.logspace
    X, y = make_blobs(40, 2, centers=2, random_state=0)
    est = LogregClassifier(epochs=np.int64(5), lr=np.float32(0.1), standardize=np.bool_(True)).fit(X, y)
    assert est.n_iter_ == 5


def test_bad_data_raises():
    X, y = make_blobs(20, 2, centers=2, random_state=0)
    with pytest.raises(LogregError, match=r"needs samples of at least 2 classes .* only one class: 1\."):
        LogregClassifier().fit(X, np.ones(20, dtype=int))
    with pytest.raises(ValueError, match="Unknown label type"):
        LogregClassifier().fit(X, np.linspace(0, 1, 20))  # a regression target
    fitted = LogregClassifier(epochs=5).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but LogregClassifier is expecting 2"):
        fitted.predict(np.ones((4, 3)))


def test_divergence_raises():
    X, y = make_blobs(40, 2, centers=2, cluster_std=5.0, random_state=0)
    with pytest.raises(LogregError, match=r"Training diverged at epoch \d+: .* Lower the learning rate"):
        LogregClassifier(optimizer="sgd", lr=1e30, epochs=10, dtype="float64").fit(X, y)


# ------------------------------------------------------------------ the mlp, schedules, regression


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_mlp_classifier_learns_moons_like_mlpclassifier(impl):
    # A curved boundary: the hidden layer must beat the linear model, and reach what scikit-learn's
    # MLPClassifier (the independent reference, same width and activation) reaches.
    X, y = make_moons(400, noise=0.15, random_state=0)
    mlp = LogregClassifier(impl=impl, model="mlp", hidden=16, lr=0.05, epochs=300, standardize=True)
    mlp.fit(X, y)
    reference = MLPClassifier((16,), max_iter=2000, random_state=0).fit(X, y).score(X, y)
    linear = LogregClassifier(impl=impl, lr=0.05, epochs=300, standardize=True).fit(X, y).score(X, y)
    assert mlp.score(X, y) >= reference - 0.02
    assert mlp.score(X, y) > linear + 0.05
    W1, W2 = mlp.coefs_
    assert W1.shape == (2, 16) and W2.shape == (16, 1) and [b.shape for b in mlp.intercepts_] == [(16,), (1,)]
    assert not hasattr(mlp, "coef_")


@pytest.mark.parametrize("activation", ["relu", "tanh", "none"])
def test_mlp_weights_are_what_train_learns(activation):
    X, y = make_blobs(80, 3, centers=3, cluster_std=3.0, random_state=2)
    X = X * [1, 10, 100] + [0, -5, 50]
    params = dict(
        impl="numpy", model="mlp", hidden=5, activation=activation, epochs=15, dtype="float64", lr=0.05
    )
    est = LogregClassifier(**params, standardize=True, random_state=3).fit(X, y)
    split = make_split(X, y, standardize=True, dtype="float64", evaluate_on_train=True)
    result = train(TrainConfig(**params, standardize=True, seed=3), split)
    np.testing.assert_allclose(
        est.decision_function(X), result.model.decision_function(X), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(est.predict_proba(X), result.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_refit_with_another_model_leaves_no_stale_weights():
    X, y = make_blobs(60, 2, centers=2, random_state=0)
    est = LogregClassifier(model="mlp", epochs=5).fit(X, y)
    est.set_params(model="logistic").fit(X, y)
    assert hasattr(est, "coef_") and not hasattr(est, "coefs_")


def test_schedule_parameters_reach_training():
    # The step schedule: lr * gamma ** (epoch // step_size) at each epoch (written from the
    # schedule's definition, not from our code).
    X, y = make_blobs(60, 2, centers=2, random_state=0)
    est = LogregClassifier(optimizer="sgd", lr=0.4, epochs=40, schedule="step", step_size=10, gamma=0.5)
    est.fit(X, y)
    expected = [0.4 * 0.5 ** ((epoch - 1) // 10) for epoch in est.history_["epoch"]]
    np.testing.assert_allclose(est.history_["lr"], expected, rtol=1e-12)
    with pytest.raises(LogregError, match=r"The 'warmup_epochs' parameter must be < epochs \(40\)"):
        est.set_params(warmup_epochs=40).fit(X, y)


def test_linear_model_is_the_regressors():
    X, y = make_blobs(20, 2, centers=2, random_state=0)
    with pytest.raises(LogregError, match=r"'model' parameter must be 'logistic' or 'mlp'.*LogregRegressor"):
        LogregClassifier(model="linear").fit(X, y)


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_regressor_pipeline_matches_linear_regression_on_diabetes(diabetes, impl):
    # cross-validated R^2 within 0.02 of scikit-learn's LinearRegression (the closed form).
    X, y = diabetes
    cv = KFold(5, shuffle=True, random_state=0)
    reference = cross_val_score(make_pipeline(StandardScaler(), LinearRegression()), X, y, cv=cv).mean()
    est = LogregRegressor(impl=impl, optimizer="sgd", lr=0.05, epochs=500, dtype="float64")
    ours = cross_val_score(make_pipeline(StandardScaler(), est), X, y, cv=cv).mean()
    assert abs(ours - reference) <= 0.02, (ours, reference)


def test_regressor_coef_reaches_the_least_squares_solution(diabetes):
    X, y = diabetes
    reference = LinearRegression().fit(X, y)
    est = LogregRegressor(optimizer="sgd", lr=0.1, epochs=3000, standardize=True, dtype="float64").fit(X, y)
    assert est.coef_.shape == (10,) and isinstance(est.intercept_, float)
    np.testing.assert_allclose(est.predict(X), X @ est.coef_ + est.intercept_, rtol=1e-12)
    # Collinear features make single coefficients slow to settle: compare the fit, then the weights.
    assert est.score(X, y) == pytest.approx(reference.score(X, y), abs=1e-3)
    assert est.intercept_ == pytest.approx(reference.intercept_, rel=1e-3)
    assert est.n_iter_ == 3000 and est.history_["train_r2"][-1] == pytest.approx(est.score(X, y), abs=1e-6)


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_regressor_pickle_and_clone(impl, diabetes):
    X, y = diabetes
    est = LogregRegressor(impl=impl, optimizer="sgd", lr=0.05, epochs=20, standardize=True).fit(X, y)
    data = pickle.dumps(est)
    assert not any(m.startswith("torch") for m in _pickled_modules(data))
    np.testing.assert_array_equal(pickle.loads(data).predict(X), est.predict(X))
    assert not hasattr(clone(est), "coef_")


def test_regressor_refuses_non_numeric_targets():
    X = np.ones((4, 2))
    with pytest.raises(
        LogregError, match=r"LogregRegressor needs a numeric target y\. Got dtype <U1; use Logreg"
    ):
        LogregRegressor().fit(X, np.array(["a", "b", "c", "d"]))
