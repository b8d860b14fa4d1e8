"""Sparse throughput: a full-batch epoch on CSR data against scipy's own pair of products.

The limit for one full-batch epoch of logistic regression on sparse X is the work it must do:
one `X @ w` (the logits) and one `X.T @ r` (the gradient), each reading every stored value
once. scipy's CSR kernels do exactly that; they are timed here in the same run, on the same
matrix and thread count, and each implementation's epoch is reported as a multiple of them.
Goals (the sparse issue): numpy at most 1.2x, autograd and module at most 2x on the CPU.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from logreg.bench.timing import make_model, time_epochs
from logreg.data import REGISTRY

SPARSE_GOALS = {"numpy": 1.2, "autograd": 2.0, "module": 2.0}


@dataclass(frozen=True)
class SparseShape:
    """n rows, d columns, nnz non-zeros per row (the text generator's parameters)."""

    n: int
    d: int
    nnz: int

    @property
    def name(self) -> str:
        return f"text:n={self.n},d={self.d},nnz={self.nnz}"

    def matrix(self, seed: int, dtype: str):
        """The generator's CSR matrix and labels."""
        X, y, _ = REGISTRY["text"].make(seed, n=self.n, d=self.d, nnz=self.nnz)
        return X.astype(dtype), y


@dataclass(frozen=True)
class SparseDataset:
    """A sparse dataset by name: a fetched LIBSVM name or an svmlight file (its training part)."""

    name: str

    def matrix(self, seed: int, dtype: str):
        from logreg.config import TrainConfig
        from logreg.data import load_split

        split = load_split(TrainConfig(dataset=self.name, seed=seed, dtype=dtype))
        if not split.sparse:
            from logreg.errors import LogregError

            raise LogregError(
                f"--sparse {self.name}: the dataset is dense. Name a sparse one (a fetched LIBSVM "
                "name, an svmlight file) or N,D,NNZ for the text generator."
            )
        return split.X_train, split.y_train


def parse_shape(text: str) -> SparseShape | SparseDataset:
    """'N,D,NNZ' (numbers as 3e4 allowed) as a SparseShape, or a sparse dataset's name (a fetched
    LIBSVM name, an svmlight file); one line when malformed."""
    from logreg.data import check_dataset_name
    from logreg.errors import LogregError

    if not text[:1].isdigit():  # a name (text:n=..,d=..,nnz=.. included)
        check_dataset_name(text)
        return SparseDataset(text)
    try:
        n, d, nnz = (int(float(v)) for v in text.split(","))
    except ValueError:
        raise LogregError(
            f"--sparse takes N,D,NNZ (rows, columns, non-zeros per row), e.g. 30000,200000,40, or a "
            f"sparse dataset's name. Got {text!r}."
        ) from None
    if min(n, d, nnz) < 1 or 2 * nnz > d:
        raise LogregError(f"--sparse {text}: n, d and nnz must be >= 1 with nnz <= d / 2.")
    return SparseShape(n, d, nnz)


def scipy_pair_seconds(X, repeats: int) -> float:
    """Median seconds of `X @ w` then `X.T @ r` with scipy's CSR kernels (the limit)."""
    w = np.zeros((X.shape[1], 1), dtype=X.dtype)
    r = np.ones((X.shape[0], 1), dtype=X.dtype)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        z = X @ w
        g = X.T @ r
        times.append(time.perf_counter() - t0)
        del z, g
    return statistics.median(times[1:])


def run_sparse(
    shape: SparseShape | SparseDataset,
    impls=("numpy", "autograd", "module"),
    dtype: str = "float32",
    warmup: int = 2,
    repeats: int = 7,
    seed: int = 0,
    devices=("cpu",),
) -> list[dict[str, Any]]:
    """One row per implementation and device: its median full-batch epoch and the scipy pair's
    on the CPU, side by side (the pair timed before and after each row's epochs; the median of
    both). On CUDA (autograd, module) the row compares the GPU's epoch with scipy on the CPU, as
    the published rcv1 comparisons do; the goals are the CPU's."""
    from logreg.config import runs_on
    from logreg.timing import set_torch_threads

    X, y = shape.matrix(seed, dtype)
    (n, d), per_row = X.shape, max(1, X.nnz // max(1, X.shape[0]))
    rows = []
    for device in devices:
        for impl in (i for i in impls if runs_on(i, device)):
            threads = set_torch_threads(1, n, per_row) if impl != "numpy" else None
            model = make_model(impl, device, dtype, d, None, "sgd", seed)
            data = model.put(X, y)
            before = scipy_pair_seconds(X, repeats)
            epoch, _, times = time_epochs(model, data, n, None, device, warmup, repeats, seed)
            after = scipy_pair_seconds(X, repeats)
            limit = statistics.median([before, after])
            goal = SPARSE_GOALS[impl] if device == "cpu" else None
            rows.append(
                {
                    "impl": impl,
                    "device": device,
                    "dataset": shape.name,
                    "n": n,
                    "d": d,
                    "nnz": int(X.nnz),
                    "dtype": dtype,
                    "torch_threads": threads or "",
                    "epoch_seconds_median": epoch,
                    "scipy_pair_seconds": limit,
                    "ratio_to_scipy": epoch / limit,
                    "goal": goal,
                    "met": None if goal is None else epoch / limit <= goal,
                    "host_load_per_core": os.getloadavg()[0] / (os.cpu_count() or 1),
                }
            )
            del model, data
    return rows


def sparse_markdown(rows: list[dict[str, Any]], command: str, machine: str) -> str:
    """The rows as a Markdown table with the command and the machine."""
    lines = [
        f"Sparse full-batch epochs (SGD; torch on one CPU thread, or the GPU) against scipy's `X @ w` "
        f"+ `X.T @ r` on the same matrix on the CPU, timed in the same run; {machine}.",
        "",
        "| data | nnz | impl | device | epoch ms | scipy pair ms (CPU) | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = "-" if r["goal"] is None else f"<= {r['goal']}x"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "no")
        lines.append(
            f"| {r['dataset']} | {r['nnz']:,} | {r['impl']} | {r['device']} | "
            f"{r['epoch_seconds_median'] * 1e3:.2f} | {r['scipy_pair_seconds'] * 1e3:.2f} | "
            f"{r['ratio_to_scipy']:.2f}x | {goal} | {met} |"
        )
    return "\n".join(lines + ["", f"Command: `{command}`", ""])
