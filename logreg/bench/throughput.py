"""Throughput: samples per second and the memory roofline, per implementation x size x device.

Each cell times `model.train_epoch` on synthetic data of n rows and d features:
a few warm-up epochs, then `repeats` epochs, with `repeats` reductions over a
large buffer on the same device just before and just after them (the read
bandwidth, measured side by side with the epochs it is compared with). CUDA is synchronised before every clock
read. Reported per cell: the median epoch time, samples per second, the
effective bandwidth (bytes of X per epoch / epoch time) and its fraction of the
measured device bandwidth, and `roofline_ratio` = epoch time / time of one read
of X (1.0 is the limit; lower is impossible for a full-batch epoch).

The speed goals (`--goals`) are in bench.goals, the time to target in bench.time_to_target.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from logreg.bench.bandwidth import default_buffer_bytes, time_read
from logreg.bench.timing import make_model, synthetic_xy, time_epochs
from logreg.config import DTYPE_NAMES, IMPL_NAMES, OPTIMIZER_NAMES, require_cuda, runs_on
from logreg.errors import LogregError
from logreg.timing import TORCH_THREADS, batch_orders, set_torch_threads, timed_epoch
from logreg.tracking import RunRecord, Tracker, environment_tags
from logreg.validation import NONE, Interval, ListOf, Options, check_params

EXPERIMENT = "throughput"
CPU_SIZES = (10**3, 10**4, 10**5, 10**6)
CUDA_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
DIMS = (10, 100)
MINI_BATCH = 1024
GOAL_DATASET = "synthetic:n=1000000,d=100"


THROUGHPUT_CONSTRAINTS = {
    "sizes": (ListOf(Interval(int, 10)), NONE),
    "dims": ListOf(Interval(int, 1)),
    "impls": ListOf(Options(IMPL_NAMES)),
    "devices": ListOf(Options(("cpu", "cuda"))),
    "dtype": Options(DTYPE_NAMES),
    "batch_size": (Interval(int, 1), NONE),
    "optimizer": Options(OPTIMIZER_NAMES),
    "warmup": Interval(int, 0),
    "repeats": Interval(int, 1),
    "max_gib": Interval(float, 0, open_low=True),
    "torch_threads": TORCH_THREADS,
    "compile": ListOf(Options((False, True))),
}


@dataclass(frozen=True)
class ThroughputConfig:
    """What `logreg throughput` runs; validated on construction."""

    sizes: tuple[int, ...] | None = None
    """Rows n per cell; None: 10^3..10^6 on the CPU, 10^3..10^7 on CUDA."""
    dims: tuple[int, ...] = DIMS
    """Features d per cell."""
    impls: tuple[str, ...] = ("numpy", "autograd", "module")
    """Implementations; numpy runs on the CPU only (skipped on CUDA)."""
    devices: tuple[str, ...] = ("cpu",)
    """cpu and/or cuda."""
    dtype: str = "float32"
    """float32 or float64."""
    batch_size: int | None = MINI_BATCH
    """The mini-batch size timed beside full batch; None: full batch only."""
    optimizer: str = "sgd"
    """Update rule used in the timed epochs (plain SGD: the data pass dominates)."""
    warmup: int = 2
    """Untimed epochs before the timed ones."""
    repeats: int = 5
    """Timed epochs; the median is reported."""
    seed: int = 0
    """Seeds the synthetic data."""
    max_gib: float = 8.0
    """Cells whose X is larger than this are skipped (say so on stdout)."""
    torch_threads: int = 0
    """torch CPU threads per cell; 0 (or 'auto') chooses from the cell's n x d as `train` does."""
    compile: tuple[bool, ...] = (False,)
    """Eager (False) and/or compiled (True) cells for autograd and module (numpy: eager only)."""

    def __post_init__(self) -> None:
        check_params(THROUGHPUT_CONSTRAINTS, vars(self))
        if self.torch_threads == "auto":
            object.__setattr__(self, "torch_threads", 0)
        if "cuda" in self.devices:
            require_cuda("Use --devices cpu.")

    def sizes_for(self, device: str) -> tuple[int, ...]:
        if self.sizes is not None:
            return self.sizes
        return CUDA_SIZES if device == "cuda" else CPU_SIZES


