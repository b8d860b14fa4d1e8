"""Throughput: samples per second and the memory roofline, per implementation x size x device.

Each cell times `model.train_epoch` on synthetic data of n rows and d features:
a few warm-up epochs, then `repeats` epochs, with `repeats` reductions over a
large buffer on the same device just before and just after them (the read
bandwidth, measured side by side with the epochs it is compared with). CUDA is synchronised before every clock
read. Reported per cell: the median epoch time, samples per second, the
effective bandwidth (bytes of X per epoch / epoch time) and its fraction of the
measured device bandwidth, and `roofline_ratio` = epoch time / time of one read
of X (1.0 is the limit; lower is impossible for a full-batch epoch).

Also here: the speed goals (`--goals`) and the time to target (`--time-to-target`).
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logreg.errors import LogregError

EXPERIMENT = "throughput"
CPU_SIZES = (10**3, 10**4, 10**5, 10**6)
CUDA_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
DIMS = (10, 100)
MINI_BATCH = 1024
GOAL_DATASET = "synthetic:n=1000000,d=100"


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

    def __post_init__(self) -> None:
        from logreg.config import DTYPE_NAMES, IMPL_NAMES, OPTIMIZER_NAMES, require_cuda

        def ints(name, values, low):
            if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < low for v in values):
                raise LogregError(
                    f"The {name!r} parameter must be whole numbers >= {low}. Got {values!r} instead."
                )

        if self.sizes is not None:
            ints("sizes", self.sizes, 10)
        ints("dims", self.dims, 1)
        ints("repeats", (self.repeats,), 1)
        ints("warmup", (self.warmup,), 0)
        if self.batch_size is not None:
            ints("batch_size", (self.batch_size,), 1)
        for name, values, choices in (
            ("impls", self.impls, IMPL_NAMES),
            ("devices", self.devices, ("cpu", "cuda")),
        ):
            bad = [v for v in values if v not in choices] or ([] if values else ["(none)"])
            if bad:
                raise LogregError(
                    f"The {name!r} parameter must be a list of {', '.join(choices)}. Got {', '.join(bad)}."
                )
        if self.dtype not in DTYPE_NAMES:
            raise LogregError(
                f"The 'dtype' parameter must be one of {', '.join(DTYPE_NAMES)}. Got {self.dtype!r}."
            )
        if self.optimizer not in OPTIMIZER_NAMES:
            raise LogregError(
                f"The 'optimizer' parameter must be one of {', '.join(OPTIMIZER_NAMES)}. "
                f"Got {self.optimizer!r}."
            )
        if "cuda" in self.devices:
            require_cuda("Use --devices cpu.")

    def sizes_for(self, device: str) -> tuple[int, ...]:
        if self.sizes is not None:
            return self.sizes
        return CUDA_SIZES if device == "cuda" else CPU_SIZES


# ------------------------------------------------------------------ one cell


def _make_model(
    impl: str,
    device: str,
    dtype: str,
    n_features: int,
    batch_size: int | None,
    optimizer: str = "sgd",
    seed: int = 0,
):
    from logreg.config import TrainConfig
    from logreg.impls import IMPLS
    from logreg.train import initial_weights

    config = TrainConfig(
        impl=impl, optimizer=optimizer, device=device, dtype=dtype, batch_size=batch_size, seed=seed
    )
    W0, b0 = initial_weights(n_features, 1, seed)
    return IMPLS[impl]()(config, W0, b0, device)


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
    from logreg.bandwidth import synchronize

    rng = np.random.default_rng([seed, 2])
    mini = batch_size is not None and batch_size < n
    for _ in range(warmup):
        model.train_epoch(data, rng.permutation(n) if mini else None)
    synchronize(device)
    times, side = [], []
    for _ in range(repeats):
        if interleave is not None:
            side.append(interleave())
        order = rng.permutation(n) if mini else None
        synchronize(device)
        t0 = time.perf_counter()
        model.train_epoch(data, order)
        synchronize(device)  # CUDA: the kernels are done before the clock is read
        times.append(time.perf_counter() - t0)
    return statistics.median(times), (statistics.median(side) if side else float("nan")), times


def synthetic_xy(n: int, d: int, seed: int, dtype: str):
    """X (n, d) and y of the registry's synthetic generator (no split: every row is timed)."""
    from logreg.data import REGISTRY

    X, y, _ = REGISTRY["synthetic"].make(seed, n=n, d=d)
    return X.astype(dtype, copy=False), y


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
) -> dict[str, Any]:
    """Time one implementation on (X, y) and return the row of params and metrics."""
    from logreg.bandwidth import default_buffer_bytes, time_read

    n, d = X.shape
    model = _make_model(impl, device, dtype, d, batch_size, optimizer, seed)
    data = model.put(X, y)

    def bandwidth() -> float:
        seconds, nbytes = time_read(device)
        return nbytes / seconds

    # The read bandwidth is measured just before and just after the epochs (the
    # median of both sets), not between them: torch's OpenMP threads keep spinning
    # for milliseconds after a parallel reduction and would slow the next epoch.
    reads = [bandwidth() for _ in range(repeats)]
    epoch, _, times = time_epochs(model, data, n, batch_size, device, warmup, repeats, seed)
    reads += [bandwidth() for _ in range(repeats)]
    device_bw = statistics.median(reads)
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
        "torch_threads": _torch_threads(),
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


