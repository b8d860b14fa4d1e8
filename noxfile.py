"""Sessions: `nox -s tests` (default), `nox -s lint`; `nox -l` lists them all."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
# The CPU build by default: an unpinned torch pulls several GB of CUDA packages.
# On a CUDA machine: LOGREG_TORCH="torch" (or the build you want) nox -s ...
TORCH = os.environ.get("LOGREG_TORCH", "torch==2.13.0")


def install_project(session: nox.Session, *groups: str) -> None:
    """Install torch first (the pinned build), then the package and dependency groups."""
    session.install(TORCH)
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (accuracy thresholds, parity, tracking, ...); args go to pytest."""
    install_project(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def sweep(session: nox.Session) -> None:
    """The main job: run experiments/default.toml (or a .toml given first) into the embedded stores.

    `nox -s sweep -- --n-trials 3 --datasets iris,digits` passes arguments to `logreg sweep`.
    """
    install_project(session)
    args = list(session.posargs)
    experiment = args.pop(0) if args and args[0].endswith(".toml") else "experiments/default.toml"
    session.run("logreg", "sweep", experiment, *args)


@nox.session(default=False)
def ui(session: nox.Session) -> None:
    """Open the MLflow UI on 127.0.0.1 over the sweep's store ($MLFLOW_TRACKING_URI or sqlite:///mlflow.db)."""
    install_project(session)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    session.run("mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", *session.posargs)


@nox.session(default=False)
def server(session: nox.Session) -> None:
    """Shared MLflow server for many workers: PostgreSQL backend, served artifacts, 127.0.0.1:5000.

    Creates the databases logreg_mlflow and logreg_optuna if missing and prints the
    --tracking-uri and --storage for workers; `nox -s server -- --help` lists the options.
    """
    install_project(session)
    session.run("logreg", "server", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
