"""NumPy, with the gradient derived by hand.

Model: k = 1 logit per row (binary, sigmoid) or k = K logits (multinomial, softmax).

    1. Z = X W + b                                   (n, k) logits
    2. binary:      loss = mean( softplus(z) - y z )     = BCE of sigmoid(z), written stably
       multinomial: loss = mean( logsumexp(Z) - Z[y] )   = cross-entropy of softmax(Z)
    3. d loss_i / d z_i = sigmoid(z_i) - y_i   (binary: d softplus = sigmoid)
       d loss_i / d Z_i = softmax(Z_i) - onehot(y_i)  (d logsumexp = softmax)
       so in both cases R = P - Y, with P the predicted probabilities.
    4. Z = X W + b  =>  dL/dW = X^T R / n,   dL/db = sum_i R_i / n.
    5. Weight decay (coupled L2) adds wd * W to dL/dW inside the optimizer.
"""

from __future__ import annotations

import numpy as np

from logreg.impls import batches, block_rows
from logreg.optim import make_optimizer


def _sigmoid(z):
    # sigmoid(z) = (1 + tanh(z / 2)) / 2: one cheap ufunc, no overflow for large |z|.
    out = np.tanh(z * 0.5)
    out *= 0.5
    out += 0.5
    return out


def _softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


class Model:
    def __init__(self, config, W0, b0, device="cpu"):
        self.dtype = np.dtype(config.dtype)
        self.W = np.array(W0, dtype=self.dtype)  # (d, k)
        self.b = np.array(b0, dtype=self.dtype)  # (k,)
        self.binary = self.W.shape[1] == 1
        self.batch_size = config.batch_size
        self.block = block_rows(self.W.shape[0], self.dtype.itemsize)
        self.opt = make_optimizer(config, [self.W, self.b], [config.weight_decay, 0.0])

    def put(self, X, y):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if self.binary:
            Y = y.astype(self.dtype)[:, None]
        else:
            Y = np.zeros((len(y), self.W.shape[1]), dtype=self.dtype)
            Y[np.arange(len(y)), y] = 1
        return X, Y, np.asarray(y)

    def _residual(self, Xb, Yb):
        # Steps 1 and 3: R = P - Y.
        Z = Xb @ self.W
        Z += self.b
        P = _sigmoid(Z) if self.binary else _softmax(Z)
        P -= Yb
        return P

    def train_epoch(self, data, order=None) -> None:
        X, Y, _ = data
        n = len(X)
        if order is None:
            # Full batch, block by block: each block's two products run while it is in cache.
            gW = np.zeros_like(self.W)
            gb = np.zeros_like(self.b)
            for rows in batches(n, None, None, self.block):
                Xb = X[rows]
                R = self._residual(Xb, Y[rows])
                gW += Xb.T @ R  # step 4, summed over blocks
                gb += R.sum(axis=0)
            gW /= n
            gb /= n
            self.opt.step([gW, gb])
            return
        for idx in batches(n, order, self.batch_size, None):
            Xb = X[idx]
            R = self._residual(Xb, Y[idx])
            m = len(idx)
            self.opt.step([(Xb.T @ R) / m, R.sum(axis=0) / m])

    def synchronize(self) -> None:
        pass

    def _logits(self, X):
        out = np.empty((len(X), self.W.shape[1]), dtype=self.dtype)
        for rows in batches(len(X), None, None, self.block * 8):
            np.matmul(X[rows], self.W, out=out[rows])
        out += self.b
        return out

    def evaluate(self, data) -> tuple[float, float]:
        X, Y, y = data
        Z = self._logits(X)
        if self.binary:
            z = Z[:, 0]
            loss = np.mean(np.logaddexp(0.0, z) - Y[:, 0] * z)  # step 2, stable
            pred = (z > 0).astype(np.int64)
        else:
            m = Z.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))
            loss = np.mean(lse - Z[np.arange(len(y)), y])
            pred = Z.argmax(axis=1)
        return float(loss), float(np.mean(pred == y))

    def predict_proba(self, data) -> np.ndarray:
        Z = self._logits(data[0]).astype(np.float64)
        if self.binary:
            p = _sigmoid(Z[:, 0])
            return np.column_stack([1 - p, p])
        return _softmax(Z)

    def get_params(self):
        return self.W.copy(), self.b.copy()
