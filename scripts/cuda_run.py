"""The CUDA half of the comparison, as one prepared run (`nox -s cuda`, or this file on a GPU
machine that has no nox): every figure the CUDA issue asks for, in order of importance, each
step's output kept as soon as it is written.

    python scripts/cuda_run.py [--quick] [--out DIR] [--archive FILE] [--cpu-store URI ...]

Steps (a step that needs CUDA is skipped, with a line saying so, where torch sees no GPU; one
that needs mlflow or optuna is skipped where they are missing):
  environment   GPU model, driver, torch and CUDA versions, CPU              -> DIR/environment.md
  cuda tests    pytest -m cuda (float64 parity with the CPU within 1e-9)     -> DIR/cuda_tests.log
  grid          logreg throughput, CPU and CUDA side by side (n to 10^7)     -> DIR/throughput_*.csv
  goals         CUDA roofline at n = 10^7, small data eager / graph / compiled -> DIR/goals_cuda.md
  sparse        text-like CSR at rcv1's shape and larger, GPU vs scipy on CPU -> DIR/sparse_*.md
  sweep         experiments/cuda_smoke.toml on CPU and CUDA                  -> the store
  compare       logreg compare over the store (and --cpu-store ones)          -> DIR/compare/
  benchmarks    pytest-benchmark's epoch benchmarks on CUDA                   -> DIR/benchmarks/
Runs go to DIR/mlflow.db. --quick: tiny sizes, for testing this script on a CPU machine.
--archive FILE: after each step, DIR packed into FILE (.tar.gz): what a time limit leaves still
comes back (the device tool returns at most 8 files).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RCV1 = "20242,47236,74"  # rcv1.binary's training file: rows, columns, non-zeros per row
# The test files that hold `-m cuda` tests (they import no mlflow or optuna at the top).
CUDA_TEST_FILES = ("test_cuda.py", "test_sparse.py", "test_throughput.py")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def environment(out: Path) -> str:
    """What the figures were measured on, as Markdown."""
    import torch

    lines = ["# Where the CUDA figures were measured", ""]
    lines.append(
        f"- Python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        lines.append(f"- GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    ) if _which("nvidia-smi") else None  # fmt: skip
    if smi is not None and smi.returncode == 0:
        lines.append(f"- nvidia-smi: {smi.stdout.strip()}")
    sys.path.insert(0, str(ROOT))  # logreg from this checkout (a GPU machine has it installed nowhere)
    from logreg.tracking.environment import cpu_name

    lines.append(f"- CPU: {cpu_name()}, {os.cpu_count()} cores")
    lines.append(f"- commit: {_git_commit()}")
    text = "\n".join(lines) + "\n"
    (out / "environment.md").write_text(text)
    return text


def _which(program: str) -> bool:
    return any((Path(p) / program).exists() for p in os.environ.get("PATH", "").split(os.pathsep))


def _git_commit() -> str:
    r = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return r.stdout.strip() or "unknown"


def steps(out: Path, quick: bool, cuda: bool, tracked: bool, cpu_stores: list[str]) -> list[tuple]:
    """(name, needs CUDA, needs mlflow and optuna, argv or a function) in the order they run."""
    logreg = [sys.executable, "-m", "logreg"]
    store = f"sqlite:///{out.resolve() / 'mlflow.db'}"
    track = ["--tracking-uri", store] if tracked else ["--no-track"]
    devices = "cpu,cuda" if cuda else "cpu"
    if quick:
        grid = ["--sizes", "1000,4000", "--dims", "10", "--repeats", "2", "--warmup", "1"]
        sparse = ["--sparse", "2000,20000,20", "--repeats", "2"]
        sweep_args = ["--n-trials", "2", "--epochs", "3", "--datasets", "digits", "--no-plots"]
    else:
        grid = []  # the defaults: 10^3..10^6 on the CPU, 10^3..10^7 on CUDA, d = 10 and 100
        sparse = ["--sparse", RCV1, "--sparse", "200000,1350000,100"]  # rcv1; news20's width
        sweep_args = ["--no-plots"]
    experiment = str(ROOT / "experiments" / "cuda_smoke.toml")
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cuda_tests = [str(ROOT / "tests" / f) for f in CUDA_TEST_FILES]
    bench = [
        str(ROOT / "tests" / "benchmarks" / "test_epochs.py"),
        "--benchmark-enable",
        f"--benchmark-storage=file://{out / 'benchmarks'}",
        "--benchmark-save=cuda",
    ]
    sweep = [
        *logreg,
        "sweep",
        experiment,
        "--devices",
        devices,
        *sweep_args,
        "--storage",
        str(out / "optuna.log"),
        "--tracking-uri",
        store,
        "--no-progress",
        "--results-dir",
        str(out / "sweeps"),
    ]
    throughput = [*logreg, "throughput", "--out", str(out)]
    return [
        ("environment", False, False, lambda: environment(out)),
        ("cuda tests", True, False, [*pytest, "-m", "cuda", *cuda_tests]),
        ("grid", False, False, [*throughput, "--devices", devices, *grid, *track]),
        ("goals", True, False, [*throughput, "--goals", "--devices", "cuda"]),
        ("sparse", False, False, [*throughput, *sparse, "--devices", devices]),
        ("sweep", False, True, sweep),
        ("compare", False, True, [*logreg, "compare", store, *cpu_stores, "--out", str(out / "compare")]),
        ("benchmarks", True, False, ["env", "LOGREG_BENCH_DEVICE=cuda", *pytest, *bench]),
    ]  # fmt: skip


def run(out: Path, quick: bool, archive: Path | None, cpu_stores: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    cuda, tracked = _has_cuda(), _has("mlflow", "optuna")
    missing = "no (the sweep and compare skipped; throughput untracked)"
    print(f"CUDA: {'yes' if cuda else 'no (CUDA steps skipped)'}; mlflow and optuna: "
          f"{'yes' if tracked else missing}", flush=True)  # fmt: skip
    failed = []
    for name, needs_cuda, needs_tracking, what in steps(out, quick, cuda, tracked, cpu_stores):
        if needs_cuda and not cuda:
            print(f"== {name}: skipped (no CUDA)", flush=True)
            continue
        if needs_tracking and not tracked:
            print(f"== {name}: skipped (mlflow or optuna missing)", flush=True)
            continue
        t0 = time.monotonic()
        if callable(what):
            print(f"== {name}\n{what()}", flush=True)
            status = 0
        else:
            print(f"== {name}: {shlex.join(what)}", flush=True)
            log = out / f"{name.replace(' ', '_')}.log"
            with log.open("w") as f:
                status = subprocess.run(
                    what, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False
                ).returncode
            print(log.read_text()[-3000:], flush=True)
        print(f"== {name}: exit {status} in {time.monotonic() - t0:.0f} s", flush=True)
        if status:
            failed.append(name)
        if archive is not None:
            _pack(out, archive)
    print(f"failed steps: {', '.join(failed)}" if failed else "every step ran", flush=True)
    return 1 if failed else 0


def _pack(folder: Path, archive: Path) -> None:
    """`folder` as a .tar.gz, written whole (a temporary file renamed over the archive)."""
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    tmp.replace(archive)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", type=Path, default=ROOT / "runs" / "cuda", help="folder of the results (default runs/cuda)"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: test this script (on a CPU machine too)")
    p.add_argument("--archive", type=Path, help="pack the results folder into this .tar.gz after each step")
    p.add_argument("--cpu-store", action="append", default=[], metavar="URI",
                   help="another MLflow store (a CPU machine's) for the compare tables")  # fmt: skip
    args = p.parse_args(argv)
    return run(args.out, args.quick, args.archive, args.cpu_store)


if __name__ == "__main__":
    sys.exit(main())
