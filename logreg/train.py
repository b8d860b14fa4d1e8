"""train(config) -> Result: the loop, evaluation and timings."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logreg.config import TrainConfig
from logreg.data import Split, load_split
from logreg.impls import IMPLS

# A run has diverged when its train loss is NaN or infinite, or exceeds this
# factor times the loss of its initial weights (a convex loss trained well
# never grows that much; with a huge learning rate it grows without bound).
DIVERGENCE_FACTOR = 100.0

HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


@dataclass
class Result:
    """What one training run produced. `status` is 'completed' or 'diverged'."""

    config: TrainConfig
    metrics: dict[str, float]
    """Final train / val / test loss and accuracy; ROC AUC for binary problems."""
    history: dict[str, list]
    """Per evaluation point (every `eval_every` epochs): epoch, train/val loss and accuracy."""
    timings: dict[str, float]
    """fit_seconds (evaluation excluded), epoch_seconds_median, samples_per_second, ..."""
    status: str
    message: str
    device: str
    weights: tuple[np.ndarray, np.ndarray]
    split: Split = field(repr=False)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def predict_proba(self, X_raw) -> np.ndarray:
        """Class probabilities (n, K) for raw (unstandardised) feature rows."""
        W, b = self.weights
        Z = self.split.transform(X_raw) @ W.astype(np.float64) + b.astype(np.float64)
        if W.shape[1] == 1:
            p = 0.5 * (1 + np.tanh(0.5 * Z[:, 0]))
            return np.column_stack([1 - p, p])
        Z -= Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: config, metrics, timings, history, status."""
        return {
            "config": self.config.to_params(),
            "metrics": self.metrics,
            "timings": self.timings,
            "history": self.history,
            "status": self.status,
            "message": self.message,
            "device": self.device,
            "dataset": {
                "name": self.split.name,
                "n_train": len(self.split.y_train),
                "n_val": len(self.split.y_val),
                "n_test": len(self.split.y_test),
                "n_features": self.split.n_features,
                "n_classes": self.split.n_classes,
                "class_names": list(self.split.class_names),
            },
        }


def initial_weights(n_features: int, n_outputs: int, seed: int):
    """nn.Linear's default initialisation, U(-1/sqrt(d), 1/sqrt(d)), drawn with NumPy."""
    rng = np.random.default_rng([seed, 1])
    bound = 1.0 / math.sqrt(n_features)
    W0 = rng.uniform(-bound, bound, size=(n_features, n_outputs))
    b0 = rng.uniform(-bound, bound, size=n_outputs)
    return W0, b0


def _roc_auc(y, proba) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, proba[:, 1]))


def train(
    config: TrainConfig,
    split: Split | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> Result:
    """Train logistic regression as `config` says and return the Result.

    `on_eval(epoch, metrics)` is called at every evaluation point (outside the
    timings) with train/val loss and accuracy; it may raise to stop training
    (the sweep raises optuna.TrialPruned). Divergence (a NaN or infinite loss)
    stops training and returns a Result with status 'diverged'.
    """
    split = split if split is not None else load_split(config)
    device = config.resolved_device
    n_outputs = 1 if split.n_classes == 2 else split.n_classes
    W0, b0 = initial_weights(split.n_features, n_outputs, config.seed)
    model = IMPLS[config.impl]()(config, W0, b0, device)
    # Data is converted and moved to the device once.
    train_data = model.put(split.X_train, split.y_train)
    val_data = model.put(split.X_val, split.y_val)
    test_data = model.put(split.X_test, split.y_test)

    n = len(split.y_train)
    batch_rng = np.random.default_rng([config.seed, 2])  # same batch order for every impl
    mini_batch = config.batch_size is not None and config.batch_size < n
    history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    epoch_times: list[float] = []
    status, message, time_to_target = "completed", "", None
    initial_loss = model.evaluate(train_data)[0]
    loss_limit = DIVERGENCE_FACTOR * max(initial_loss, 1.0) if math.isfinite(initial_loss) else math.inf
    model.synchronize()
    for epoch in range(1, config.epochs + 1):
        order = batch_rng.permutation(n) if mini_batch else None
        t0 = time.perf_counter()
        model.train_epoch(train_data, order)
        model.synchronize()  # CUDA: wait for the queued kernels before reading the clock
        epoch_times.append(time.perf_counter() - t0)
        if epoch % config.eval_every and epoch != config.epochs:
            continue
        # Evaluation point: outside the timings, the only host synchronisation.
        train_loss, train_acc = model.evaluate(train_data)
        val_loss, val_acc = model.evaluate(val_data)
        for key, value in zip(HISTORY_KEYS, (epoch, train_loss, train_acc, val_loss, val_acc), strict=True):
            history[key].append(value)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)) or train_loss > loss_limit:
            status = "diverged"
            message = (
                f"Training diverged at epoch {epoch}: the train loss became {train_loss:.4g} "
                f"(initial {initial_loss:.4g}). Lower the learning rate (lr={config.lr})."
            )
            break
        if (
            config.target_accuracy is not None
            and time_to_target is None
            and model.evaluate(test_data)[1] >= config.target_accuracy
        ):
            time_to_target = sum(epoch_times)
        if on_eval is not None:
            on_eval(
                epoch,
                {
                    "train_loss": train_loss,
                    "train_accuracy": train_acc,
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                },
            )

    fit_seconds = sum(epoch_times)
    metrics: dict[str, float] = {}
    for part, data, y in (
        ("train", train_data, split.y_train),
        ("val", val_data, split.y_val),
        ("test", test_data, split.y_test),
    ):
        loss, acc = model.evaluate(data)
        metrics[f"{part}_loss"], metrics[f"{part}_accuracy"] = loss, acc
        if split.n_classes == 2 and status == "completed":
            metrics[f"{part}_roc_auc"] = _roc_auc(y, model.predict_proba(data))
    timings = {
        "fit_seconds": fit_seconds,
        "epoch_seconds_median": statistics.median(epoch_times),
        "samples_per_second": n * len(epoch_times) / fit_seconds if fit_seconds > 0 else float("inf"),
        "epochs_run": len(epoch_times),
    }
    if config.target_accuracy is not None:
        timings["time_to_target_seconds"] = time_to_target if time_to_target is not None else float("nan")
    result = Result(
        config=config,
        metrics=metrics,
        history=history,
        timings=timings,
        status=status,
        message=message,
        device=device,
        weights=model.get_params(),
        split=split,
    )
    if split.name == "hours" and status == "completed":
        metrics["p_pass_at_4_hours"] = float(result.predict_proba([[4.0]])[0, 1])
    return result
