"""The interface every implementation shares, and the row blocks they iterate over.

model = Model(config, W0, b0, device)      # W0: (d, k), b0: (k,); k = 1 binary / regression, K multinomial
data = model.put(X, y)                     # a Data, converted / moved to the device once
model.train_epoch(data, order)             # order: row order (mini-batch) or None (full batch)
model.synchronize()                        # wait for queued device work (timings)
loss, score = model.evaluate(data)         # the only host synchronisation points; score:
                                           # accuracy, or R^2 for regression (model 'linear')
proba = model.predict_proba(data)          # (n, K) NumPy probabilities ((n, 1) values: regression)
W, b = model.get_params()                  # NumPy copies (of the output layer)
layers = model.get_layers()                # [(W, b), ...] input to output, NumPy copies
lr = model.learning_rate()                 # the learning rate the last epoch used (schedules)

The mlp model's classes (impls/mlp_*.py) take `layers` [(W1, b1), (W2, b2)] instead of W0, b0.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np

# Rows per block when a full-batch epoch runs block by block on the CPU: the
# forward product and the gradient product of one block are done while the
# block is still in cache, so X is read from memory once per epoch, not twice.
# NumPy: most of one core's L2 (1 MiB on the 2-core machine we tuned on, where
# 768 KiB measured best); smaller blocks pay the per-call cost of a dozen NumPy
# calls too often, larger ones fall out of L2. Torch: autograd's forward + backward costs tens of
# microseconds per block, so its blocks are larger (still L3-resident).
CPU_BLOCK_BYTES = 768 * 1024
TORCH_CPU_BLOCK_BYTES = 8 * 1024 * 1024


class Data(NamedTuple):
    """One part of a split as an implementation holds it (on its device, in its dtype)."""

    X: Any
    """Features (NumPy: with a column of ones appended for the bias)."""
    target: Any
    """What the loss compares the logits with: (n, 1) floats (binary) or class ids / one-hot rows."""
    y: Any
    """Class ids 0..K-1, for accuracy."""


class Implementation(Protocol):
    """What `train` and the benchmarks call; numpy, autograd and module each provide it."""

    def __init__(self, config: Any, W0: np.ndarray, b0: np.ndarray, device: str = "cpu") -> None: ...

    def put(self, X: np.ndarray, y: np.ndarray) -> Data: ...

    def train_epoch(self, data: Data, order: np.ndarray | None = None) -> None: ...

    def synchronize(self) -> None: ...

    def evaluate(self, data: Data) -> tuple[float, float]: ...

    def predict_proba(self, data: Data) -> np.ndarray: ...

    def get_params(self) -> tuple[np.ndarray, np.ndarray]: ...

    def get_layers(self) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def learning_rate(self) -> float: ...


HEADS = ("binary", "multinomial", "regression")
LEAKY_RELU_SLOPE = 0.01  # nn.LeakyReLU's default negative slope


def head_of(config: Any, n_outputs: int) -> str:
    """What the outputs mean: 'regression' (model linear), 'binary' (one logit) or 'multinomial'."""
    if config.model == "linear":
        return "regression"
    return "binary" if n_outputs == 1 else "multinomial"


def block_rows(n_features: int, itemsize: int, block_bytes: int | None = None) -> int:
    """Rows of X in one cache-sized block on the CPU (CPU_BLOCK_BYTES unless given)."""
    block_bytes = CPU_BLOCK_BYTES if block_bytes is None else block_bytes
    return max(64, block_bytes // max(1, n_features * itemsize))


def batches(n: int, order, batch_size: int | None, block: int | None):
    """Row slices an epoch visits: mini-batches of `order`, or blocks of a full batch."""
    if order is not None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if block is None or block >= n:
        return [slice(None)]
    return [slice(i, i + block) for i in range(0, n, block)]
