"""The memory roofline: how fast a device can read memory, measured with a plain reduction.

A full-batch epoch must read X at least once, so `bytes of X / read bandwidth`
is a lower bound on its time. The bandwidth is measured in the same run as the
epochs it is compared with (these machines are shared and noisy), by summing a
buffer much larger than the CPU's caches (or on the GPU, larger than its L2).
"""

from __future__ import annotations

import functools
import os
import statistics
import time

from logreg.timing import synchronize

# Buffer sizes: far above the CPU's last-level cache (tens of MiB) and the
# GPU's L2 (tens of MiB), so the sum streams from DRAM / HBM.
CPU_BUFFER_BYTES = 256 * 1024 * 1024
CUDA_BUFFER_BYTES = 2 * 1024 * 1024 * 1024


@functools.lru_cache(maxsize=4)
def _buffer(device: str, nbytes: int):
    import torch

    buf = torch.ones(nbytes // 4, dtype=torch.float32, device=device)  # ones: pages touched
    synchronize(device)
    return buf


def default_buffer_bytes(device: str) -> int:
    return CUDA_BUFFER_BYTES if device.startswith("cuda") else CPU_BUFFER_BYTES


def time_read(device: str, nbytes: int | None = None) -> tuple[float, int]:
    """Seconds for one reduction over a large buffer on `device`, and the buffer's bytes."""
    import torch

    nbytes = default_buffer_bytes(device) if nbytes is None else nbytes
    buf = _buffer(device, nbytes)
    # The device's bandwidth needs every core reading, whatever torch.set_num_threads says.
    threads = torch.get_num_threads()
    if not device.startswith("cuda"):
        torch.set_num_threads(os.cpu_count() or 1)
    try:
        synchronize(device)
        t0 = time.perf_counter()
        buf.sum()
        synchronize(device)  # on CUDA the clock is read only after the kernel finished
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return seconds, buf.numel() * 4


def read_bandwidth(device: str, repeats: int = 5, nbytes: int | None = None) -> float:
    """Median read bandwidth in bytes per second (one warm-up reduction first)."""
    time_read(device, nbytes)
    times, size = [], 0
    for _ in range(repeats):
        seconds, size = time_read(device, nbytes)
        times.append(seconds)
    return size / statistics.median(times)
