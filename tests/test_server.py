"""A real `mlflow server` on PostgreSQL with served artifacts, and Optuna's RDB storage on PostgreSQL.

No mocks: a fresh database per module/test, a server process on a free port of
127.0.0.1, a worker process killed with SIGKILL for the heartbeat test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from logreg.errors import LogregError
from logreg.servers import (
    database_name,
    ensure_postgres_database,
    server_command,
    sqlalchemy_url,
    start_server,
    with_database,
)
from tests.helpers import free_port
from tests.postgres_fixtures import (  # noqa: F401
    create_database,
    drop_database,
    module_pg_url,
    pg_url,
    postgres_server,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]


@pytest.fixture(scope="module")
def mlflow_server(module_pg_url, tmp_path_factory):  # noqa: F811
    """`logreg server` as users run it, on fresh PostgreSQL databases and a free port.

    Yields a dict: uri, artifacts (dir), storage (Optuna URL), output (printed so far), proc.
    """
    root = tmp_path_factory.mktemp("mlflow_server")
    optuna_url = create_database()
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "logreg",
        "server",
        "--backend-store-uri",
        module_pg_url,
        "--optuna-storage",
        optuna_url,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not any("Ctrl-C stops the server" in line for line in lines):
            assert proc.poll() is None, "logreg server exited early:\n" + "".join(lines)
            assert time.monotonic() < deadline, "logreg server did not start:\n" + "".join(lines)
            time.sleep(0.1)
        yield {
            "uri": f"http://127.0.0.1:{port}",
            "artifacts": root / "runs" / "mlartifacts",  # the default destination
            "storage": optuna_url,
            "output": "".join(lines),
            "proc": proc,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        drop_database(optuna_url)


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(uri + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


# ------------------------------------------------------------------ helpers without a server


def test_sqlalchemy_url_names_an_installed_driver():
    import importlib.util

    url = sqlalchemy_url("postgresql://u@h:5432/db")
    if importlib.util.find_spec("psycopg") is None:
        assert url == "postgresql+psycopg2://u@h:5432/db"
    assert sqlalchemy_url("postgres://u@h/db").endswith("://u@h/db")
    assert sqlalchemy_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_with_database_and_database_name():
    url = with_database("postgresql://u:pw@h:5432/a?sslmode=require", "logreg_optuna")
    assert url == "postgresql://u:pw@h:5432/logreg_optuna?sslmode=require"
    assert database_name(url) == "logreg_optuna"
    with pytest.raises(LogregError, match="names no database"):
        database_name("postgresql://u@h:5432")
    with pytest.raises(LogregError, match="Expected a PostgreSQL URL"):
        database_name("mysql://u:secret@h/db")


def test_server_command_binds_localhost_by_default():
    argv = server_command("postgresql://postgres@127.0.0.1:5432/x", "/tmp/art")
    assert argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "5000"
    assert argv[argv.index("--artifacts-destination") + 1] == "/tmp/art"
    assert "--allowed-hosts" not in argv and "--app-name" not in argv
    wide = server_command(
        "postgresql://p@h/x", host="0.0.0.0", allowed_hosts="mlflow.lan", app_name="basic-auth"
    )
    assert wide[wide.index("--allowed-hosts") + 1] == "mlflow.lan"
    assert wide[wide.index("--app-name") + 1] == "basic-auth"
    with pytest.raises(LogregError, match="'port' parameter must be an int >= 1 and <= 65535. Got 0"):
        server_command("postgresql://p@h/x", port=0)
    with pytest.raises(LogregError, match="'app_name' parameter must be one of basic-auth"):
        server_command("postgresql://p@h/x", app_name="other")


def test_basic_auth_needs_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_FLASK_SERVER_SECRET_KEY"}
    with pytest.raises(LogregError, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        start_server("postgresql://p@127.0.0.1/x", tmp_path, port=free_port(), app_name="basic-auth", env=env)


def test_ensure_database_unreachable_server_is_one_clear_error():
    port = free_port()  # nothing listens there
    with pytest.raises(
        LogregError, match=r"Cannot connect to PostgreSQL at .*:\*\*\*@127.0.0.1.*Is the server"
    ):
        ensure_postgres_database(f"postgresql://postgres:hunter2@127.0.0.1:{port}/x")


# ------------------------------------------------------------------ PostgreSQL


def test_ensure_postgres_database_creates_once(postgres_server):  # noqa: F811
    url = f"{postgres_server}/logreg_test_ensure_{os.getpid()}"
    try:
        assert ensure_postgres_database(url) is True
        assert ensure_postgres_database(url) is False
        assert ensure_postgres_database(sqlalchemy_url(url)) is False  # +psycopg2 form too
    finally:
        drop_database(url)


def test_tracker_round_trip_through_the_server(mlflow_server, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from logreg.tracking import RunRecord, Tracker

    uri, artifacts = mlflow_server["uri"], mlflow_server["artifacts"]
    note = tmp_path / "note.txt"
    note.write_text("served artifact\n")
    with Tracker(uri) as tracker:
        exp = tracker.experiment_id("server-round-trip")
        assert tracker.experiment_id("server-round-trip") == exp  # get, not create twice
        parent_id = tracker.start_run(exp, "study__parent", {"logreg.role": "study"}, {})
        record = RunRecord(
            exp,
            "iris__numpy__adam__trial-0",
            tags={"logreg.role": "trial", "logreg.dataset": "iris"},
            params={"lr": 0.05, "betas": (0.9, 0.999), "batch_size": None},
            metrics={"test_accuracy": 0.9},
            history={"train_loss": [0.7, 0.5, 0.3]},
            steps=[1, 2, 3],
            parent_run_id=parent_id,
            artifacts=[(str(note), "notes")],
        )
        child_id = tracker.write(record).result()
        tracker.end_run(parent_id)

    # Read everything back over HTTP with MLflow's own client.
    client = MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_ids=[exp])
    assert set(df["run_id"]) == {parent_id, child_id}
    row = df.set_index("run_id").loc[child_id]
    assert row["params.lr"] == "0.05" and row["params.betas"] == "0.9,0.999"
    assert row["params.batch_size"] == "None"
    assert row["metrics.test_accuracy"] == pytest.approx(0.9)
    assert row["metrics.train_loss"] == pytest.approx(0.3)  # latest value only
    assert row["tags.logreg.dataset"] == "iris"
    assert row["tags.mlflow.parentRunId"] == parent_id
    assert row["status"] == "FINISHED"
    history = client.get_metric_history(child_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 0.7),
        (2, 0.5),
        (3, 0.3),
    ]
    run = client.get_run(child_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served, not a local path
    assert [f.path for f in client.list_artifacts(child_id, "notes")] == ["notes/note.txt"]
    local = client.download_artifacts(child_id, "notes/note.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "served artifact\n"
    assert list(artifacts.rglob("note.txt")), "the server stored the artifact under its destination"


def test_second_server_on_the_same_port_is_refused(mlflow_server, module_pg_url, tmp_path):  # noqa: F811
    uri = mlflow_server["uri"]
    port = int(uri.rsplit(":", 1)[1])
    with pytest.raises(LogregError, match="already answers on http://127.0.0.1"):
        start_server(module_pg_url, tmp_path, port=port)


def _storage(url: str, **kwargs):
    import optuna

    return optuna.storages.RDBStorage(sqlalchemy_url(url), **kwargs)


def test_optuna_rdb_storage_on_postgres_with_heartbeats(pg_url):  # noqa: F811
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(pg_url, heartbeat_interval=1, grace_period=3)
    study = optuna.create_study(
        study_name="pg-heartbeat",
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=4)
    # A second process's view: a new storage object, load_study sees the trials.
    loaded = optuna.load_study(study_name="pg-heartbeat", storage=_storage(pg_url))
    assert [t.state for t in loaded.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert loaded.best_value == pytest.approx(study.best_value)
    assert storage.get_heartbeat_interval() == 1


def test_killed_worker_trial_is_failed_and_retried(pg_url):  # noqa: F811
    """A worker killed mid-trial stops its heartbeat; the trial goes FAIL and is retried."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    storage = _storage(pg_url, heartbeat_interval=1, grace_period=2, heartbeat_stale_trial_callback=retry)
    study = optuna.create_study(study_name="pg-kill", storage=storage)
    worker = textwrap.dedent(f"""
        import time, optuna
        storage = optuna.storages.RDBStorage({sqlalchemy_url(pg_url)!r}, heartbeat_interval=1, grace_period=2)
        study = optuna.load_study(study_name="pg-kill", storage=storage)
        def objective(trial):
            trial.suggest_float("x", 0, 1)
            print("started", flush=True)
            time.sleep(120)
        study.optimize(objective, n_trials=1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    time.sleep(3.5)  # past the grace period since the last heartbeat
    optuna.storages.fail_stale_trials(study)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == trials[0].params and retry.retried_trial_number(trials[1]) == 0
    # The next worker runs the retried trial with the same parameters.
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    done = study.trials[1]
    assert done.state == TrialState.COMPLETE and done.params == trials[0].params


def test_logreg_server_prints_the_addresses_workers_need(mlflow_server):
    out, uri = mlflow_server["output"], mlflow_server["uri"]
    assert f"MLflow tracking server: {uri}  (backend postgresql" in out
    assert f"  --tracking-uri {uri}\n" in out
    assert f"  --storage {sqlalchemy_url(mlflow_server['storage'])}\n" in out
    assert _answers(uri)
    # Optuna's tables exist before any worker starts (no race to create them).
    import psycopg2

    with psycopg2.connect(mlflow_server["storage"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('studies', 'trials')"
        )
        assert cur.fetchone()[0] == 2
    conn.close()


def test_sigterm_stops_logreg_server_and_the_mlflow_server(mlflow_server):
    """Last in the module: `kill` leaves no orphaned server (it runs in its own process group)."""
    proc, uri = mlflow_server["proc"], mlflow_server["uri"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while _answers(uri):
        assert time.monotonic() < deadline, f"the server on {uri} outlived `logreg server`"
        time.sleep(0.2)
