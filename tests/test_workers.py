"""Many workers, one study, and faults, with real processes and real stores (no mocks).

`logreg sweep --workers N` and `logreg worker` processes share Optuna studies on a journal file,
SQLite and PostgreSQL; workers are killed with SIGKILL, sweeps stopped with SIGTERM; the MLflow
tracking server and the Optuna database go away mid-sweep. After each: every cell has its
n_trials (overshooting by at most workers - 1), every Optuna trial has exactly one MLflow child
run, nothing is left RUNNING, and a re-run resumes.

Every test here starts processes: all are marked slow (the fast tier, -m "not slow", leaves them
out; CI runs them).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from logreg.experiment import load_experiment
from logreg.servers import sqlalchemy_url
from tests.helpers import free_port, start_mlflow_server
from tests.postgres_fixtures import make_pg_database, pg_url, postgres_server  # noqa: F401
from tests.processes import (
    is_alive,
    is_pending,
    kill_mid_trial,
    optuna_storage,
    runs_of,
    stop_mid_trial,
    trials_of,
    wait_for,
    worker_children,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


# Two cells of fast trials: process start-up, not training, is most of the cost.
FAST = """
name = "{name}"
datasets = ["iris"]
impls = ["numpy"]
optimizers = ["sgd", "adam"]
n_trials = {n_trials}
epochs = 10
eval_every = 5
[pruner]
name = "none"
"""
# One cell whose trials take about a second (mini-batches), so a process can be hit mid-trial.
SLOW = """
name = "{name}"
datasets = ["synthetic:n=20000,d=20"]
impls = ["numpy"]
optimizers = ["sgd"]
n_trials = {n_trials}
epochs = 600
eval_every = 100
[pruner]
name = "none"
[search.sgd]
lr = [0.01, 0.5]
batch_size = [64]
"""


def _write(tmp_path: Path, template: str, name: str, n_trials: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(template.format(name=name, n_trials=n_trials))
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # One thread per process: the workers share 2 cores with each other and the test.
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **extra}


def _logreg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "logreg", *map(str, args)]


def _sweep(
    tmp_path: Path, exp: Path, *args: str | Path, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = _logreg("sweep", exp, "--no-progress", "--no-plots", "--results-dir", tmp_path / "results", *args)
    return subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env or _env()
    )


def _finished(study) -> int:
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def check_sweep(exp_path: Path, storage_url: str, uri: str, workers: int, *, allow_missing: int = 0) -> dict:
    """The invariants of a finished (multi-worker) sweep; returns the studies by name.

    allow_missing: trials whose MLflow run may be absent (the tracking store was down when they
    started). Every run present is unique, and nothing is RUNNING anywhere.
    """
    exp = load_experiment(exp_path)
    storage = optuna_storage(storage_url)
    runs = runs_of(uri, exp.mlflow_experiment)
    running = runs[runs["status"] == "RUNNING"]
    assert running.empty, running.filter(regex="runName|run_kind|trial_number|start_time|end_time").T
    trial_runs = runs[runs["tags.logreg.run_kind"] == "trial"]
    parents = runs[runs["tags.logreg.run_kind"] == "study"]
    studies, missing = {}, 0
    for cell in exp.cells():
        name = exp.study_name(cell)
        study = optuna.load_study(study_name=name, storage=storage)
        studies[name] = study
        assert exp.n_trials <= _finished(study) <= exp.n_trials + workers - 1, (name, _finished(study))
        assert not [t.number for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
        # Exactly one parent per study, and exactly one child run per Optuna trial.
        assert (parents["tags.logreg.study"] == name).sum() == 1
        mine = trial_runs[trial_runs["tags.logreg.study"] == name]
        counts = collections.Counter(int(n) for n in mine["tags.logreg.trial_number"])
        assert [n for n, c in counts.items() if c > 1] == [], f"duplicated runs in {name}"
        numbers = {t.number for t in study.trials}
        assert set(counts) <= numbers
        missing += len(numbers - set(counts))
        parent_id = parents[parents["tags.logreg.study"] == name].iloc[0]["run_id"]
        assert (mine["tags.mlflow.parentRunId"] == parent_id).all()
        done = {str(t.number) for t in study.trials if t.state.name == "COMPLETE"}
        ok = mine[mine["tags.logreg.trial_number"].isin(done)]
        odd = ok[ok["status"] != "FINISHED"]
        assert odd.empty, odd.filter(regex="run_id|status|trial_number|trial_state|logreg.error|end_time").T
    assert missing <= allow_missing
    return studies


def _create_stores(storage_url: str | None, uri: str) -> None:
    """Create the stores' schemas once, as `logreg sweep` does before its workers start."""
    from logreg.tracking import make_client
    from logreg.tune import open_storage

    if storage_url is not None:
        open_storage(storage_url)
    make_client(uri)


