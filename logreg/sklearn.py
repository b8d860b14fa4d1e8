"""LogregClassifier and LogregRegressor: the training core behind scikit-learn's estimator API.

An outer layer, like tune/ and bench/: it imports the core (config, data, train) and nothing
around it, and it is the one module that imports scikit-learn on import (its base classes).
`fit` builds a TrainConfig from the estimator's parameters (validated there, so errors read as
they do everywhere else), a Split whose train / val / test parts are all the rows given (no
internal split: model selection is the caller's, e.g. GridSearchCV), and calls `train`.

The fitted state is plain NumPy arrays with scikit-learn's names and shapes, in the space of the
raw features (the standardisation `fit` applies is folded into them):
- logistic (LogisticRegression's): `coef_` (1, d) for two classes or (K, d), `intercept_` (1,)
  or (K,), so that `decision_function(X) == X @ coef_.T + intercept_`;
- mlp (MLPClassifier's): `coefs_` [(d, hidden), (hidden, k)] and `intercepts_` [(hidden,), (k,)];
- linear (LinearRegression's): `coef_` (d,), `intercept_` a float, `predict(X) == X @ coef_ +
  intercept_`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from logreg.config import TrainConfig
from logreg.data import make_split
from logreg.errors import LogregError
from logreg.impls.mlp_numpy import activate
from logreg.train import train

HISTORY_POINTS = 20
FLOATS = [np.float64, np.float32]
SPARSE = ["csr", "csc", "coo"]  # scipy sparse input, trained as CSR (never densified)


class _LogregEstimator(BaseEstimator):
    """What both estimators share: TrainConfig from the parameters, one `train` on all rows."""

    _model = "logistic"  # the TrainConfig model when the estimator has no `model` parameter
    _task = "classification"

    def _config(self) -> TrainConfig:
        """The estimator's parameters as a validated TrainConfig (raises LogregError)."""
        # NumPy scalars (a grid from np.arange, say) as the Python numbers TrainConfig checks for.
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in self.get_params().items()}
        params["seed"] = params.pop("random_state")  # scikit-learn's name for TrainConfig's seed
        params.setdefault("model", self._model)
        # history_ keeps about HISTORY_POINTS evaluation points: every epoch would double the
        # cost of fit (all parts are the same rows).
        epochs = params["epochs"]
        valid = isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0
        eval_every = max(1, epochs // HISTORY_POINTS) if valid else 1
        return TrainConfig(**params, eval_every=eval_every)

    def _train(self, config: TrainConfig, X, y):
        """train() on a Split whose train, val and test parts are all of (X, y)."""
        split = make_split(
            X,
            y,
            name=type(self).__name__,
            seed=config.seed,
            standardize=config.standardize,
            dtype=config.dtype,
            evaluate_on_train=True,  # train, val and test are all the rows given: no split
            task=self._task,
        )
        result = train(config, split)
        if result.diverged:
            raise LogregError(result.message)
        self.n_iter_ = int(result.timings["epochs_run"])
        self.history_ = {k: list(v) for k, v in result.history.items()}
        return result, split

    def _raw_layer(self, W, b, split):
        """Fold the standardisation into a first layer: ((x - mean) / scale) W + b = x W' + b'."""
        W_raw = np.asarray(W, dtype=np.float64) / split.scale[:, None]
        return W_raw, np.asarray(b, dtype=np.float64) - split.mean @ W_raw

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # TrainConfig's data checks refuse NaN and inf
        tags.non_deterministic = False  # random_state fixes the initial weights and batch orders
        # scipy sparse X: logistic and linear train on CSR; the mlp takes dense features only.
        tags.input_tags.sparse = getattr(self, "model", self._model) != "mlp"
        return tags

    def _accept_sparse(self):
        return SPARSE if getattr(self, "model", self._model) != "mlp" else False


class LogregClassifier(ClassifierMixin, _LogregEstimator):
    """Logistic regression (binary: sigmoid; K classes: softmax), or the mlp, trained by `logreg.train`.

    Parameters are TrainConfig's fields of the same names (see its docstrings), except
    `random_state` (TrainConfig's `seed`); `lr` and `momentum` left as None take the optimizer's
    defaults; `torch_threads` 0 (or "auto") chooses torch's threads from the size of X. `model`
    is 'logistic' or 'mlp' (one hidden layer of `hidden` units with `activation`); regression is
    LogregRegressor's. The estimator trains on exactly the rows given; features are standardised
    only when `standardize=True` is asked for (with the statistics of those rows), and the fitted
    weights are then still expressed for the raw features.

    Attributes: classes_, coef_ and intercept_ (logistic), coefs_ and intercepts_ (mlp, as
    MLPClassifier's), n_features_in_, feature_names_in_ (DataFrames with string column names),
    n_iter_ (epochs run), history_ (train loss and accuracy at about HISTORY_POINTS evaluation
    points: epoch, train_loss, train_accuracy, val_loss, val_accuracy, lr).
    """

    def __init__(
        self,
        impl: str = "numpy",
        optimizer: str = "adam",
        lr: float | None = None,
        momentum: float | None = None,
        nesterov: bool = False,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int | None = None,
        standardize: bool = False,
        dtype: str = "float32",
        device: str = "cpu",
        random_state: int = 0,
        model: str = "logistic",
        hidden: int = 16,
        activation: str = "relu",
        schedule: str = "constant",
        step_size: int = 30,
        gamma: float = 0.1,
        warmup_epochs: int = 0,
        torch_threads: int = 0,
        compile: bool = False,
    ) -> None:
        self.impl = impl
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.standardize = standardize
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.model = model
        self.hidden = hidden
        self.activation = activation
        self.schedule = schedule
        self.step_size = step_size
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs
        self.torch_threads = torch_threads
        self.compile = compile

    def fit(self, X, y) -> LogregClassifier:
        """Train on all rows of X (n_samples, n_features) with labels y (any sortable values)."""
        config = self._config()
        if config.model == "linear":
            raise LogregError(
                "LogregClassifier's 'model' parameter must be 'logistic' or 'mlp'. Got 'linear' "
                "instead; use LogregRegressor for linear regression."
            )
        X, y = validate_data(self, X, y, dtype=FLOATS, accept_sparse=self._accept_sparse())
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise LogregError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {classes[0]}."
            )
        result, split = self._train(config, X, y_encoded)
        self.classes_ = classes
        fitted = result.model
        for name in ("coef_", "intercept_", "coefs_", "intercepts_"):
            self.__dict__.pop(name, None)  # a refit with another model leaves no stale weights
        if fitted.hidden is not None:
            W1, b1 = self._raw_layer(*fitted.hidden, split)
            self.coefs_ = [W1, fitted.W.astype(np.float64)]
            self.intercepts_ = [b1, fitted.b.astype(np.float64)]
            self.activation_ = fitted.activation
        else:
            W, b = self._raw_layer(fitted.W, fitted.b, split)
            self.coef_ = np.ascontiguousarray(W.T)
            self.intercept_ = b
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for two classes (positive favours classes_[1]), (n, K) otherwise."""
        check_is_fitted(self, "classes_")
        X = validate_data(self, X, reset=False, dtype=FLOATS, accept_sparse=SPARSE).astype(
            np.float64, copy=False
        )
        if hasattr(self, "coefs_"):
            H = activate(X @ self.coefs_[0] + self.intercepts_[0], self.activation_)
            Z = H @ self.coefs_[1] + self.intercepts_[1]
        else:
            Z = X @ self.coef_.T + self.intercept_
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict_proba(self, X) -> np.ndarray:
        """(n, K) class probabilities, columns in the order of classes_."""
        Z = self.decision_function(X)
        if Z.ndim == 1:
            p = expit(Z)
            return np.column_stack([1 - p, p])
        return softmax(Z, axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as the labels given to fit."""
        Z = self.decision_function(X)
        index = (Z > 0).astype(np.intp) if Z.ndim == 1 else Z.argmax(axis=1)
        return self.classes_[index]


