"""scikit-learn's answer on the same split: the one reference every accuracy here is read against
(the sweep's summary, the report, and the tests' accuracy floors)."""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def sklearn_test_accuracy(dataset: str, seed: int = 0, dtype: str = "float64") -> float:
    """Test accuracy of scikit-learn's default LogisticRegression (lbfgs, C=1) on our split."""
    from sklearn.linear_model import LogisticRegression

    from logreg.config import TrainConfig
    from logreg.data import load_split

    split = load_split(TrainConfig(dataset=dataset, seed=seed, dtype=dtype))
    model = LogisticRegression(max_iter=10_000).fit(split.X_train, split.y_train)
    return float(model.score(split.X_test, split.y_test))


@functools.cache
def regression_references(dataset: str, seed: int = 0, dtype: str = "float64") -> dict[str, float]:
    """Test R^2 of the closed-form least squares (numpy.linalg.lstsq on [X, 1]) and of
    scikit-learn's LinearRegression, fitted on the same training part."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    from logreg.config import TrainConfig
    from logreg.data import load_split

    split = load_split(TrainConfig(dataset=dataset, model="linear", seed=seed, dtype=dtype))
    X_train, X_test = (np.asarray(a, dtype=np.float64) for a in (split.X_train, split.X_test))
    w, *_ = np.linalg.lstsq(np.column_stack([X_train, np.ones(len(X_train))]), split.y_train, rcond=None)
    lstsq = r2_score(split.y_test, X_test @ w[:-1] + w[-1])
    sk = LinearRegression().fit(X_train, split.y_train).score(X_test, split.y_test)
    return {"lstsq_test_r2": float(lstsq), "sklearn_test_r2": float(sk)}
