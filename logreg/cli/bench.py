"""`logreg throughput`: the grid, the speed goals (--goals) or the time to target."""

from __future__ import annotations

from pathlib import Path

from logreg.cli.common import names, torch_threads, whole_numbers


def add_parser(sub) -> None:
    p = sub.add_parser(
        "throughput", help="time epochs over a grid of sizes x impls x devices (MLflow 'throughput')"
    )
    p.add_argument(
        "--sizes", type=whole_numbers, help="rows n, e.g. 1e3,1e4,1e5,1e6 (default: up to 1e6 CPU, 1e7 CUDA)"
    )
    p.add_argument("--dims", type=whole_numbers, default=(10, 100), help="features d (default 10,100)")
    p.add_argument("--impls", type=names, default=("numpy", "autograd", "module"))
    p.add_argument("--devices", type=names, help="cpu,cuda (default: cpu, plus cuda when available)")
    p.add_argument("--dtype", default="float32")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1024,
        help="mini-batch size timed beside full batch (default 1024; 0: full batch only)",
    )
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-gib", type=float, default=8.0, help="skip cells whose X is larger")
    p.add_argument(
        "--torch-threads",
        type=torch_threads,
        default=0,
        metavar="N",
        help="torch CPU threads per cell (default 0 or auto: chosen from the cell's n x d as train "
        "does); on a loaded shared machine 1 avoids stalls in multi-threaded kernels",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="time autograd and module compiled (torch.compile) beside eager; the first call's "
        "compile time is reported apart (compile_seconds). --goals always does both",
    )
    p.add_argument(
        "--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)"
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
        "--sparse",
        action="append",
        metavar="N,D,NNZ|NAME",
        help="sparse full-batch epochs on the text generator (n rows, d columns, nnz per row) or a "
        "sparse dataset (a fetched LIBSVM name, an svmlight file: its training part), against "
        "scipy's X @ w + X.T @ r on the same matrix; repeat for several",
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
    if args.torch_threads not in (0, "auto"):
        parts.append(f"--torch-threads {args.torch_threads}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def cmd_throughput(args) -> int:
    import torch

    from logreg.bench.goals import run_goals
    from logreg.bench.throughput import ThroughputConfig, run_throughput
    from logreg.bench.time_to_target import time_to_target, write_time_to_target
    from logreg.report.tables import write_csv

    if args.out is not None:
        from logreg.paths import check_output_dir

        check_output_dir(args.out, "--out", create=False)
    devices = args.devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
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
        torch_threads=args.torch_threads,
        compile=(False, True) if args.compile else (False,),
    )
    if args.goals:
        run_goals(cfg.devices, args.out, command=_command(args, "--goals"), torch_threads=cfg.torch_threads)
        return 0
    if args.sparse:
        return _sparse(args, cfg)
    if args.time_to_target:
        rows = time_to_target(impls=cfg.impls, torch_threads=cfg.torch_threads)
        if args.out is not None:
            write_time_to_target(rows, args.out, command=_command(args, "--time-to-target"))
        return 0
    rows = run_throughput(cfg, args.tracking_uri, track=not args.no_track)
    if args.out is not None:
        print(f"wrote {write_csv(rows, args.out / ('throughput_' + '_'.join(cfg.devices) + '.csv'))}")
    return 0


def _sparse(args, cfg) -> int:
    """`--sparse N,D,NNZ ...`: the sparse rows and their goals; sparse.md / .csv with --out."""
    from logreg.bench.sparse import parse_shape, run_sparse, sparse_markdown
    from logreg.paths import write_text
    from logreg.report.tables import write_csv
    from logreg.tracking import cpu_name

    shapes = [parse_shape(s) for s in args.sparse]
    rows = []
    for shape in shapes:
        for row in run_sparse(
            shape, cfg.impls, cfg.dtype, cfg.warmup, max(cfg.repeats, 15), cfg.seed, cfg.devices
        ):
            rows.append(row)
            met = "met" if row["met"] else "missed"
            verdict = "" if row["goal"] is None else f" (goal <= {row['goal']}x: {met})"
            epoch, pair = row["epoch_seconds_median"] * 1e3, row["scipy_pair_seconds"] * 1e3
            print(
                f"{row['dataset']:32s} {row['impl']:8s} {row['device']:4s} epoch {epoch:8.2f} ms  "
                f"scipy pair {pair:7.2f} ms  {row['ratio_to_scipy']:.2f}x{verdict}"
            )
    if args.out is not None:
        import os

        from logreg.tracking import environment_tags

        devices = "" if args.devices is None else " --devices " + ",".join(args.devices)
        sparse = " ".join(f"--sparse {s}" for s in args.sparse)
        command = f"logreg throughput {sparse}{devices} --out {args.out}"
        machine = f"{cpu_name()}, {os.cpu_count()} cores"
        if "cuda" in cfg.devices:
            machine += f"; GPU {environment_tags('cuda')['logreg.device_name']}"
        stem = "sparse_" + "_".join(cfg.devices)
        print(f"wrote {write_csv(rows, args.out / (stem + '.csv'))}")
        print(f"wrote {write_text(args.out / (stem + '.md'), sparse_markdown(rows, command, machine))}")
    return 0