# ------------------------------------------------------------------ many workers, one study


@pytest.mark.slow
def test_three_workers_on_the_journal_file(tmp_path):
    exp = _write(tmp_path, FAST, "journal", n_trials=6)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    r = _sweep(tmp_path, exp, "--workers", "3", "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr
    assert "database is locked" not in r.stderr and "Traceback" not in r.stderr
    check_sweep(exp, str(tmp_path / "runs" / "optuna-journal.log"), uri, workers=3)  # the default storage
    assert (tmp_path / "results" / "journal" / "summary.csv").exists()


@pytest.mark.slow
def test_two_workers_on_sqlite_optuna_storage(tmp_path):
    exp = _write(tmp_path, FAST, "sqlite", n_trials=5)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = "sqlite:///optuna.db"  # relative to cwd; the parent creates the schema first
    r = _sweep(tmp_path, exp, "--workers", "2", "--storage", storage, "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr
    assert "database is locked" not in r.stderr and "Traceback" not in r.stderr
    check_sweep(exp, f"sqlite:///{tmp_path}/optuna.db", uri, workers=2)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgresql(tmp_path, make_pg_database):  # noqa: F811
    exp = _write(tmp_path, FAST, "pg", n_trials=5)
    storage = sqlalchemy_url(make_pg_database())
    uri = sqlalchemy_url(make_pg_database())  # MLflow's backend store on PostgreSQL too
    r = _sweep(tmp_path, exp, "--workers", "2", "--storage", storage, "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    check_sweep(exp, storage, uri, workers=2)


# ------------------------------------------------------------------ faults


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkilled_worker_trial_is_retried_and_its_run_ended(tmp_path, pg_url):  # noqa: F811
    exp = _write(tmp_path, SLOW, "killed", n_trials=3)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    storage = sqlalchemy_url(pg_url)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _create_stores(storage, uri)
    env = _env(LOGREG_HEARTBEAT_INTERVAL="1", LOGREG_GRACE_PERIOD="3")
    cmd = _logreg("worker", exp, "--storage", storage, "--tracking-uri", uri, "--no-plots")
    first = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )

    killed, writers = kill_mid_trial(first.pid, storage, study_name, 120, first)
    assert writers, "the worker's MLflow writer process was not found"
    completed = {t.number: t.value for t in trials_of(storage, study_name) if t.state.name == "COMPLETE"}
    first.wait(30)
    wait_for(lambda: not any(is_alive(pid) for pid in writers), 60, "the dead worker's writer to exit")
    time.sleep(3 + 1.5)  # past the grace period: the heartbeat is stale
    # A later worker picks the cell up: it fails the stale trial, retries it first, ends its run.
    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert second.returncode == 0, second.stderr
    trials = {t.number: t for t in trials_of(storage, study_name)}
    assert trials[killed.number].state.name == "FAIL"
    retries = [
        t
        for t in trials.values()
        if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number
    ]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == killed.params
    for number, value in completed.items():  # nothing completed is lost
        assert trials[number].state.name == "COMPLETE" and trials[number].value == value
    runs = runs_of(uri, "sweep/killed")
    run = runs[runs["tags.logreg.trial_number"] == str(killed.number)].iloc[0]
    assert run["status"] == "KILLED" and run["tags.logreg.trial_state"] == "STALE"
    assert "died" in run["tags.logreg.error"]
    check_sweep(exp, storage, uri, workers=1)


@pytest.mark.slow
def test_sigterm_to_a_multi_worker_sweep_stops_cleanly_and_rerun_resumes(tmp_path):
    # The signal lands mid-trial by construction, however busy the machine (see stop_mid_trial),
    # and mid-sweep: 200 trials could not finish meanwhile. The resume then asks for a few more
    # than were completed (the file is rewritten), so it stays short.
    exp = _write(tmp_path, SLOW, "term", n_trials=200)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    journal = str(tmp_path / "runs" / "optuna-journal.log")  # the default storage
    (tmp_path / "runs").mkdir()  # read while the sweep starts: its folder must be there
    cmd = _logreg(
        "sweep",
        exp,
        "--workers",
        "2",
        "--no-progress",
        "--no-plots",
        "--tracking-uri",
        uri,
        "--results-dir",
        tmp_path / "results",
    )
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )

    def both_workers():
        found = worker_children(proc.pid)
        return found if len(found) == 2 else None

    workers = wait_for(both_workers, 60, "the two workers", proc)
    # Both workers stopped while one trains a trial; the sweep's SIGINT to
    # its workers waits (pending) until they go on, so it lands mid-trial.
    _, inflight = stop_mid_trial(workers, journal, study_name, 120, proc)
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: all(is_pending(pid, signal.SIGINT) for pid in workers), 60, "the SIGINT to the workers")
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    states = [t.state.name for t in trials_of(journal, study_name)]
    assert "RUNNING" not in states and states.count("COMPLETE") < 200, (states, err)
    # The trial in flight stops after its epoch (FAIL, its run KILLED), or completes if it was
    # past its last one (computing its final metrics).
    assert states[inflight.number] in ("FAIL", "COMPLETE"), (states, err)
    runs = runs_of(uri, "sweep/term")
    assert "RUNNING" not in set(runs["status"])
    interrupted = runs[runs["tags.logreg.trial_state"] == "INTERRUPTED"]
    assert (interrupted["status"] == "KILLED").all()
    assert (states[inflight.number] == "FAIL") == (
        str(inflight.number) in set(interrupted["tags.logreg.trial_number"])
    )
    exp = _write(tmp_path, SLOW, "term", n_trials=states.count("COMPLETE") + 2)
    r = _sweep(tmp_path, exp, "--tracking-uri", uri)  # resumes in one process
    assert r.returncode == 0, r.stderr
    # A trial interrupted before its run was created (choosing its parameters, loading its
    # data) has none: it failed in Optuna and never counts.
    check_sweep(exp, journal, uri, workers=2, allow_missing=states.count("FAIL"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_the_process_group_stops_the_sweep_in_seconds(tmp_path, workers):
    # What schedulers do (Kubernetes eviction, SLURM preemption, `timeout`, job control): every
    # process of the sweep gets SIGTERM at once. By construction mid-trial: the whole group is
    # stopped while a trial trains, the SIGTERM sent while it is stopped, then the group goes on.
    exp = _write(tmp_path, SLOW, "group", n_trials=200)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    journal = str(tmp_path / "runs" / "optuna-journal.log")  # the default storage
    (tmp_path / "runs").mkdir()  # read while the sweep starts: its folder must be there
    cmd = _logreg("sweep", exp, "--workers", str(workers), "--no-progress", "--no-plots")
    cmd += ["--tracking-uri", uri, "--results-dir", tmp_path / "results"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        start_new_session=True,
    )  # fmt: skip
    trainers = [proc.pid]
    if workers > 1:
        trainers = wait_for(
            lambda: (w := worker_children(proc.pid)) and len(w) == workers and w, 60, "workers", proc
        )
    stop_mid_trial(trainers, journal, study_name, 120, proc, group=proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)  # pending in every stopped process of the group
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGCONT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the sweep still ran 60 s after a SIGTERM to its process group: {proc.communicate()[1]}")
    took = time.monotonic() - started
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("logreg: sweep interrupted"), err
    assert "Traceback" not in err, err
    assert took < 20, f"{took:.1f} s from the group SIGTERM to the sweep's exit"
    trials = trials_of(journal, study_name)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "COMPLETE" in states and states.count("COMPLETE") < 200, states
    runs = runs_of(uri, "sweep/group")
    assert "RUNNING" not in set(runs["status"])
    finished = runs[(runs["status"] == "FINISHED") & (runs["tags.logreg.run_kind"] == "trial")]
    complete = {str(t.number) for t in trials if t.state.name == "COMPLETE"}
    assert complete <= set(finished["tags.logreg.trial_number"]), "a finished trial has no FINISHED run"
    exp = _write(tmp_path, SLOW, "group", n_trials=states.count("COMPLETE") + 2)
    r = _sweep(tmp_path, exp, "--tracking-uri", uri)  # the resume completes the cell
    assert r.returncode == 0, r.stderr
    check_sweep(exp, journal, uri, workers=workers, allow_missing=states.count("FAIL"))


def _stop(server: subprocess.Popen) -> None:
    """The server and its worker processes, at once (a crash, not a shutdown)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)


@pytest.mark.slow
def test_tracking_server_going_away_stops_the_sweep_and_rerun_resumes(tmp_path):
    exp = _write(tmp_path, SLOW, "server", n_trials=10)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    journal = str(tmp_path / "runs" / "optuna-journal.log")  # the default storage
    (tmp_path / "runs").mkdir()  # read while the sweep starts: its folder must be there
    server = start_mlflow_server(tmp_path, port, _env())
    try:
        cmd = _logreg(
            "sweep",
            exp,
            "--no-progress",
            "--no-plots",
            "--tracking-uri",
            uri,
            "--results-dir",
            tmp_path / "results",
        )
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
        )
        wait_for(
            lambda: any(t.state.name == "COMPLETE" for t in trials_of(journal, study_name)),
            120,
            "a complete trial",
            proc,
        )
        before = sum(t.state.name == "COMPLETE" for t in trials_of(journal, study_name))
        _stop(server)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=120)
        # Stops within a bound (the writer's HTTP retries, then the trial in flight) rather than
        # running the whole sweep untracked.
        assert time.monotonic() - t0 < 60
        assert proc.returncode == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("logreg: error: ") and uri in err and "re-run" in err
        completed = {t.number: t.value for t in trials_of(journal, study_name) if t.state.name == "COMPLETE"}
        assert 1 <= len(completed) < 10
        server = start_mlflow_server(tmp_path, port, _env())
        r = _sweep(tmp_path, exp, "--tracking-uri", uri)
        assert r.returncode == 0, r.stderr
        trials = {t.number: t for t in trials_of(journal, study_name)}
        for number, value in completed.items():
            assert trials[number].value == value
        # Trials whose runs could not be written while the server was down get them now, from
        # Optuna's record (reconcile): none is missing.
        check_sweep(exp, journal, uri, workers=1)
        runs = runs_of(uri, "sweep/server")
        assert before >= 1 and "tags.logreg.rebuilt" in runs
    finally:
        _stop(server)


class _Proxy:
    """A TCP forwarder to PostgreSQL on a port of its own: stopping it is the database going away."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 5432)):
        self.port, self.target = port, target
        self.conns: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would leave it listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_optuna_database_going_away_stops_the_sweep_and_rerun_resumes(tmp_path, pg_url):  # noqa: F811
    exp = _write(tmp_path, SLOW, "dbgone", n_trials=5)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    port = free_port()
    direct = sqlalchemy_url(pg_url)
    via_proxy = direct.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = _env(LOGREG_HEARTBEAT_INTERVAL="1", LOGREG_GRACE_PERIOD="2")
    _create_stores(direct, uri)  # the test reads the storage while the sweep starts
    proxy = _Proxy(port)
    try:
        cmd = _logreg(
            "sweep",
            exp,
            "--no-progress",
            "--no-plots",
            "--storage",
            via_proxy,
            "--tracking-uri",
            uri,
            "--results-dir",
            tmp_path / "results",
        )
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        wait_for(
            lambda: any(t.state.name == "COMPLETE" for t in trials_of(direct, study_name)),
            120,
            "a complete trial",
            proc,
        )
        proxy.stop()
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=120)
        assert time.monotonic() - t0 < 60
        assert proc.returncode == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("logreg: error: ") and "Optuna storage" in err and "re-run" in err
        completed = {t.number: t.value for t in trials_of(direct, study_name) if t.state.name == "COMPLETE"}
        assert 1 <= len(completed) < 5
        # The trial cut off by the lost database is still RUNNING there (its end never reached
        # it); once its heartbeat is stale, the re-run fails it and retries it.
        cut_off = [t for t in trials_of(direct, study_name) if t.state.name == "RUNNING"]
        time.sleep(2 + 1)
        proxy = _Proxy(port)  # the database is back
        r = _sweep(tmp_path, exp, "--storage", via_proxy, "--tracking-uri", uri, env=env)
        assert r.returncode == 0, r.stderr
        trials = {t.number: t for t in trials_of(direct, study_name)}
        for number, value in completed.items():
            assert trials[number].value == value
        for t in cut_off:
            assert trials[t.number].state.name == "FAIL"
        # The cut-off trial may have no run: the database went away before its run started.
        check_sweep(exp, direct, uri, workers=1, allow_missing=len(cut_off))
    finally:
        proxy.stop()


# ------------------------------------------------------------------ workers that start together


def _start_together(cmd: list[str], n: int, tmp_path: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    """n processes started within a few milliseconds of each other (no store exists yet)."""
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(n)
    ]
    assert time.monotonic() - t0 < 0.1, "the workers did not start within 100 ms"
    return procs


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("mlflow_backend", ["postgresql", "sqlite"])
def test_four_workers_started_together_on_fresh_databases(tmp_path, make_pg_database, mlflow_backend):  # noqa: F811
    # Neither store exists: every worker races to create Optuna's tables and MLflow's.
    exp = _write(tmp_path, FAST, "race", n_trials=4)
    storage = sqlalchemy_url(make_pg_database())
    uri = (
        sqlalchemy_url(make_pg_database())
        if mlflow_backend == "postgresql"
        else f"sqlite:///{tmp_path}/fresh-mlflow.db"
    )
    cmd = _logreg("worker", exp, "--storage", storage, "--tracking-uri", uri, "--no-plots", "--no-progress")
    procs = _start_together(cmd, 4, tmp_path, _env())
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert not any("Traceback" in e for e in errors), errors
    check_sweep(exp, storage, uri, workers=4)


# ------------------------------------------------------------------ many workers at once


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("kill_one", [False, True], ids=["all-live", "one-sigkilled"])
def test_eight_workers_on_one_postgresql_study(tmp_path, make_pg_database, kill_one):  # noqa: F811
    # 200 trials of one study shared by 8 worker processes (mostly waiting, on 2 cores), both stores
    # on PostgreSQL. With one worker SIGKILLed mid-trial, heartbeats fail its trial, a live worker
    # retries it, and the count is still exact.
    one_cell = FAST.replace('optimizers = ["sgd", "adam"]', 'optimizers = ["adam"]')
    template = SLOW.replace("epochs = 600", "epochs = 300") if kill_one else one_cell
    exp = _write(tmp_path, template, "eight", n_trials=24 if kill_one else 200)
    storage = sqlalchemy_url(make_pg_database())
    uri = sqlalchemy_url(make_pg_database())
    # A grace period long enough that 8 workers starved on 2 cores keep their heartbeats.
    env = _env(LOGREG_HEARTBEAT_INTERVAL="2", LOGREG_GRACE_PERIOD="15")
    cmd = _logreg(
        "sweep", exp, "--workers", "8", "--storage", storage, "--tracking-uri", uri,
        "--no-progress", "--no-plots", "--results-dir", tmp_path / "results",
    )  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    killed = None
    if kill_one:
        study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
        # Every worker started; one is killed while a trial of its own trains.
        wait_for(
            lambda: sum(t.state.name == "RUNNING" for t in trials_of(storage, study_name)) >= 8,
            240,
            "all eight workers in a trial",
            proc,
        )
        victim = worker_children(proc.pid)[0]
        kill_mid_trial(victim, storage, study_name, 240, proc)
        killed = time.monotonic()
    out, err = proc.communicate(timeout=600)
    if kill_one:
        # The sweep reports the dead worker (exit 2) after the live ones finished every cell;
        # the re-run (past the grace period) ends what the dead worker left RUNNING.
        assert proc.returncode == 2 and "1 of 8 workers failed" in err, err
        time.sleep(max(0.0, killed + 15 + 2 - time.monotonic()))
        r = _sweep(tmp_path, exp, "--storage", storage, "--tracking-uri", uri, env=env)
        assert r.returncode == 0, r.stderr
        assert killed is not None
    else:
        assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    studies = check_sweep(exp, storage, uri, workers=8)
    if kill_one:
        (study,) = studies.values()
        failed = [t for t in study.trials if t.state.name == "FAIL"]
        assert failed, "the killed worker's trial was not failed by the heartbeat check"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_dead_workers_trial_found_after_its_cell_is_done_gets_its_retry(tmp_path, make_pg_database):  # noqa: F811
    # By construction: the cell has its n_trials, then a worker "dies" mid-trial (a RUNNING trial
    # whose heartbeats stop). The next process to open the cell fails it as stale, which queues a
    # retry (WAITING): that retry runs, and nothing is left WAITING or RUNNING.
    exp = _write(tmp_path, FAST.replace('optimizers = ["sgd", "adam"]', 'optimizers = ["adam"]'), "late", 3)
    storage = sqlalchemy_url(make_pg_database())
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = _env(LOGREG_HEARTBEAT_INTERVAL="1", LOGREG_GRACE_PERIOD="2")
    first = _sweep(tmp_path, exp, "--storage", storage, "--tracking-uri", uri, env=env)
    assert first.returncode == 0, first.stderr
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    rdb = optuna.storages.RDBStorage(
        storage, heartbeat_interval=1, grace_period=2, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool}
    )
    dead = optuna.load_study(study_name=study_name, storage=rdb).ask()
    trial_id = rdb.get_trial_id_from_study_id_trial_number(
        rdb.get_study_id_from_name(study_name), dead.number
    )
    rdb.record_heartbeat(trial_id)  # one heartbeat, then none: the process died
    time.sleep(3)  # past the grace period
    again = _sweep(tmp_path, exp, "--storage", storage, "--tracking-uri", uri, env=env)
    assert again.returncode == 0, again.stderr
    trials = {t.number: t for t in trials_of(storage, study_name)}
    assert trials[dead.number].state.name == "FAIL"
    retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    retries = [t for t in trials.values() if retried(t) == dead.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    check_sweep(exp, storage, uri, workers=2, allow_missing=1)  # the dead trial never had a run


# ------------------------------------------------------------------ Optuna's gRPC storage proxy


def _start_proxy(storage: str, port: int, tmp_path: Path) -> subprocess.Popen:
    """`logreg storage-proxy` in its own process group, once it answers."""
    proc = subprocess.Popen(
        _logreg("storage-proxy", "--storage", storage, "--port", str(port)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    line = proc.stdout.readline()  # the banner's first line comes once the storage is open
    assert line.startswith("Optuna storage proxy for"), (line, proc.stderr.read() if proc.poll() else "")
    optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port).wait_server_ready(timeout=30)
    return proc


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_through_the_grpc_proxy_exact_counts(tmp_path, make_pg_database):  # noqa: F811
    exp = _write(tmp_path, FAST, "proxied", n_trials=6)
    storage = sqlalchemy_url(make_pg_database())
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    port = free_port()
    proxy = _start_proxy(storage, port, tmp_path)
    try:
        r = _sweep(
            tmp_path, exp, "--workers", "3", "--storage", f"grpc://127.0.0.1:{port}", "--tracking-uri", uri
        )
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        _stop(proxy)
    check_sweep(exp, storage, uri, workers=3)  # read straight from PostgreSQL


@pytest.mark.slow
@pytest.mark.postgres
def test_proxy_killed_mid_sweep_one_line_per_worker_then_resume(tmp_path, make_pg_database):  # noqa: F811
    exp = _write(tmp_path, SLOW, "proxykill", n_trials=6)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    storage = sqlalchemy_url(make_pg_database())
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    port = free_port()
    grpc_url = f"grpc://127.0.0.1:{port}"
    _create_stores(storage, uri)
    proxy = _start_proxy(storage, port, tmp_path)
    cmd = _logreg("worker", exp, "--storage", grpc_url, "--tracking-uri", uri, "--no-plots", "--no-progress")
    workers = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env()
        )
        for _ in range(2)
    ]
    try:
        wait_for(
            lambda: any(t.state.name == "COMPLETE" for t in trials_of(storage, study_name)),
            180,
            "a trial",
            workers[0],
        )
    finally:
        _stop(proxy)  # SIGKILL: the proxy is gone, mid-sweep
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"logreg: error: Lost the Optuna storage {grpc_url}") and "re-run" in err, err
    completed = {t.number: t.value for t in trials_of(storage, study_name) if t.state.name == "COMPLETE"}
    # The trials the proxy's death cut off stay RUNNING in the database: the re-run fails them
    # once they have been RUNNING longer than LOGREG_PROXY_STALE_AFTER, and runs new ones.
    proxy = _start_proxy(storage, port, tmp_path)
    try:
        time.sleep(3)
        env = _env(LOGREG_PROXY_STALE_AFTER="2")
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr
    finally:
        _stop(proxy)
    trials = {t.number: t for t in trials_of(storage, study_name)}
    for number, value in completed.items():  # nothing completed is lost
        assert trials[number].value == value
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) >= 6
    assert not [t for t in trials.values() if t.state.name == "RUNNING"]


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkilled_worker_behind_the_proxy_is_failed_after_the_grace(tmp_path, make_pg_database):  # noqa: F811
    # Optuna's proxy client has no heartbeats: a killed worker's trial stays RUNNING until a worker
    # sees it RUNNING for longer than LOGREG_PROXY_STALE_AFTER; then it fails, and its run ends KILLED.
    exp = _write(tmp_path, SLOW, "proxysigkill", n_trials=3)
    study_name = load_experiment(exp).study_name(load_experiment(exp).cells()[0])
    storage = sqlalchemy_url(make_pg_database())
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    port = free_port()
    _create_stores(storage, uri)
    proxy = _start_proxy(storage, port, tmp_path)
    env = _env(LOGREG_PROXY_STALE_AFTER="4")
    cmd = _logreg("worker", exp, "--storage", f"grpc://127.0.0.1:{port}", "--tracking-uri", uri, "--no-plots")
    try:
        first = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )

        killed, writers = kill_mid_trial(first.pid, storage, study_name, 180, first)
        assert writers, "the worker's MLflow writer process was not found"
        first.wait(30)
        # The writer drains its queue (the killed trial's run reaches the store), then exits.
        wait_for(lambda: not any(is_alive(pid) for pid in writers), 60, "the dead worker's writer to exit")
        second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        assert second.returncode == 0, second.stderr
    finally:
        _stop(proxy)
    trials = {t.number: t for t in trials_of(storage, study_name)}
    assert trials[killed.number].state.name == "FAIL"
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 3
    runs = runs_of(uri, "sweep/proxysigkill")
    assert "RUNNING" not in set(runs["status"])
    mine = runs[runs["tags.logreg.trial_number"] == str(killed.number)]
    assert len(mine) <= 1 and (mine["status"] == "KILLED").all()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["--storage", "grpc://127.0.0.1:1"],
            r"Cannot reach the Optuna storage proxy grpc://127\.0\.0\.1:1 within",
        ),
        (
            ["--storage", "grpc://127.0.0.1"],
            r"The gRPC storage URL must be grpc://HOST:PORT.*Got 'grpc://127\.0\.0\.1'",
        ),
    ],
    ids=["unreachable-proxy", "no-port"],
)
def test_bad_proxy_urls_one_line(tmp_path, argv, match):
    exp = _write(tmp_path, FAST, "bad", n_trials=1)
    r = subprocess.run(
        _logreg("worker", exp, *argv, "--no-track"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(match, r.stderr), r.stderr


@pytest.mark.slow
def test_proxy_in_front_of_a_journal_file_is_refused(tmp_path):
    r = subprocess.run(
        _logreg("storage-proxy", "--storage", "optuna-journal.log", "--port", str(free_port())),
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "Optuna's proxy refuses journal files" in r.stderr
