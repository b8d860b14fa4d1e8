"""The mlp model in NumPy, with backpropagation derived by hand.

One hidden layer of h units with activation a (relu, leaky_relu, tanh or none), then the
logistic (k = 1) or softmax (k = K) output of numpy_impl:

    1. A = X W1 + b1                    (n, h) pre-activations
    2. H = a(A)                         (n, h) hidden units
    3. Z = H W2 + b2                    (n, k) logits
    4. loss as numpy_impl's step 2: BCE of sigmoid(z), or cross-entropy of softmax(Z)
    5. dL/dZ = R / n with R = P - Y     (numpy_impl's step 3)
    6. Z = H W2 + b2  =>  dL/dW2 = H^T R / n,   dL/db2 = sum_i R_i / n
    7. dL/dH = (R / n) W2^T             (step 3 read backwards: H feeds Z through W2)
    8. dL/dA = dL/dH * a'(A), elementwise:
           relu'       = 1 where A > 0, else 0      (torch's choice at A = 0)
           leaky_relu' = 1 where A > 0, else 0.01
           tanh'       = 1 - tanh(A)^2 = 1 - H^2
           none'       = 1                           (H = A: a linear hidden layer)
    9. A = X W1 + b1  =>  dL/dW1 = X^T dL/dA,   dL/db1 = sum_i (dL/dA)_i
   10. Weight decay (coupled L2) adds wd * W1 and wd * W2 in the optimizer, not to the biases.
"""

from __future__ import annotations

import numpy as np

from logreg.impls.base import LEAKY_RELU_SLOPE, Data, batches, head_of
from logreg.impls.numpy_impl import loss_and_score, output_residual, probabilities, targets
from logreg.optim import make_optimizer, scheduled_lr


def activate(A, activation: str):
    """Step 2: H = a(A)."""
    if activation == "relu":
        return np.maximum(A, 0)
    if activation == "leaky_relu":
        return np.where(A > 0, A, LEAKY_RELU_SLOPE * A)
    if activation == "tanh":
        return np.tanh(A)
    return A


def activation_grad(A, H, activation: str):
    """Step 8's a'(A) (H = a(A) is given so that tanh' costs no second tanh)."""
    if activation == "relu":
        return (A > 0).astype(A.dtype)
    if activation == "leaky_relu":
        return np.where(A > 0, 1.0, LEAKY_RELU_SLOPE).astype(A.dtype)
    if activation == "tanh":
        return 1 - H * H
    return np.ones_like(A)


class Model:
    """logreg.impls.base.Implementation of the mlp model with backpropagation by hand (steps 1-10)."""

    def __init__(self, config, layers, device="cpu"):
        self.dtype = np.dtype(config.dtype)
        (W1, b1), (W2, b2) = layers
        self.W1, self.b1, self.W2, self.b2 = (np.array(a, dtype=self.dtype) for a in (W1, b1, W2, b2))
        self.params = [self.W1, self.b1, self.W2, self.b2]
        self.activation = config.activation
        self.head = head_of(config, self.W2.shape[1])
        self.config, self.epochs_done, self.lr_used = config, 0, config.lr
        self.batch_size = config.batch_size
        wd = config.weight_decay or None
        self.opt = make_optimizer(config, self.params, [wd, None, wd, None])  # step 10

    def put(self, X, y):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        return Data(X, targets(y, self.head, self.W2.shape[1], self.dtype), np.asarray(y))

    def forward(self, X):
        """Steps 1-3: (A, H, Z)."""
        A = X @ self.W1 + self.b1
        H = activate(A, self.activation)
        return A, H, H @ self.W2 + self.b2

    def gradients(self, X, Y):
        """Steps 1-9 on rows X: [dL/dW1, dL/db1, dL/dW2, dL/db2] of the mean loss."""
        A, H, Z = self.forward(X)
        G = output_residual(Z, Y, self.head)  # step 5
        G /= len(X)
        dW2, db2 = H.T @ G, G.sum(axis=0)  # step 6
        dA = G @ self.W2.T  # step 7
        dA *= activation_grad(A, H, self.activation)  # step 8
        return [X.T @ dA, dA.sum(axis=0), dW2, db2]  # step 9

    def train_epoch(self, data, order=None) -> None:
        X, Y, _ = data
        self.opt.lr = self.lr_used = scheduled_lr(self.config, self.epochs_done)
        self.epochs_done += 1
        if order is None:
            self.opt.step(self.gradients(X, Y))
            return
        for idx in batches(len(X), order, self.batch_size, None):
            self.opt.step(self.gradients(X[idx], Y[idx]))

    def synchronize(self) -> None:
        pass

    def evaluate(self, data) -> tuple[float, float]:
        X, Y, y = data
        return loss_and_score(self.forward(X)[2], Y, y, self.head)

    def predict_proba(self, data) -> np.ndarray:
        return probabilities(self.forward(data[0])[2], self.head)

    def get_params(self):
        return self.W2.copy(), self.b2.copy()

    def get_layers(self):
        return [(self.W1.copy(), self.b1.copy()), (self.W2.copy(), self.b2.copy())]

    def learning_rate(self) -> float:
        return self.lr_used
