"""What F* (the exact optimum, logged as each trial's suboptimality) costs the default sweep.

    python tests/benchmarks/optimum_cost.py [--rounds 8] [--baseline DIR]

Runs `logreg sweep EXPERIMENT --no-progress --no-plots` in fresh temporary stores, alternately
with F* (the default) and without (`--no-optimum`), and, with --baseline, with the package in
DIR (e.g. `git worktree add DIR <commit>`: main before F* existed) on the same interpreter.
Alternating rounds put every variant under the same load; this machine is shared, so the table
gives every run, the medians and the means. Then it re-solves, in this process and in the order
the sweep's trials completed, every F* the last F*-on sweep needed: the CPU time the solves
took (in the trial process or the helper process: logreg/tune/solver.py). Writes
runs/optimum_cost/ (--out results/optimum_cost: the committed figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from logreg.tracking import cpu_name  # noqa: E402


def sweep_seconds(experiment: Path, workdir: Path, flags: list[str], package: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(package)}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "logreg", "sweep", str(experiment), "--no-progress", "--no-plots"]
    cmd += ["--results-dir", str(workdir / "results"), *flags]
    t0 = time.perf_counter()
    out = subprocess.DEVNULL
    done = subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def solve_seconds(workdir: Path) -> dict[str, tuple[int, float]]:
    """{dataset: (F* solved, seconds)}: the sweep's completed trials' F*s, re-solved in order."""
    import optuna

    from logreg import optimum as om
    from logreg.config import TrainConfig
    from logreg.data import load_split

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "optuna-journal.log"))
    )
    done = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        done += [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    done.sort(key=lambda t: t.datetime_complete)
    import scipy.optimize  # noqa: F401 - imported once, before the clock, as in the helper

    cost: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for t in done:
        config = TrainConfig(**t.user_attrs["config"])
        split = load_split(config)
        if om.cached_optimum(config, split)[0] or config.model == "mlp":
            continue
        t0 = time.perf_counter()
        om.optimum_for(config, split)
        cost[config.dataset][0] += 1
        cost[config.dataset][1] += time.perf_counter() - t0
    return {k: (n, s) for k, (n, s) in cost.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "default.toml")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--baseline", type=Path, help="a checkout of an earlier logreg, run the same way")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / "optimum_cost",
        help="(default runs/optimum_cost; results/optimum_cost is the committed one)",
    )
    args = p.parse_args()
    args.experiment = args.experiment.resolve()
    from logreg.tune import load_experiment

    exp = load_experiment(args.experiment)
    n_trials = sum(exp.trials_per_cell(cell[2]) for cell in exp.cells())
    variants = {"F* on": (ROOT, []), "F* off (--no-optimum)": (ROOT, ["--no-optimum"])}
    if args.baseline:
        variants["baseline"] = (args.baseline.resolve(), [])
    times: dict[str, list[float]] = {name: [] for name in variants}
    keep = Path(tempfile.mkdtemp(prefix="optimum-cost-"))
    with tempfile.TemporaryDirectory() as d:  # untimed: the first run reads every module from disk
        sweep_seconds(args.experiment, Path(d), ["--n-trials", "1"], ROOT)
    for r in range(args.rounds):
        for name, (package, flags) in variants.items():
            with tempfile.TemporaryDirectory() as d:
                workdir = Path(d)
                times[name].append(sweep_seconds(args.experiment, workdir, flags, package))
                if name == "F* on" and r == args.rounds - 1:
                    (keep / "optuna-journal.log").write_bytes((workdir / "optuna-journal.log").read_bytes())
            print(f"round {r + 1}/{args.rounds} {name}: {times[name][-1]:.1f} s", flush=True)
    solves = solve_seconds(keep)
    ref = "baseline" if args.baseline else "F* off (--no-optimum)"
    rows = []
    for name, ts in times.items():
        med, mean = statistics.median(ts), statistics.fmean(ts)
        rows.append(
            {
                "variant": name,
                "seconds": [round(t, 2) for t in ts],
                "median_s": med,
                "mean_s": mean,
                "median_ms_per_trial": 1000 * med / n_trials,
                "median_vs_ref": med / statistics.median(times[ref]),
                "mean_vs_ref": mean / statistics.fmean(times[ref]),
            }
        )
    machine = f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    command = "python tests/benchmarks/optimum_cost.py " + " ".join(sys.argv[1:])
    lines = [
        f"# What F* costs a sweep: {args.experiment.name}, {n_trials} trials, "
        f"{args.rounds} alternating rounds",
        "",
        f"Machine: {machine}. Commit {commit}."
        + (f" Baseline: the package in {args.baseline}." if args.baseline else ""),
        "",
        f"| variant | runs (s) | median s | mean s | median ms per trial | median vs {ref} | mean vs {ref} |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {', '.join(f'{t:.1f}' for t in row['seconds'])} | {row['median_s']:.1f} | "
            f"{row['mean_s']:.1f} | {row['median_ms_per_trial']:.1f} | {row['median_vs_ref']:.3f} | "
            f"{row['mean_vs_ref']:.3f} |"
        )
    total = sum(s for _, s in solves.values())
    lines += [
        "",
        f"F* solved in the last F*-on sweep: {sum(n for n, _ in solves.values())}, {total:.2f} s of CPU "
        "in all (small problems in the trial process, larger ones in the helper process beside the "
        "trials: logreg/tune/solver.py):",
        "",
        "| dataset | F* solved | seconds | ms each |",
        "|---|---|---|---|",
    ]
    for dataset, (n, s) in sorted(solves.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {dataset} | {n} | {s:.2f} | {1000 * s / n:.1f} |")
    lines += ["", f"Command: `{command.strip()}`", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.md").write_text("\n".join(lines))
    (args.out / "result.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "commit": commit,
                "command": command.strip(),
                "n_trials": n_trials,
                "variants": rows,
                "solves": solves,
            },
            indent=1,
        )  # fmt: skip
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
