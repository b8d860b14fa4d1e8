"""One timing loop for training and benchmarks: the batch order, the device clock.

`train` and `bench` both time epochs through these helpers, so a benchmark always
times exactly what training runs (same batch order, same synchronisation).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator

import numpy as np

from logreg.errors import LogregWarning
from logreg.validation import Interval, Options, check_param

# torch CPU threads: N >= 1 sets N; 0 (or "auto") chooses from the problem size (choose_threads).
TORCH_THREADS = (Interval(int, 0), Options(("auto",)))

# Below this many elements of X (n_samples x n_features) one torch thread is faster than every
# core: a small epoch is a few short kernels, and waking the other threads (or waiting for a core
# that another process holds) costs more than it saves. Measured on the 2-core machine by
# tests/benchmarks/threads_cutoff.py (results/throughput/threads_cutoff.md): with d = 100 the
# second core helps (0.7-0.8x) from 3e5 values; with d = 10 it never did up to 1e6 (1.1-1.4x,
# and 100x stalls when another process held the core). 2e6 errs toward one thread.
THREADS_CUTOFF_ELEMENTS = 2_000_000


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


ONE_DAY = 86_400.0


def warn_if_long(seconds: float, what: str, fix: str) -> bool:
    """One warning line when a run's estimated time passes a day; True when it warned."""
    if seconds <= ONE_DAY:
        return False
    days = seconds / ONE_DAY
    span = f"{days:.0f} days" if days < 1000 else f"{days / 365:.3g} years"
    warnings.warn(f"{what} will take about {span}. {fix}", LogregWarning, stacklevel=3)
    return True


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), else all of it."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62


def cap_threads(threads: int) -> int:
    """N threads, at most this machine's cores (one warning line above them): more threads than
    cores only wait for each other (10,000 threads stalled a 2-core machine)."""
    cores = available_cores()
    if threads <= cores:
        return threads
    warnings.warn(
        f"--torch-threads {threads} is more than the {cores} cores this process may use; using {cores}.",
        LogregWarning,
        stacklevel=3,
    )
    return cores


def busy_elsewhere() -> float:
    """Cores other processes keep busy: the 1-minute load average less this process's own one."""
    return max(0.0, os.getloadavg()[0] - 1.0)


def choose_threads(threads: int | str, n_samples: int, n_features: int) -> int:
    """The torch thread count `threads` means: N >= 1 itself; 0 / "auto" one thread below
    THREADS_CUTOFF_ELEMENTS elements of X, from there on every core that other processes leave
    free (at least one).

    Why not every core regardless: torch's kernels split each call across the threads and wait
    for the slowest; a thread whose core another process holds makes every call wait for a time
    slice. Seen here with the other core busy: 600k x 100 epochs 5-20x slower on two threads
    than on one (results/throughput/threads_cutoff.md).
    """
    check_param("torch_threads", threads, TORCH_THREADS)
    if threads not in (0, "auto"):
        return cap_threads(threads)
    if n_samples * n_features < THREADS_CUTOFF_ELEMENTS:
        return 1
    cores = available_cores()
    return max(1, min(cores, cores - round(busy_elsewhere())))


def set_torch_threads(threads: int | str, n_samples: int = 0, n_features: int = 0) -> int:
    """torch.set_num_threads(choose_threads(...)) and return the count (0 / "auto": from n x d)."""
    chosen = choose_threads(threads, n_samples, n_features)
    import torch

    if torch.get_num_threads() != chosen:  # re-creating the thread pool is not free
        torch.set_num_threads(chosen)
    return chosen


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
