"""NumPy, with the gradient derived by hand.

Model: k = 1 logit per row (binary, sigmoid) or k = K logits (multinomial, softmax); or,
for model 'linear', k = 1 predicted value per row (least squares).

    1. Z = X W + b                                   (n, k) logits (or predictions)
    2. binary:      loss = mean( softplus(z) - y z )     = BCE of sigmoid(z), written stably
       multinomial: loss = mean( logsumexp(Z) - Z[y] )   = cross-entropy of softmax(Z)
       linear:      loss = mean( (z - y)^2 )             = MSE (not half of it: nn.MSELoss's)
    3. d loss_i / d z_i = sigmoid(z_i) - y_i   (binary: d softplus = sigmoid)
       d loss_i / d Z_i = softmax(Z_i) - onehot(y_i)  (d logsumexp = softmax)
       so in both cases R = P - Y, with P the predicted probabilities;
       linear: d loss_i / d z_i = 2 (z_i - y_i), so R = 2 (Z - Y).
    4. Z = X W + b  =>  dL/dW = X^T R / n,   dL/db = sum_i R_i / n.
    5. Weight decay (coupled L2) adds wd * W to dL/dW inside the optimizer.

For speed the bias is folded into the weights (the textbook trick): with a
column of ones appended, X1 = [X, 1] and W1 = [W; b], step 1 is Z = X1 W1 and
step 4 is dL/dW1 = X1^T R / n, whose last row is sum_i R_i / n = dL/db. One
matrix product then gives both gradients, and the optimizer updates one array.

Sparse X (a scipy CSR matrix) keeps its zeros: no column of ones is appended (it would add n
stored values and a copy); the bias is explicit, Z = X W + b and dL/db = sum_i R_i / n, and
the two products are scipy's CSR kernels. The optimizer still updates the one array W1.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse

from logreg.impls.base import Data, batches, block_rows, head_of
from logreg.optim import make_optimizer, scheduled_lr


def _sigmoid(z):
    # sigmoid(z) = (1 + tanh(z / 2)) / 2: one cheap ufunc, no overflow for large |z|.
    out = np.tanh(z * 0.5)
    out *= 0.5
    out += 0.5
    return out


def _sigmoid_inplace(z):
    # The same formula, overwriting z: no temporary arrays in the training loop.
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5
    return z


_POOL: ThreadPoolExecutor | None = None
_CORES = os.cpu_count() or 1  # read once: os.cpu_count() reads a file (microseconds)
# A full batch is split across the cores only when each core gets at least this
# many blocks: below that, the threads' start-up costs more than they save.
MIN_BLOCKS_PER_THREAD = 8


def _pool() -> ThreadPoolExecutor:
    """One thread per core, shared by every Model (NumPy's matmul and ufuncs release the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_CORES, thread_name_prefix="logreg-numpy")
    return _POOL


def _softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def targets(y, head: str, k: int, dtype) -> np.ndarray:
    """Y as the loss compares it with Z: (n, 1) floats (binary, regression) or one-hot rows."""
    if head != "multinomial":
        return np.asarray(y).astype(dtype)[:, None]
    Y = np.zeros((len(y), k), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


def output_residual(Z, Y, head: str):
    """Step 3, in place of Z: R = d loss_i / d Z_i, i.e. P - Y, or 2 (Z - Y) for regression."""
    if head == "regression":
        Z -= Y
        Z *= 2.0
        return Z
    P = _sigmoid_inplace(Z) if head == "binary" else _softmax(Z)
    P -= Y
    return P


def loss_and_score(Z, Y, y, head: str) -> tuple[float, float]:
    """Step 2's loss of outputs Z, and accuracy (classification) or R^2 (regression)."""
    if head == "regression":
        err = Z[:, 0] - Y[:, 0]
        sse = float(err @ err)
        yc = Y[:, 0] - Y[:, 0].mean()
        sst = float(yc @ yc)
        r2 = (1.0 if sse == 0 else 0.0) if sst == 0 else 1.0 - sse / sst
        return sse / len(Z), r2
    if head == "binary":
        z = Z[:, 0]
        loss = np.mean(np.logaddexp(0.0, z) - Y[:, 0] * z)  # step 2, stable
        pred = (z > 0).astype(np.int64)
    else:
        m = Z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))
        loss = np.mean(lse - Z[np.arange(len(y)), y])
        pred = Z.argmax(axis=1)
    return float(loss), float(np.mean(pred == y))


def probabilities(Z, head: str) -> np.ndarray:
    """(n, K) float64 probabilities from outputs Z; (n, 1) predicted values for regression."""
    Z = Z.astype(np.float64)
    if head == "regression":
        return Z
    if head == "binary":
        p = _sigmoid(Z[:, 0])
        return np.column_stack([1 - p, p])
    return _softmax(Z)