# ------------------------------------------------------------------ one cell


def run_cell(
    impl: str,
    device: str,
    X,
    y,
    dtype: str,
    batch_size: int | None,
    warmup: int,
    repeats: int,
    optimizer: str = "sgd",
    seed: int = 0,
    torch_threads: int = 0,
    compile: bool = False,
) -> dict[str, Any]:
    """Time one implementation on (X, y) and return the row of params and metrics.

    torch_threads as TrainConfig's (0: chosen from n x d). compile: the first (compiling) epoch
    is timed apart as compile_seconds, before the warm-up.
    """
    n, d = X.shape
    threads = set_torch_threads(torch_threads, n, d) if impl != "numpy" else None
    model = make_model(impl, device, dtype, d, batch_size, optimizer, seed, compile)
    data = model.put(X, y)
    compile_seconds = float("nan")
    if compile:
        order = next(batch_orders(seed, n, batch_size))
        compile_seconds = timed_epoch(model, data, order, device)

    epoch, times, device_bw = _epochs_between_reads(model, data, n, batch_size, device, warmup, repeats, seed)
    x_bytes = n * d * np.dtype(dtype).itemsize
    effective = x_bytes / epoch
    mini = batch_size is not None and batch_size < n
    return {
        "impl": impl,
        "device": device,
        "n": n,
        "d": d,
        "dtype": dtype,
        "batch_size": batch_size if mini else "full",
        "optimizer": optimizer,
        "compile": compile,
        "warmup": warmup,
        "repeats": repeats,
        "epoch_seconds_median": epoch,
        "epoch_seconds_min": min(times),
        "samples_per_second": n / epoch,
        "bytes_per_epoch": x_bytes,
        "effective_bandwidth_gbs": effective / 1e9,
        "device_bandwidth_gbs": device_bw / 1e9,
        "bandwidth_fraction": effective / device_bw,
        "roofline_ratio": device_bw / effective,
        "bandwidth_buffer_bytes": default_buffer_bytes(device),
        # Context for noisy shared machines: runnable processes per core, averaged over a minute.
        "host_load_per_core": os.getloadavg()[0] / (os.cpu_count() or 1),
        "torch_threads": threads if threads is not None else "",
        "compile_seconds": compile_seconds,
    }


def _epochs_between_reads(model, data, n, batch_size, device, warmup, repeats, seed):
    """(median epoch seconds, every epoch's seconds, read bandwidth in bytes/s).

    The read bandwidth is measured just before and just after the epochs (the median of both
    sets), not between them: torch's OpenMP threads keep spinning for milliseconds after a
    parallel reduction and would slow the next epoch.
    """

    def bandwidth() -> float:
        seconds, nbytes = time_read(device)
        return nbytes / seconds

    reads = [bandwidth() for _ in range(repeats)]
    epoch, _, times = time_epochs(model, data, n, batch_size, device, warmup, repeats, seed)
    reads += [bandwidth() for _ in range(repeats)]
    return epoch, times, statistics.median(reads)


PARAM_KEYS = (
    "impl",
    "device",
    "n",
    "d",
    "dtype",
    "batch_size",
    "optimizer",
    "compile",
    "warmup",
    "repeats",
    "torch_threads",
)
METRIC_KEYS = (
    "epoch_seconds_median",
    "epoch_seconds_min",
    "samples_per_second",
    "bytes_per_epoch",
    "effective_bandwidth_gbs",
    "device_bandwidth_gbs",
    "bandwidth_fraction",
    "roofline_ratio",
    "host_load_per_core",
    "compile_seconds",
)


