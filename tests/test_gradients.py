"""Hand-derived gradients against torch autograd (micrograd's habit), float64.

The NumPy implementation derives dL/dZ = P - Y, dL/dW = X^T R / n, dL/db = sum(R) / n by hand
(numpy_impl.py, steps 1-5). Here torch autograd differentiates the mean BCE-with-logits /
cross-entropy loss independently, and one plain SGD step with lr = 1 reads the gradient an
implementation actually applied: W1 = W0 - grad, so grad = W0 - W1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from logreg import TrainConfig
from logreg.config import IMPL_NAMES
from logreg.impls import IMPLS, block_rows

pytestmark = pytest.mark.usefixtures("single_thread")

RTOL, ATOL = 1e-9, 1e-12


def _problem(n: int, d: int, k: int, seed: int):
    """Random data with a spread of logits (some saturated) and random initial weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, d)) * rng.uniform(0.5, 3.0, d)
    y = rng.integers(0, 2 if k == 1 else k, n)
    W0 = rng.normal(0.0, 0.5, (d, k))
    b0 = rng.normal(0.0, 0.5, k)
    return X, y, W0, b0


def _autograd_gradient(X, y, W0, b0, weight_decay: float = 0.0):
    """torch autograd of mean loss + (wd / 2) ||W||^2: the independent reference."""
    X_t = torch.tensor(X, dtype=torch.float64)
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    Z = X_t @ W + b
    if W0.shape[1] == 1:
        loss = F.binary_cross_entropy_with_logits(Z[:, 0], torch.tensor(y, dtype=torch.float64))
    else:
        loss = F.cross_entropy(Z, torch.tensor(y, dtype=torch.long))
    loss = loss + 0.5 * weight_decay * (W**2).sum()
    loss.backward()
    return W.grad.numpy(), b.grad.numpy()


def _applied_gradient(impl: str, X, y, W0, b0, *, weight_decay: float = 0.0):
    """The gradient one full-batch SGD step (lr = 1) of `impl` subtracts from (W0, b0)."""
    config = TrainConfig(optimizer="sgd", lr=1.0, dtype="float64", weight_decay=weight_decay)
    model = IMPLS[impl]()(config, W0.copy(), b0.copy(), "cpu")
    model.train_epoch(model.put(X, y), None)
    W1, b1 = model.get_params()
    return W0 - W1, b0 - b1


@pytest.mark.parametrize("k", [1, 4], ids=["binary", "multinomial"])
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_residual_is_the_gradient_wrt_logits(k, seed):
    # Step 3 of the derivation: d(sum of losses)/dZ = P - Y, row by row.
    from logreg.impls.numpy_impl import Model

    X, y, W0, b0 = _problem(200, 7, k, seed)
    model = Model(TrainConfig(dtype="float64"), W0, b0)
    X_p, Y_p, _ = model.put(X, y)
    R = model.residual(X_p, Y_p)

    Z = torch.tensor(X @ W0 + b0, dtype=torch.float64, requires_grad=True)
    if k == 1:
        loss = F.binary_cross_entropy_with_logits(
            Z[:, 0], torch.tensor(y, dtype=torch.float64), reduction="sum"
        )
    else:
        loss = F.cross_entropy(Z, torch.tensor(y), reduction="sum")
    loss.backward()
    np.testing.assert_allclose(R, Z.grad.numpy(), rtol=RTOL, atol=ATOL)


# Two blocks and a partial third: the block-by-block accumulation of the full-batch gradient
# (cache-sized blocks of rows, logreg.impls.block_rows) is exercised too.
@pytest.mark.parametrize("blocks", [0, 2], ids=["one-block", "three-blocks"])
@pytest.mark.parametrize("k", [1, 3], ids=["binary", "multinomial"])
@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_full_batch_gradient_matches_autograd(impl, k, blocks):
    n = 50 if blocks == 0 else blocks * block_rows(10, 8) + 17
    X, y, W0, b0 = _problem(n, 10, k, seed=n + k)
    gW, gb = _applied_gradient(impl, X, y, W0, b0)
    ref_W, ref_b = _autograd_gradient(X, y, W0, b0)
    np.testing.assert_allclose(gW, ref_W, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gb, ref_b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("k", [1, 3], ids=["binary", "multinomial"])
@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_weight_decay_adds_wd_times_w_to_the_weight_gradient_only(impl, k):
    wd = 0.37
    X, y, W0, b0 = _problem(120, 6, k, seed=3)
    gW, gb = _applied_gradient(impl, X, y, W0, b0, weight_decay=wd)
    ref_W, ref_b = _autograd_gradient(X, y, W0, b0)
    np.testing.assert_allclose(gW, ref_W + wd * W0, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gb, ref_b, rtol=RTOL, atol=ATOL)  # the bias is not decayed
    # The same thing said by autograd of the penalised objective.
    pen_W, _ = _autograd_gradient(X, y, W0, b0, weight_decay=wd)
    np.testing.assert_allclose(gW, pen_W, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("k", [1, 3], ids=["binary", "multinomial"])
@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_mini_batch_steps_follow_autograd(impl, k):
    # Mini-batches average over the batch (not over n); the last batch is short.
    n, batch_size, lr = 100, 32, 0.3
    X, y, W0, b0 = _problem(n, 5, k, seed=4)
    order = np.random.default_rng(5).permutation(n)
    config = TrainConfig(optimizer="sgd", lr=lr, dtype="float64", batch_size=batch_size)
    model = IMPLS[impl]()(config, W0.copy(), b0.copy(), "cpu")
    model.train_epoch(model.put(X, y), order)
    W, b = W0.copy(), b0.copy()
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        gW, gb = _autograd_gradient(X[rows], y[rows], W, b)
        W, b = W - lr * gW, b - lr * gb
    W1, b1 = model.get_params()
    np.testing.assert_allclose(W1, W, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b1, b, rtol=RTOL, atol=ATOL)
