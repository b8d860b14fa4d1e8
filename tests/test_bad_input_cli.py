"""Bad input to sweep, worker, throughput and compare: exit status 2, one line naming the problem
and the fix, no traceback, nothing written (README "Bad input: what happens").

train's rows and the data-file rows are in test_bad_input.py; experiment-file contents in
test_sweep.py. Unreachable stores are real: nothing listens on port 1.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

NO_STORAGE = "postgresql://nobody@127.0.0.1:1/x"
NO_SERVER = "http://127.0.0.1:1"
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/x"

EXP = """
name = "bad"
datasets = ["iris"]
impls = ["numpy", "module"]
optimizers = ["sgd"]
n_trials = 2
epochs = 5
"""
STORAGE_DOWN = (
    r"Cannot open the Optuna storage postgresql://nobody@127\.0\.0\.1:1/x: .*Connection refused.*"
    r"Check --storage"
)
SERVER_DOWN = r"Cannot reach the MLflow tracking store http://127\.0\.0\.1:1: .*Check --tracking-uri"
DATABASE_DOWN = (
    r"Cannot reach the MLflow tracking store postgresql://nobody@127\.0\.0\.1:1/x: .*Connection refused.*"
    r"Check --tracking-uri"
)
NO_CUDA = (
    r"Device 'cuda' was requested but torch\.cuda\.is_available\(\) is False on this machine\. "
    r"Use --devices cpu\."
)
TINY = ["--sizes", "1000", "--dims", "4", "--impls", "numpy", "--repeats", "1", "--warmup", "0"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory with bad.toml and other files; MLflow's HTTP retries off (fail in ms)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "bad.toml").write_text(EXP)
    (tmp_path / "data.csv").write_text("a,label\n1,0\n2,1\n")
    (tmp_path / "binary.toml").write_bytes(b"\x00\xff\xfe")
    (tmp_path / "empty.toml").write_text("  \n")
    return tmp_path


def _one_line(status, out, err, match):
    assert status == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("logreg: error: ") and "Traceback" not in err
    assert re.search(match, lines[0]), lines[0]


CASES = [
    # unreachable Optuna storage
    ("sweep-storage", ["sweep", "bad.toml", "--storage", NO_STORAGE, "--no-track"], STORAGE_DOWN),
    ("worker-storage", ["worker", "bad.toml", "--storage", NO_STORAGE, "--no-track"], STORAGE_DOWN),
    (
        "storage-path",
        ["sweep", "bad.toml", "--storage", "/proc/no/such/dir/j.log", "--no-track"],
        r"Cannot open the Optuna journal file '/proc/no/such/dir/j\.log': .*Check the --storage path\.",
    ),
    # unreachable tracking server, or tracking database
    ("sweep-server", ["sweep", "bad.toml", "--tracking-uri", NO_SERVER], SERVER_DOWN),
    ("worker-server", ["worker", "bad.toml", "--tracking-uri", NO_SERVER], SERVER_DOWN),
    ("throughput-server", ["throughput", *TINY, "--tracking-uri", NO_SERVER], SERVER_DOWN),
    ("compare-server", ["compare", NO_SERVER], SERVER_DOWN),
    ("sweep-database", ["sweep", "bad.toml", "--tracking-uri", NO_DATABASE], DATABASE_DOWN),
    ("worker-database", ["worker", "bad.toml", "--tracking-uri", NO_DATABASE], DATABASE_DOWN),
    ("throughput-database", ["throughput", *TINY, "--tracking-uri", NO_DATABASE], DATABASE_DOWN),
    ("compare-database", ["compare", NO_DATABASE], DATABASE_DOWN),
    (
        "tracking-not-a-uri",
        ["sweep", "bad.toml", "--tracking-uri", "mlflow.db"],
        r"The tracking URI 'mlflow\.db' is not a URI\. Use e\.g\. sqlite:///mlflow\.db",
    ),
    # unknown names and out-of-range numbers
    (
        "sweep-impl",
        ["sweep", "bad.toml", "--impls", "jax"],
        r"bad\.toml: The 'impls' parameter must be a list of numpy, autograd, module\. Got 'jax' instead\.",
    ),
    (
        "worker-optimizer",
        ["worker", "bad.toml", "--optimizers", "lbfgs"],
        r"The 'optimizers' parameter must be a list of sgd, momentum, adam\. Got 'lbfgs' instead\.",
    ),
    (
        "sweep-dataset",
        ["sweep", "bad.toml", "--datasets", "mnist"],
        r"'datasets': Unknown dataset 'mnist'\. Available datasets: hours, blobs",
    ),
    (
        "sweep-workers",
        ["sweep", "bad.toml", "--workers", "0"],
        r"The 'workers' parameter must be an int >= 1\. Got 0 instead\.",
    ),
    (
        "worker-n-trials",
        ["worker", "bad.toml", "--n-trials", "0"],
        r"The 'n_trials' parameter must be an int >= 1\. Got 0 instead\.",
    ),
    (
        "sweep-epochs",
        ["sweep", "bad.toml", "--epochs", "-1"],
        r"The 'epochs' parameter must be an int >= 1\. Got -1 instead\.",
    ),
    (
        "throughput-impl",
        ["throughput", "--impls", "jax", "--no-track"],
        r"The 'impls' parameter must be a list of numpy, autograd, module\. Got 'jax' instead\.",
    ),
    (
        "throughput-size",
        ["throughput", "--sizes", "0", "--no-track"],
        r"The 'sizes' parameter must be a list of ints >= 10\. Got \(0,\) instead\.",
    ),
    ("compare-flag", ["compare", "--bogus"], r"unrecognized arguments: --bogus"),
    # the experiment-file loader
    (
        "missing-file",
        ["worker", "nope.toml"],
        r"Experiment file 'nope\.toml' not found\. Pass a path such as",
    ),
    ("directory", ["sweep", "."], r"'\.' is a directory\. Pass an experiment \.toml file\."),
    (
        "empty-file",
        ["sweep", "empty.toml"],
        r"Experiment file 'empty\.toml' is empty\. See experiments/default",
    ),
    (
        "csv-not-toml",
        ["sweep", "data.csv"],
        r"Experiment file 'data\.csv' is not valid TOML: .*Fix the syntax\.",
    ),
    (
        "binary-not-toml",
        ["worker", "binary.toml"],
        r"Experiment file 'binary\.toml' is not valid TOML: .*utf-8",
    ),
]


@pytest.mark.parametrize(("argv", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exits_2_with_one_line_and_writes_nothing(argv, match, here, run_cli):
    before = {p.name for p in here.iterdir()}
    _one_line(*run_cli(*argv), match)
    # Nothing half-written: no results, no MLflow store; at most an empty Optuna journal (sweep,
    # worker) or an empty output folder (compare makes --out first).
    for name in {p.name for p in here.iterdir()} - before:
        path = here / name
        assert name in ("optuna-journal.log", "results"), name
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        assert all(f.stat().st_size == 0 for f in files), files


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the error cannot happen")
@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "bad.toml", "--devices", "cuda", "--impls", "module", "--no-track"],
        ["worker", "bad.toml", "--devices", "cuda", "--impls", "module", "--no-track"],
        ["sweep", "bad.toml", "--devices", "cpu,cuda", "--no-track"],
        ["throughput", *TINY, "--devices", "cuda", "--no-track"],
    ],
    ids=["sweep", "worker", "sweep-cpu-and-cuda", "throughput"],
)
def test_cuda_without_a_gpu(argv, here, run_cli):
    _one_line(*run_cli(*argv), NO_CUDA)


def test_bad_heartbeat_setting(here, run_cli, monkeypatch):
    monkeypatch.setenv("LOGREG_HEARTBEAT_INTERVAL", "soon")
    _one_line(
        *run_cli("worker", "bad.toml", "--storage", "sqlite:///optuna.db", "--no-track"),
        r"The environment variable LOGREG_HEARTBEAT_INTERVAL must be a whole number of seconds >= 1\. "
        r"Got 'soon' instead\.",
    )


def test_unreachable_tracking_database_real_process(here):
    # MLflow alone retries its engine for about 100 s, printing a warning each time, then raises.
    r = subprocess.run(
        [sys.executable, "-m", "logreg", "sweep", "bad.toml", "--tracking-uri", NO_DATABASE],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=60,
    )
    _one_line(r.returncode, r.stdout, r.stderr, DATABASE_DOWN)
