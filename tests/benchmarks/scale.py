"""The database's cost per trial, direct vs through Optuna's gRPC proxy, and MLflow's logging
throughput through `mlflow server` on PostgreSQL, at 1, 2, 4 and 8 workers (issue: scale model).

    python tests/benchmarks/scale.py [--workers 1,2,4,8] [--n-trials 48] [--out runs/scale]

Needs the PostgreSQL server on 127.0.0.1:5432 (trust auth). For each worker count and each path
(direct: every worker talks to PostgreSQL; proxy: `logreg storage-proxy` in front of it), a fresh
database, one study of cheap trials (iris, numpy, 10 epochs: the storage dominates), N `logreg
worker` processes started together with tracking off; the database's own counters
(pg_stat_database: xact_commit, tup_fetched + tup_returned, tup_inserted + tup_updated) are read
before and after and divided by the finished trials. Then the same sweeps with tracking on, through
one `mlflow server --workers 4` on a fresh PostgreSQL database: runs and metric values written per
second of wall time. Writes result.json and result.md (with the machine and this command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from logreg.tracking import cpu_name  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
EXP = """
name = "scale"
datasets = ["iris"]
impls = ["numpy"]
optimizers = ["adam"]
n_trials = {n_trials}
epochs = 10
eval_every = 5
[sampler]
name = "random"
[pruner]
name = "none"
"""
COUNTERS = ("xact_commit", "tup_fetched", "tup_returned", "tup_inserted", "tup_updated", "tup_deleted")


def _sql(sql: str, database: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(f"{POSTGRES}/{database}")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def _fresh_db() -> str:
    name = f"logreg_scale_{uuid.uuid4().hex[:10]}"
    _sql(f"CREATE DATABASE {name}")
    return name


def _drop(name: str) -> None:
    _sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _counters(name: str) -> dict[str, int]:
    time.sleep(0.6)  # the statistics collector flushes about every 0.5 s (PostgreSQL >= 15: at commit)
    _sql("SELECT pg_stat_force_next_flush()", name)
    row = _sql(f"SELECT {', '.join(COUNTERS)} FROM pg_stat_database WHERE datname = '{name}'")[0]
    return dict(zip(COUNTERS, map(int, row), strict=True))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _logreg(*args) -> list[str]:
    return [sys.executable, "-m", "logreg", *map(str, args)]


def _finished(storage_url: str) -> tuple[int, float]:
    """Finished trials and the span first start -> last end (Optuna's timestamps)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="scale/iris/numpy/adam/cpu", storage=storage_url)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return len(done), span


def _create_schema(storage: str, tracking_uri: str | None = None) -> None:
    """Both schemas once, before the workers start (as `logreg sweep` and `logreg server` do)."""
    from logreg.tracking import make_client
    from logreg.tune import open_storage

    open_storage(storage)
    if tracking_uri:
        make_client(tracking_uri)


def _run_workers(exp: Path, n: int, storage: str, tracking: list[str], cwd: Path) -> float:
    cmd = _logreg("worker", exp, "--storage", storage, "--no-plots", "--no-progress", *tracking)
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
        for _ in range(n)
    ]
    for p in procs:
        _, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode}): {err.decode()[-2000:]}")
    return time.monotonic() - t0


def _start(cmd: list[str], cwd: Path, ready) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ready():
            return proc
        time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"{cmd[3]} did not start")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def storage_cost(n: int, via_proxy: bool, n_trials: int, tmp: Path) -> dict:
    exp = tmp / "scale.toml"
    exp.write_text(EXP.format(n_trials=n_trials))
    db = _fresh_db()
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    proxy = None
    try:
        subprocess.run(
            _logreg("worker", exp, "--storage", url, "--no-track", "--n-trials", "0"),
            cwd=tmp,
            env=_env(),
            capture_output=True,
        )  # schema
        storage = url
        if via_proxy:
            import optuna

            port = _free_port()

            def ready() -> bool:
                try:
                    optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port).wait_server_ready(timeout=1)
                    return True
                except ConnectionError:
                    return False

            proxy = _start(_logreg("storage-proxy", "--storage", url, "--port", port), tmp, ready)
            storage = f"grpc://127.0.0.1:{port}"
        before = _counters(db)
        wall = _run_workers(exp, n, storage, ["--no-track"], tmp)
        after = _counters(db)
        trials, span = _finished(url)
    finally:
        if proxy is not None:
            _stop(proxy)
        _drop(db)
    delta = {k: after[k] - before[k] for k in COUNTERS}
    return {
        "workers": n,
        "path": "proxy" if via_proxy else "direct",
        "trials": trials,
        "trials_per_second": trials / span,
        "wall_seconds": wall,
        "commits_per_trial": delta["xact_commit"] / trials,
        "rows_read_per_trial": (delta["tup_fetched"] + delta["tup_returned"]) / trials,
        "rows_written_per_trial": (delta["tup_inserted"] + delta["tup_updated"] + delta["tup_deleted"])
        / trials,
        "commits_per_second": delta["xact_commit"] / span,
    }