class Model:
    """logreg.impls.base.Implementation with the gradient by hand (steps 1-5 above)."""

    def __init__(self, config, W0, b0, device="cpu"):
        self.dtype = np.dtype(config.dtype)
        d, k = np.shape(W0)
        # W1 = [W; b] (d + 1, k); W and b are views of it, so updating W1 updates both.
        self.W1 = np.empty((d + 1, k), dtype=self.dtype)
        self.W1[:d] = W0
        self.W1[d] = b0
        self.W, self.b = self.W1[:d], self.W1[d]
        self.head = head_of(config, k)
        self.config, self.epochs_done, self.lr_used = config, 0, config.lr
        self.batch_size = config.batch_size
        self.block = block_rows(d + 1, self.dtype.itemsize)
        self._Z = np.empty((0, k), dtype=self.dtype)  # logits buffer, reused every epoch
        # Step 5: decay the rows of W, not the bias row (None: no decay at all).
        decay = None
        if config.weight_decay:
            decay = np.full((d + 1, 1), config.weight_decay, dtype=self.dtype)
            decay[d] = 0.0
        self.opt = make_optimizer(config, [self.W1], [decay])

    def put(self, X, y):
        if sparse.issparse(X):  # CSR in this dtype; the bias stays explicit
            X = sparse.csr_array(X, dtype=self.dtype)
            return Data(X, targets(y, self.head, self.W1.shape[1], self.dtype), np.asarray(y))
        X = np.asarray(X)
        X1 = np.empty((len(X), X.shape[1] + 1), dtype=self.dtype)  # [X, 1], converted once
        X1[:, :-1] = X
        X1[:, -1] = 1.0
        return Data(X1, targets(y, self.head, self.W1.shape[1], self.dtype), np.asarray(y))

    def residual(self, X1b, Yb, buf=None):
        # Steps 1 and 3: R = P - Y, computed in a reused buffer.
        if sparse.issparse(X1b):
            Z = X1b @ self.W
            Z += self.b
            return output_residual(Z, Yb, self.head)
        m = len(X1b)
        if buf is None:
            if len(self._Z) < m:
                self._Z = np.empty((m, self.W1.shape[1]), dtype=self.dtype)
            buf = self._Z
        Z = np.matmul(X1b, self.W1, out=buf[:m])
        return output_residual(Z, Yb, self.head)

    def _sparse_gradient_sum(self, X, Y):
        # Steps 1-4 on CSR rows: X^T R for W, the column sums of R for b.
        R = self.residual(X, Y)
        G = np.empty_like(self.W1)
        G[:-1] = X.T @ R
        G[-1] = R.sum(axis=0)
        return G

    def _gradient_sum(self, X1, Y):
        # Steps 1-4 over some rows, block by block: each block's two products run
        # while it is in cache, so these rows are read from memory once.
        if sparse.issparse(X1):
            return self._sparse_gradient_sum(X1, Y)
        G = None
        buf = np.empty((min(self.block, len(X1)), self.W1.shape[1]), dtype=self.dtype)
        for rows in batches(len(X1), None, None, self.block):
            X1b = X1[rows]
            R = self.residual(X1b, Y[rows], buf)
            if G is None:
                G = X1b.T @ R
            else:
                G += X1b.T @ R
        return G

    def train_epoch(self, data, order=None) -> None:
        X1, Y, _ = data
        n = X1.shape[0]
        # The schedule's learning rate for this epoch (optim.scheduled_lr).
        self.opt.lr = self.lr_used = scheduled_lr(self.config, self.epochs_done)
        self.epochs_done += 1
        if order is None:
            # Full batch. One core cannot read memory at the machine's bandwidth, so
            # large batches are split in contiguous parts, one per core, whose
            # gradient sums are added up (step 4 is a sum over rows).
            threads = min(_CORES, n // (self.block * MIN_BLOCKS_PER_THREAD))
            if threads <= 1 or sparse.issparse(X1):
                G = self._gradient_sum(X1, Y)
            else:
                bounds = np.linspace(0, n, threads + 1).astype(int)
                parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
                G = sum(_pool().map(lambda p: self._gradient_sum(X1[p], Y[p]), parts))
            G /= n
            self.opt.step([G])
            return
        for idx in batches(n, order, self.batch_size, None):
            X1b = X1[idx]
            if sparse.issparse(X1b):
                G = self._sparse_gradient_sum(X1b, Y[idx])
            else:
                R = self.residual(X1b, Y[idx])
                G = X1b.T @ R
            G /= len(idx)
            self.opt.step([G])

    def synchronize(self) -> None:
        pass

    def _logits(self, X1):
        if sparse.issparse(X1):
            return X1 @ self.W + self.b
        out = np.empty((len(X1), self.W1.shape[1]), dtype=self.dtype)
        for rows in batches(len(X1), None, None, self.block * 8):
            np.matmul(X1[rows], self.W1, out=out[rows])
        return out

    def evaluate(self, data) -> tuple[float, float]:
        X1, Y, y = data
        return loss_and_score(self._logits(X1), Y, y, self.head)

    def predict_proba(self, data) -> np.ndarray:
        return probabilities(self._logits(data[0]), self.head)

    def get_params(self):
        return self.W.copy(), self.b.copy()

    def get_layers(self):
        return [self.get_params()]

    def learning_rate(self) -> float:
        return self.lr_used
