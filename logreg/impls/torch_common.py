"""What the two torch implementations share: device placement, the loss, evaluation."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from logreg.impls.base import TORCH_CPU_BLOCK_BYTES, Data, block_rows
from logreg.timing import synchronize

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def put(X, y, binary: bool, dtype, device):
    """Convert once and move to the device: X (n, d); y as (n, 1) floats or (n,) class ids."""
    with warnings.catch_warnings():
        # Split arrays are read-only and shared; torch only reads them (zero copy on the CPU).
        warnings.simplefilter("ignore", UserWarning)
        Xt = torch.as_tensor(np.ascontiguousarray(X)).to(device=device, dtype=dtype)
        yt = torch.as_tensor(np.asarray(y)).to(device)
    target = yt.to(dtype).unsqueeze(1) if binary else yt.long()
    return Data(Xt, target, yt)


def loss_fn(Z, target, binary: bool, reduction: str = "mean"):
    """Stable loss from logits: BCE-with-logits (binary) or cross-entropy (multinomial)."""
    if binary:
        return F.binary_cross_entropy_with_logits(Z, target, reduction=reduction)
    return F.cross_entropy(Z, target, reduction=reduction)


def cpu_block(device, X) -> int | None:
    """Rows per cache-sized block for full-batch epochs on the CPU; None on CUDA."""
    if torch.device(device).type != "cpu":
        return None  # GPU memory has no cache to exploit this way: one pass at full bandwidth
    return block_rows(X.shape[1], X.element_size(), TORCH_CPU_BLOCK_BYTES)


def full_batch_loss(logits_fn, X, target, binary: bool, block: int | None):
    """Yield the loss of each block of a full batch, scaled so that they sum to the mean loss.

    One block (small data, or CUDA) is the plain mean; several blocks are each
    sum / n, so backpropagating every block accumulates the full-batch gradient.
    """
    n = len(X)
    if block is None or block >= n:
        yield loss_fn(logits_fn(X), target, binary)
        return
    for i in range(0, n, block):
        rows = slice(i, i + block)
        yield loss_fn(logits_fn(X[rows]), target[rows], binary, "sum") / n


@torch.no_grad()
def evaluate(logits_fn, data, binary: bool) -> tuple[float, float]:
    X, target, y = data
    Z = logits_fn(X)
    loss = loss_fn(Z, target, binary)
    pred = (Z[:, 0] > 0).long() if binary else Z.argmax(dim=1)
    correct = (pred == y).sum()  # an exact count: a float32 mean would give 0.85199999 for 426/500
    loss_v, correct_v = torch.stack([loss.double(), correct.double()]).tolist()  # one host sync
    acc_v = correct_v / len(y)
    return loss_v, acc_v


@torch.no_grad()
def predict_proba(logits_fn, data, binary: bool) -> np.ndarray:
    Z = logits_fn(data[0]).double()
    if binary:
        p = torch.sigmoid(Z[:, 0])
        return torch.stack([1 - p, p], dim=1).cpu().numpy()
    return torch.softmax(Z, dim=1).cpu().numpy()


__all__ = [
    "DTYPES",
    "cpu_block",
    "evaluate",
    "full_batch_loss",
    "loss_fn",
    "predict_proba",
    "put",
    "synchronize",
]
