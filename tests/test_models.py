"""The mlp and linear models: hand gradients against torch autograd, the three implementations
agree, linear reaches its closed form, mlp reaches scikit-learn's MLPClassifier, and the
tutorials' 2 -> 5 -> 1 network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from logreg import TrainConfig, load_split, train
from logreg.config import ACTIVATION_NAMES, IMPL_NAMES
from logreg.impls import MLP_IMPLS, make_network
from logreg.train import initial_layers

pytestmark = pytest.mark.usefixtures("single_thread")

RTOL, ATOL = 1e-9, 1e-12
TORCH_ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda A: F.leaky_relu(A, 0.01),
    "tanh": torch.tanh,
    "none": lambda A: A,
}


def _problem(n: int, d: int, k: int, seed: int, regression: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, d)) * rng.uniform(0.5, 3.0, d)
    y = rng.normal(0.0, 3.0, n) if regression else rng.integers(0, 2 if k == 1 else k, n)
    return X, y


def _torch_loss(Z, y, k: int, regression: bool):
    if regression:
        return F.mse_loss(Z[:, 0], torch.tensor(y, dtype=torch.float64))
    if k == 1:
        return F.binary_cross_entropy_with_logits(Z[:, 0], torch.tensor(y, dtype=torch.float64))
    return F.cross_entropy(Z, torch.tensor(y, dtype=torch.long))


def _autograd_gradients(X, y, layers, activation: str, k: int, regression: bool = False):
    """torch autograd of the mean loss: the independent reference, layer by layer."""
    params = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for layer in layers for a in layer]
    H = torch.tensor(X, dtype=torch.float64)
    for i in range(0, len(params), 2):
        if i:
            H = TORCH_ACTIVATIONS[activation](H)
        H = H @ params[i] + params[i + 1]
    _torch_loss(H, y, k, regression).backward()
    return [p.grad.numpy() for p in params]


def _applied_gradients(config: TrainConfig, X, y, layers):
    """What one full-batch SGD step with lr = 1 subtracts from each parameter."""
    model = make_network(config, [(W.copy(), b.copy()) for W, b in layers], "cpu")
    model.train_epoch(model.put(X, y), None)
    return [
        a0 - a1
        for l0, l1 in zip(layers, model.get_layers(), strict=True)
        for a0, a1 in zip(l0, l1, strict=True)
    ]


@pytest.mark.parametrize("impl", IMPL_NAMES)
@pytest.mark.parametrize("k", [1, 3], ids=["binary", "multinomial"])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_mlp_gradients_match_torch_autograd(activation, k, impl):
    X, y = _problem(60, 4, k, seed=k)
    layers = initial_layers([4, 7, k], seed=3)
    config = TrainConfig(model="mlp", hidden=7, activation=activation, impl=impl, optimizer="sgd", lr=1.0)
    config = config.replace(dtype="float64")
    expected = _autograd_gradients(X, y, layers, activation, k)
    for got, want, name in zip(
        _applied_gradients(config, X, y, layers), expected, ("W1", "b1", "W2", "b2"), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{impl} {activation} {name}")
    # Every layer learns something (a zero gradient would agree trivially with a dead layer).
    assert all(np.abs(g).max() > 1e-6 for g in expected)


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_linear_gradient_is_that_of_the_mse(impl):
    X, y = _problem(50, 3, 1, seed=5, regression=True)
    layers = initial_layers([3, 1], seed=1)
    config = TrainConfig(model="linear", impl=impl, optimizer="sgd", lr=1.0, dtype="float64")
    expected = _autograd_gradients(X, y, layers, "none", 1, regression=True)
    for got, want in zip(_applied_gradients(config, X, y, layers), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=impl)


# Every model x optimizer, full batch and mini-batch: float64 histories equal within 1e-9.
MODEL_CASES = {
    "mlp-binary": {"model": "mlp", "dataset": "breast_cancer", "hidden": 8, "activation": "tanh"},
    "mlp-multinomial": {"model": "mlp", "dataset": "digits", "hidden": 8, "activation": "relu"},
    "mlp-leaky": {"model": "mlp", "dataset": "moons", "hidden": 6, "activation": "leaky_relu"},
    "linear": {"model": "linear", "dataset": "diabetes"},
}
OPTIMIZERS = {
    "sgd": {"optimizer": "sgd", "lr": 0.05},
    "momentum": {
        "optimizer": "momentum",
        "lr": 0.02,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.01,
    },
    "adam": {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01},
}


def _histories(**kwargs):
    out = {}
    for impl in IMPL_NAMES:
        result = train(TrainConfig(impl=impl, dtype="float64", **kwargs))
        assert result.status == "completed", result.message
        out[impl] = result
    return out


def _assert_same(results, keys=("train_loss", "val_loss")):
    ref = results["module"]
    for impl in ("numpy", "autograd"):
        for key in keys:
            np.testing.assert_allclose(
                results[impl].history[key], ref.history[key], rtol=RTOL, err_msg=f"{impl} {key}"
            )
        np.testing.assert_allclose(results[impl].metrics["test_loss"], ref.metrics["test_loss"], rtol=RTOL)


@pytest.mark.parametrize("batch_size", [None, 64], ids=["full-batch", "batch-64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("case", MODEL_CASES)
def test_models_agree_across_implementations(case, optimizer, batch_size):
    epochs = 12 if batch_size is None else 3
    results = _histories(epochs=epochs, batch_size=batch_size, **MODEL_CASES[case], **OPTIMIZERS[optimizer])
    _assert_same(results)
    losses = results["module"].history["train_loss"]
    assert losses[-1] < losses[0]


SCHEDULES = {
    "step": {"schedule": "step", "step_size": 4, "gamma": 0.5},
    "exponential": {"schedule": "exponential", "gamma": 0.8},
    "cosine": {"schedule": "cosine"},
    "warmup-constant": {"warmup_epochs": 3},
    "warmup-cosine": {"schedule": "cosine", "warmup_epochs": 4},
    "warmup-step": {"schedule": "step", "step_size": 3, "gamma": 0.3, "warmup_epochs": 2},
}


def _expected_lrs(lr: float, epochs: int, schedule: str, step_size=30, gamma=0.1, warmup_epochs=0):
    """The documented formulas (README, TrainConfig), written out again independently."""
    out = []
    w = warmup_epochs
    for e in range(epochs):
        if e < w:
            out.append(lr * (1 + e) / (w + 1) if w else lr)
            continue
        t = e - w
        factor = {
            "constant": 1.0,
            "step": gamma ** (t // step_size),
            "exponential": gamma**t,
            "cosine": (1 + np.cos(np.pi * t / (epochs - w))) / 2,
        }[schedule]
        out.append(lr * factor)
    return out


@pytest.mark.parametrize("model", ["logistic", "mlp"])
@pytest.mark.parametrize("case", SCHEDULES)
def test_schedules_agree_and_are_in_the_history(case, model):
    kwargs = {"schedule": "constant", **SCHEDULES[case]}
    epochs = 12
    results = _histories(
        dataset="breast_cancer", model=model, hidden=5, optimizer="momentum", lr=0.1, epochs=epochs, **kwargs
    )
    _assert_same(results)
    want = _expected_lrs(0.1, epochs, **kwargs)
    for impl, result in results.items():
        np.testing.assert_allclose(result.history["lr"], want, rtol=1e-12, err_msg=impl)
    assert len(set(np.round(want, 12))) > 1  # the schedule changed the lr


def test_constant_schedule_records_the_lr():
    result = train(TrainConfig(dataset="iris", epochs=5, eval_every=2, lr=0.3, optimizer="sgd"))
    assert result.history["epoch"] == [2, 4, 5]
    assert result.history["lr"] == [0.3, 0.3, 0.3]


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_linear_reaches_the_closed_form_optimum(impl):
    # Gradient descent on the MSE against the least-squares solution (numpy.linalg.lstsq) of
    # the same training part: equal losses within 1e-6 relative.
    config = TrainConfig(
        dataset="diabetes",
        model="linear",
        impl=impl,
        dtype="float64",
        optimizer="momentum",
        lr=0.1,
        momentum=0.9,
        epochs=1000,
        eval_every=1000,
    )
    split = load_split(config)
    X1 = np.column_stack([split.X_train, np.ones(len(split.X_train))])
    w, *_ = np.linalg.lstsq(X1, split.y_train, rcond=None)
    optimum = float(np.mean((X1 @ w - split.y_train) ** 2))
    result = train(config)
    assert result.metrics["train_loss"] == pytest.approx(optimum, rel=1e-6)
    assert result.metrics["train_mse"] == result.metrics["train_loss"]
    assert result.metrics["train_rmse"] == pytest.approx(np.sqrt(optimum), rel=1e-6)
    # R^2 as scikit-learn computes it on the test part.
    from sklearn.metrics import r2_score

    pred = result.model.predict(split.X_test * split.scale + split.mean)
    assert result.metrics["test_r2"] == pytest.approx(r2_score(split.y_test, pred), rel=1e-9)


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_line_toy_learns_y_equals_2x(impl):
    # The tutorial's x = 1, 2, 3 -> y = 2, 4, 6, trained with backprop: predicts 8 at x = 4.
    result = train(
        TrainConfig(dataset="line", model="linear", impl=impl, optimizer="sgd", lr=0.1, epochs=200)
    )
    assert result.model.predict([[4.0]])[0] == pytest.approx(8.0, abs=1e-3)
    assert result.metrics["train_r2"] == pytest.approx(1.0, abs=1e-6)
    assert "train_accuracy" not in result.metrics and "train_r2" in result.history


# mlp against scikit-learn's MLPClassifier (one hidden layer of 16 ReLU units, Adam, its
# defaults) on the same split: our test accuracy may land at most MLP_MARGIN below, since both
# are stochastic first-order fits of a non-convex loss on small test parts.
MLP_MARGIN = 0.03
MLP_DATASETS = ["blobs", "classification", "iris", "breast_cancer", "digits", "moons"]


def _sklearn_mlp_accuracy(split) -> float:
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0)
    return float(clf.fit(split.X_train, split.y_train).score(split.X_test, split.y_test))


@pytest.mark.parametrize("dataset", MLP_DATASETS)
def test_mlp_reaches_sklearn_mlp_classifier(dataset):
    config = TrainConfig(dataset=dataset, model="mlp", optimizer="adam", lr=0.01, epochs=300, eval_every=300)
    result = train(config)
    reference = _sklearn_mlp_accuracy(result.split)
    assert result.metrics["test_accuracy"] >= reference - MLP_MARGIN, (result.metrics, reference)


def test_mlp_beats_a_linear_model_where_no_line_separates():
    from sklearn.linear_model import LogisticRegression

    config = TrainConfig(dataset="moons", model="mlp", optimizer="adam", lr=0.01, epochs=300, eval_every=300)
    result = train(config)
    split = result.split
    linear = LogisticRegression().fit(split.X_train, split.y_train).score(split.X_test, split.y_test)
    assert linear < 0.92  # no straight line separates the moons
    assert result.metrics["test_accuracy"] >= linear + 0.05
    ours = train(config.replace(model="logistic")).metrics["test_accuracy"]
    assert result.metrics["test_accuracy"] >= ours + 0.05


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_tutorial_2_5_1_momentum_network_on_blobs(impl):
    # The tutorials' 2 -> 5 -> 1 network (no hidden activation) with SGD momentum 0.9 claims 98%
    # training accuracy at epoch 10. With lr 0.1 (bench/goals.py's tutorial loop) it holds; with
    # lr 0.01 (the logistic tutorial's) the honest figure at epoch 10 is far lower (0.64 with
    # the seed-0 initialisation): the claim depends on the learning rate.
    net = {"dataset": "blobs", "model": "mlp", "hidden": 5, "activation": "none", "optimizer": "momentum"}
    fast = train(TrainConfig(impl=impl, lr=0.1, momentum=0.9, epochs=10, **net))
    assert fast.history["epoch"][-1] == 10
    assert fast.history["train_accuracy"][-1] >= 0.98
    assert fast.history["train_accuracy"][0] < 0.98  # a claim about training
    slow = train(TrainConfig(impl=impl, lr=0.01, momentum=0.9, epochs=10, **net))
    assert slow.history["train_accuracy"][-1] < 0.9


def test_mlp_model_round_trips_through_a_file(tmp_path):
    from logreg import load_model, save_model

    result = train(TrainConfig(dataset="moons", model="mlp", hidden=4, activation="tanh", epochs=20))
    X = np.array([[0.0, 0.5], [1.0, -0.3], [2.0, 0.4]])
    loaded = load_model(save_model(result, tmp_path / "m.pt"))
    np.testing.assert_allclose(loaded.predict_proba(X), result.predict_proba(X), rtol=1e-6)
    net = loaded.to_module()
    Xs = torch.tensor((X - loaded.mean) / loaded.scale)
    np.testing.assert_allclose(torch.sigmoid(net(Xs))[:, 0].detach().numpy(), loaded.predict_proba(X)[:, 1])


def test_mlp_impls_are_registered_for_every_implementation():
    assert set(MLP_IMPLS) == set(IMPL_NAMES)
