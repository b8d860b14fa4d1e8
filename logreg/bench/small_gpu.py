"""Small data on a GPU: per-epoch time of eager, CUDA-graph-captured and compiled epochs.

On a few hundred rows a GPU epoch is launch overhead: a dozen kernels of microseconds each,
queued one by one from Python. A CUDA graph records the whole full-batch epoch (forward,
backward, update) once and replays it as one launch; torch.compile fuses kernels instead. This
module times the three side by side on the tutorial datasets ("when is the GPU worth it?"), and
checks that a replayed graph trains exactly as the eager epochs do (the same weights after the
same number of epochs), so a row cannot be fast for doing less.

Plain SGD with momentum: its state is updated in place after the first step, which a graph
needs (Adam's bias correction is a Python number per step, frozen by a capture).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from logreg.bench.timing import make_model
from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.timing import synchronize

SMALL_DATASETS = ("blobs", "iris")
MODES = ("eager", "graph", "compiled")
WARMUP = 3


def graphed_epoch(model, data) -> Callable[[], None]:
    """Capture one full-batch epoch of `model` as a CUDA graph; the returned function replays it.

    The warm-up epochs run on a side stream first (as torch.cuda.graphs asks: lazily made state
    such as momentum buffers exists before the capture). Capturing records kernels without
    running them: after this call the model has trained WARMUP epochs."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP):
            model.train_epoch(data, None)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model.train_epoch(data, None)
    return graph.replay


def _epoch_fn(impl: str, mode: str, device: str, X, y) -> tuple[Callable[[], None], Any, float]:
    """(one epoch, the model, seconds spent before the first timed epoch: capture or compile)."""
    model = make_model(impl, device, "float32", X.shape[1], None, "momentum", compile=mode == "compiled")
    data = model.put(X, y)
    t0 = time.perf_counter()
    if mode == "graph":
        fn = graphed_epoch(model, data)
    else:
        for _ in range(WARMUP):
            model.train_epoch(data, None)
        fn = (lambda m, dd: lambda: m.train_epoch(dd, None))(model, data)
    synchronize(device)
    return fn, model, time.perf_counter() - t0


def _median_epoch(fn, device: str, epochs: int, rounds: int) -> float:
    """Median over rounds of (seconds for `epochs` epochs, synchronised once) / epochs."""
    per = []
    for _ in range(rounds):
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(epochs):
            fn()
        synchronize(device)
        per.append((time.perf_counter() - t0) / epochs)
    return statistics.median(per)


def _same_as_eager(impl: str, device: str, X, y, model, epochs_done: int) -> bool:
    """Whether `model`'s weights equal an eager model's after the same number of epochs."""
    eager = make_model(impl, device, "float32", X.shape[1], None, "momentum")
    data = eager.put(X, y)
    for _ in range(epochs_done):
        eager.train_epoch(data, None)
    return all(
        np.allclose(a, b, rtol=1e-4, atol=1e-6)
        for a, b in zip(model.get_params(), eager.get_params(), strict=True)
    )


def small_data_modes(
    device: str = "cuda",
    datasets=SMALL_DATASETS,
    impls=("autograd", "module"),
    modes=MODES,
    epochs: int = 200,
    rounds: int = 5,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per dataset x implementation x mode: the median epoch time, the setup time
    (capture or compile), and for graphs whether replays trained as eager epochs do. A mode that
    fails (a capture torch refuses) is a row with its error, not the end of the run."""
    rows = []
    for dataset in datasets:
        split = load_split(TrainConfig(dataset=dataset))
        X, y = split.X_train, split.y_train
        for impl in impls:
            for mode in modes:
                row = {
                    "dataset": f"{dataset} ({len(y)} train rows)",
                    "impl": impl,
                    "mode": mode,
                    "device": device,
                }
                try:
                    fn, model, setup = _epoch_fn(impl, mode, device, X, y)
                    seconds = _median_epoch(fn, device, epochs, rounds)
                    done = WARMUP + epochs * rounds
                    same = "" if mode == "eager" else _same_as_eager(impl, device, X, y, model, done)
                    row.update(
                        epoch_us_median=seconds * 1e6, setup_seconds=setup, same_as_eager=same, error=""
                    )
                except Exception as exc:  # noqa: BLE001 - reported in the row, the others still run
                    row.update(epoch_us_median=float("nan"), setup_seconds=float("nan"), same_as_eager="",
                               error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")  # fmt: skip
                rows.append(row)
                echo(_line(row))
    eager = {(r["dataset"], r["impl"]): r["epoch_us_median"] for r in rows if r["mode"] == "eager"}
    for r in rows:
        r["speedup_over_eager"] = eager.get((r["dataset"], r["impl"]), float("nan")) / r["epoch_us_median"]
    return rows


def _line(row: dict[str, Any]) -> str:
    head = f"{row['dataset']:24s} {row['impl']:8s} {row['mode']:8s} on {row['device']}:"
    if row["error"]:
        return f"{head} failed ({row['error']})"
    check = "" if row["mode"] == "eager" else f", same weights as eager: {row['same_as_eager']}"
    return f"{head} {row['epoch_us_median']:8.1f} us/epoch (setup {row['setup_seconds']:.2f} s{check})"
