"""The speed goals, each a ratio measured side by side in one run (`logreg throughput --goals`).

Goal 1 (CPU) and 4 (CUDA): full-batch epoch / one read of X at the bandwidth measured beside it.
Goal 2: small-data epochs against the classic tutorial loop.
autograd and module are measured eager and compiled (torch.compile), side by side.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from logreg.bench.small_gpu import small_data_modes
from logreg.bench.throughput import GOAL_DATASET, run_cell
from logreg.bench.timing import make_model
from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.paths import write_text
from logreg.report.tables import records_table, write_csv
from logreg.timing import set_torch_threads
from logreg.tracking import environment_tags


def tutorial_loop(X, y):
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


# (implementation, compiled) pairs the goals measure, eager first.
VARIANTS = (("numpy", False), ("autograd", False), ("module", False), ("autograd", True), ("module", True))


def _label(impl: str, compiled: bool) -> str:
    return f"{impl} compiled" if compiled else impl


def small_data_overhead(
    rounds: int = 5,
    epochs: int = 200,
    echo: Callable[[str], None] = print,
    torch_threads: int = 0,
    variants=VARIANTS,
):
    """Goal 2: per-epoch time on blobs of each implementation (momentum, full batch) against the
    tutorial loop, measured in interleaved rounds; ratios are ours / tutorial time, per round."""
    split = load_split(TrainConfig(dataset="blobs"))
    X, y = split.X_train, split.y_train
    n = len(y)
    threads = set_torch_threads(torch_threads, *X.shape)  # for the tutorial loop too
    tutorial = tutorial_loop(X, y)
    epoch_fns = {"tutorial": tutorial}
    compile_seconds = {}
    for impl, compiled in variants:
        model = make_model(impl, "cpu", "float32", X.shape[1], None, "momentum", compile=compiled)
        data = model.put(X, y)
        name = _label(impl, compiled)
        t0 = time.perf_counter()
        model.train_epoch(data, None)  # compiles (compiled variants)
        compile_seconds[name] = time.perf_counter() - t0 if compiled else float("nan")
        epoch_fns[name] = (lambda m, dd: lambda: m.train_epoch(dd, None))(model, data)

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
    targets = {"numpy": 0.1, "module": 0.4}
    for name in epoch_fns:
        us = statistics.median(r[name] for r in per_round) * 1e6
        ratio = statistics.median(r[name] / r["tutorial"] for r in per_round)
        target = targets.get(name)
        rows.append(
            {
                "goal": "2 small-data overhead",
                "impl": name,
                "dataset": f"blobs ({n} train rows)",
                "epoch_us_median": us,
                "ours_over_tutorial": ratio,
                "target": f"<= {target}" if target else "",
                "met": ratio <= target if target else "",
                "compile_seconds": compile_seconds.get(name, float("nan")),
                "torch_threads": threads,
                "host_load_per_core": os.getloadavg()[0] / (os.cpu_count() or 1),
            }
        )
        echo(f"blobs {name:17s} {us:8.1f} us/epoch   this / tutorial = {ratio:5.2f}")
    return rows


def roofline(
    device: str,
    dataset: str,
    rounds: int = 9,
    echo: Callable[[str], None] = print,
    torch_threads: int = 0,
    variants=VARIANTS,
):
    """Goals 1 and 4: full-batch epoch time / time of one read of X at the bandwidth measured
    side by side (reductions just before and just after the epochs)."""
    split = load_split(TrainConfig(dataset=dataset))
    X, y = split.X_train, split.y_train
    targets = (
        {"numpy": 1.3, "autograd": 1.6, "module": 1.6}
        if device == "cpu"
        else {"autograd": 1.5, "module": 1.5}
    )
    rows = []
    for impl, compiled in variants:
        if impl not in targets:
            continue
        row = run_cell(
            impl, device, X, y, "float32", None, 2, rounds, torch_threads=torch_threads, compile=compiled
        )
        row.update(
            goal="1 CPU roofline" if device == "cpu" else "4 CUDA roofline",
            dataset=dataset,
            impl=_label(impl, compiled),
            target=f"<= {targets[impl]}",
            met=row["roofline_ratio"] <= targets[impl],
        )
        rows.append(row)
        echo(
            f"{dataset} {row['impl']:17s} on {device}: epoch {row['epoch_seconds_median'] * 1e3:.2f} ms, "
            f"one read {row['bytes_per_epoch'] / row['device_bandwidth_gbs'] / 1e6:.2f} ms at "
            f"{row['device_bandwidth_gbs']:.1f} GB/s -> {row['roofline_ratio']:.2f}x "
            f"(target <= {targets[impl]})"
        )
    return rows


def _seconds(v) -> str:
    return "" if v != v else f"{v:.1f} s"  # NaN (eager): empty


COMMON_COLUMNS = ["target", "met", "host_load_per_core", "torch_threads", "compile_seconds"]
ROOFLINE_COLUMNS = [
    "goal",
    "dataset",
    "impl",
    "epoch_seconds_median",
    "device_bandwidth_gbs",
    "roofline_ratio",
]
ROOFLINE_COLUMNS += COMMON_COLUMNS
SMALL_COLUMNS = ["impl", "dataset", "epoch_us_median", "ours_over_tutorial", *COMMON_COLUMNS]
GPU_SMALL_COLUMNS = ["dataset", "impl", "mode", "epoch_us_median", "speedup_over_eager", "setup_seconds",
                     "same_as_eager", "error"]  # fmt: skip
FORMATS = {
    "compile_seconds": _seconds,
    "epoch_seconds_median": lambda v: f"{v * 1e3:.2f} ms",
    "device_bandwidth_gbs": lambda v: f"{v:.1f} GB/s",
    "roofline_ratio": lambda v: f"{v:.2f}x",
    "host_load_per_core": lambda v: f"{v:.1f}",
    "epoch_us_median": lambda v: f"{v:.1f} us",
    "ours_over_tutorial": lambda v: f"{v:.2f}",
    "speedup_over_eager": lambda v: "" if v != v else f"{v:.2f}x",
    "setup_seconds": _seconds,
}


def run_goals(
    devices: Sequence[str],
    out: Path | None,
    echo: Callable[[str], None] = print,
    command: str = "",
    torch_threads: int = 0,
):
    """Goals 1, 2 (CPU) and 4 (CUDA), each ratio measured side by side in one run."""
    all_rows: list[dict[str, Any]] = []
    for device in devices:
        if device == "cpu":
            roof = roofline("cpu", GOAL_DATASET, echo=echo, torch_threads=torch_threads)
            small = small_data_overhead(echo=echo, torch_threads=torch_threads)
        else:  # 10^7 training rows; small data eager, graph-captured and compiled
            roof = roofline(device, "synthetic:n=16666667,d=100", echo=echo, torch_threads=torch_threads)
            small = small_data_modes(device, echo=echo)
        all_rows += roof + small
        if out is not None:
            write_csv(roof + small, out / f"goals_{device}.csv")
            write_text(out / f"goals_{device}.md", goals_markdown(device, roof, small, command))
    return all_rows


def goals_markdown(device: str, roof: list[dict], small: list[dict], command: str) -> str:
    """The goals file of one device: the roofline table, and the small-data table on the CPU."""
    md = [
        f"# Speed goals on {device} ({environment_tags(device)['logreg.device_name']})\n",
        "Roofline: full-batch epoch time / one read of X at the read bandwidth measured in the same run "
        "(median of reductions just before and after the epochs). host_load_per_core: the 1-minute load "
        "average / cores when the row finished (above 1, other processes competed for the cores). "
        f"Made by `{command}`.\n",
        records_table(roof, ROOFLINE_COLUMNS, FORMATS),
    ]
    if small and device != "cpu":
        md += [
            "\nSmall data on the GPU: full batch, momentum 0.9, the median epoch over 5 rounds of 200 "
            "(synchronised once per round). graph: the epoch captured once as a CUDA graph and replayed; "
            "compiled: torch.compile. same_as_eager: the weights after every epoch run equal an eager "
            "model's after as many (a replay that skipped work would fail it).\n",
            records_table(small, GPU_SMALL_COLUMNS, FORMATS),
        ]
    elif small:
        md += [
            "\nSmall-data overhead: blobs, full batch, momentum 0.9, against the tutorial loop (2->5->1 "
            "Linear + Sigmoid, BCELoss, SGD momentum), interleaved rounds; ours_over_tutorial: our epoch "
            "time / the tutorial's (lower is better).\n",
            records_table(small, SMALL_COLUMNS, FORMATS),
        ]
    return "\n".join(md)