PARAM_KEYS = (
    "impl",
    "device",
    "n",
    "d",
    "dtype",
    "batch_size",
    "optimizer",
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
)


def run_name(row: dict[str, Any]) -> str:
    mode = "full" if row["batch_size"] == "full" else f"b{row['batch_size']}"
    return f"synthetic-n{row['n']}-d{row['d']}__{row['impl']}__{row['device']}__{mode}"


# ------------------------------------------------------------------ the grid


def run_throughput(
    cfg: ThroughputConfig,
    tracking_uri: str | None = None,
    track: bool = True,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every cell of the grid; log each to MLflow (experiment 'throughput') unless track=False."""
    tracker = exp_id = None
    if track:
        from logreg.tracking import Tracker

        tracker = Tracker(tracking_uri)
        exp_id = tracker.experiment_id(EXPERIMENT)
    rows: list[dict[str, Any]] = []
    status = "KILLED"
    try:
        for device in cfg.devices:
            impls = [i for i in cfg.impls if not (i == "numpy" and device == "cuda")]
            for d in cfg.dims:
                for n in cfg.sizes_for(device):
                    gib = n * d * np.dtype(cfg.dtype).itemsize / 2**30
                    if gib > cfg.max_gib:
                        echo(f"skip n={n} d={d} on {device}: X is {gib:.1f} GiB > --max-gib {cfg.max_gib}")
                        continue
                    X, y = synthetic_xy(n, d, cfg.seed, cfg.dtype)
                    for impl in impls:
                        for bs in (None, cfg.batch_size) if cfg.batch_size else (None,):
                            if bs is not None and bs >= n:
                                continue  # a mini-batch as large as the data is the full batch
                            row = run_cell(
                                impl,
                                device,
                                X,
                                y,
                                cfg.dtype,
                                bs,
                                cfg.warmup,
                                cfg.repeats,
                                cfg.optimizer,
                                cfg.seed,
                            )
                            rows.append(row)
                            echo(
                                f"{run_name(row):45s} {row['samples_per_second']:10.3g} samples/s  "
                                f"epoch {row['epoch_seconds_median'] * 1e3:9.3f} ms  "
                                f"{row['bandwidth_fraction']:6.1%} of {row['device_bandwidth_gbs']:.0f} GB/s"
                            )
                            if tracker is not None:
                                _log_row(tracker, exp_id, row)
                    del X, y
        status = "FINISHED"
    finally:
        if tracker is not None:
            tracker.close(status)
    return rows


def _log_row(tracker, exp_id: str, row: dict[str, Any]) -> None:
    from logreg.tracking import environment_tags

    tags = {**environment_tags(row["device"]), "logreg.run_kind": "throughput"}
    handle = tracker.start_run(exp_id, run_name(row), tags)
    tracker.log(handle, params={k: row[k] for k in PARAM_KEYS}, metrics={k: row[k] for k in METRIC_KEYS})
    tracker.end_run(handle, "FINISHED")


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: dict | None = None) -> str:
    from logreg.tables import markdown_table as table

    fmt = fmt or {}

    def cell(c, v):
        return fmt[c](v) if c in fmt and isinstance(v, (int, float)) else str(v)

    return table(columns, ([cell(c, r.get(c, "")) for c in columns] for r in rows))


# ------------------------------------------------------------------ speed goals


def _tutorial_loop(X, y):
    """The classic tutorial epoch: 2 -> 5 -> 1 nn.Linear + nn.Sigmoid, BCELoss, SGD momentum 0.9."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(X.shape[1], 5), nn.Linear(5, 1), nn.Sigmoid())
    loss_fn = nn.BCELoss()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    Xt = torch.as_tensor(np.array(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32))[:, None]

    def epoch():
        opt.zero_grad()
        loss = loss_fn(net(Xt), yt)
        loss.backward()
        opt.step()

    return epoch


def small_data_overhead(rounds: int = 5, epochs: int = 200, echo: Callable[[str], None] = print):
    """Goal 2: per-epoch time on blobs of each implementation (momentum, full batch) against the
    tutorial loop, measured in interleaved rounds; ratios are tutorial time / ours, per round."""
    from logreg.config import TrainConfig
    from logreg.data import load_split

    split = load_split(TrainConfig(dataset="blobs"))
    X, y = split.X_train, split.y_train
    n = len(y)
    tutorial = _tutorial_loop(X, y)
    epoch_fns = {"tutorial": tutorial}
    for impl in ("numpy", "autograd", "module"):
        model = _make_model(impl, "cpu", "float32", X.shape[1], None, "momentum")
        data = model.put(X, y)
        epoch_fns[impl] = (lambda m, dd: lambda: m.train_epoch(dd, None))(model, data)

    def median_epoch(fn) -> float:
        for _ in range(20):
            fn()
        ts = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    per_round = []
    for _ in range(rounds):
        per_round.append({name: median_epoch(fn) for name, fn in epoch_fns.items()})
    rows = []
    for name in epoch_fns:
        us = statistics.median(r[name] for r in per_round) * 1e6
        speedup = statistics.median(r["tutorial"] / r[name] for r in per_round)
        rows.append(
            {
                "goal": "2 small-data overhead",
                "impl": name,
                "dataset": f"blobs ({n} train rows)",
                "epoch_us_median": us,
                "tutorial_over_ours": speedup,
                "target": {"numpy": ">= 10", "module": ">= 2"}.get(name, ""),
            }
        )
        echo(f"blobs {name:9s} {us:8.1f} us/epoch   tutorial / this = {speedup:5.1f}x")
    return rows


def roofline(device: str, dataset: str, rounds: int = 9, echo: Callable[[str], None] = print):
    """Goals 1 and 4: full-batch epoch time / time of one read of X at the bandwidth measured
    side by side (reductions just before and just after the epochs)."""
    from logreg.config import TrainConfig
    from logreg.data import load_split

    split = load_split(TrainConfig(dataset=dataset))
    X, y = split.X_train, split.y_train
    targets = (
        {"numpy": 1.3, "autograd": 1.6, "module": 1.6}
        if device == "cpu"
        else {"autograd": 1.5, "module": 1.5}
    )
    rows = []
    for impl in targets:
        row = run_cell(impl, device, X, y, "float32", None, 2, rounds)
        row.update(
            goal="1 CPU roofline" if device == "cpu" else "4 CUDA roofline",
            dataset=dataset,
            target=f"<= {targets[impl]}",
            met=row["roofline_ratio"] <= targets[impl],
        )
        rows.append(row)
        echo(
            f"{dataset} {impl:9s} on {device}: epoch {row['epoch_seconds_median'] * 1e3:.2f} ms, "
            f"one read {row['bytes_per_epoch'] / row['device_bandwidth_gbs'] / 1e6:.2f} ms at "
            f"{row['device_bandwidth_gbs']:.1f} GB/s -> {row['roofline_ratio']:.2f}x "
            f"(target <= {targets[impl]})"
        )
    return rows


def run_goals(
    devices: Sequence[str], out: Path | None, echo: Callable[[str], None] = print, command: str = ""
):
    """Goals 1, 2 (CPU) and 4 (CUDA), each ratio measured side by side in one run."""
    from logreg.tracking import environment_tags

    all_rows: list[dict[str, Any]] = []
    for device in devices:
        if device == "cpu":
            roof = roofline("cpu", GOAL_DATASET, echo=echo)
            small = small_data_overhead(echo=echo)
        else:
            roof = roofline(device, "synthetic:n=16666667,d=100", echo=echo)  # 10^7 training rows
            small = []
        all_rows += roof + small
        if out is not None:
            name = device
            write_csv(roof + small, out / f"goals_{name}.csv")
            md = [
                f"# Speed goals on {device} ({environment_tags(device)['logreg.device_name']})\n",
                "Roofline: full-batch epoch time / one read of X at the read bandwidth measured in "
                "the same run (median of reductions just before and after the epochs). host_load_per_core: "
                "the 1-minute load average / cores when the row finished (above 1, other processes "
                f"competed for the cores). Made by `{command}`.\n",
                markdown_table(
                    roof,
                    [
                        "goal",
                        "dataset",
                        "impl",
                        "epoch_seconds_median",
                        "device_bandwidth_gbs",
                        "roofline_ratio",
                        "target",
                        "met",
                        "host_load_per_core",
                        "torch_threads",
                    ],
                    {
                        "epoch_seconds_median": lambda v: f"{v * 1e3:.2f} ms",
                        "device_bandwidth_gbs": lambda v: f"{v:.1f} GB/s",
                        "roofline_ratio": lambda v: f"{v:.2f}x",
                        "host_load_per_core": lambda v: f"{v:.1f}",
                    },
                ),
            ]
            if small:
                md += [
                    "\nSmall-data overhead: blobs, full batch, momentum 0.9, against the tutorial "
                    "loop (2->5->1 Linear + Sigmoid, BCELoss, SGD momentum), interleaved rounds.\n",
                    markdown_table(
                        small,
                        ["impl", "dataset", "epoch_us_median", "tutorial_over_ours", "target"],
                        {
                            "epoch_us_median": lambda v: f"{v:.1f} us",
                            "tutorial_over_ours": lambda v: f"{v:.1f}x",
                        },
                    ),
                ]
            (out / f"goals_{name}.md").write_text("\n".join(md))
    return all_rows


# ------------------------------------------------------------------ time to target

# Settings tried per optimizer (mini-batch, 1-3 epochs); every one is reported.
TTT_SETTINGS = {
    "sgd": [{"lr": 0.5, "batch_size": 4096}, {"lr": 1.0, "batch_size": None}],
    "momentum": [{"lr": 0.05, "batch_size": 4096}, {"lr": 0.5, "batch_size": None}],
    "adam": [{"lr": 0.01, "batch_size": 4096}, {"lr": 0.003, "batch_size": 1024}],
}


def time_to_target(
    dataset: str = GOAL_DATASET,
    tolerance: float = 0.002,
    impls=("numpy", "autograd", "module"),
    max_epochs: int = 3,
    echo: Callable[[str], None] = print,
):
    """Goal 3: training time until test accuracy >= (lbfgs optimum - tolerance), per impl x
    optimizer, against scikit-learn's LogisticRegression(lbfgs) and SGDClassifier on the same rows."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    from logreg.config import TrainConfig
    from logreg.data import load_split
    from logreg.train import train

    split = load_split(TrainConfig(dataset=dataset))
    rows = []
    t0 = time.perf_counter()
    lbfgs = LogisticRegression(solver="lbfgs", max_iter=1000).fit(split.X_train, split.y_train)
    lbfgs_s = time.perf_counter() - t0
    optimum = float(lbfgs.score(split.X_test, split.y_test))
    target = optimum - tolerance
    rows.append(
        {
            "impl": "scikit-learn",
            "optimizer": "LogisticRegression(lbfgs)",
            "lr": "",
            "batch_size": "full",
            "test_accuracy": optimum,
            "seconds": lbfgs_s,
            "reached": True,
            "epochs_run": int(lbfgs.n_iter_[0]),
        }
    )
    echo(f"lbfgs: test accuracy {optimum:.4f} in {lbfgs_s:.2f} s; target {target:.4f}")
    t0 = time.perf_counter()
    sgdc = SGDClassifier(loss="log_loss", random_state=0).fit(split.X_train, split.y_train)
    sgdc_s = time.perf_counter() - t0
    acc = float(sgdc.score(split.X_test, split.y_test))
    rows.append(
        {
            "impl": "scikit-learn",
            "optimizer": "SGDClassifier(log_loss)",
            "lr": "optimal",
            "batch_size": 1,
            "test_accuracy": acc,
            "seconds": sgdc_s,
            "reached": acc >= target,
            "epochs_run": int(sgdc.n_iter_),
        }
    )
    echo(f"SGDClassifier: test accuracy {acc:.4f} in {sgdc_s:.2f} s")
    for impl in impls:
        for optimizer, settings in TTT_SETTINGS.items():
            for s in settings:
                epochs = max_epochs if s["batch_size"] else 30
                cfg = TrainConfig(
                    dataset=dataset,
                    impl=impl,
                    optimizer=optimizer,
                    lr=s["lr"],
                    batch_size=s["batch_size"],
                    epochs=epochs,
                    target_accuracy=target,
                )
                res = train(cfg, split)
                ttt = res.timings["time_to_target_seconds"]
                reached = bool(np.isfinite(ttt))
                rows.append(
                    {
                        "impl": impl,
                        "optimizer": optimizer,
                        "lr": s["lr"],
                        "batch_size": s["batch_size"] or "full",
                        "test_accuracy": res.metrics["test_accuracy"],
                        "seconds": ttt if reached else res.timings["fit_seconds"],
                        "reached": reached,
                        "epochs_run": res.timings["epochs_run"],
                    }
                )
                echo(
                    f"{impl:9s} {optimizer:9s} lr={s['lr']:<6} batch={s['batch_size'] or 'full':<5} "
                    + (
                        f"target in {ttt:.3f} s ({ttt / lbfgs_s:.2f}x lbfgs)"
                        if reached
                        else f"missed target in {res.timings['fit_seconds']:.2f} s"
                    )
                )
    for r in rows:
        r["ratio_to_lbfgs"] = r["seconds"] / lbfgs_s if r["reached"] else float("nan")
        r["target_accuracy"] = target
    return rows


def write_time_to_target(rows, out: Path, dataset: str = GOAL_DATASET, command: str = "") -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "time_to_target.csv")
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["impl"], r["optimizer"])
        ok = r["reached"]
        if key not in best or (ok and (not best[key]["reached"] or r["seconds"] < best[key]["seconds"])):
            best[key] = r
    target = rows[0]["target_accuracy"]
    text = [
        f"# Time to target on {dataset}\n",
        f"Target: test accuracy >= {target:.4f} (scikit-learn lbfgs optimum - 0.002). Seconds of "
        "training until an epoch-end evaluation first reaches it (evaluation excluded); the best "
        "setting per implementation x optimizer (all settings in time_to_target.csv). "
        f"Made by `{command}`.\n",
        markdown_table(
            list(best.values()),
            [
                "impl",
                "optimizer",
                "lr",
                "batch_size",
                "epochs_run",
                "test_accuracy",
                "seconds",
                "ratio_to_lbfgs",
                "reached",
            ],
            {
                "test_accuracy": lambda v: f"{v:.4f}",
                "seconds": lambda v: f"{v:.3f}",
                "ratio_to_lbfgs": lambda v: f"{v:.2f}",
            },
        ),
    ]
    (out / "time_to_target.md").write_text("\n".join(text))


# ------------------------------------------------------------------ CLI


def _int_list(text: str) -> tuple[int, ...]:
    import argparse

    try:
        return tuple(int(float(v)) if "e" in v.lower() else int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(  # argparse words it as one usage line (exit 2)
            f"expected a comma-separated list of whole numbers (e.g. 1e3,1e4,1e5); got {text!r}"
        ) from None


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_parser(sub) -> None:
    p = sub.add_parser(
        "throughput", help="time epochs over a grid of sizes x impls x devices (MLflow 'throughput')"
    )
    p.add_argument(
        "--sizes", type=_int_list, help="rows n, e.g. 1e3,1e4,1e5,1e6 (default: up to 1e6 CPU, 1e7 CUDA)"
    )
    p.add_argument("--dims", type=_int_list, default=DIMS, help="features d (default 10,100)")
    p.add_argument("--impls", type=_str_list, default=("numpy", "autograd", "module"))
    p.add_argument("--devices", type=_str_list, help="cpu,cuda (default: cpu, plus cuda when available)")
    p.add_argument("--dtype", default="float32")
    p.add_argument(
        "--batch-size",
        type=int,
        default=MINI_BATCH,
        help=f"mini-batch size timed beside full batch (default {MINI_BATCH}; 0: full batch only)",
    )
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-gib", type=float, default=8.0, help="skip cells whose X is larger")
    p.add_argument(
        "--torch-threads",
        type=int,
        help="torch.set_num_threads(N) first (default: torch's own, one per core); on a "
        "loaded shared machine 1 avoids stalls in multi-threaded kernels",
    )
    p.add_argument(
        "--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    p.add_argument("--no-track", action="store_true", help="run without MLflow")
    p.add_argument("--out", type=Path, help="also write CSV / Markdown here (e.g. results/throughput)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--goals",
        action="store_true",
        help="measure the speed goals (roofline, small-data overhead) instead of the grid",
    )
    mode.add_argument(
        "--time-to-target",
        action="store_true",
        help="goal 3: time to lbfgs's test accuracy - 0.002 on synthetic:n=1000000,d=100",
    )
    p.set_defaults(func=cmd_throughput)


def _command(args, mode: str) -> str:
    """The command line that reproduces a results file."""
    parts = ["logreg throughput", mode]
    if args.devices:
        parts.append("--devices " + ",".join(args.devices))
    if args.torch_threads is not None:
        parts.append(f"--torch-threads {args.torch_threads}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def cmd_throughput(args) -> int:
    import torch

    devices = args.devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            raise LogregError(f"The 'torch_threads' parameter must be an int >= 1. Got {args.torch_threads}.")
        torch.set_num_threads(args.torch_threads)
    cfg = ThroughputConfig(
        sizes=args.sizes,
        dims=args.dims,
        impls=args.impls,
        devices=devices,
        dtype=args.dtype,
        batch_size=args.batch_size or None,
        optimizer=args.optimizer,
        warmup=args.warmup,
        repeats=args.repeats,
        max_gib=args.max_gib,
    )
    if args.goals:
        run_goals(cfg.devices, args.out, command=_command(args, "--goals"))
        return 0
    if args.time_to_target:
        rows = time_to_target(impls=cfg.impls)
        if args.out is not None:
            write_time_to_target(rows, args.out, command=_command(args, "--time-to-target"))
        return 0
    rows = run_throughput(cfg, args.tracking_uri, track=not args.no_track)
    if args.out is not None:
        print(f"wrote {write_csv(rows, args.out / ('throughput_' + '_'.join(cfg.devices) + '.csv'))}")
    return 0