def run_name(row: dict[str, Any]) -> str:
    mode = "full" if row["batch_size"] == "full" else f"b{row['batch_size']}"
    compiled = "__compiled" if row["compile"] else ""
    return f"synthetic-n{row['n']}-d{row['d']}__{row['impl']}__{row['device']}__{mode}{compiled}"


# ------------------------------------------------------------------ the grid


def _cells(cfg: ThroughputConfig, impls, n: int):
    """(impl, batch size, compile) per cell at n rows: numpy is eager only, and a mini-batch as
    large as the data is the full batch."""
    sizes = (None, cfg.batch_size) if cfg.batch_size else (None,)
    return [
        (impl, bs, comp)
        for impl in impls
        for comp in cfg.compile
        for bs in sizes
        if not (comp and impl == "numpy") and not (bs is not None and bs >= n)
    ]


def run_throughput(
    cfg: ThroughputConfig,
    tracking_uri: str | None = None,
    track: bool = True,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every cell of the grid; log each to MLflow (experiment 'throughput') unless track=False."""
    _check_not_all_skipped(cfg)
    tracker = Tracker(tracking_uri) if track else None
    rows: list[dict[str, Any]] = []
    try:
        exp_id = tracker.experiment_id(EXPERIMENT) if tracker is not None else None
        for device, X, y in _data(cfg, echo):
            impls = [i for i in cfg.impls if runs_on(i, device)]
            for impl, bs, comp in _cells(cfg, impls, len(X)):
                row = run_cell(
                    impl, device, X, y, cfg.dtype, bs, cfg.warmup, cfg.repeats, cfg.optimizer, cfg.seed,
                    cfg.torch_threads, comp,
                )  # fmt: skip
                rows.append(row)
                echo(
                    f"{run_name(row):55s} {row['samples_per_second']:10.3g} samples/s  "
                    f"epoch {row['epoch_seconds_median'] * 1e3:9.3f} ms  "
                    f"{row['bandwidth_fraction']:6.1%} of {row['device_bandwidth_gbs']:.0f} GB/s"
                )
                if tracker is not None:
                    tracker.write(row_record(exp_id, row))
    finally:
        if tracker is not None:
            tracker.close()
    return rows


def _check_not_all_skipped(cfg: ThroughputConfig) -> None:
    itemsize = np.dtype(cfg.dtype).itemsize
    sizes = [(n, d) for device in cfg.devices for d in cfg.dims for n in cfg.sizes_for(device)]
    if all(n * d * itemsize / 2**30 > cfg.max_gib for n, d in sizes):
        smallest = min(n * d * itemsize / 2**30 for n, d in sizes)
        raise LogregError(
            f"Every cell of the grid would be skipped: the smallest X is {smallest:.3g} GiB, more than "
            f"--max-gib {cfg.max_gib}. Raise --max-gib or pass smaller --sizes / --dims."
        )


def _data(cfg: ThroughputConfig, echo: Callable[[str], None]):
    """(device, X, y) per size of the grid; sizes beyond --max-gib are skipped, saying so."""
    for device in cfg.devices:
        for d in cfg.dims:
            for n in cfg.sizes_for(device):
                gib = n * d * np.dtype(cfg.dtype).itemsize / 2**30
                if gib > cfg.max_gib:
                    echo(f"skip n={n} d={d} on {device}: X is {gib:.1f} GiB > --max-gib {cfg.max_gib}")
                    continue
                X, y = synthetic_xy(n, d, cfg.seed, cfg.dtype)
                yield device, X, y
                del X, y


def row_record(exp_id: str, row: dict[str, Any]) -> RunRecord:
    """The MLflow run of one throughput cell."""
    tags = {**environment_tags(row["device"]), "logreg.run_kind": "throughput"}
    params = {k: row[k] for k in PARAM_KEYS}
    return RunRecord(exp_id, run_name(row), "FINISHED", tags, params, {k: row[k] for k in METRIC_KEYS})
