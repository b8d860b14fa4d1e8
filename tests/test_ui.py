"""`logreg ui`: a real `mlflow server` over a store made by a small sweep, and the printed URL
loaded in headless chromium, which must show the runs table (not MLflow's empty GenAI view)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logreg.cli.ui import ui_url
from tests.helpers import free_port, headless_chromium

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from logreg.experiment import load_experiment
    from logreg.tune import SweepOptions, run_sweep

    d = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{d}/mlflow.db"
    exp = load_experiment(ROOT / "experiments" / "smoke.toml").override(n_trials=2, impls=["numpy"])
    opts = SweepOptions(
        storage=str(d / "journal.log"), tracking_uri=uri, progress=False, plots=False, results_dir=None
    )
    run_sweep(exp, opts)
    return uri


def test_the_url_opens_the_runs_table_of_the_experiment():
    url = ui_url("http://127.0.0.1:5000", ("7", "sweep/smoke"))
    assert url.startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    assert "workflowType=machine_learning" in url  # the model-training view, not GenAI
    assert ui_url("http://127.0.0.1:5000", None) == "http://127.0.0.1:5000/#/experiments"


def test_ui_on_a_store_that_does_not_exist_is_one_line(run_cli, tmp_path):
    status, _, err = run_cli("ui", "--tracking-uri", f"sqlite:///{tmp_path}/none.db")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()  # a store that is read is never created


def test_ui_names_the_experiments_when_the_one_asked_for_is_missing(run_cli, store):
    status, _, err = run_cli("ui", "--tracking-uri", store, "--experiment", "nope")
    assert status == 2 and "No experiment 'nope'" in err and "sweep/smoke" in err


def _start_ui(store: str, port: int, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`logreg ui` in a process of its own; the URL it prints once the server answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "logreg", "ui", "--tracking-uri", store, "--port", str(port)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if line.startswith("http://"):
            return proc, line.strip()
        assert time.monotonic() < deadline, "logreg ui printed no URL"
    raise AssertionError(f"logreg ui exited: {proc.wait()} {proc.stderr.read()}")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_logreg_ui_opens_on_the_runs_in_headless_chromium(store, tmp_path):
    port = free_port()
    proc, url = _start_ui(store, port, tmp_path)
    try:
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=" in url
        dom = headless_chromium("--dump-dom", url=url, budget_ms=30_000)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        status = proc.wait(timeout=60)
    # The runs table, with the studies' names (one scheme: dataset/impl/optimizer), not GenAI's
    # empty overview.
    for name in ("blobs/numpy/sgd", "blobs/numpy/adam", "iris/numpy/sgd", "iris/numpy/adam"):
        assert name in dom, name
    assert status == 0  # SIGTERM stops the UI and its server cleanly
    assert (tmp_path / "runs" / "ui.log").exists() and not (tmp_path / "mlflow.db").exists()
