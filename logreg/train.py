"""train(config) -> Result: the loop, evaluation and timings."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logreg.config import TrainConfig
from logreg.data import Split, load_split
from logreg.errors import LogregError
from logreg.impls import Data, Implementation, make_network
from logreg.model import FittedModel
from logreg.optimum import Optimum
from logreg.timing import available_memory, batch_orders, set_torch_threads, timed_epoch, warn_if_long

# A run has diverged when its train loss is NaN or infinite, or exceeds this
# factor times the loss of its initial weights (a convex loss trained well
# never grows that much; with a huge learning rate it grows without bound).
DIVERGENCE_FACTOR = 100.0

HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")
# Model 'linear' (regression): R^2 where the classifiers have accuracy; the loss is the MSE.
REGRESSION_HISTORY_KEYS = ("epoch", "train_loss", "train_r2", "val_loss", "val_r2", "lr")


# Cumulative training seconds at each evaluation point (evaluation excluded), always logged;
# with a finite F* also the objective F(w_t) (loss + weight_decay / 2 ||W||^2), F(w_t) - F*
# and (F(w_t) - F*) / (F(w_0) - F*).
TIME_KEY = "train_seconds"
SUBOPTIMALITY_KEYS = ("train_objective", "suboptimality", "rel_suboptimality")
# Relative suboptimality targets: time_to_eps_1e-2 etc. (seconds), epochs_to_eps_1e-2 (epochs).
EPSILONS = (1e-2, 1e-4, 1e-6)


class Interrupted(KeyboardInterrupt):
    """Training stopped between two epochs because `should_stop()` said so (Ctrl-C or SIGTERM in a
    sweep): a KeyboardInterrupt, so every layer above ends the run as it would on Ctrl-C."""


def eps_name(eps: float) -> str:
    """'1e-2' for 0.01: the suffix of time_to_eps_<k> and epochs_to_eps_<k>."""
    return f"1e-{round(-math.log10(eps))}"


def history_keys(config: TrainConfig) -> tuple[str, ...]:
    """The history's keys: epoch, train/val loss, accuracy (or R^2 for linear), the epoch's lr."""
    return REGRESSION_HISTORY_KEYS if config.model == "linear" else HISTORY_KEYS


@dataclass
class Result:
    """What one training run produced. `status` is 'completed' or 'diverged'."""

    config: TrainConfig
    metrics: dict[str, float]
    """Final train / val / test loss and accuracy; ROC AUC for binary problems.
    Model 'linear': loss (= MSE), mse, rmse and r2 per part."""
    history: dict[str, list]
    """Per evaluation point (every `eval_every` epochs): epoch, train/val loss and accuracy
    (r2 for 'linear'), and lr, the learning rate of the epoch just trained."""
    timings: dict[str, float]
    """fit_seconds (evaluation and compilation excluded), epoch_seconds_median, samples_per_second,
    epochs_run; torch_threads (the count used, torch implementations); compile_seconds (--compile);
    time_to_target_seconds (with target_accuracy)."""
    status: str
    message: str
    device: str
    model: FittedModel
    """The fitted model: weights, standardisation, class names; predicts from raw rows."""
    split: Split = field(repr=False)
    initial_objective: float = float("nan")
    """F(w_0), when train() recorded the objective (train_objective in the history)."""
    optimum: Optimum | None = None
    """F* the suboptimality was measured against (None without one)."""

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(W (d, k), b (k,)) in the training dtype."""
        return self.model.W, self.model.b

    def predict_proba(self, X_raw) -> np.ndarray:
        """Class probabilities (n, K) for raw (unstandardised) feature rows."""
        return self.model.predict_proba(X_raw)

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


