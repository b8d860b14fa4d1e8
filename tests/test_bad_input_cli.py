"""Bad input to sweep, worker, throughput and compare: exit status 2, one line naming the problem
and the fix, no traceback, nothing written (README "Bad input: what happens").

train's rows and the data-file rows are in test_bad_input.py; experiment-file contents in
test_sweep.py. Unreachable stores are real: nothing listens on port 1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

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
    # worker: runs/optuna-journal.log) or an empty output folder (compare makes --out first).
    for name in {p.name for p in here.iterdir()} - before:
        path = here / name
        assert name in ("runs", "results"), name
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


@pytest.mark.slow
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


# ---------------------------------------------------------------- hostile paths and stores


@pytest.fixture
def nodes(here):
    """A regular file, a FIFO and a symlink to a directory beside bad.toml (never under /dev)."""
    os.mkfifo(here / "pipe")
    (here / "file.txt").write_text("keep me\n")
    (here / "folder").mkdir()
    (here / "link").symlink_to(here / "folder")
    return here


def _unchanged(root, before):
    import stat

    after = {p.name: (p.lstat().st_mode, p.read_bytes() if p.is_file() else None) for p in root.iterdir()}
    assert {k: after.get(k) for k in before} == before
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)


def _snapshot(root):
    return {p.name: (p.lstat().st_mode, p.read_bytes() if p.is_file() else None) for p in root.iterdir()}


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["report", "--out", "file.txt"], r"--out 'file\.txt' is a regular file, not a folder\."),
        (["compare", "--out", "pipe"], r"--out 'pipe' is a FIFO \(named pipe\), not a folder\."),
        (
            ["convergence", "--out", "file.txt/sub"],
            r"--out 'file\.txt/sub' cannot be created: '.*file\.txt' is a regular file",
        ),
        (
            ["sweep", "bad.toml", "--no-track", "--results-dir", "file.txt"],
            r"--results-dir 'file\.txt/bad' cannot be created: '.*file\.txt' is a regular file",
        ),
        (
            ["sweep", "bad.toml", "--no-track", "--results-dir", "pipe"],
            r"--results-dir 'pipe/bad' cannot be created: '.*pipe' is a FIFO",
        ),
        (
            ["sweep", "bad.toml", "--no-track", "--storage", "file.txt"],
            r"'file\.txt' is not an Optuna journal file: line 1 is not a journal record\. Pass a journal",
        ),
        (
            ["sweep", "bad.toml", "--no-track", "--storage", "pipe"],
            r"The Optuna journal 'pipe' is not a regular file\. Pass a file path to --storage\.",
        ),
        (
            ["throughput", *TINY, "--no-track", "--out", "file.txt"],
            r"--out 'file\.txt' is a regular file, not a folder",
        ),
    ],
    ids=["report-out-file", "compare-out-fifo", "convergence-out-under-file", "results-dir-file",
         "results-dir-fifo", "storage-text-file", "storage-fifo", "throughput-out-file"],
)  # fmt: skip
def test_paths_that_are_not_what_they_should_be(argv, match, nodes, run_cli):
    before = _snapshot(nodes)
    _one_line(*run_cli(*argv), match)
    _unchanged(nodes, before)
    assert not (nodes / "runs" / "optuna-journal.log").exists()  # the sweep stopped before any trial


def test_storage_that_is_an_sqlite_file_is_not_a_journal(here, run_cli):
    import sqlite3

    with sqlite3.connect(here / "optuna.db") as db:
        db.execute("create table t (x)")
    before = (here / "optuna.db").read_bytes()
    _one_line(
        *run_cli("sweep", "bad.toml", "--no-track", "--storage", "optuna.db"),
        r"'optuna\.db' is not an Optuna journal file: line 1 is not a journal record\. .*sqlite:///optuna\.db",
    )
    assert (here / "optuna.db").read_bytes() == before


def test_experiment_name_too_long_for_mlflow(here, run_cli):
    (here / "long.toml").write_text(EXP.replace('name = "bad"', f'name = "{"n" * 523}"'))
    _one_line(
        *run_cli("sweep", "long.toml", "--no-track"),
        r"long\.toml: 'name' must be at most 100 characters: it starts every study, MLflow experiment and "
        r"run name \(MLflow keeps 250\)\. Got 523 characters; shorten it\.",
    )


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["sweep", "bad.toml", "--tracking-uri", "foo://bar"],
            r"The tracking URI 'foo://bar' has an unknown scheme 'foo'\. Use e\.g\. sqlite:///mlflow\.db, "
            r"postgresql://USER@HOST/DB, http://127\.0\.0\.1:5000 or file:///PATH\.",
        ),
        (
            ["sweep", "bad.toml", "--no-track", "--storage", "foo://bar"],
            r"The Optuna storage 'foo://bar' has an unknown scheme 'foo'\. Use a journal file path, "
            r"sqlite:///optuna\.db",
        ),
        (
            ["storage-proxy", "--storage", "sqlite:///o.db", "--host", "no-such-host.invalid"],
            r"Cannot listen on no-such-host\.invalid:13000: .*\. Pass another --host\.",
        ),
        (
            ["compare", "sqlite:///typo/mlflow.db"],
            r"The SQLite tracking store sqlite:///typo/mlflow\.db does not exist\. Check the URI "
            r"\(a store is read, never created, here\)\.",
        ),
        (
            ["report", "sqlite:///typo.db"],
            r"The SQLite tracking store sqlite:///typo\.db does not exist\.",
        ),
        (
            ["sweep", "bad.toml", "--tracking-uri", "sqlite:///file.txt"],
            r"The SQLite tracking store sqlite:///file\.txt is not an SQLite database\.",
        ),
        (
            ["throughput", *TINY, "--no-track", "--max-gib", "1e-9"],
            r"Every cell of the grid would be skipped: the smallest X is .* GiB, more than --max-gib 1e-09\. "
            r"Raise --max-gib or pass smaller --sizes / --dims\.",
        ),
    ],
    ids=["tracking-scheme", "storage-scheme", "proxy-host", "compare-typo", "report-typo",
         "store-not-sqlite", "throughput-all-skipped"],
)  # fmt: skip
def test_stores_and_hosts_named_wrongly(argv, match, nodes, run_cli):
    before = _snapshot(nodes)
    _one_line(*run_cli(*argv), match)
    _unchanged(nodes, before)
    assert set(_snapshot(nodes)) == set(before)  # no database, no folder made


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder no process may write: a read-only tmpfs as root (chmod does not stop root), else mode 555."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.slow
def test_read_only_sqlite_store_fails_at_once_in_one_line(here, read_only_dir):
    uri = f"sqlite:///{read_only_dir}/mlflow.db"
    started = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "logreg", "sweep", "bad.toml", "--tracking-uri", uri],
        cwd=here, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    _one_line(
        r.returncode, r.stdout, r.stderr,
        rf"The SQLite tracking store {re.escape(uri)} cannot be written: "
        rf"'{re.escape(str(read_only_dir))}' is read-only\. Pass a store in a folder you can write\.",
    )  # fmt: skip
    assert time.monotonic() - started < 30  # MLflow alone retried for 105 s


@pytest.mark.slow
def test_a_sweep_that_would_take_days_says_so(here):
    (here / "huge.toml").write_text(EXP.replace("n_trials = 2", "n_trials = 1000000000"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "logreg", "sweep", "huge.toml", "--no-track", "--no-progress"],
        cwd=here, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert re.match(
        r"logreg: warning: This sweep \(\d+ more trials at [\d.e-]+ s each\) will take about "
        r"[\d.]+ (days|years)\. "
        r"Lower n_trials or add --workers; Ctrl-C stops it and the same command resumes\.",
        line,
    ), line
