"""What the two torch implementations share: device placement, the loss, evaluation."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse

from logreg.impls.base import TORCH_CPU_BLOCK_BYTES, Data, block_rows
from logreg.impls.torch_sparse import SparseRows, is_sparse_rows, sparse_matmul
from logreg.timing import synchronize

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def put(X, y, head: str, dtype, device):
    """Convert once and move to the device: X (n, d); y as (n, 1) floats or (n,) class ids.

    `head` is impls.base.head_of's: binary, multinomial or regression (y: (n, 1) float targets).
    A scipy sparse X becomes SparseRows (a torch sparse CSR tensor; impls/torch_sparse.py).
    """
    with warnings.catch_warnings():
        # Split arrays are read-only and shared; torch only reads them (zero copy on the CPU).
        warnings.simplefilter("ignore", UserWarning)
        if sparse.issparse(X):
            Xt = SparseRows(sparse.csr_array(X), dtype, device)
        else:
            Xt = torch.as_tensor(np.ascontiguousarray(X)).to(device=device, dtype=dtype)
        yt = torch.as_tensor(np.asarray(y)).to(device)
    if head == "regression":
        yt = yt.to(dtype)
    target = yt.long() if head == "multinomial" else yt.to(dtype).unsqueeze(1)
    return Data(Xt, target, yt)


def linear(X, W, b):
    """X @ W + b for dense rows (one addmm) or SparseRows (torch_sparse.sparse_matmul)."""
    if is_sparse_rows(X):
        return sparse_matmul(X, W) + b
    return torch.addmm(b, X, W)


def loss_fn(Z, target, head: str, reduction: str = "mean"):
    """Stable loss from logits: BCE-with-logits (binary), cross-entropy (multinomial) or MSE."""
    if head == "binary":
        return F.binary_cross_entropy_with_logits(Z, target, reduction=reduction)
    if head == "regression":
        return F.mse_loss(Z, target, reduction=reduction)
    return F.cross_entropy(Z, target, reduction=reduction)


def unhooked_step(opt):
    """`opt.step` without the profiler / hook wrapper torch.optim.Optimizer puts around every
    subclass's step (the same update); opt.step itself if this torch has no such wrapper."""
    step = type(opt).step
    inner = getattr(step, "__wrapped__", None) if getattr(step, "hooked", False) else None
    return opt.step if inner is None else inner.__get__(opt)


def cpu_block(device, X) -> int | None:
    """Rows per cache-sized block for full-batch epochs on the CPU; None on CUDA (and for sparse
    rows: one CSR product per epoch)."""
    if torch.device(device).type != "cpu" or is_sparse_rows(X):
        return None  # GPU memory has no cache to exploit this way: one pass at full bandwidth
    return block_rows(X.shape[1], X.element_size(), TORCH_CPU_BLOCK_BYTES)


def make_loss(logits_fn, head: str, compile: bool = False):
    """loss(X, target, reduction="mean"): the loss of the logits `logits_fn(X)`.

    compile=True runs it under torch.compile (inductor): the forward and, through AOTAutograd,
    the backward that `loss.backward()` then calls are generated kernels. One graph per input
    shape (dynamic=False): a full batch compiles its block and its last block, a mini-batch
    epoch its batch and its last batch, all during the first epoch.
    """

    def loss(X, target, reduction: str = "mean"):
        return loss_fn(logits_fn(X), target, head, reduction)

    return torch.compile(loss, dynamic=False) if compile else loss


def full_batch_loss(loss, X, target, block: int | None):
    """Yield the loss of each block of a full batch, scaled so that they sum to the mean loss.

    `loss` is make_loss's. One block (small data, or CUDA) is the plain mean; several blocks
    are each sum / n, so backpropagating every block accumulates the full-batch gradient.
    """
    n = len(X)
    if block is None or block >= n:
        yield loss(X, target)
        return
    for i in range(0, n, block):
        rows = slice(i, i + block)
        yield loss(X[rows], target[rows], "sum") / n


@torch.no_grad()
def evaluate(logits_fn, data, head: str) -> tuple[float, float]:
    """(loss, accuracy), or (MSE, R^2) for regression."""
    X, target, y = data
    Z = logits_fn(X)
    loss = loss_fn(Z, target, head)
    if head == "regression":
        sse = ((Z[:, 0] - y) ** 2).sum()
        sst = ((y - y.mean()) ** 2).sum()
        loss_v, sse_v, sst_v = torch.stack([loss.double(), sse.double(), sst.double()]).tolist()
        return loss_v, r2_score(sse_v, sst_v)
    pred = (Z[:, 0] > 0).long() if head == "binary" else Z.argmax(dim=1)
    correct = (pred == y).sum()  # an exact count: a float32 mean would give 0.85199999 for 426/500
    loss_v, correct_v = torch.stack([loss.double(), correct.double()]).tolist()  # one host sync
    acc_v = correct_v / len(y)
    return loss_v, acc_v


@torch.no_grad()
def predict_proba(logits_fn, data, head: str) -> np.ndarray:
    """(n, K) probabilities; (n, 1) predicted values for regression."""
    Z = logits_fn(data[0]).double()
    if head == "regression":
        return Z.cpu().numpy()
    if head == "binary":
        p = torch.sigmoid(Z[:, 0])
        return torch.stack([1 - p, p], dim=1).cpu().numpy()
    return torch.softmax(Z, dim=1).cpu().numpy()


def r2_score(sse: float, sst: float) -> float:
    """1 - SSE / SST (scikit-learn's r2_score; 1.0 for a perfect fit of a constant target)."""
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return 1.0 - sse / sst


def make_scheduler(config, opt):
    """torch.optim.lr_scheduler for config.schedule (with LinearLR warm-up); None when constant.

    The hand-written implementations compute the same values with optim.scheduled_lr.
    """
    from torch.optim import lr_scheduler as S

    w = config.warmup_epochs
    if config.schedule == "constant" and not w:
        return None
    main = {
        "constant": lambda: S.ConstantLR(opt, factor=1.0, total_iters=0),
        "step": lambda: S.StepLR(opt, step_size=config.step_size, gamma=config.gamma),
        "exponential": lambda: S.ExponentialLR(opt, gamma=config.gamma),
        "cosine": lambda: S.CosineAnnealingLR(opt, T_max=config.epochs - w),
    }[config.schedule]
    if not w:
        return main()
    warmup = S.LinearLR(opt, start_factor=1.0 / (w + 1), end_factor=1.0, total_iters=w)
    return S.SequentialLR(opt, [warmup, main()], milestones=[w])


__all__ = [
    "DTYPES",
    "make_scheduler",
    "r2_score",
    "cpu_block",
    "evaluate",
    "full_batch_loss",
    "linear",
    "loss_fn",
    "make_loss",
    "predict_proba",
    "put",
    "synchronize",
    "unhooked_step",
]