def initial_layers(sizes: list[int], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """nn.Linear's default initialisation of each layer, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Drawn once with NumPy, in layer order from one generator, so every implementation starts
    from the same weights; sizes [d, k] gives initial_weights(d, k, seed).
    """
    rng = np.random.default_rng([seed, 1])
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = 1.0 / math.sqrt(fan_in)
        W = rng.uniform(-bound, bound, size=(fan_in, fan_out))
        layers.append((W, rng.uniform(-bound, bound, size=fan_out)))
    return layers


def initial_weights(n_features: int, n_outputs: int, seed: int):
    """nn.Linear's default initialisation, U(-1/sqrt(d), 1/sqrt(d)), drawn with NumPy."""
    return initial_layers([n_features, n_outputs], seed)[0]


def layer_sizes(config: TrainConfig, split: Split) -> list[int]:
    """[d, k] (logistic, linear) or [d, hidden, k] (mlp); k = 1 for two classes or regression."""
    n_outputs = 1 if split.n_classes <= 2 else split.n_classes
    if config.model == "mlp":
        return [split.n_features, config.hidden, n_outputs]
    return [split.n_features, n_outputs]


def model_bytes(config: TrainConfig, sizes: list[int], n_rows: int) -> int:
    """Bytes the model needs beyond the data: weights, gradients and optimizer state (4 copies),
    initial weights drawn in float64, and per layer its activations for the largest part
    (forward, backward, an activation's derivative: 4 arrays of rows x width)."""
    itemsize = 8 if config.dtype == "float64" else 4
    weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    batch = min(n_rows, config.batch_size or n_rows)
    activations = 4 * max(batch, n_rows) * sum(sizes[1:])  # evaluation sees a whole part
    return (4 * itemsize + 8) * weights + itemsize * activations


def check_sparse(config: TrainConfig, split: Split) -> None:
    """Sparse rows train the logistic and linear models, eagerly: one clear line otherwise."""
    if not split.sparse:
        return
    if config.model == "mlp":
        raise LogregError(
            f"The mlp takes dense features; {split.name} is sparse ({split.n_features} columns). "
            "Use --model logistic or --model linear for sparse data."
        )
    if config.compile:
        raise LogregError(
            f"torch.compile does not take sparse tensors; {split.name} is sparse. Use --no-compile."
        )


def work_shape(split: Split) -> tuple[int, int]:
    """(rows, values per row) of the training part: its columns, or its non-zeros per row."""
    n, d = split.X_train.shape
    return (n, max(1, split.X_train.nnz // max(1, n))) if split.sparse else (n, d)


def check_memory(config: TrainConfig, split: Split) -> None:
    """Refuse a model that cannot fit in memory, before anything is allocated (one clear line);
    and what sparse rows cannot train (check_sparse)."""
    check_sparse(config, split)
    sizes = layer_sizes(config, split)
    rows = max(len(split.y_train), len(split.y_val), len(split.y_test))
    need, have = model_bytes(config, sizes, rows), available_memory()
    if need <= have:
        return
    what = f"The mlp with hidden={config.hidden}" if config.model == "mlp" else f"The {config.model} model"
    fix = "Use a smaller --hidden" if config.model == "mlp" else "Use fewer features"
    raise LogregError(
        f"{what} needs about {need / 2**30:.1f} GiB for its weights, optimizer state and "
        f"activations on {split.name} ({rows} rows x {split.n_features} features); this machine has "
        f"{have / 2**30:.1f} GiB available. {fix}."
    )


def _roc_auc(y, proba) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, proba[:, 1]))


@dataclass
class _Loop:
    """What the epoch loop accumulates: history, epoch times, status, time to target."""

    keys: tuple[str, ...] = HISTORY_KEYS
    history: dict[str, list] = field(default_factory=dict)
    epoch_times: list[float] = field(default_factory=list)
    status: str = "completed"
    message: str = ""
    time_to_target: float | None = None
    initial_objective: float = float("nan")
    """F(w_0), when the objective is recorded (train_objective in the history)."""


def _objective(model: Implementation, train_loss: float, config: TrainConfig) -> float:
    """F(w) = the mean training loss + weight_decay / 2 * ||W||^2 (bias not decayed), in float64."""
    if not config.weight_decay:
        return float(train_loss)
    W = np.asarray(model.get_params()[0], dtype=np.float64)
    return float(train_loss) + 0.5 * config.weight_decay * float(np.sum(W * W))


def _diverged(train_loss: float, val_loss: float, loss_limit: float) -> bool:
    return not (math.isfinite(train_loss) and math.isfinite(val_loss)) or train_loss > loss_limit


def _final_metrics(model: Implementation, parts, split: Split, completed: bool) -> dict[str, float]:
    """Loss and accuracy of every part; ROC AUC for binary problems that completed.

    Regression: loss (the MSE), mse, rmse and r2 of every part.
    """
    labels = {"train": split.y_train, "val": split.y_val, "test": split.y_test}
    metrics: dict[str, float] = {}
    if split.n_classes == 0:
        for part, data in parts.items():
            mse, r2 = model.evaluate(data)
            metrics.update({f"{part}_loss": mse, f"{part}_mse": mse, f"{part}_r2": r2})
            metrics[f"{part}_rmse"] = math.sqrt(mse) if mse >= 0 else float("nan")
        return metrics
    for part, data in parts.items():
        metrics[f"{part}_loss"], metrics[f"{part}_accuracy"] = model.evaluate(data)
        if split.n_classes == 2 and completed:
            metrics[f"{part}_roc_auc"] = _roc_auc(labels[part], model.predict_proba(data))
    return metrics


def _timings(loop: _Loop, n: int, config: TrainConfig, threads: int | None) -> dict[str, float]:
    fit_seconds = sum(loop.epoch_times)
    compile_seconds = None
    if config.compile:
        # The first epoch compiles (every graph: its blocks or batches are all seen once): what it
        # took beyond a steady epoch is the compile time, reported apart and left out of fit_seconds.
        steady = statistics.median(loop.epoch_times[1:]) if len(loop.epoch_times) > 1 else 0.0
        compile_seconds = max(0.0, loop.epoch_times[0] - steady)
        fit_seconds -= compile_seconds
    timings = {
        "fit_seconds": fit_seconds,
        "epoch_seconds_median": statistics.median(loop.epoch_times),
        "samples_per_second": n * len(loop.epoch_times) / fit_seconds if fit_seconds > 0 else float("inf"),
        "epochs_run": len(loop.epoch_times),
    }
    if threads is not None:
        timings["torch_threads"] = threads  # the count used (config.torch_threads 0: chosen)
    if compile_seconds is not None:
        timings["compile_seconds"] = compile_seconds
    if config.target_accuracy is not None:
        found = loop.time_to_target
        timings["time_to_target_seconds"] = found if found is not None else float("nan")
    if "rel_suboptimality" in loop.history:
        timings.update(time_to_eps(loop.history))
    return timings


def time_to_eps(history: dict[str, list]) -> dict[str, float]:
    """time_to_eps_<k> and epochs_to_eps_<k>: the first evaluation point whose relative
    suboptimality is <= eps (NaN when none is)."""
    out: dict[str, float] = {}
    rel = history.get("rel_suboptimality", [])
    for eps in EPSILONS:
        hit = next((i for i, r in enumerate(rel) if r <= eps), None)
        name = eps_name(eps)
        out[f"time_to_eps_{name}"] = float(history[TIME_KEY][hit]) if hit is not None else float("nan")
        out[f"epochs_to_eps_{name}"] = float(history["epoch"][hit]) if hit is not None else float("nan")
    return out


def suboptimality(
    history: dict[str, list], initial_objective: float, optimum: Optimum | None
) -> tuple[dict[str, list], dict[str, float]]:
    """From a history with train_objective (and train_seconds): the series suboptimality =
    F(w_t) - F* and rel_suboptimality (/ (F(w_0) - F*)), and the timings time_to_eps_<k> /
    epochs_to_eps_<k>. Nothing when F* is not finite (or None: mlp)."""
    if optimum is None or not optimum.finite or "train_objective" not in history:
        return {}, {}
    gap0 = initial_objective - optimum.value
    gaps = [value - optimum.value for value in history["train_objective"]]
    series = {
        "suboptimality": gaps,
        "rel_suboptimality": [g / gap0 if gap0 > 0 else float("nan") for g in gaps],
    }
    return series, time_to_eps({**history, **series})


def _add_suboptimality(loop: _Loop, optimum: Optimum | None) -> None:
    series, _ = suboptimality(loop.history, loop.initial_objective, optimum)
    loop.history.update(series)


def train(
    config: TrainConfig,
    split: Split | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    optimum: Optimum | Callable[[], Optimum | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Train the model `config` names (logistic, mlp or linear) and return the Result.

    `optimum` (logreg.optimum.optimum_for(config, split), or a function returning it, asked
    only after the last epoch so that F* can be solved elsewhere while this trains): with a
    finite F*, every evaluation point also records train_objective, suboptimality and
    rel_suboptimality, and the timings time_to_eps_<k> / epochs_to_eps_<k>.

    `on_eval(epoch, metrics)` is called at every evaluation point (outside the
    timings) with train/val loss and accuracy; it may raise to stop training
    (the sweep raises optuna.TrialPruned). Divergence (a NaN or infinite loss)
    stops training and returns a Result with status 'diverged'. `should_stop()` is asked after
    every epoch (outside the timings): True raises Interrupted.
    """
    # 1. Data and model: the same initial weights for every implementation; data moved once.
    split = split if split is not None else load_split(config)
    check_memory(config, split)
    device = config.resolved_device
    threads = None
    if config.impl != "numpy":  # torch's threads: config.torch_threads, or chosen from n x d
        threads = set_torch_threads(config.torch_threads, *work_shape(split))
    model = make_network(config, initial_layers(layer_sizes(config, split), config.seed), device)
    parts = {
        "train": model.put(split.X_train, split.y_train),
        "val": model.put(split.X_val, split.y_val),
        "test": model.put(split.X_test, split.y_test),
    }
    # 2. The epochs, timed; evaluation points outside the timings.
    loop = _run_epochs(
        config, model, parts, len(split.y_train), device, on_eval, optimum is not None, should_stop
    )
    if optimum is not None:
        optimum = optimum() if callable(optimum) else optimum
        _add_suboptimality(loop, optimum)
    # 3. What the run produced.
    completed = loop.status == "completed"
    metrics = _final_metrics(model, parts, split, completed)
    fitted = FittedModel.from_split(*model.get_params(), split, model.get_layers()[:-1], config)
    probe = split.metadata.get("probe")
    if probe is not None and completed:
        metrics[probe.metric] = float(fitted.predict_proba([list(probe.x)])[0, 1])
    return Result(
        config=config,
        metrics=metrics,
        history=loop.history,
        timings=_timings(loop, len(split.y_train), config, threads),
        status=loop.status,
        message=loop.message,
        device=device,
        model=fitted,
        split=split,
        initial_objective=loop.initial_objective,
        optimum=optimum,
    )


def _warn_if_long(epoch_times: list[float], epochs: int) -> None:
    """After the first epochs: one warning line when all of them would take more than a day."""
    steady = epoch_times[1:] or epoch_times  # the first epoch warms up (or compiles)
    per_epoch = sum(steady) / len(steady)
    warn_if_long(
        per_epoch * epochs,
        f"This run ({epochs} epochs at {per_epoch * 1e6:.3g} us each)",
        "Lower --epochs, or stop it with Ctrl-C.",
    )


def _run_epochs(
    config: TrainConfig,
    model: Implementation,
    parts: dict[str, Data],
    n: int,
    device: str,
    on_eval: Callable[[int, dict[str, float]], None] | None,
    objective: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> _Loop:
    keys = history_keys(config) + (TIME_KEY,) + (SUBOPTIMALITY_KEYS[:1] if objective else ())
    loop = _Loop(keys=keys, history={k: [] for k in keys})
    initial_loss = model.evaluate(parts["train"])[0]
    if objective:
        loop.initial_objective = _objective(model, initial_loss, config)
    loss_limit = DIVERGENCE_FACTOR * max(initial_loss, 1.0) if math.isfinite(initial_loss) else math.inf
    model.synchronize()
    orders = batch_orders(config.seed, n, config.batch_size)
    for epoch in range(1, config.epochs + 1):
        loop.epoch_times.append(timed_epoch(model, parts["train"], next(orders), device))
        if epoch == min(3, config.epochs - 1):
            _warn_if_long(loop.epoch_times, config.epochs)
        if should_stop is not None and should_stop():
            raise Interrupted(f"stopped after epoch {epoch}")
        if epoch % config.eval_every and epoch != config.epochs:
            continue
        # Evaluation point: outside the timings, the only host synchronisation.
        train_loss, train_acc = model.evaluate(parts["train"])
        val_loss, val_acc = model.evaluate(parts["val"])
        point = (
            epoch,
            train_loss,
            train_acc,
            val_loss,
            val_acc,
            model.learning_rate(),
            sum(loop.epoch_times),
        )
        if objective:
            point += (_objective(model, train_loss, config),)
        for key, value in zip(keys, point, strict=True):
            loop.history[key].append(value)
        if _diverged(train_loss, val_loss, loss_limit):
            loop.status = "diverged"
            loop.message = (
                f"Training diverged at epoch {epoch}: the train loss became {train_loss:.4g} "
                f"(initial {initial_loss:.4g}). Lower the learning rate (lr={config.lr})."
            )
            break
        if (
            config.target_accuracy is not None
            and loop.time_to_target is None
            and model.evaluate(parts["test"])[1] >= config.target_accuracy
        ):
            loop.time_to_target = sum(loop.epoch_times)
        if on_eval is not None:
            on_eval(epoch, dict(zip(keys[1:], point[1:], strict=True)))
    return loop