def mlflow_throughput(n: int, n_trials: int, tmp: Path) -> dict:
    import urllib.request

    exp = tmp / "scale.toml"
    exp.write_text(EXP.format(n_trials=n_trials))
    db, optuna_db = _fresh_db(), _fresh_db()
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    backend = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    server = _start(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--artifacts-destination",
         str(tmp / "art"), "--host", "127.0.0.1", "--port", str(port), "--workers", "4"],
        tmp, ready,
    )  # fmt: skip
    storage = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{optuna_db}"
    try:
        subprocess.run(
            _logreg("worker", exp, "--storage", storage, "--tracking-uri", uri, "--n-trials", "0"),
            cwd=tmp,
            env=_env(),
            capture_output=True,
        )
        before = _counters(db)
        wall = _run_workers(exp, n, storage, ["--tracking-uri", uri], tmp)
        after = _counters(db)
        trials, span = _finished(storage)
        runs = _sql("SELECT count(*) FROM runs", db)[0][0]
        metrics = _sql("SELECT count(*) FROM metrics", db)[0][0]
    finally:
        _stop(server)
        _drop(db)
        _drop(optuna_db)
    return {
        "workers": n,
        "trials": trials,
        "runs": runs,
        "metric_values": metrics,
        "wall_seconds": wall,
        "runs_per_second": runs / span,
        "metric_values_per_second": metrics / span,
        "mlflow_commits_per_run": (after["xact_commit"] - before["xact_commit"]) / runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--n-trials", type=int, default=48)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "scale", help="(default runs/scale)")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    rows, mrows = [], []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for n in counts:
            for via_proxy in (False, True):
                rows.append(storage_cost(n, via_proxy, args.n_trials, tmp))
                print(json.dumps(rows[-1]), flush=True)
        for n in counts:
            mrows.append(mlflow_throughput(n, args.n_trials, tmp))
            print(json.dumps(mrows[-1]), flush=True)
    pg_version = _sql("SHOW server_version")[0][0]
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {pg_version}"
    )
    command = "python tests/benchmarks/scale.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine, "command": command, "load_before": load0, "load_after": os.getloadavg()[0]}
    (args.out / "result.json").write_text(json.dumps({**result, "storage": rows, "mlflow": mrows}, indent=1))
    lines = [
        "# Scale: the database's cost per trial, and MLflow's logging throughput\n",
        f"Machine: {machine}. 1-minute load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"(2 cores: the workers share them). Made by `{command.strip()}`.\n",
        "## Optuna storage: direct PostgreSQL vs through `logreg storage-proxy` (tracking off)\n",
        "| workers | path | trials | trials/s | commits/trial | rows read/trial | rows written/trial "
        "| commits/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['path']} | {r['trials']} | {r['trials_per_second']:.1f} "
            f"| {r['commits_per_trial']:.1f} | {r['rows_read_per_trial']:.0f} "
            f"| {r['rows_written_per_trial']:.1f} | {r['commits_per_second']:.0f} |"
        )
    lines += [
        "\n## MLflow through `mlflow server --workers 4` on PostgreSQL (Optuna direct)\n",
        "| workers | runs | metric values | runs/s | metric values/s | MLflow commits/run |",
        "|---|---|---|---|---|---|",
    ]
    for r in mrows:
        lines.append(
            f"| {r['workers']} | {r['runs']} | {r['metric_values']} | {r['runs_per_second']:.1f} "
            f"| {r['metric_values_per_second']:.0f} | {r['mlflow_commits_per_run']:.1f} |"
        )
    (args.out / "result.md").write_text("\n".join(lines) + "\n")
    print((args.out / "result.md").read_text())


if __name__ == "__main__":
    main()
