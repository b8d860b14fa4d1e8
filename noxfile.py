"""Sessions: `nox -s tests` (default), `nox -s lint`; `nox -l` lists them all.

Every session but `lint` and `cuda` runs in one environment, `.venv` at the repository's root:
the first session creates it (torch, the package, the test tools), later ones start in seconds
(it is rebuilt only when pyproject.toml or LOGREG_TORCH change). `source .venv/bin/activate`
puts `logreg` on the PATH.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
# The CPU build by default: an unpinned torch pulls several GB of CUDA packages.
# On a CUDA machine: LOGREG_TORCH="torch" (or the build you want) nox -s ...
TORCH = os.environ.get("LOGREG_TORCH", "torch==2.13.0")
VENV = Path(".venv")
BIN = VENV / "bin"


def shared_env(session: nox.Session) -> dict[str, str]:
    """The one environment of the user's sessions, made or brought up to date; its PATH."""
    stamp = VENV / ".logreg-stamp"
    want = hashlib.sha256(
        f"{TORCH}\n{sys.version}\n".encode() + Path("pyproject.toml").read_bytes()
    ).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        if not (BIN / "python").exists():
            session.run(sys.executable, "-m", "venv", str(VENV), external=True)
        pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        session.run(*pip, TORCH, external=True)
        session.run(*pip, "-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"), external=True)
        stamp.write_text(want)
    return {
        "PATH": f"{BIN.resolve()}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(VENV.resolve()),
    }


def run(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    """A command of the shared environment: `pytest`, `logreg`, ... from .venv/bin by its full
    path (nox looks a bare name up on its own PATH, which may hold another Python's pytest)."""
    shared = shared_env(session)
    program = BIN / args[0]
    command = (str(program.resolve()), *args[1:]) if program.exists() else args
    session.run(*command, env={**shared, **(env or {})}, external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (accuracy thresholds, parity, tracking, ...); args go to pytest."""
    run(session, "pytest", *session.posargs)


@nox.session(default=False, venv_backend="none")
def sweep(session: nox.Session) -> None:
    """The main job: run experiments/default.toml (or a .toml given first) into the embedded stores.

    `nox -s sweep -- --n-trials 3 --datasets iris,digits` passes arguments to `logreg sweep`.
    """
    args = list(session.posargs)
    experiment = args.pop(0) if args and args[0].endswith(".toml") else "experiments/default.toml"
    run(session, "logreg", "sweep", experiment, *args)


@nox.session(default=False, venv_backend="none")
def samplers(session: nox.Session) -> None:
    """Compare Optuna samplers on experiments/samplers.toml (or a .toml given first) into runs/samplers/.

    `nox -s samplers -- --samplers random,tpe --seeds 3` passes arguments to `logreg samplers`.
    """
    args = list(session.posargs)
    experiment = args.pop(0) if args and args[0].endswith(".toml") else "experiments/samplers.toml"
    run(session, "logreg", "samplers", experiment, *args)


@nox.session(default=False, venv_backend="none")
def ui(session: nox.Session) -> None:
    """`logreg ui`: MLflow's UI on 127.0.0.1 over the sweep's store, opened on its runs table."""
    run(session, "logreg", "ui", *session.posargs)


@nox.session(default=False, venv_backend="none")
def server(session: nox.Session) -> None:
    """Shared MLflow server for many workers: PostgreSQL backend, served artifacts, 127.0.0.1:5000.

    Creates the databases logreg_mlflow and logreg_optuna if missing and prints the
    --tracking-uri and --storage for workers; `nox -s server -- --help` lists the options.
    """
    run(session, "logreg", "server", *session.posargs)


@nox.session(default=False, venv_backend="none")
def proxy(session: nox.Session) -> None:
    """Optuna's gRPC storage proxy in front of an RDB: `nox -s proxy -- --storage URL [--port N]`."""
    run(session, "logreg", "storage-proxy", *session.posargs)


@nox.session(default=False, venv_backend="none")
def scale(session: nox.Session) -> None:
    """Database cost per trial (direct vs proxy) and MLflow logging throughput at 1-8 workers."""
    run(session, "python", "tests/benchmarks/scale.py", *session.posargs)


@nox.session(default=False, venv_backend="none")
def overhead(session: nox.Session) -> None:
    """Tracking + storage overhead of a sweep vs tracking off vs the stock MLflowCallback pattern."""
    run(session, "python", "tests/benchmarks/tracking_overhead.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


# --- throughput, compare, benchmarks, CUDA (docs/speed.md)

BENCH_TOLERANCE = "min:150%"  # fails when a best time gets 2.5x slower; holds on the shared 2-core VM


@nox.session(default=False, venv_backend="none")
def throughput(session: nox.Session) -> None:
    """`logreg throughput`: n x d x impl x device grid into MLflow experiment 'throughput'; args go to it."""
    run(session, "logreg", "throughput", *session.posargs)


@nox.session(default=False, venv_backend="none")
def compare(session: nox.Session) -> None:
    """`logreg compare [URI ...] [--out DIR]`: tables and plots from one or more MLflow stores."""
    run(session, "logreg", "compare", *session.posargs)


@nox.session(default=False, venv_backend="none")
def bench(session: nox.Session) -> None:
    """pytest-benchmark epochs, compared with results/benchmarks/<device>/ when a baseline is there.

    LOGREG_BENCH_DEVICE=cpu (default) or cuda; LOGREG_BENCH_TOLERANCE (default min:150%);
    LOGREG_BENCH_TORCH_THREADS (default 1; 0 or auto: chosen from the size). Refresh a baseline
    (docs/speed.md, "Benchmarks"): delete results/benchmarks/<device>/, then
    `nox -s bench -- --benchmark-save=baseline`.
    """
    device = os.environ.get("LOGREG_BENCH_DEVICE", "cpu")
    storage = f"results/benchmarks/{device}"
    args = [
        "tests/benchmarks",
        "--benchmark-enable",
        f"--benchmark-storage=file://{storage}",
        "--benchmark-columns=min,median,iqr,rounds",
        "--benchmark-sort=fullname",
    ]
    saving = any(a.startswith("--benchmark-save") for a in session.posargs)
    if not saving and any(os.scandir(storage) if os.path.isdir(storage) else ()):
        tolerance = os.environ.get("LOGREG_BENCH_TOLERANCE", BENCH_TOLERANCE)
        args += ["--benchmark-compare", f"--benchmark-compare-fail={tolerance}"]
    run(session, "pytest", *args, *session.posargs, env={"LOGREG_BENCH_DEVICE": device})


@nox.session(default=False, venv_backend="none")
def cuda(session: nox.Session) -> None:
    """On a GPU machine: every CUDA figure in one run (scripts/cuda_run.py lists the steps).

    Runs in the machine's own Python (no installs: GPU machines may reach no registry; mlflow and
    optuna come as wheels, scripts/gpu_wheels.py). Results go to runs/cuda/ (copy it back, then
    commit what belongs under results/); `nox -s cuda -- --cpu-store sqlite:///cpu.db` adds a
    CPU machine's store to the comparison. Without a GPU the CUDA steps are skipped.
    """
    session.run("python", "scripts/cuda_run.py", *session.posargs)


@nox.session(default=False, venv_backend="none")
def report(session: nox.Session) -> None:
    """One static HTML page (runs/report/index.html) from MLflow stores: `nox -s report -- URI ...`."""
    run(session, "logreg", "report", *session.posargs)
