"""Trained to convergence, every implementation reaches scikit-learn's optimum within 1e-4.

Our objective is mean log loss + (wd / 2) ||W||^2 (bias not penalised); scikit-learn's
LogisticRegression(C=1 / (wd * n_train)) minimises the same function (C = inf for wd = 0),
so its minimum, computed live with a tiny tolerance, is the independent reference. Without
weight decay the optimum exists only when the classes overlap, so those cases use data that is
not linearly separable (classification, synthetic, a 3-class make_classification); the
separable-ish ones (iris, breast_cancer, digits) get weight decay.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from logreg import TrainConfig, load_split, make_split, train
from logreg.config import IMPL_NAMES

pytestmark = pytest.mark.usefixtures("single_thread")

TOLERANCE = 1e-4

# (dataset, weight decay); "three-classes" is a 3-class make_classification (overlapping classes).
CASES = [
    ("classification", 0.0),
    ("synthetic:n=5000,d=10", 0.0),
    ("three-classes", 0.0),
    ("iris", 0.01),
    ("breast_cancer", 0.01),
    ("digits", 0.01),
    ("three-classes", 0.01),
]

# Full batch, float64. In 150 epochs both are within 3e-6 of the optimum on every case
# (within 2e-7 but momentum on digits); 100 epochs would leave up to 5e-5.
OPTIMIZERS = {
    "adam": {"optimizer": "adam", "lr": 0.1},
    "momentum": {"optimizer": "momentum", "lr": 0.5, "momentum": 0.9},
}
EPOCHS = 150


@functools.cache
def _split(dataset: str):
    if dataset == "three-classes":
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=1500, n_features=8, n_informative=5, n_classes=3, random_state=0)
        return make_split(X, y, name=dataset, dtype="float64")
    return load_split(TrainConfig(dataset=dataset, dtype="float64"))


@functools.cache
def _reference(dataset: str, weight_decay: float, sklearn_objective) -> float:
    split = _split(dataset)
    return sklearn_objective(split.X_train, split.y_train, split.n_classes, weight_decay)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("impl", IMPL_NAMES)
@pytest.mark.parametrize(("dataset", "weight_decay"), CASES, ids=[f"{d}-wd{w}" for d, w in CASES])
def test_final_objective_matches_sklearn_optimum(dataset, weight_decay, impl, optimizer, sklearn_objective):
    split = _split(dataset)
    config = TrainConfig(
        dataset="blobs" if dataset == "three-classes" else dataset,
        impl=impl,
        dtype="float64",
        epochs=EPOCHS,
        eval_every=EPOCHS,
        weight_decay=weight_decay,
        **OPTIMIZERS[optimizer],
    )
    result = train(config, split=split)
    assert result.status == "completed", result.message
    W, _ = result.weights
    objective = result.metrics["train_loss"] + 0.5 * weight_decay * float(np.sum(W.astype(np.float64) ** 2))
    reference = _reference(dataset, weight_decay, sklearn_objective)
    # Ours is no better than the optimum (else the reference did not converge) and within 1e-4.
    assert reference - 1e-7 <= objective <= reference + TOLERANCE, (objective, reference)


def test_weight_decay_is_the_penalty_sklearn_sees(sklearn_objective):
    # The C <-> wd mapping matters: a tenfold wrong penalty moves the optimum far beyond 1e-4.
    split = _split("breast_cancer")
    right = sklearn_objective(split.X_train, split.y_train, 2, 0.01)
    wrong = sklearn_objective(split.X_train, split.y_train, 2, 0.1)
    result = train(
        TrainConfig(dataset="breast_cancer", dtype="float64", epochs=EPOCHS, weight_decay=0.01, lr=0.1)
    )
    W, _ = result.weights
    objective = result.metrics["train_loss"] + 0.005 * float(np.sum(W**2))
    assert abs(objective - right) < TOLERANCE
    assert abs(objective - wrong) > 100 * TOLERANCE
