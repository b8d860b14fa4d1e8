"""Measure the problem size above which torch's CPU epochs gain from every core.

    python tests/benchmarks/threads_cutoff.py [--out runs/throughput/threads_cutoff.md]

For each size n x d, a full-batch epoch of autograd and module is timed with one torch thread
and with one per core, in interleaved rounds (medians; the machine is shared, so each round
times both settings within milliseconds of each other). The cut-off in logreg.timing
(THREADS_CUTOFF_ELEMENTS) is the smallest n x d from which every core is faster for both
implementations, rounded to the grid measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from logreg.bench.timing import make_model, synthetic_xy
from logreg.timing import available_cores

GRID = [
    (1_000, 10),
    (10_000, 10),
    (30_000, 10),
    (100_000, 10),
    (1_000, 100),
    (3_000, 100),
    (10_000, 100),
    (100_000, 100),
    (600_000, 100),
]


def median_epoch(model, data, threads: int, epochs: int) -> float:
    torch.set_num_threads(threads)
    model.train_epoch(data, None)  # warm-up with this thread count
    ts = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train_epoch(data, None)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("runs/throughput/threads_cutoff.md"))
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    cores = available_cores()
    rows = []
    for n, d in GRID:
        X, y = synthetic_xy(n, d, 0, "float32")
        epochs = max(3, min(200, int(3e7 // (n * d))))
        for impl in ("autograd", "module"):
            model = make_model(impl, "cpu", "float32", d, None, "momentum")
            data = model.put(X, y)
            one, every = [], []
            for _ in range(args.rounds):
                one.append(median_epoch(model, data, 1, epochs))
                every.append(median_epoch(model, data, cores, epochs))
            ratio = statistics.median(e / o for e, o in zip(every, one, strict=True))
            rows.append((n, d, impl, statistics.median(one), statistics.median(every), ratio))
            print(
                f"n={n:>7} d={d:>3} {impl:8s} 1 thread {rows[-1][3] * 1e6:9.1f} us  "
                f"{cores} threads {rows[-1][4] * 1e6:9.1f} us  ratio {ratio:.2f}",
                flush=True,
            )
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    lines = [
        "# torch threads: one against every core, full-batch epoch\n",
        f"Made by `python tests/benchmarks/threads_cutoff.py --out {args.out}` on {cores} cores "
        f"(torch {torch.__version__}); 1-minute load per core at the end: {load:.1f} (above 0.5, "
        "another process held a core for part of the run). ratio = every core / one thread "
        "(below 1: the cores help). Medians over interleaved rounds.\n",
        "| n | d | n x d | impl | 1 thread | every core | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, d, impl, one, every, ratio in rows:
        lines.append(
            f"| {n} | {d} | {n * d} | {impl} | {one * 1e6:.1f} us | {every * 1e6:.1f} us | {ratio:.2f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
