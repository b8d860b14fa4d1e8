"""Timed epochs for the benchmarks, through the same loop and batch order as train()."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from logreg import impls
from logreg.config import TrainConfig
from logreg.data import REGISTRY
from logreg.timing import batch_orders, synchronize, timed_epoch
from logreg.train import initial_weights


def make_model(
    impl: str,
    device: str,
    dtype: str,
    n_features: int,
    batch_size: int | None,
    optimizer: str = "sgd",
    seed: int = 0,
    compile: bool = False,
):
    """A binary model of `impl` as train() builds it (the same initial weights)."""
    config = TrainConfig(
        impl=impl,
        optimizer=optimizer,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        seed=seed,
        compile=compile,
    )
    return impls.make_model(config, *initial_weights(n_features, 1, seed), device)


def time_epochs(
    model,
    data,
    n: int,
    batch_size: int | None,
    device: str,
    warmup: int,
    repeats: int,
    seed: int = 0,
    interleave: Callable[[], float] | None = None,
):
    """Median epoch seconds over `repeats` timed epochs after `warmup` untimed ones.

    `interleave()` runs before each timed epoch (outside its clock) and returns a
    number (the read bandwidth); its median comes back too.
    """
    orders = batch_orders(seed, n, batch_size)  # the batch order train() uses
    for _ in range(warmup):
        model.train_epoch(data, next(orders))
    synchronize(device)
    times, side = [], []
    for _ in range(repeats):
        if interleave is not None:
            side.append(interleave())
        order = next(orders)
        synchronize(device)
        times.append(timed_epoch(model, data, order, device))
    return statistics.median(times), (statistics.median(side) if side else float("nan")), times


def synthetic_xy(n: int, d: int, seed: int, dtype: str):
    """X (n, d) and y of the registry's synthetic generator (no split: every row is timed)."""
    X, y, _ = REGISTRY["synthetic"].make(seed, n=n, d=d)
    return X.astype(dtype, copy=False), y
