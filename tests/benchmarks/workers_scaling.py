"""Trials per second with 1 and with 2 worker processes on one study, side by side in one run.

    python tests/benchmarks/workers_scaling.py [--n-trials 40] [--repeats 3] [--track]

A CPU-bound cell (synthetic:n=20000,d=50, numpy, sgd, full batch, 2000 epochs: about 0.2-0.3 s
a trial on one core), random sampler, no pruning, an Optuna journal file in a fresh temporary
folder per run. Each run starts N `logreg worker` processes with one BLAS/OpenMP/torch thread
each (OMP_NUM_THREADS=1 etc.), the layout `logreg sweep --workers N` uses. Throughput is
finished trials / (last trial's end - first trial's start), from Optuna's own timestamps, so
process start-up (imports) is left out; wall time including start-up is reported beside it.
Runs alternate 1, 2, 1, 2, ... so drifting machine load hits both alike; medians are reported.
Target: 2 workers >= 1.7x the trials per second of 1 on 2 cores. Writes runs/workers_scaling/
(--out results/workers_scaling: the committed figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from logreg.tracking import cpu_name  # noqa: E402

EXP = """
name = "scaling"
datasets = ["synthetic:n=20000,d=50"]
impls = ["numpy"]
optimizers = ["sgd"]
n_trials = {n_trials}
epochs = 2000
eval_every = 500
[sampler]
name = "random"
[pruner]
name = "none"
[search.sgd]
lr = [0.01, 1.0]
"""
THREADS = {
    k: "1"
    for k in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    )
}


# The same kind of work without logreg, Optuna or MLflow: what the machine gives 2 processes now.
SPIN = (
    "import numpy as np, time; X = np.random.default_rng(0).standard_normal((12000, 50), dtype=np.float32); "
    "w = np.zeros(50, np.float32); t = time.perf_counter()\n"
    "for _ in range(3000): w -= 1e-3 * (X.T @ (X @ w - 1)) / 12000\n"
    "print(time.perf_counter() - t)"
)


def capacity() -> float:
    """Throughput of 2 processes over 1 on a plain NumPy loop, side by side: the cores available."""
    env = {**os.environ, **THREADS}

    def seconds(n: int) -> float:
        procs = [
            subprocess.Popen([sys.executable, "-c", SPIN], env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]
        return max(float(p.communicate()[0]) for p in procs)

    one, two = seconds(1), seconds(2)
    return 2 * one / two


def run(workers: int, n_trials: int, track: bool) -> dict:
    """One run in fresh stores: N worker processes until the study has n_trials finished trials."""
    import optuna

    with tempfile.TemporaryDirectory(prefix="logreg-scaling-") as d:
        exp = Path(d) / "scaling.toml"
        exp.write_text(EXP.format(n_trials=n_trials))
        journal = str(Path(d) / "optuna-journal.log")
        uri = f"sqlite:///{d}/mlflow.db"
        cmd = [
            sys.executable,
            "-m",
            "logreg",
            "worker",
            str(exp),
            "--storage",
            journal,
            "--no-plots",
            "--no-finalize",
        ]
        cmd += ["--tracking-uri", uri] if track else ["--no-track"]
        if track:  # create the stores' schemas once, as `logreg sweep` does before its workers
            from logreg.tracking import make_client

            make_client(uri)
        env = {**os.environ, **THREADS}
        env.pop("MLFLOW_TRACKING_URI", None)
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        if any(codes):
            raise SystemExit(f"a worker failed: exit statuses {codes}")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
        trials = optuna.load_study(
            study_name="scaling/synthetic:n=20000,d=50/numpy/sgd/cpu", storage=storage
        ).trials
        done = [t for t in trials if t.state.name == "COMPLETE"]
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        per_trial = statistics.median((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
        return {
            "workers": workers,
            "trials": len(done),
            "span_seconds": span,
            "wall_seconds": wall,
            "trials_per_second": len(done) / span,
            "trials_per_second_wall": len(done) / wall,
            "median_trial_seconds": per_trial,
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-trials", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--track", action="store_true", help="track in MLflow (SQLite) too")
    ap.add_argument("--out", default=str(ROOT / "runs" / "workers_scaling"), help="(default runs/...)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    run(1, 3, args.track)  # warm-up: file caches, bytecode
    runs: dict[int, list[dict]] = {1: [], 2: []}
    caps = []
    for _ in range(args.repeats):
        caps.append(capacity())
        print(f"machine: 2 plain NumPy processes give {caps[-1]:.2f}x the throughput of 1")
        for workers in (1, 2):
            runs[workers].append(run(workers, args.n_trials, args.track))
            r = runs[workers][-1]
            print(
                f"{workers} worker(s): {r['trials_per_second']:.2f} trials/s "
                f"({r['trials']} trials in {r['span_seconds']:.1f} s, wall {r['wall_seconds']:.1f} s)"
            )
    load_after = os.getloadavg()
    med = {w: statistics.median(r["trials_per_second"] for r in rs) for w, rs in runs.items()}
    med_wall = {w: statistics.median(r["trials_per_second_wall"] for r in rs) for w, rs in runs.items()}
    med_trial = {w: statistics.median(r["median_trial_seconds"] for r in rs) for w, rs in runs.items()}
    ratio, ratio_wall = med[2] / med[1], med_wall[2] / med_wall[1]
    cap = statistics.median(caps)
    machine = f"{platform.node()} ({os.cpu_count()} cores, {cpu_name()})"
    report = {
        "machine": machine,
        "python": platform.python_version(),
        "n_trials": args.n_trials,
        "repeats": args.repeats,
        "track": args.track,
        "load_average_1_5_15": {"before": load_before, "after": load_after},
        "runs": runs,
        "trials_per_second": med,
        "trials_per_second_wall": med_wall,
        "median_trial_seconds": med_trial,
        "ratio_2_vs_1": ratio,
        "ratio_2_vs_1_wall": ratio_wall,
        "plain_numpy_2_vs_1": caps,
        "plain_numpy_2_vs_1_median": cap,
        "target": {"ratio_2_vs_1 >= 1.7": ratio >= 1.7},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(report, indent=2, default=str))
    load = ", ".join(f"{x:.2f}" for x in load_before)
    md = [
        f"Worker scaling, {args.n_trials} trials x {args.repeats} repeats (medians), {machine}.",
        f"Load average (1, 5, 15 min) before the run: {load}; after: "
        f"{', '.join(f'{x:.2f}' for x in load_after)} (the machine is shared).",
        "",
        "| workers | trials/s (trials only) | trials/s (wall, with start-up) | median trial s |",
        "|---|---|---|---|",
    ]
    md += [f"| {w} | {med[w]:.2f} | {med_wall[w]:.2f} | {med_trial[w]:.3f} |" for w in (1, 2)]
    md += [
        "",
        f"- 2 workers vs 1, trials per second: {ratio:.2f}x (target >= 1.7x); "
        f"with process start-up: {ratio_wall:.2f}x",
        f"- the machine at the same time: 2 plain NumPy processes (no logreg) gave {cap:.2f}x the "
        f"throughput of 1 (runs: {', '.join(f'{c:.2f}' for c in caps)}): the cores the run really had",
        f"- cell: synthetic:n=20000,d=50, numpy, sgd, 2000 full-batch epochs, one thread per worker, "
        f"{'MLflow SQLite tracking' if args.track else 'no tracking'}, Optuna journal file",
        "",
        "Command: `python tests/benchmarks/workers_scaling.py"
        + (f" --n-trials {args.n_trials}" if args.n_trials != 40 else "")
        + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
        + (" --track" if args.track else "")
        + "`.",
    ]
    (out / "result.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
