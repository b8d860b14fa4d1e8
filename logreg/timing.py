"""One timing loop for training and benchmarks: the batch order, the device clock.

`train` and `bench` both time epochs through these helpers, so a benchmark always
times exactly what training runs (same batch order, same synchronisation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from logreg.validation import Interval, check_param

# torch CPU threads: N >= 1 sets them, 0 keeps torch's default (one per core).
TORCH_THREADS = Interval(int, 0)


def set_torch_threads(threads: int) -> None:
    """torch.set_num_threads(threads) for threads >= 1; 0 keeps torch's default."""
    check_param("torch_threads", threads, TORCH_THREADS)
    if threads:
        import torch

        torch.set_num_threads(threads)


def synchronize(device) -> None:
    """Wait for queued device work before a clock is read (CUDA); nothing to do on the CPU."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def batch_orders(seed: int, n: int, batch_size: int | None) -> Iterator[np.ndarray | None]:
    """Per epoch: a row permutation (mini-batch), or None (full batch). The same for every impl."""
    rng = np.random.default_rng([seed, 2])
    mini = batch_size is not None and batch_size < n
    while True:
        yield rng.permutation(n) if mini else None


def timed_epoch(model, data, order, device) -> float:
    """Seconds for one `model.train_epoch`, with the device synchronised before the clock stops."""
    t0 = time.perf_counter()
    model.train_epoch(data, order)
    synchronize(device)  # CUDA: wait for the queued kernels before reading the clock
    return time.perf_counter() - t0
