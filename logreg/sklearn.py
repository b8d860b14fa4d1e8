"""LogregClassifier: the training core behind scikit-learn's estimator API.

An outer layer, like tune/ and bench/: it imports the core (config, data, train) and nothing
around it, and it is the one module that imports scikit-learn on import (its base classes).
`fit` builds a TrainConfig from the estimator's parameters (validated there, so errors read as
they do everywhere else), a Split whose train / val / test parts are all the rows given (no
internal split: model selection is the caller's, e.g. GridSearchCV), and calls `train`.

The fitted state is plain NumPy arrays with scikit-learn's names and shapes: `coef_` (1, d) for
two classes or (K, d), `intercept_` (1,) or (K,), in the space of the raw features (the
standardisation `fit` applies is folded into them), so that
`decision_function(X) == X @ coef_.T + intercept_`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from logreg.config import TrainConfig
from logreg.data import make_split
from logreg.errors import LogregError
from logreg.train import train

HISTORY_POINTS = 20


class LogregClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression (binary: sigmoid; K classes: softmax) trained by `logreg.train`.

    Parameters are TrainConfig's fields of the same names (see its docstrings), except
    `random_state` (TrainConfig's `seed`); `lr` and `momentum` left as None take the optimizer's
    defaults; `torch_threads` 0 (or "auto") chooses torch's threads from the size of X. The
    estimator trains on exactly the rows given; features are standardised only when
    `standardize=True` is asked for (with the statistics of those rows), and `coef_` and
    `intercept_` are then still expressed for the raw features.

    Attributes: classes_, coef_, intercept_, n_features_in_, feature_names_in_ (DataFrames with
    string column names), n_iter_ (epochs run), history_ (train loss and accuracy at about
    HISTORY_POINTS evaluation points: epoch, train_loss, train_accuracy, val_loss, val_accuracy).
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
        self.torch_threads = torch_threads
        self.compile = compile

    def _config(self) -> TrainConfig:
        """The estimator's parameters as a validated TrainConfig (raises LogregError)."""
        # NumPy scalars (a grid from np.arange, say) as the Python numbers TrainConfig checks for.
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in self.get_params().items()}
        params["seed"] = params.pop("random_state")  # scikit-learn's name for TrainConfig's seed
        # history_ keeps about HISTORY_POINTS evaluation points: every epoch would double the
        # cost of fit (all parts are the same rows).
        epochs = params["epochs"]
        valid = isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0
        eval_every = max(1, epochs // HISTORY_POINTS) if valid else 1
        return TrainConfig(**params, eval_every=eval_every)

    def fit(self, X, y) -> LogregClassifier:
        """Train on all rows of X (n_samples, n_features) with labels y (any sortable values)."""
        config = self._config()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise LogregError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {classes[0]}."
            )
        split = make_split(
            X,
            y_encoded,
            name=type(self).__name__,
            seed=config.seed,
            standardize=config.standardize,
            dtype=config.dtype,
            evaluate_on_train=True,  # train, val and test are all the rows given: no split
        )
        result = train(config, split)
        if result.diverged:
            raise LogregError(result.message)
        # Fold the standardisation into the weights: ((x - mean) / scale) W + b = x W' + b'.
        W = result.model.W.astype(np.float64)  # (d, k)
        b = result.model.b.astype(np.float64)  # (k,)
        W_raw = W / split.scale[:, None]
        self.classes_ = classes
        self.coef_ = np.ascontiguousarray(W_raw.T)
        self.intercept_ = b - split.mean @ W_raw
        self.n_iter_ = int(result.timings["epochs_run"])
        self.history_ = {k: list(v) for k, v in result.history.items()}
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for two classes (positive favours classes_[1]), (n, K) otherwise."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        Z = X.astype(np.float64, copy=False) @ self.coef_.T + self.intercept_
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
