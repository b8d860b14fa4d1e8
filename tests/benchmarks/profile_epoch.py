"""Where a full-batch torch epoch spends its time: torch.profiler with record_shapes.

    python tests/benchmarks/profile_epoch.py [--impl autograd|module] [--threads N] [--compile]

Times one implementation's full-batch epoch on synthetic:n=1000000,d=100 (600k training rows,
float32) and prints the profiler's table of operators, sorted by self CPU time.
"""

from __future__ import annotations

import argparse

from torch.profiler import ProfilerActivity, profile

from logreg.bench.timing import make_model
from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.timing import set_torch_threads


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", default="autograd")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    split = load_split(TrainConfig(dataset="synthetic:n=1000000,d=100"))
    set_torch_threads(args.threads)
    model = make_model(args.impl, "cpu", "float32", split.n_features, None, "momentum", compile=args.compile)
    data = model.put(split.X_train, split.y_train)
    for _ in range(3):
        model.train_epoch(data, None)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.epochs):
            model.train_epoch(data, None)
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows
    )
    print(table)


if __name__ == "__main__":
    main()
