"""Shared fixtures for the training-core tests: CLI runner, data files, scikit-learn references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(capsys):
    """Run `logreg.cli.main(argv)` in-process; return (exit status, stdout, stderr)."""
    from logreg.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture
def write_table(tmp_path):
    """Write a DataFrame (or dict of columns) as CSV or Parquet under tmp_path; return the path."""

    def write(columns, name: str = "data.csv") -> Path:
        df = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(columns)
        path = tmp_path / name
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
        return path

    return write


def _sklearn_objective(X, y, n_classes: int, weight_decay: float = 0.0) -> float:
    """Minimum of our objective, mean log loss + (wd / 2) ||W||^2 (bias free), found by scikit-learn.

    scikit-learn minimises C * sum(loss_i) + ||W||^2 / 2; dividing by C * n gives our objective
    with wd = 1 / (C * n), so C = 1 / (wd * n); wd = 0 is C = inf (no penalty).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    X = np.asarray(X, dtype=np.float64)
    C = math.inf if weight_decay == 0 else 1.0 / (weight_decay * len(y))
    clf = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(X, y)
    loss = log_loss(y, clf.predict_proba(X), labels=np.arange(n_classes))
    return float(loss + 0.5 * weight_decay * np.sum(clf.coef_**2))


def _sklearn_test_accuracy(dataset: str, seed: int = 0) -> float:
    """Test accuracy of scikit-learn's default LogisticRegression() on our split of `dataset`."""
    from logreg.report.reference import sklearn_test_accuracy

    return sklearn_test_accuracy(dataset, seed, "float64")


@pytest.fixture(scope="session")
def sklearn_objective():
    """_sklearn_objective: the independent reference optimum of our training objective."""
    return _sklearn_objective


@pytest.fixture(scope="session")
def sklearn_test_accuracy():
    """_sklearn_test_accuracy (cached per dataset): the reference behind the accuracy floors."""
    return _sklearn_test_accuracy


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def single_thread():
    """Run BLAS, OpenMP and torch on one thread for the test.

    The results do not depend on it, but on a busy 2-core machine multi-threaded BLAS spins
    while waiting for a core: scikit-learn's digits fit took 4 s instead of 0.06 s. Used by the
    correctness tests only (benchmarks keep their threads).
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tests(request, monkeypatch):
    """The fast tier (-m "not slow") starts no Python process, server or browser: a test that does
    is marked slow, or this fails it. (git, which the environment tags ask once, is allowed.)"""
    if "slow" in request.node.keywords:
        return
    import subprocess
    import sys

    real = subprocess.Popen.__init__

    def guarded(self, args, *a, **kw):
        program = str(args[0] if isinstance(args, (list, tuple)) else args).split()[0]
        if (
            program == sys.executable
            or "python" in program
            or any(name in program for name in ("chromium", "mlflow", "logreg", "nox"))
        ):
            pytest.fail(f"{request.node.nodeid} starts {program!r}: mark it @pytest.mark.slow")
        real(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)
