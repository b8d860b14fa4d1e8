"""LogregClassifier as a scikit-learn estimator: the estimator checks, model selection, pickling,
labels, agreement with `logreg.train`, and errors."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from logreg import LogregError, TrainConfig, make_split, train
from logreg.config import IMPL_NAMES
from logreg.sklearn import LogregClassifier

# BLAS and torch on one thread: on the busy 2-core machine extra threads spin waiting for a core.
# Every test here takes under a second, the estimator checks of all three impls ~15 s together.
pytestmark = pytest.mark.usefixtures("single_thread")

CV = StratifiedKFold(5, shuffle=True, random_state=0)


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks LogregClassifier is excused from, with the reason: none (all pass as of 1.9.1)."""
    return {}


@parametrize_with_checks(
    [LogregClassifier(impl=impl) for impl in IMPL_NAMES], expected_failed_checks=expected_failed_checks
)
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
