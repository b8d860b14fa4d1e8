"""Sparse rows for the torch implementations: X as a torch sparse CSR tensor, never densified.

torch's own autograd through `X_csr @ W` builds the transpose of X again at every backward
(tens of milliseconds at 20,000 x 200,000; ../shared/FACTS.md), and CSR tensors cannot be sliced
by rows. So:

- `SparseRows` holds a part of a split as scipy CSR on the host (mini-batch rows are sliced
  there) and as a torch CSR tensor on the device;
- `sparse_matmul(rows, W)` is `X @ W` with a hand-written backward, `dL/dW = X^T G`: a full
  batch multiplies by the transpose, stored once as its own CSR tensor; a mini-batch scatters
  its few non-zeros with `index_add_` (building a transpose per batch would cost O(d) twice).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def _csr_tensor(X, dtype, device) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (int64 indices) of `dtype` on `device`.

    scipy has checked the structure already (sorted, in range), so torch's checks stay off."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(np.asarray(X.data)).to(dtype),
            size=X.shape,
            check_invariants=False,
        ).to(device)


class SparseRows:
    """Rows of a sparse X: scipy CSR on the host, a torch CSR tensor on the device."""

    def __init__(self, host, dtype, device, reused: bool = True):
        self.host, self.dtype, self.device = host, dtype, torch.device(device)
        self.reused = reused
        """A part trained on every epoch (full batch: its transpose is stored once); False for a
        mini-batch, used once."""
        self.X = _csr_tensor(host, dtype, self.device)
        self.shape = host.shape
        self._XT: torch.Tensor | None = None  # built at the first full-batch backward
        self._nnz_rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> SparseRows:
        """The rows `rows` (indices, tensor or array, or a slice) as new SparseRows."""
        if isinstance(rows, torch.Tensor):
            rows = rows.cpu().numpy()
        return SparseRows(self.host[rows], self.dtype, self.device, reused=False)

    def transpose_matmul(self, G: torch.Tensor) -> torch.Tensor:
        """X^T G (d, k): by the stored transpose (full batch) or by scattering (a mini-batch)."""
        if self.reused:
            if self._XT is None:
                self._XT = _csr_tensor(self.host.T.tocsr(), self.dtype, self.device)
            return _matmul(self._XT, G)
        if self._nnz_rows is None:
            counts = self.X.crow_indices().diff()
            self._nnz_rows = torch.repeat_interleave(torch.arange(len(self), device=self.device), counts)
        values = self.X.values()[:, None] * G[self._nnz_rows]
        out = torch.zeros((self.shape[1], G.shape[1]), dtype=G.dtype, device=G.device)
        return out.index_add_(0, self.X.col_indices(), values)


def _matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A @ B for a CSR A; one column through torch.mv (faster on the CPU: 2.9 against 3.6 ms
    for Xᵀ g at 30,000 x 200,000, one thread)."""
    return A.mv(B[:, 0])[:, None] if B.shape[1] == 1 else A @ B


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, rows):
        ctx.rows = rows
        return _matmul(rows.X, W)

    @staticmethod
    def backward(ctx, G):
        return ctx.rows.transpose_matmul(G.contiguous()), None


def sparse_matmul(rows: SparseRows, W: torch.Tensor) -> torch.Tensor:
    """X @ W for sparse rows X (n, d) and dense W (d, k), differentiable in W."""
    return _SparseMatmul.apply(W, rows)


def is_sparse_rows(X) -> bool:
    return isinstance(X, SparseRows)


__all__ = ["SparseRows", "is_sparse_rows", "sparse_matmul"]