class LogregRegressor(RegressorMixin, _LogregEstimator):
    """Least-squares linear regression (the 'linear' model, loss = MSE) trained by `logreg.train`.

    Parameters as LogregClassifier's, without the model choice. The target is used as given (not
    standardised): scale it, or choose `lr`, accordingly. Attributes: coef_ (d,), intercept_
    (float), n_features_in_, feature_names_in_, n_iter_, history_ (train_loss, train_r2, ...).
    """

    _model = "linear"
    _task = "regression"

    def __init__(
        self,
        impl: str = "numpy",
        optimizer: str = "adam",
        lr: float | None = None,
        momentum: float | None = None,
        nesterov: bool = False,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int | None = None,
        standardize: bool = False,
        dtype: str = "float32",
        device: str = "cpu",
        random_state: int = 0,
        schedule: str = "constant",
        step_size: int = 30,
        gamma: float = 0.1,
        warmup_epochs: int = 0,
        torch_threads: int = 0,
        compile: bool = False,
    ) -> None:
        self.impl = impl
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.standardize = standardize
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.schedule = schedule
        self.step_size = step_size
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs
        self.torch_threads = torch_threads
        self.compile = compile

    def fit(self, X, y) -> LogregRegressor:
        """Train on all rows of X (n_samples, n_features) with numeric targets y (n_samples,)."""
        config = self._config()
        X, y = validate_data(self, X, y, dtype=FLOATS, y_numeric=True, accept_sparse=SPARSE)
        if y.dtype.kind not in "biuf":
            raise LogregError(
                f"{type(self).__name__} needs a numeric target y. Got dtype {y.dtype}; use "
                "LogregClassifier for class labels."
            )
        result, split = self._train(config, X, y)
        W, b = self._raw_layer(result.model.W, result.model.b, split)
        self.coef_ = np.ascontiguousarray(W[:, 0])
        self.intercept_ = float(b[0])
        return self

    def predict(self, X) -> np.ndarray:
        """X @ coef_ + intercept_ (float64)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOATS, accept_sparse=SPARSE).astype(
            np.float64, copy=False
        )
        return X @ self.coef_ + self.intercept_
